/* src/shared/heap.h - the shared heap under the shared containers (dict.c, list.c).
 *
 * A region of shared memory (a memfd, or a /dev/shm file when named) mapped whole in
 * every process that uses it, holding a header and blocks. The region's address space is
 * reserved up front (max_bytes); its memory is populated as the blocks grow (MADV_
 * POPULATE_WRITE), so a full /dev/shm or a memory limit is an error of the call that
 * grows, never a SIGBUS. Every change is made under one robust lock, and each change
 * becomes visible to a later lock holder at one aligned 8-byte store (its commit); a
 * holder killed before that store leaves blocks that nothing reaches, and the next
 * holder (told by the lock that the owner died) runs mproc__heap_repair: it walks the
 * blocks, marks what the container reaches from its root, and frees the rest.
 * See heap.c for the block layout and the allocator.
 */
#ifndef MPROC_SHARED_HEAP_H
#define MPROC_SHARED_HEAP_H

#include "internal.h"
#include "owner_lock.h"

enum {
    HEAP_ALIGN = 16,   /* every block starts and ends on 16 bytes */
    HEAP_HDR = 16,     /* each block's header: size and flags, and 8 bytes for its user */
    HEAP_MIN = 32,     /* the smallest block */
    HEAP_SMALL = 1024, /* sizes up to this: a class every 16 bytes; above, 4 per doubling */
    HEAP_LISTS = HEAP_SMALL / HEAP_ALIGN + 1 + 4 * 31, /* one free list per class */
};

/* What a container is: its kind, and how the repair finds what it reaches. */
struct mproc__heap;
struct mproc__heap_kind {
    uint32_t magic;
    /* Mark every block reachable from h->root (mproc__heap_mark), and recount the
     * totals the container keeps in the header (the dictionary's count and aux). */
    void (*mark)(struct mproc__heap *h);
};

/* The header at offset 0 of the region. Written under the lock only. */
struct mproc__heap {
    uint32_t magic; /* the container's kind */
    uint32_t version;
    uint64_t size;   /* the region's bytes: the most the blocks may take */
    uint64_t seed;   /* the container's hash seed */
    uint32_t spin;   /* spin before sleeping on the lock: more than one CPU */
    uint32_t broken; /* the repair found the blocks beyond repair: every call fails */
    mproc__owner_lock lock;
    uint64_t reserved;              /* [0, reserved) is populated */
    uint64_t bump;                  /* the blocks lie in [start, bump) */
    uint64_t root;                  /* the container's root block (0: none yet) */
    uint64_t count;                 /* the dictionary's live entries */
    uint64_t aux;                   /* the dictionary's tombstones */
    uint64_t free_list[HEAP_LISTS]; /* heads of the free lists (0: empty) */
    /* odd while a holder changes what readers without the lock may look at (the
       dictionary's gets): they read, then check it did not move (a seqlock) */
    _Alignas(64) uint64_t seq;
};

/* A process's view of a region: the block of shared memory (its name, unlink, free:
 * mproc/shm.h) and the heap at its start. */
struct mproc__heap_map {
    mproc_shm *shm;
    struct mproc__heap *h;
};

/* Create or attach the region (flags as mproc_shm's: MPROC_SHM_CREATE, _AUTO_UNLINK,
 * _NAMED; name NULL: anonymous). max_bytes 0: the default. The fd is closed once mapped:
 * nothing but the mapping stays in the process. */
int mproc__heap_open(struct mproc__heap_map *m, const char *name, unsigned flags, size_t max_bytes,
                     const struct mproc__heap_kind *kind);
void mproc__heap_close(struct mproc__heap_map *m);

/* A container's handle in a process (the dictionary's, the list's): its kind, checked
 * on every call, and its map. mproc__container_* do what both do alike. */
struct mproc__container {
    const struct mproc__heap_kind *kind; /* NULL once freed */
    struct mproc__heap_map m;
};

int mproc__container_new(struct mproc__container **out, const char *name, unsigned flags,
                         size_t max_bytes, const struct mproc__heap_kind *kind);
void mproc__container_free(struct mproc__container *c);
const char *mproc__container_name(const struct mproc__container *c,
                                  const struct mproc__heap_kind *kind);
int mproc__container_unlink(struct mproc__container *c, const struct mproc__heap_kind *kind);

/* The heap of c if c is a live container of that kind, else NULL. */
static inline struct mproc__heap *mproc__container_heap(struct mproc__container *c,
                                                        const struct mproc__heap_kind *kind)
{
    return c != NULL && c->kind == kind ? c->m.h : NULL;
}

/* Take the lock (repairing after a holder that died); 0, or -MPROC_ECORRUPT. */
int mproc__heap_lock(struct mproc__heap *h, const struct mproc__heap_kind *kind);
void mproc__heap_unlock(struct mproc__heap *h);

/* A block with at least payload bytes after its header: its offset, or -ENOSPC (the
 * region is full), -ENOMEM (no memory to populate it). Holder only. */
int mproc__heap_alloc(struct mproc__heap *h, size_t payload, uint64_t *off);
void mproc__heap_free(struct mproc__heap *h, uint64_t off);

static inline void *mproc__heap_at(struct mproc__heap *h, uint64_t off)
{
    return (char *)h + off;
}

/* The user's word in the header of the block at off (a size, a capacity, ...). */
static inline uint64_t *mproc__heap_user(struct mproc__heap *h, uint64_t off)
{
    return (uint64_t *)mproc__heap_at(h, off) + 1;
}

/* Around a change that readers without the lock may see half done (holder only). */
static inline void mproc__heap_write_begin(struct mproc__heap *h)
{
    __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* odd before any store of the change */
}

static inline void mproc__heap_write_end(struct mproc__heap *h)
{
    __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELEASE);
}

/* Commit: one aligned 8-byte store, ordered after the stores before it. */
static inline void mproc__heap_commit(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* For the repair's mark pass: this block is reachable. */
void mproc__heap_mark(struct mproc__heap *h, uint64_t off);

/* Walk, mark and free what is unreachable (see heap.c). 0 or -MPROC_ECORRUPT. */
int mproc__heap_repair(struct mproc__heap *h, const struct mproc__heap_kind *kind);

/* Empty the container: no root, no counts, no blocks (holder only). Their memory stays
 * populated for the blocks to come: a reader without the lock may still look there. */
void mproc__heap_clear(struct mproc__heap *h);

/* For tests: check that every block is either reachable or on a free list, exactly
 * once, and give the bytes in use (reachable blocks) and free. 0 or -MPROC_ECORRUPT. */
int mproc__heap_check(struct mproc__heap *h, const struct mproc__heap_kind *kind, uint64_t *used,
                      uint64_t *free_bytes);

/* For tests: mproc__heap_check of a container (a dictionary or a list), under its lock. */
int mproc__container_check(struct mproc__container *c, uint64_t *used, uint64_t *free_bytes);

#endif
