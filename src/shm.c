/* src/shm.c - shared memory blocks: named (/dev/shm) or anonymous (memfd).
 *
 * Python's multiprocessing.shared_memory.SharedMemory in C: create a block by name,
 * attach it by name from any process, close it (mproc_shm_free) and remove the name
 * (mproc_shm_unlink).
 *
 * DESIGN: a block is an fd plus a MAP_SHARED mapping of it. No process wakes another
 * here; the memory is plain bytes and whoever shares it brings its own locks.
 *  - Creation is all or nothing: shm_open(O_CREAT|O_EXCL), then posix_fallocate to
 *    reserve every page (a full /dev/shm is -ENOSPC now, never SIGBUS at first touch),
 *    then mmap. If any step fails the half-made name is unlinked and the fd closed, so
 *    a failed call leaves nothing. O_EXCL guarantees the name we unlink is ours.
 *  - A process that dies keeps nothing mapped (the kernel drops its mappings and fds),
 *    but a *name* outlives every process until someone unlinks it. A creator SIGKILLed
 *    before it unlinks therefore leaves its name in /dev/shm, as in Python; so does a
 *    creator killed between shm_open and the unlink of a failed creation. Callers that
 *    must survive that pick names they can find again (a prefix + their pid) and unlink
 *    stale ones. MPROC_SHM_AUTO_UNLINK covers every path on which the creator lives.
 *  - AUTO_UNLINK belongs to the creating *process*: the creator's pid is recorded, and
 *    a forked child that inherits the handle and frees it only unmaps, so a child's
 *    exit never pulls the name from under its parent.
 *  - Anonymous blocks are memfds: they vanish with the last fd and mapping, so they
 *    cannot leak; they are shared by fork, or by passing mproc_shm_fd() to a child.
 *  - A random name (MPROC_SHM_NAMED, Python's SharedMemory(create=True) without a name)
 *    is "/mproc-" and 24 hex digits from getrandom: 96 bits, so names never repeat by
 *    chance; O_EXCL still guards, and a taken name is simply drawn again.
 *  - A name outlives its block's first owner and can be reused: one handle unlinks, or a
 *    program removes the file, and someone creates a new block under the same name.
 *    Every unlink through a handle (explicit or AUTO_UNLINK) therefore first checks that
 *    the name still names this handle's block (device and inode against its fd) and
 *    otherwise removes nothing. The check and the unlink are two system calls: a new
 *    block created in the microseconds between them, under a name whose own block is
 *    being removed at that moment, is the one case it cannot see.
 */
#include "internal.h"

#include "shm_internal.h"
#include "sys/entropy.h"
#include "sys/shm.h"

#include <unistd.h>

/* Python's limits on Linux: NAME_MAX is 255 with the leading '/', and Python keeps a
 * margin; the header promises 1..250 characters after the optional '/'. */
enum { NAME_CHARS_MAX = 250 };

struct mproc_shm {
    void *buf;
    size_t size; /* mapped bytes */
    bool sparse; /* nothing reserved at creation: its user populates (mproc__shm_new_sparse) */
    struct mproc__fd_id fd_id; /* what fd names: a process that closed it leaves it alone */
    int fd;
    char *name;    /* "/name", or NULL for an anonymous block */
    pid_t creator; /* pid that created it with AUTO_UNLINK, else 0 */
    bool unlinked; /* this handle already removed the name */
};

/* Validate a user name and return it in "/name" form (heap), or a negative code. */
static int normalize_name(const char *name, char **out)
{
    const char *body = name[0] == '/' ? name + 1 : name;
    size_t n = strnlen(body, NAME_CHARS_MAX + 1);
    if (n == 0 || n > NAME_CHARS_MAX || memchr(body, '/', n) != NULL)
        return -EINVAL;
    if (strcmp(body, ".") == 0 || strcmp(body, "..") == 0)
        return -EINVAL; /* glibc refuses these too; say so before the syscall */
    char *full = mproc__malloc(n + 2);
    if (full == NULL)
        return -ENOMEM;
    full[0] = '/';
    memcpy(full + 1, body, n + 1);
    *out = full;
    return 0;
}

/* The handle's fd from now on, and what it names (see mproc_shm_free). */
static void keep_fd(mproc_shm *s, int fd)
{
    s->fd = fd;
    if (mproc__sys_fd_id(fd, &s->fd_id) < 0)
        s->fd_id = (struct mproc__fd_id){0}; /* cannot happen: fstat of our own fd */
}

/* Reserve a new block's pages, or for a sparse one only give the file its size. */
static int reserve(const mproc_shm *s, int fd, size_t size)
{
    return s->sparse ? mproc__sys_set_size(fd, size) : mproc__sys_reserve(fd, size);
}

static int create_named(mproc_shm *s, size_t size)
{
    int fd = mproc__sys_shm_open(s->name, true);
    if (fd < 0)
        return fd;
    /* From here the name exists and is ours (O_EXCL): every failure unlinks it. */
    int rc = MPROC__FAULT("shm.create.named");
    if (rc >= 0)
        rc = reserve(s, fd, size);
    if (rc >= 0)
        rc = MPROC__FAULT("shm.create.reserved");
    if (rc >= 0)
        rc = mproc__sys_map_shared(fd, size, &s->buf);
    if (rc < 0) {
        (void)mproc__sys_shm_unlink(s->name);
        mproc__sys_close(fd);
        return rc;
    }
    keep_fd(s, fd);
    s->size = size;
    return 0;
}

/* A new block under a random name nobody else has (MPROC_SHM_NAMED). */
enum { RANDOM_BYTES = 12, RANDOM_TRIES = 16 };

