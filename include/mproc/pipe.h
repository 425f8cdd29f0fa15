/* mproc/pipe.h - a connected pair carrying whole byte messages.
 *
 * Python's multiprocessing.Pipe(): two connection objects; what one end sends as a
 * message the other receives as exactly that message, never merged with another or
 * split. Messages may be of any size (64-bit lengths, up to PTRDIFF_MAX - 8 bytes; the
 * receiver allocates a message's full size when its header arrives, so a receiver
 * needs memory for the largest message it accepts); a 0-byte message is a message,
 * distinct from end-of-file. When the peer has closed its end (or died) and every
 * message it sent has been read, receiving gives -MPROC_EEOF and sending -MPROC_EEOF
 * (no SIGPIPE is raised, whatever the process's SIGPIPE disposition; the signal mask
 * of the calling thread is the same after the call as before).
 *
 * Lifetime rules:
 *  1. mproc_pipe_new() makes both ends. After fork, each process frees the end it does
 *     not use, so that end-of-file can be seen.
 *  2. A connection is used by one thread at a time (as a Python Connection), and by one
 *     process at a time: two processes receiving (or sending) on copies of the same end
 *     may steal each other's bytes, and a timeout may then be overrun.
 *  3. mproc_conn_free() closes the end; NULL is a no-op. A message that the peer had
 *     started but not finished when it closed or died is discarded by the receiver.
 *
 * Each end owns pipe fds (duplex: one pipe each way, 2 fds per end; simplex: 1), all
 * close-on-exec. Threads: different connections may be used from different threads.
 * Safe in a forked child (no locks; the only global state is a note of which kernel
 * features work, valid in a child too). Not async-signal-safe.
 *
 * Latency: a receive that finds nothing spins for up to 20 us (re-trying the read
 * without waiting) before it sleeps, because waking a sleeping process on another CPU
 * costs tens of microseconds; a peer that answers within that window is seen at once.
 * A connection stops spinning while its spins go unanswered (after each fruitless one,
 * the next 1, 2, 4, ... up to 1024 waits sleep at once), does not spin while its process
 * may run on one CPU only (sched_getaffinity, checked before the first spin and after
 * each fruitless one), and a receive whose timeout is shorter than the window does not
 * spin. An idle receiver therefore costs no CPU to speak of.
 */
#ifndef MPROC_PIPE_H
#define MPROC_PIPE_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_conn mproc_conn;

enum mproc_pipe_flags {
    MPROC_PIPE_SIMPLEX =
        1u << 0 /* one-way: *a only receives, *b only sends (Python duplex=False) */
};

/* Create a connected pair. Duplex by default (two pipes, one each way: a pipe round trip
 * is about 1.6x faster than a Unix socketpair's); with MPROC_PIPE_SIMPLEX one pipe, where
 * *a receives and *b sends. On failure *a and *b are untouched and nothing is left open.
 * Errors: -EINVAL (NULL, a == b, unknown flags), -EMFILE/-ENFILE, -ENOMEM. */
MPROC_API int mproc_pipe_new(mproc_conn **a, mproc_conn **b, unsigned flags);

/* Send one message of len bytes (len may be 0; buf may be NULL only then). The caller
 * keeps buf. Waits at most timeout seconds for room to start; once the message has
 * started it is sent whole, however long the reader takes (a message is never left
 * half-sent on the stream), so with a large message and a reader that does not read,
 * the call can outlast its timeout; it returns when the reader takes the rest or dies.
 * A message of up to 4088 bytes (PIPE_BUF - 8) goes out in one write, atomically even
 * when several processes send on copies of one end.
 * Errors: -MPROC_EEOF (peer closed or died; it stays so), -ETIMEDOUT (nothing was sent),
 * -EBADF (receive-only end), -EINVAL (NULL, bad timeout, len > PTRDIFF_MAX - 8), -errno of
 * write (then, if part of the message had gone out, every later send fails with the same
 * code). */
MPROC_API int mproc_conn_send(mproc_conn *c, const void *buf, size_t len, double timeout);

/* Receive one message into a new buffer from malloc (the caller frees it; for a 0-byte
 * message *buf is a valid 1-byte allocation). *buf and *len are set only on success.
 * The timeout bounds the whole call: if a message's header arrived but its payload is
 * late, -ETIMEDOUT is returned and what arrived is kept in the connection, so the next
 * receive (recv or recv_into) continues the same message; the stream is never corrupted.
 * Errors: -MPROC_EEOF (peer closed and nothing left), -ETIMEDOUT (the message is not
 * complete yet), -ENOMEM (message kept for the next receive), -EBADF (send-only end),
 * -EINVAL, -EPROTO (the stream holds a length no mproc writer sends; it stays so),
 * -EMSGSIZE (longer than mproc_conn_set_max allows; it stays so). */
MPROC_API int mproc_conn_recv(mproc_conn *c, void **buf, size_t *len, double timeout);

/* Receive one message into the caller's buffer of cap bytes (buf may be NULL if cap is 0);
 * *len is its length. If the message is larger than cap: -MPROC_ETOOSMALL, *len is the
 * size needed, and the message stays queued for the next receive (the stream is intact).
 * On -ETIMEDOUT in the middle of a message, buf may hold part of it (garbage to the
 * caller): a copy is kept in the connection and the next receive continues; if no memory
 * can be had for that copy, the call waits for the rest of the message instead (the
 * sender, once started, always finishes or dies). Other errors as recv. */
MPROC_API int mproc_conn_recv_into(mproc_conn *c, void *buf, size_t cap, size_t *len,
                                   double timeout);

/* Whether a message (or end-of-file) can be received now or within timeout:
 * 1 yes, 0 no, negative on error (-EBADF on a send-only end, -EINVAL). Python's
 * Connection.poll. 1 means data is there: a header already read counts; a receive with
 * timeout 0 can still time out if only the start of a large message has arrived. */
MPROC_API int mproc_conn_poll(mproc_conn *c, double timeout);

/* The fd to watch with poll/epoll for POLLIN (owned by c): the receiving fd, or on a
 * send-only end its (non-blocking) sending fd. Messages already read ahead into the
 * connection do not show on it: use mproc_conn_poll(c, 0) after a receive. -EINVAL
 * for NULL. */
MPROC_API int mproc_conn_fd(const mproc_conn *c);

/* Wrap a connected stream socket (Unix or TCP) as a connection carrying the same
 * messages as a pipe, both ways (the framing is on the wire: an 8-byte little-endian
 * length, then the bytes). On success the connection owns fd (made close-on-exec and
 * blocking; mproc_conn_free closes it); on failure fd is the caller's, untouched.
 * mproc/listener.h makes such connections with an address and a key.
 * Errors: -EINVAL, -EBADF, -ENOTSOCK, -EPROTOTYPE (not a stream socket), -ENOMEM. */
MPROC_API int mproc_conn_from_socket(mproc_conn **out, int fd);

/* The largest message this end accepts (0: no limit but the format's). A longer length
 * on the wire fails the receive with -EMSGSIZE before anything is reserved for it, and
 * the connection stays so (the stream cannot be resynchronised): for a peer that is not
 * trusted to size what the receiver allocates. -EINVAL for NULL. */
MPROC_API int mproc_conn_set_max(mproc_conn *c, size_t max);

/* Close the end and release it. NULL is a no-op. */
MPROC_API void mproc_conn_free(mproc_conn *c);

#ifdef __cplusplus
}
#endif

#endif
