/* src/sys/pool.c - eventfd doorbell and poll over many fds, for the pool's supervisor.
 *
 * DESIGN: the supervisor thread sleeps in one poll() over the workers' pidfds and one
 * eventfd. Whoever has news for it while it sleeps (a worker that published a result, a
 * caller that submitted work) adds 1 to the eventfd; the supervisor resets it to 0 when
 * it wakes, then looks at everything. The eventfd is inherited by forked workers (they
 * ring it), and close-on-exec so nothing executed sees it.
 */
#include "internal.h"

#include "sys/pool.h"

#include <sys/eventfd.h>
#include <unistd.h>

int mproc__sys_eventfd(void)
{
    int rc = MPROC__FAULT("sys.eventfd");
    if (rc < 0)
        return rc;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

void mproc__sys_eventfd_ring(int fd)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(fd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
}

void mproc__sys_eventfd_drain(int fd)
{
    uint64_t v;
    ssize_t n;
    do {
        n = read(fd, &v, sizeof v);
    } while (n < 0 && errno == EINTR);
}

int mproc__sys_poll(struct pollfd *fds, unsigned n, int64_t deadline)
{
    for (;;) {
        int rc = poll(fds, n, mproc__remaining_ms(deadline));
        if (rc > 0)
            return rc;
        if (rc == 0) {
            if (mproc__remaining_ns(deadline) == 0)
                return 0;
            continue;
        }
        if (errno != EINTR)
            return -errno;
    }
}