static int create_random(mproc_shm *s, size_t size)
{
    s->name = mproc__malloc(sizeof "/mproc-" + 2 * RANDOM_BYTES);
    if (s->name == NULL)
        return -ENOMEM;
    memcpy(s->name, "/mproc-", 7);
    int rc = -EEXIST;
    for (int t = 0; t < RANDOM_TRIES && rc == -EEXIST; t++) {
        unsigned char r[RANDOM_BYTES];
        rc = mproc__sys_random(r, sizeof r);
        if (rc < 0)
            break;
        for (int i = 0; i < RANDOM_BYTES; i++) {
            s->name[7 + 2 * i] = "0123456789abcdef"[r[i] >> 4];
            s->name[8 + 2 * i] = "0123456789abcdef"[r[i] & 15];
        }
        s->name[7 + 2 * RANDOM_BYTES] = '\0';
        rc = create_named(s, size);
    }
    return rc;
}

static int attach_named(mproc_shm *s, size_t size)
{
    int fd = mproc__sys_shm_open(s->name, false);
    if (fd < 0)
        return fd;
    size_t have;
    int rc = mproc__sys_fd_size(fd, &have);
    if (rc >= 0 && size > have)
        rc = -EINVAL;
    if (rc >= 0 && size == 0)
        size = have;
    if (rc >= 0 && size == 0)
        rc = -EINVAL; /* an empty block (its creator is still reserving it) */
    if (rc >= 0)
        rc = mproc__sys_map_shared(fd, size, &s->buf);
    if (rc < 0) {
        mproc__sys_close(fd);
        return rc;
    }
    keep_fd(s, fd);
    s->size = size;
    return 0;
}

static int create_anonymous(mproc_shm *s, size_t size)
{
    int fd = mproc__sys_memfd("mproc-shm");
    if (fd < 0)
        return fd;
    int rc = reserve(s, fd, size);
    if (rc >= 0)
        rc = mproc__sys_map_shared(fd, size, &s->buf);
    if (rc < 0) {
        mproc__sys_close(fd);
        return rc;
    }
    keep_fd(s, fd);
    s->size = size;
    return 0;
}

static int shm_new(mproc_shm **out, const char *name, size_t size, unsigned flags, bool sparse);

int mproc_shm_new(mproc_shm **out, const char *name, size_t size, unsigned flags)
{
    return shm_new(out, name, size, flags, false);
}

int mproc__shm_new_sparse(mproc_shm **out, const char *name, size_t size, unsigned flags)
{
    return shm_new(out, name, size, flags, true);
}

static int shm_new(mproc_shm **out, const char *name, size_t size, unsigned flags, bool sparse)
{
    unsigned known = MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK | MPROC_SHM_NAMED;
    if (out == NULL || (flags & ~known) != 0)
        return -EINVAL;
    bool random_name = (flags & MPROC_SHM_NAMED) != 0;
    if (random_name && (name != NULL || (flags & MPROC_SHM_CREATE) == 0))
        return -EINVAL; /* a random name is for a block created without one */
    bool create = name == NULL || (flags & MPROC_SHM_CREATE) != 0;
    if (create && size == 0)
        return -EINVAL;
    if (size > (size_t)PTRDIFF_MAX)
        return -EINVAL;
    if (!create && (flags & MPROC_SHM_AUTO_UNLINK) != 0)
        return -EINVAL; /* only the creator may own the name's lifetime */

    mproc_shm *s = mproc__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fd = -1;
    s->sparse = sparse;
    int rc = 0;
    if (name != NULL)
        rc = normalize_name(name, &s->name);
    if (rc >= 0) {
        if (random_name)
            rc = create_random(s, size);
        else if (name == NULL)
            rc = create_anonymous(s, size);
        else if (create)
            rc = create_named(s, size);
        else
            rc = attach_named(s, size);
    }
    if (rc < 0) {
        mproc__free(s->name);
        mproc__free(s);
        return rc;
    }
    if (s->name != NULL && create && (flags & MPROC_SHM_AUTO_UNLINK) != 0)
        s->creator = getpid();
    *out = s;
    return 0;
}

void *mproc_shm_buf(const mproc_shm *s)
{
    return s != NULL ? s->buf : NULL;
}

size_t mproc_shm_size(const mproc_shm *s)
{
    return s != NULL ? s->size : 0;
}

const char *mproc_shm_name(const mproc_shm *s)
{
    return s != NULL ? s->name : NULL;
}

int mproc_shm_fd(const mproc_shm *s)
{
    return s != NULL ? s->fd : -EINVAL;
}

/* Remove the name if it still names this handle's block (see the top of this file). */
static int unlink_own(mproc_shm *s)
{
    if (s->unlinked)
        return -ENOENT; /* never remove a newer block that reuses the name */
    int rc = mproc__sys_shm_same(s->name, s->fd);
    if (rc == 1)
        rc = mproc__sys_shm_unlink(s->name);
    else if (rc == 0)
        rc = -ENOENT; /* its block is gone; the name is another block's now */
    if (rc == 0 || rc == -ENOENT)
        s->unlinked = true;
    return rc;
}

int mproc_shm_unlink(mproc_shm *s)
{
    if (s == NULL || s->name == NULL)
        return -EINVAL;
    return unlink_own(s);
}

void mproc_shm_free(mproc_shm *s)
{
    if (s == NULL)
        return;
    if (s->creator != 0 && s->creator == getpid())
        (void)unlink_own(s);
    mproc__sys_unmap(s->buf, s->size);
    /* a process that closed the fd (a pool worker keeps only the fds it was told) may
       have the number for something else now */
    if (s->fd >= 0 && mproc__sys_fd_same(s->fd, &s->fd_id))
        mproc__sys_close(s->fd);
    mproc__free(s->name);
    mproc__free(s);
}
