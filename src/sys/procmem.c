/* src/sys/procmem.c - process memory: /proc/self/maps, /proc/<pid>/mem,
 * process_vm_writev, MADV_POPULATE. See procmem.h for what each is for. */
#include "internal.h"

#include "sys/procmem.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

int mproc__sys_shared_ranges(struct mproc__shared_range **out, size_t *n)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return -errno;
    struct mproc__shared_range *v = NULL;
    size_t len = 0, cap = 0;
    char line[512];
    int rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        size_t ll = strlen(line);
        bool whole = ll > 0 && line[ll - 1] == '\n';
        uintptr_t a, b;
        char perms[8];
        uint64_t off, ino;
        unsigned dmaj, dmin;
        const char *sp = strchr(line, ' '); /* most lines are private: skip them unparsed */
        bool wanted = sp != NULL && strncmp(sp + 1, "rw", 2) == 0 && sp[3] != '\0' && sp[4] == 's';
        if (wanted &&
            sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %" SCNx64 " %x:%x %" SCNu64, &a, &b, perms,
                   &off, &dmaj, &dmin, &ino) == 7 &&
            perms[0] == 'r' && perms[1] == 'w' && perms[3] == 's') {
            if (len == cap) {
                size_t nc = cap ? cap * 2 : 16;
                struct mproc__shared_range *nv = mproc__realloc(v, nc * sizeof *nv);
                if (nv == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            v[len++] =
                (struct mproc__shared_range){.start = a, .end = b, .offset = off, .inode = ino};
        }
        while (!whole && fgets(line, sizeof line, f) != NULL) { /* skip a long path */
            ll = strlen(line);
            whole = ll > 0 && line[ll - 1] == '\n';
        }
    }
    fclose(f);
    if (rc < 0) {
        mproc__free(v);
        return rc;
    }
    *out = v;
    *n = len;
    return 0;
}

int mproc__sys_vm_open(pid_t pid)
{
    int rc = MPROC__FAULT("sys.vm");
    if (rc < 0)
        return rc;
    if (pid <= 0)
        return -EINVAL;
    char path[32] = "/proc/", digits[12]; /* no printf: a new worker calls this */
    int nd = 0;
    for (unsigned v = (unsigned)pid; v > 0; v /= 10)
        digits[nd++] = (char)('0' + v % 10);
    size_t at = strlen(path);
    while (nd > 0)
        path[at++] = digits[--nd];
    memcpy(path + at, "/mem", 5);
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int mproc__sys_vm_read(int fd, void *local, uint64_t remote, size_t len)
{
    int rc = MPROC__FAULT("sys.vm");
    if (rc < 0)
        return rc;
    unsigned char *at = local;
    while (len > 0) {
        if (remote > (uint64_t)INT64_MAX)
            return -EFAULT; /* beyond what an off_t can name */
        ssize_t n = pread(fd, at, len, (off_t)remote);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        at += n;
        remote += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int mproc__sys_vm_write(pid_t pid, uint64_t remote, const void *local, size_t len)
{
    int rc = MPROC__FAULT("sys.vm");
    if (rc < 0)
        return rc;
    while (len > 0) {
        struct iovec l = {.iov_base = (void *)(uintptr_t)local, .iov_len = len};
        struct iovec r = {.iov_base = (void *)(uintptr_t)remote, .iov_len = len};
        ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EFAULT; /* cannot happen: a bad page fails the next call instead */
        local = (const unsigned char *)local + n; /* a partial copy stops at a bad page */
        remote += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

void mproc__sys_prefault(const void *addr, size_t len, bool write)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)addr & ~(page - 1),
              b = ((uintptr_t)addr + len + page - 1) & ~(page - 1);
    if (len > 0)
        (void)madvise((void *)a, b - a, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}
