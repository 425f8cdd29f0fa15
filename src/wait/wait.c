/* src/wait/wait.c - wait on many things at once (mproc/wait.h). Above the building blocks
 * and the pool: of the objects it waits on it uses the public API only.
 *
 * DESIGN. Every waitable object has a descriptor that becomes readable when it is ready:
 * a connection its receiving fd, a process its pidfd, a pool result an eventfd rung when
 * it is delivered (src/pool/result.c), a queue an eventfd rung by puts (src/queue.c; a
 * queue found empty resets it, then looks again, so a put in between is not lost). A call looks at
 * each object without waiting (its own test: a connection may hold a message already read ahead,
 * which its fd does not show), and only when none is ready polls all the descriptors until the
 * deadline, then looks again: a descriptor says "look", the object's test says "ready". Nothing
 * here consumes anything: a ready object stays ready until its owner takes what is there.
 */
#include "internal.h"

#include "mproc/wait.h"

#include <limits.h>

#include <poll.h>

/* The descriptor to poll for w, or a negative code. */
static int fd_of(const mproc_waitable *w)
{
    switch (w->kind) {
    case MPROC_WAIT_FD:
        return w->fd >= 0 ? w->fd : -EINVAL;
    case MPROC_WAIT_CONN:
        return w->obj != NULL ? mproc_conn_fd(w->obj) : -EINVAL;
    case MPROC_WAIT_PROCESS:
        return w->obj != NULL ? mproc_process_fd(w->obj) : -EINVAL;
    case MPROC_WAIT_RESULT:
        return w->obj != NULL ? mproc_result_fd(w->obj) : -EINVAL;
    case MPROC_WAIT_QUEUE:
        return w->obj != NULL ? mproc_queue_fd(w->obj) : -EINVAL;
    default:
        return -EINVAL;
    }
}

/* Is w ready now? 1, 0, or a negative code. */
static int ready_now(const mproc_waitable *w, int fd)
{
    switch (w->kind) {
    case MPROC_WAIT_CONN:
        return mproc_conn_poll(w->obj, 0);
    case MPROC_WAIT_RESULT:
        return mproc_result_ready(w->obj);
    case MPROC_WAIT_QUEUE:
        return mproc_queue_ready(w->obj);
    default: { /* a plain fd, a pidfd (readable once the process ended) */
        int rc = mproc__sys_poll1(fd, POLLIN, 0);
        return rc < 0 ? rc : rc > 0;
    }
    }
}

int mproc_wait(mproc_waitable *w, size_t n, double timeout)
{
    if (w == NULL || n == 0 || n > INT32_MAX)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    struct pollfd stack[16], *pfd = n <= 16 ? stack : mproc__calloc(n, sizeof *pfd);
    if (pfd == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        rc = fd_of(&w[i]);
        pfd[i] = (struct pollfd){.fd = rc, .events = POLLIN};
    }
    for (;;) {
        int nready = 0;
        for (size_t i = 0; i < n && rc >= 0; i++) {
            rc = ready_now(&w[i], pfd[i].fd);
            w[i].ready = rc > 0;
            nready += rc > 0;
        }
        if (rc < 0 || nready > 0) {
            rc = rc < 0 ? rc : nready;
            break;
        }
        if (mproc__remaining_ns(deadline) == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        rc = mproc__sys_poll(pfd, (unsigned)n, deadline);
        if (rc < 0)
            break;
    }
    if (pfd != stack)
        mproc__free(pfd);
    return rc;
}
