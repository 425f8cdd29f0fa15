/* src/sys/pipe.c - the kernel side of mproc/pipe: writes to a pipe that never raise
 * SIGPIPE, and reads from a blocking pipe that never block.
 *
 * DESIGN: a write to a pipe whose readers are all gone makes the kernel send SIGPIPE
 * to the writing thread, whose default action kills the process. A library must not
 * change the process's signal dispositions. Recent kernels (6.18 here) accept
 * RWF_NOSIGNAL in pwritev2: the write fails with EPIPE and no signal is sent, in one
 * system call. Elsewhere (the kernel answers EOPNOTSUPP to an unknown flag before
 * writing anything) SIGPIPE is blocked in the calling thread only (the mask is per
 * thread) for the duration of the write; if the write failed with EPIPE, the kernel has
 * made SIGPIPE pending on this thread, and it is consumed with a zero-timeout
 * sigtimedwait before SIGPIPE is unblocked again, so it is never delivered. A SIGPIPE
 * that was already pending before the write (possible only when the caller itself had
 * SIGPIPE blocked: otherwise it would have been delivered) is not ours and is left
 * pending. That path costs two or three rt_sigprocmask calls (about 0.12 us each here)
 * per write; pwritev2 costs about 0.05 us more than write().
 *
 * Reads without blocking on a blocking fd: preadv2 with RWF_NOWAIT (which current
 * kernels accept on pipes) is one call that returns data if there is some and EAGAIN if
 * not; on kernels that refuse it (EOPNOTSUPP), poll() with a zero timeout, then read()
 * when it reports data or hang-up. Keeping the fd blocking lets a receive that sleeps be
 * one plain read().
 *
 * What the kernel lacks is noted once per process in an atomic flag (it cannot change
 * while the process lives; a forked child inherits a true note).
 * Sockets need none of this: MSG_NOSIGNAL and MSG_DONTWAIT ask for the same per call (a
 * connection over a socket, mproc_conn_from_socket, uses them). A pair of processes gets
 * pipes all the same, because a Unix socket round trip costs 1.6x a pipe's on this kind
 * of machine (see src/pipe.c).
 */
#include "internal.h"

#include "sys/pipe.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif

static atomic_bool no_rwf_nosignal; /* the kernel refused RWF_NOSIGNAL */
static atomic_bool no_rwf_nowait;   /* the kernel refused RWF_NOWAIT on a pipe */

static bool unsupported(ssize_t rc)
{
    return rc == -EOPNOTSUPP || rc == -ENOSYS;
}

/* pwritev2(RWF_NOSIGNAL), EINTR retried: bytes or -errno. */
static ssize_t write_nosignal(int fd, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = pwritev2(fd, iov, iovcnt, -1, RWF_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* The portable way: SIGPIPE blocked around a plain write (see DESIGN). */
static ssize_t write_masked(int fd, const struct iovec *iov, int iovcnt)
{
    sigset_t sigpipe, old;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, &old);
    bool was_blocked = sigismember(&old, SIGPIPE) == 1;
    bool was_pending = false;
    if (was_blocked) {
        sigset_t pending;
        was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    }
    ssize_t n;
    for (;;) {
        n = iovcnt == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, iovcnt);
        if (n >= 0)
            break;
        n = -errno;
        if (n != -EINTR)
            break;
    }
    if (n == -EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&sigpipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    if (!was_blocked)
        pthread_sigmask(SIG_UNBLOCK, &sigpipe, NULL);
    return n;
}

ssize_t mproc__sys_write_nosigpipe(int fd, const struct iovec *iov, int iovcnt)
{
    int rc = MPROC__FAULT("sys.write");
    if (rc < 0)
        return rc;
    if (MPROC__FAULT("sys.pipe_nosignal") == 0 &&
        !atomic_load_explicit(&no_rwf_nosignal, memory_order_relaxed)) {
        ssize_t n = write_nosignal(fd, iov, iovcnt);
        if (!unsupported(n))
            return n;
        atomic_store_explicit(&no_rwf_nosignal, true, memory_order_relaxed);
    }
    return write_masked(fd, iov, iovcnt);
}

/* poll(0), then read() when there is data or the writers are gone. */
static ssize_t read_polled(int fd, void *buf, size_t n)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready;
    while ((ready = poll(&pfd, 1, 0)) < 0 && errno == EINTR) {
    }
    if (ready < 0)
        return -errno;
    if (ready == 0)
        return -EAGAIN;
    if ((pfd.revents & POLLNVAL) != 0)
        return -EBADF;
    for (;;) {
        ssize_t got = read(fd, buf, n);
        if (got >= 0)
            return got;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t mproc__sys_read_nowait(int fd, void *buf, size_t n)
{
    int rc = MPROC__FAULT("sys.read");
    if (rc < 0)
        return rc;
    if (MPROC__FAULT("sys.pipe_nowait") == 0 &&
        !atomic_load_explicit(&no_rwf_nowait, memory_order_relaxed)) {
        struct iovec iov = {.iov_base = buf, .iov_len = n};
        for (;;) {
            ssize_t got = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
            if (got >= 0)
                return got;
            if (errno == EINTR)
                continue;
            if (errno == EWOULDBLOCK)
                return -EAGAIN;
            if (!unsupported(-errno))
                return -errno;
            break;
        }
        atomic_store_explicit(&no_rwf_nowait, true, memory_order_relaxed);
    }
    return read_polled(fd, buf, n);
}

ssize_t mproc__sys_send_nosigpipe(int fd, const struct iovec *iov, int iovcnt)
{
    int rc = MPROC__FAULT("sys.write");
    if (rc < 0)
        return rc;
    struct msghdr m = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t mproc__sys_recv_nowait(int fd, void *buf, size_t n)
{
    int rc = MPROC__FAULT("sys.read");
    if (rc < 0)
        return rc;
    for (;;) {
        ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
        if (got >= 0)
            return got;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int mproc__sys_stream_socket(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno;
    return type == SOCK_STREAM ? 0 : -EPROTOTYPE;
}
