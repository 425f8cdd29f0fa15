/* src/sys/entropy.c - random bytes from the kernel.
 *
 * getrandom(2) without flags: it blocks only until the kernel's pool is first seeded at
 * boot, and a read of up to 256 bytes is never cut short once it is; EINTR (a signal
 * before any byte) is retried, and a short read goes on for the rest.
 */
#include "internal.h"

#include "sys/entropy.h"

#include <sys/random.h>

int mproc__sys_random(void *buf, size_t n)
{
    int rc = MPROC__FAULT("sys.random");
    if (rc < 0)
        return rc;
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}
