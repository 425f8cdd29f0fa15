/* src/sys/pipe.h - Linux primitive for mproc/pipe: writing to a pipe without SIGPIPE.
 * See src/sys/pipe.c. */
#ifndef MPROC_SYS_PIPE_H
#define MPROC_SYS_PIPE_H

#include <sys/types.h>
#include <sys/uio.h>

/* writev() to a pipe without ever raising SIGPIPE and without touching signal
 * dispositions: SIGPIPE is blocked in the calling thread around the write, and a
 * SIGPIPE that the write itself raised is consumed before the mask is restored (one
 * that was already pending is left alone). EINTR is retried. One iovec is written with
 * write(). Returns the bytes written (possibly fewer than asked), or -errno: -EPIPE when
 * no reader is left, -EAGAIN on a full non-blocking pipe. Fault point "sys.write". */
ssize_t mproc__sys_write_nosigpipe(int fd, const struct iovec *iov, int iovcnt);

#endif
