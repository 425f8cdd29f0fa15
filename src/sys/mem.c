/* src/sys/mem.c - memfd, backing-store reservation, shared mappings, and how much
 * memory may still be taken.
 *
 * Why ask before reserving: posix_fallocate on a memfd or a /dev/shm file charges every
 * page at once. Past a memory cgroup's limit that gets the caller SIGKILLed; past the
 * machine's memory it calls the global OOM killer, which takes whichever process it
 * likes, unrelated ones included. A request that cannot be had is refused up front with
 * -ENOMEM (or -ENOSPC for a file system's own size limit) instead. The answer is a
 * snapshot: another process may take the memory in between, as with any allocation.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

/* Read a small file into buf (NUL-terminated). Bytes read, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    (void)close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* A number of bytes in a cgroup file; "max" (v2's no limit) is UINT64_MAX. */
static bool read_bytes(const char *path, uint64_t *out)
{
    char buf[64];
    if (read_small(path, buf, sizeof buf) <= 0)
        return false;
    if (strncmp(buf, "max", 3) == 0) {
        *out = UINT64_MAX;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno != 0 || end == buf)
        return false;
    *out = v;
    return true;
}

/* The least headroom (limit - usage) of the group at root/path and its ancestors. */
static uint64_t cgroup_headroom(const char *root, const char *path, const char *limit_file,
                                const char *usage_file)
{
    uint64_t best = UINT64_MAX;
    char dir[1024];
    int n = snprintf(dir, sizeof dir, "%s%s", root, path);
    if (n < 0 || (size_t)n >= sizeof dir)
        return best;
    size_t root_len = strlen(root);
    for (;;) {
        size_t len = strlen(dir);
        while (len > root_len && dir[len - 1] == '/')
            dir[--len] = '\0';
        char file[1100];
        uint64_t limit, usage;
        snprintf(file, sizeof file, "%s/%s", dir, limit_file);
        bool have_limit = read_bytes(file, &limit);
        snprintf(file, sizeof file, "%s/%s", dir, usage_file);
        if (have_limit && limit != UINT64_MAX && read_bytes(file, &usage)) {
            uint64_t room = usage < limit ? limit - usage : 0;
            if (room < best)
                best = room;
        }
        if (len <= root_len)
            break;
        char *slash = strrchr(dir + root_len, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
    }
    return best;
}

static uint64_t meminfo_kb(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        return UINT64_MAX;
    p += strlen(key);
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    return end == p ? UINT64_MAX : (uint64_t)v;
}

int mproc__sys_mem_fits(size_t size)
{
    uint64_t room = UINT64_MAX;
    char text[4096];
    if (read_small("/proc/meminfo", text, sizeof text) > 0) {
        uint64_t avail = meminfo_kb(text, "\nMemAvailable:");
        uint64_t swap = meminfo_kb(text, "\nSwapFree:");
        if (avail != UINT64_MAX)
            room = avail * 1024 + (swap != UINT64_MAX ? swap * 1024 : 0);
    }
    if (read_small("/proc/self/cgroup", text, sizeof text) > 0) {
        for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            uint64_t r = UINT64_MAX;
            char *v1 = strstr(line, ":memory:");
            if (v1 != NULL)
                r = cgroup_headroom("/sys/fs/cgroup/memory", v1 + 8, "memory.limit_in_bytes",
                                    "memory.usage_in_bytes");
            else if (strncmp(line, "0::", 3) == 0)
                r = cgroup_headroom(access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
                                        ? "/sys/fs/cgroup"
                                        : "/sys/fs/cgroup/unified",
                                    line + 3, "memory.max", "memory.current");
            if (r < room)
                room = r;
        }
    }
    return (uint64_t)size > room ? -ENOMEM : 0;
}

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
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && fs.f_blocks != 0 &&
        (uint64_t)size > (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize)
        return -ENOSPC; /* a tmpfs with a size= limit, /dev/shm among them */
    rc = mproc__sys_mem_fits(size);
    if (rc < 0)
        return rc;
    /* posix_fallocate returns the error; it does not set errno. */
    do {
        rc = posix_fallocate(fd, 0, (off_t)size);
    } while (rc == EINTR);
    return -rc;
}

int mproc__sys_set_size(int fd, size_t size)
{
    if (size > (size_t)INT64_MAX)
        return -EFBIG;
    while (ftruncate(fd, (off_t)size) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int mproc__sys_populate(void *addr, size_t len)
{
    int rc = MPROC__FAULT("sys.populate");
    if (rc < 0)
        return rc;
    if ((rc = mproc__sys_mem_fits(len)) < 0)
        return rc;
    while (madvise(addr, len, MADV_POPULATE_WRITE) < 0) {
        if (errno == EINTR || errno == EAGAIN)
            continue;
        /* EFAULT: a page could not be had where a touch would raise SIGBUS (a full
           tmpfs); EINVAL: a kernel before 5.14 */
        return errno == EFAULT ? -ENOSPC : errno == EINVAL ? -MPROC_ENOTSUP : -errno;
    }
    return 0;
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
