/* src/sys/shm.c - POSIX named shared memory: shm_open, shm_unlink, fstat size.
 *
 * glibc's shm_open already opens with O_CLOEXEC; we pass it anyway so the rule
 * "every fd is close-on-exec" holds by construction, not by a libc detail. shm_open
 * is open(2) underneath and may return EINTR on some filesystems: retried.
 */
#include "internal.h"

#include "sys/shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mproc__sys_shm_open(const char *name, bool create)
{
    int rc = MPROC__FAULT("sys.shm_open");
    if (rc < 0)
        return rc;
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
    int fd;
    do {
        fd = shm_open(name, flags, 0600);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int mproc__sys_shm_unlink(const char *name)
{
    int rc = MPROC__FAULT("sys.shm_unlink");
    if (rc < 0)
        return rc;
    return shm_unlink(name) < 0 ? -errno : 0;
}

int mproc__sys_shm_same(const char *name, int fd)
{
    int other;
    do {
        other = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    } while (other < 0 && errno == EINTR);
    if (other < 0)
        return -errno;
    struct stat a, b;
    int rc = fstat(fd, &a) < 0 || fstat(other, &b) < 0 ? -errno : 0;
    mproc__sys_close(other);
    if (rc < 0)
        return rc;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int mproc__sys_fd_size(int fd, size_t *out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size < 0)
        return -EINVAL;
    *out = (size_t)st.st_size;
    return 0;
}
