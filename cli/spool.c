/* cli/spool.c - a job's captured output: a little memory, then an unlinked file.
 *
 * DESIGN: grouped and ordered output means holding what a job prints until it can
 * be written whole, and a job may print without limit (`yes`). A spool keeps at
 * most SPOOL_MEM bytes in memory; when that is full the bytes go to a temporary
 * file and the memory is reused, so mproc's memory stays bounded however much a
 * job prints, and disk space is the only limit. The file is created with O_TMPFILE
 * (never visible in the directory, so a killed mproc leaves nothing behind), in
 * $TMPDIR or /tmp, close-on-exec; where O_TMPFILE is not supported, a mkostemp file
 * unlinked at once. The file always holds the older bytes and the memory the newer,
 * so emitting the file and then the memory gives the exact order the job wrote.
 * Only the scheduler's one thread touches a spool; nobody waits on it.
 */
#include <mproc.h>

#include "cli.h"
#include "output.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SPOOL_MEM = 64 * 1024, SPOOL_FIRST = 16 * 1024 };

const char *spool_dir(void)
{
    const char *dir = getenv("TMPDIR");
    return dir && *dir ? dir : "/tmp";
}

static int open_tmp(void)
{
    const char *dir = spool_dir();
    int fd;
    do {
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return -errno;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/mproc-spool-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Move the memory's bytes to the end of the file. */
static int spill(spool *s)
{
    if (s->fd < 0) {
        int fd = open_tmp();
        if (fd < 0)
            return fd;
        s->fd = fd;
        s->flen = 0;
    }
    int rc = write_all(s->fd, s->mem, s->len);
    if (rc < 0)
        return rc;
    s->flen += (off_t)s->len;
    s->len = 0;
    return 0;
}

int spool_room(spool *s, char **p, size_t *room)
{
    if (s->cap - s->len < 4096 && s->cap < SPOOL_MEM) {
        size_t nc = s->cap ? s->cap * 2 : SPOOL_FIRST;
        if (nc > SPOOL_MEM)
            nc = SPOOL_MEM;
        char *nb = realloc(s->mem, nc);
        if (!nb)
            return -ENOMEM;
        s->mem = nb;
        s->cap = nc;
    }
    if (s->len == s->cap) {
        int rc = spill(s);
        if (rc < 0)
            return rc;
    }
    *p = s->mem + s->len;
    *room = s->cap - s->len;
    return 0;
}

void spool_commit(spool *s, size_t n)
{
    s->len += n;
}

size_t spool_size(const spool *s)
{
    return (size_t)s->flen + s->len;
}

/* Write the file's bytes, then the first `mlen` bytes of memory. */
static int emit(spool *s, cli_out *o, int fd, const char *tag, size_t mlen)
{
    static char chunk[SPOOL_MEM];
    int bol = 1;
    int rc = 0;
    for (off_t off = 0; s->fd >= 0 && off < s->flen && rc == 0;) {
        size_t want =
            (size_t)(s->flen - off) < sizeof chunk ? (size_t)(s->flen - off) : sizeof chunk;
        ssize_t r = pread(s->fd, chunk, want, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            break;
        }
        rc = out_emit_stream(o, fd, tag, chunk, (size_t)r, &bol);
        off += r;
    }
    if (rc == 0 && mlen > 0)
        rc = out_emit_stream(o, fd, tag, s->mem, mlen, &bol);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        s->flen = 0;
    }
    return rc;
}

int spool_emit(spool *s, cli_out *o, int fd, const char *tag)
{
    int rc = emit(s, o, fd, tag, s->len);
    s->len = 0;
    return rc;
}

int spool_emit_lines(spool *s, cli_out *o, int fd, const char *tag)
{
    const char *nl = s->len ? memrchr(s->mem, '\n', s->len) : NULL;
    if (!nl)
        return 0; /* the file (if any) holds the start of a line still unfinished */
    size_t used = (size_t)(nl - s->mem) + 1;
    int rc = emit(s, o, fd, tag, used);
    memmove(s->mem, s->mem + used, s->len - used);
    s->len -= used;
    return rc;
}

void spool_reset(spool *s)
{
    s->len = 0;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->flen = 0;
}

void spool_release(spool *s)
{
    spool_reset(s);
    free(s->mem);
    s->mem = NULL;
    s->cap = 0;
}
