/* src/sys/pipe.c - the kernel side of mproc/pipe: writes to a pipe that never raise
 * SIGPIPE.
 *
 * DESIGN: a write to a pipe whose readers are all gone makes the kernel send SIGPIPE
 * to the writing thread, whose default action kills the process. A library must not
 * change the process's signal dispositions, so SIGPIPE is blocked in the calling thread
 * only (the mask is per thread) for the duration of the write. If the write failed with
 * EPIPE, the kernel has made SIGPIPE pending on this thread; it is consumed with a
 * zero-timeout sigtimedwait before SIGPIPE is unblocked again, so it is never delivered.
 * A SIGPIPE that was already pending before the write (possible only when the caller
 * itself had SIGPIPE blocked: otherwise it would have been delivered) is not ours and is
 * left pending. Cost: two rt_sigprocmask calls (about 0.1 us each) per write.
 * (Sockets would not need this, thanks to MSG_NOSIGNAL, but a Unix socket round trip
 * costs 1.6x a pipe's on this kind of machine; see src/pipe.c.)
 */
#include "internal.h"

#include "sys/pipe.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

ssize_t mproc__sys_write_nosigpipe(int fd, const struct iovec *iov, int iovcnt)
{
    int rc = MPROC__FAULT("sys.write");
    if (rc < 0)
        return rc;
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
