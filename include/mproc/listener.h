/* mproc/listener.h - connections between processes that are not parent and child.
 *
 * Python's multiprocessing.connection.Listener and Client: a listener waits at an
 * address; a client connects to it; each side gets an mproc_conn (mproc/pipe.h) carrying
 * whole messages both ways: the same calls, the same framing, 0-byte and large messages,
 * timeouts, -MPROC_EEOF when the peer is gone.
 *
 * Addresses (strings):
 *   "unix:/run/x.sock", or any path with a '/' in it   a Unix socket at that path
 *   "unix:@name"                                       Linux's abstract namespace (no file)
 *   "unix:"                                            an abstract name the kernel picks
 *   "tcp:HOST:PORT", "HOST:PORT", "[v6addr]:PORT"      TCP; PORT 0 lets the kernel pick
 * mproc_listener_address gives the address actually bound, for the clients.
 *
 * Authentication (authkey, as Python's): both ends prove they know the same key before
 * any message is given to the caller, by HMAC-SHA256 challenge-response with fresh
 * random challenges (OpenSSL's libcrypto), the listener first and then the client, so
 * neither side's answer can be replayed or reflected; the key itself never travels. A
 * peer without the key, with another key, or speaking anything but this protocol is
 * refused: the client's call fails with -MPROC_EAUTH; the listener drops that peer,
 * counts it (mproc_listener_refused) and goes on waiting for the next. A listener
 * without a key accepts anyone who can connect, and says so in its greeting: a client
 * that has a key refuses it (-MPROC_EAUTH), since it could not prove anything. Keys
 * authenticate; they do not encrypt: the messages travel in the clear, as Python's.
 *
 * Strangers: while a peer is not authenticated, the listener reads at most a few
 * hundred bytes from it and waits at most handshake_timeout for it; it never allocates
 * what a stranger's length asks for. After the handshake, max_message (if set) bounds
 * what each connection accepts (mproc_conn_set_max).
 *
 * Lifetime: mproc_listener_free closes the socket and removes the socket file it made
 * (only if the path still names that socket: a newer listener's file is left alone).
 * Connections live on after the listener is freed. Every fd is close-on-exec. A listener
 * is used by one thread at a time. Built in libmproc-net (pkg-config mproc-net), where
 * OpenSSL's libcrypto was found.
 */
#ifndef MPROC_LISTENER_H
#define MPROC_LISTENER_H

#include "mproc/error.h"
#include "mproc/pipe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_listener mproc_listener;

/* Options of either side; NULL or zeroed: no key, the defaults below. */
typedef struct mproc_net_opts {
    const void *authkey;      /* the shared key, or NULL for none */
    size_t authkey_len;       /* its length: 1 to 1024 bytes */
    int backlog;              /* listener: connections the kernel queues (0: 128) */
    double handshake_timeout; /* the most one handshake may take, seconds (0: 10) */
    size_t max_message;       /* set on each connection made (0: no limit) */
} mproc_net_opts;

/* Listen at address. Errors: -EINVAL (NULL, a malformed address, a key of 0 or more than
 * 1024 bytes, a negative backlog or timeout), -ENAMETOOLONG (a Unix path longer than
 * 107 bytes), -EADDRINUSE (the address is taken: for a path, any file there, even a
 * stale socket, which this call never removes), -EACCES, -ENOENT (no such directory),
 * -EADDRNOTAVAIL, -EHOSTUNREACH (a host name that does not resolve), -EMFILE, -ENOMEM. */
MPROC_API int mproc_listener_new(mproc_listener **out, const char *address,
                                 const mproc_net_opts *opts);

/* The address bound ("unix:/path", "unix:@name", "tcp:127.0.0.1:41237"), owned by l. */
MPROC_API const char *mproc_listener_address(const mproc_listener *l);

/* Wait at most timeout seconds for a peer that passes the handshake, and give its
 * connection. Each peer's handshake has its own bound (handshake_timeout), so the call
 * can take up to timeout plus that. Peers refused are dropped and counted, and the wait
 * goes on. Errors: -ETIMEDOUT, -EMFILE/-ENFILE (the peer stays queued: free some fds and
 * call again), -ENOMEM, -EINVAL. */
MPROC_API int mproc_listener_accept(mproc_listener *l, mproc_conn **out, double timeout);

/* The listening socket, readable when a peer is waiting (for poll/epoll and mproc_wait
 * with MPROC_WAIT_FD; then accept). -EINVAL for NULL. */
MPROC_API int mproc_listener_fd(const mproc_listener *l);

/* How many peers were refused so far (wrong key, garbage, too slow). 0 for NULL. */
MPROC_API unsigned long mproc_listener_refused(const mproc_listener *l);

/* Close the listener (and remove its socket file; see Lifetime). NULL is a no-op. */
MPROC_API void mproc_listener_free(mproc_listener *l);

/* Connect to a listener and pass its handshake, within timeout seconds in all.
 * Errors: -MPROC_EAUTH (the keys differ, or one side has none), -ECONNREFUSED / -ENOENT
 * (nobody listens there), -ETIMEDOUT, -EPROTO (the peer is not an mproc listener), -EINVAL,
 * -MPROC_EEOF (the listener hung up in the handshake), -ENAMETOOLONG, -EHOSTUNREACH (the host
 * name does not resolve), -EMFILE, -ENOMEM. */
MPROC_API int mproc_client_new(mproc_conn **out, const char *address, const mproc_net_opts *opts,
                               double timeout);

#ifdef __cplusplus
}
#endif

#endif
