/* src/sys/evfd.c - the eventfd: a counter in the kernel that poll() can wait on.
 *
 * The pool's supervisor sleeps in one poll() over its workers' pidfds and one eventfd
 * (src/sys/bell.c rings it). It is inherited by forked workers (they ring it), and
 * close-on-exec so nothing executed sees it.
 */
#include "internal.h"

#include "sys/evfd.h"

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
