/* src/sys/mem.c - memfd, backing-store reservation, shared mappings. */
#include "internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int mproc__sys_memfd(const char *name)
{
    int rc = MPROC__FAULT("sys.memfd");
    if (rc < 0)
        return rc;
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int mproc__sys_reserve(int fd, size_t size)
{
    int rc = MPROC__FAULT("sys.reserve");
    if (rc < 0)
        return rc;
    if (size > (size_t)INT64_MAX)
        return -EFBIG;
    /* posix_fallocate returns the error; it does not set errno. */
    do {
        rc = posix_fallocate(fd, 0, (off_t)size);
    } while (rc == EINTR);
    return -rc;
}

int mproc__sys_map_shared(int fd, size_t size, void **out)
{
    int rc = MPROC__FAULT("sys.mmap");
    if (rc < 0)
        return rc;
    if (size == 0)
        return -EINVAL;
    int flags = MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

void mproc__sys_unmap(void *addr, size_t size)
{
    if (addr != NULL && size > 0)
        (void)munmap(addr, size);
}
