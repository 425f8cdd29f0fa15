/* mproc/pipe.h - a connected pair carrying whole byte messages.
 *
 * Python's multiprocessing.Pipe(): two connection objects; what one end sends as a
 * message the other receives as exactly that message, never merged with another or
 * split. Messages may be of any size (64-bit lengths); a 0-byte message is a message,
 * distinct from end-of-file. When the peer has closed its end (or died) and every
 * message it sent has been read, receiving gives -MPROC_EEOF and sending -MPROC_EEOF
 * (no SIGPIPE is raised).
 *
 * Lifetime rules:
 *  1. mproc_pipe_new() makes both ends. After fork, each process frees the end it does
 *     not use, so that end-of-file can be seen.
 *  2. A connection is used by one thread at a time (as a Python Connection).
 *  3. mproc_conn_free() closes the end; NULL is a no-op.
 */
#ifndef MPROC_PIPE_H
#define MPROC_PIPE_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_conn mproc_conn;

enum mproc_pipe_flags {
    MPROC_PIPE_SIMPLEX = 1u << 0 /* one-way: *a only receives, *b only sends (Python duplex=False) */
};

/* Create a connected pair. Duplex by default (a Unix socketpair); with MPROC_PIPE_SIMPLEX
 * a pipe, where *a receives and *b sends. Both fds are close-on-exec.
 * Errors: -EINVAL (NULL, unknown flags), -EMFILE/-ENFILE, -ENOMEM. */
MPROC_API int mproc_pipe_new(mproc_conn **a, mproc_conn **b, unsigned flags);

/* Send one message of len bytes (len may be 0; buf may be NULL only then). Waits at most
 * timeout seconds for room to start; once the message has started it is sent whole (a
 * message is never left half-sent on the stream). Errors: -MPROC_EEOF (peer closed),
 * -ETIMEDOUT (nothing was sent), -EBADF (receive-only end), -EINVAL. */
MPROC_API int mproc_conn_send(mproc_conn *c, const void *buf, size_t len, double timeout);

/* Receive one message into a new buffer from malloc (the caller frees it; for a 0-byte
 * message *buf is a valid 1-byte allocation). Errors: -MPROC_EEOF (peer closed and
 * nothing left), -ETIMEDOUT (nothing arrived), -ENOMEM (message kept), -EBADF, -EINVAL. */
MPROC_API int mproc_conn_recv(mproc_conn *c, void **buf, size_t *len, double timeout);

/* Receive one message into the caller's buffer of cap bytes; *len is its length.
 * If the message is larger than cap: -MPROC_ETOOSMALL, *len is the size needed, and the
 * message stays queued for the next receive (the stream is intact). Other errors as recv. */
MPROC_API int mproc_conn_recv_into(mproc_conn *c, void *buf, size_t cap, size_t *len,
                                   double timeout);

/* Whether a message (or end-of-file) can be received now or within timeout:
 * 1 yes, 0 no, negative on error. Python's Connection.poll. */
MPROC_API int mproc_conn_poll(mproc_conn *c, double timeout);

/* The underlying fd, for poll/epoll (owned by c). */
MPROC_API int mproc_conn_fd(const mproc_conn *c);

/* Close the end and release it. NULL is a no-op. */
MPROC_API void mproc_conn_free(mproc_conn *c);

#ifdef __cplusplus
}
#endif

#endif
