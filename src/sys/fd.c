/* src/sys/fd.c - file descriptor helpers: EINTR-retrying I/O, poll with a
 * deadline, close-on-exec pipes. Every fd the library creates is O_CLOEXEC. */
#include "internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>

void mproc__sys_close(int fd)
{
    if (fd < 0)
        return;
    int saved = errno;
    (void)close(fd); /* on Linux the fd is gone even when close reports EINTR */
    errno = saved;
}

ssize_t mproc__sys_read(int fd, void *buf, size_t n)
{
    int rc = MPROC__FAULT("sys.read");
    if (rc < 0)
        return rc;
    for (;;) {
        ssize_t got = read(fd, buf, n);
        if (got >= 0)
            return got;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t mproc__sys_write(int fd, const void *buf, size_t n)
{
    int rc = MPROC__FAULT("sys.write");
    if (rc < 0)
        return rc;
    for (;;) {
        ssize_t put = write(fd, buf, n);
        if (put >= 0)
            return put;
        if (errno != EINTR)
            return -errno;
    }
}

int mproc__sys_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t put = mproc__sys_write(fd, p, n);
        if (put < 0)
            return (int)put;
        p += put;
        n -= (size_t)put;
    }
    return 0;
}

int mproc__sys_read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t got = mproc__sys_read(fd, p, n);
        if (got < 0)
            return (int)got;
        if (got == 0)
            return -MPROC_EEOF;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int mproc__sys_poll1(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, mproc__remaining_ms(deadline));
        if (rc > 0)
            return pfd.revents;
        if (rc == 0) {
            if (mproc__remaining_ns(deadline) == 0)
                return 0;
            continue; /* poll rounds down sub-millisecond rests; wait out the rest */
        }
        if (errno != EINTR)
            return -errno;
    }
}

int mproc__sys_set_nonblock(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (want != flags && fcntl(fd, F_SETFL, want) < 0)
        return -errno;
    return 0;
}

int mproc__sys_set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0)
        return -errno;
    if ((flags & FD_CLOEXEC) == 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int mproc__sys_pipe(int fds[2], int flags)
{
    int rc = MPROC__FAULT("sys.pipe");
    if (rc < 0)
        return rc;
    if (pipe2(fds, O_CLOEXEC | flags) < 0)
        return -errno;
    return 0;
}

int mproc__sys_read_text(const char *path, char *buf, size_t cap)
{
    if (cap == 0)
        return -EINVAL;
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    size_t used = 0;
    int rc = 0;
    while (used < cap - 1) {
        ssize_t n = mproc__sys_read(fd, buf + used, cap - 1 - used);
        if (n < 0)
            rc = (int)n;
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    mproc__sys_close(fd);
    buf[used] = '\0';
    return rc < 0 ? rc : (int)(used > INT32_MAX ? INT32_MAX : used);
}

bool mproc__sys_fd_open(int fd)
{
    return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

int mproc__sys_fd_id(int fd, struct mproc__fd_id *id)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return 0;
}

bool mproc__sys_fd_same(int fd, const struct mproc__fd_id *id)
{
    struct mproc__fd_id now;
    return mproc__sys_fd_id(fd, &now) == 0 && now.dev == id->dev && now.ino == id->ino;
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
