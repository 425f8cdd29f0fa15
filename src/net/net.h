/* src/net/net.h - what the two files of libmproc-net share: the deadline arithmetic and
 * the handshake (src/net/auth.c), called by the listener and the client
 * (src/net/listener.c). The library sits above the core and uses its public API only.
 */
#ifndef MPROC_NET_NET_H
#define MPROC_NET_NET_H

#include <mproc/listener.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A key, copied from the caller's options (len 0: none). */
struct mproc__net_key {
    unsigned char *bytes;
    size_t len;
};

/* Monotonic nanoseconds, and what is left of a deadline as a timeout for the core's
 * calls (seconds, 0 once passed). INT64_MAX: no deadline. */
int64_t mproc__net_now_ns(void);
double mproc__net_left(int64_t deadline);

/* The listener's side of the handshake on a fresh connection: 0 when the peer passed
 * (or no key is set), -MPROC_EAUTH, -EPROTO (not our protocol), -ETIMEDOUT, -MPROC_EEOF,
 * or another error of the connection. Reads at most a few hundred bytes. */
int mproc__net_serve(mproc_conn *c, const struct mproc__net_key *key, int64_t deadline);

/* The client's side: 0, -MPROC_EAUTH (keys differ, or only one side has one), -EPROTO,
 * -ETIMEDOUT, -MPROC_EEOF, or another error of the connection. */
int mproc__net_answer(mproc_conn *c, const struct mproc__net_key *key, int64_t deadline);

#endif
