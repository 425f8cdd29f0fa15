/* src/sys/pipe.h - Linux primitives for mproc/pipe: writing to a pipe without SIGPIPE,
 * and reading from a blocking pipe without blocking. See src/sys/pipe.c. */
#ifndef MPROC_SYS_PIPE_H
#define MPROC_SYS_PIPE_H

#include <sys/types.h>
#include <sys/uio.h>

/* writev() to a pipe without ever raising SIGPIPE and without touching signal
 * dispositions or, on return, the calling thread's signal mask. Where the kernel has
 * RWF_NOSIGNAL (pwritev2) that is one system call; elsewhere SIGPIPE is blocked in the
 * calling thread around the write, and a SIGPIPE that the write itself raised is
 * consumed before the mask is restored (one that was already pending is left alone).
 * EINTR is retried. Returns the bytes written (possibly fewer than asked), or -errno:
 * -EPIPE when no reader is left, -EAGAIN on a full non-blocking pipe.
 * Fault points: "sys.write" (fails the call), "sys.pipe_nosignal" (armed, the write
 * takes the signal-mask path as on a kernel without RWF_NOSIGNAL). */
ssize_t mproc__sys_write_nosigpipe(int fd, const struct iovec *iov, int iovcnt);

/* read() from a pipe, even a blocking one, without waiting: preadv2(RWF_NOWAIT) where
 * the kernel supports it on pipes, else poll() with a zero timeout and then read()
 * (which then cannot block as long as this thread is the only reader). EINTR is
 * retried. Returns bytes read (> 0), 0 at end of file, -EAGAIN when nothing is there
 * yet, or -errno. Fault points: "sys.read" (fails the call), "sys.pipe_nowait" (armed,
 * takes the poll path as on a kernel without RWF_NOWAIT for pipes). */
ssize_t mproc__sys_read_nowait(int fd, void *buf, size_t n);

/* The same two for a stream socket, where the kernel offers both per call:
 * sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT) and recv(MSG_DONTWAIT). The same returns, and
 * -ECONNRESET / -EPIPE when the peer is gone. Fault points "sys.write" and "sys.read". */
ssize_t mproc__sys_send_nosigpipe(int fd, const struct iovec *iov, int iovcnt);
ssize_t mproc__sys_recv_nowait(int fd, void *buf, size_t n);

/* 0 if fd is a stream socket; -EBADF, -ENOTSOCK, -EPROTOTYPE (another kind of socket). */
int mproc__sys_stream_socket(int fd);

#endif
