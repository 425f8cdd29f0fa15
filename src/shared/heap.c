/* src/shared/heap.c - the shared heap: a region, one robust lock, blocks, and repair.
 *
 * DESIGN. The region is an mproc_shm made sparse (src/shm.c): its whole size is mapped
 * at once in every process, so offsets and pointers never move and nobody has to remap
 * when it grows; its pages are populated as the blocks reach them (reserved, grown by
 * doubling), so memory follows use and running out is an error of the call that grows.
 *
 * Blocks lie one after another in [start, bump). Each starts with a 16-byte header: the
 * block's size with two flags in its low bits (FREE, MARK), and 8 bytes for its user (a
 * free block keeps its free-list link there). A block's size is one of a fixed set of
 * classes: every multiple of 16 from 32 to HEAP_SMALL, then four per doubling (1280,
 * 1536, 1792, 2048, 2560, ...; at most a fifth wasted). A request gets the smallest class
 * that holds it, and a freed block goes on its class's list, where the next request of
 * the class takes it (pop and push at the head). Blocks are never split or merged, so
 * any mix of sizes, freed and asked for again and again, reuses what was freed instead
 * of cutting it into pieces nobody asks for.
 *
 * Kills. Everything happens under the lock, and every change reaches the shared state
 * through one aligned 8-byte store that makes it visible whole (mproc__heap_commit): a
 * new block's header is written before bump moves past it; an entry is written whole
 * before a slot or the root points at it; a list's head moves in one store. A holder
 * killed anywhere thus leaves (a) the container as it was before or after its change,
 * never between, and (b) blocks that nothing reaches (allocated and not yet published,
 * or unpublished and not yet freed) and free lists that may be half-updated. The next
 * holder is told by the lock (MPROC_OWNER_DIED) and repairs (b) from (a): it walks the
 * blocks from start to bump, asks the container to mark what its root reaches, and
 * rebuilds the free lists from everything else, giving an unreachable tail back to
 * bump. The repair writes only through single stores too, so a holder
 * killed while repairing is repaired after in the same way. It costs a walk of the
 * region, once per death.
 */
#include "shared/heap.h"

#include "shm_internal.h"
#include "sys/cpu.h"
#include "sys/entropy.h"
#include "sys/procmem.h"

#include <unistd.h>

#define FREE UINT64_C(1)
#define MARK UINT64_C(2)
#define FLAGS (FREE | MARK)

enum {
    VERSION = 1,
    START = 4096,              /* the first block: past the header, on its own page */
    FIRST_RESERVE = 64 * 1024, /* populated at creation */
    ATTACH_WAIT_MS = 1000,     /* how long an attach waits for its creator to finish */
};
#define DEFAULT_SIZE ((size_t)1 << 30)
#define MAX_SIZE ((size_t)1 << 40)

_Static_assert(sizeof(struct mproc__heap) <= START, "the heap header outgrew START");

/* A block's header: its size and flags, and its user's word. */
struct block {
    uint64_t head;
    uint64_t user;
};

static inline struct block *blk(struct mproc__heap *h, uint64_t off)
{
    return (struct block *)mproc__heap_at(h, off);
}

static inline uint64_t blk_size(const struct block *b)
{
    return b->head & ~FLAGS;
}

/* The class of a request of need bytes (header included): its block size, and the index
 * of its free list. */
static uint64_t class_of(uint64_t need, unsigned *list)
{
    if (need <= HEAP_SMALL) {
        uint64_t size = (need + HEAP_ALIGN - 1) & ~(uint64_t)(HEAP_ALIGN - 1);
        size = size < HEAP_MIN ? HEAP_MIN : size;
        *list = (unsigned)(size / HEAP_ALIGN);
        return size;
    }
    unsigned e = 63 - (unsigned)__builtin_clzll(need - 1); /* need in (2^e, 2^(e+1)] */
    uint64_t step = UINT64_C(1) << (e - 2), quarters = (need + step - 1) / step; /* 5..8 */
    *list = HEAP_SMALL / HEAP_ALIGN + 1 + (e - 10) * 4 + (unsigned)(quarters - 5);
    return quarters * step;
}

static unsigned list_of(uint64_t size)
{
    unsigned list;
    (void)class_of(size, &list);
    return list;
}

/* ---- the region ------------------------------------------------------------------------ */

static size_t page_round(size_t n)
{
    size_t page = 4096;
    return (n + page - 1) & ~(page - 1);
}

/* Populate [reserved, want) (rounded to pages), or say why not. */
static int grow_reserve(struct mproc__heap *h, uint64_t want)
{
    if (want <= h->reserved)
        return 0;
    if (want > h->size)
        return -ENOSPC; /* the container is as large as it may grow */
    uint64_t next = h->reserved * 2 > want ? h->reserved * 2 : want;
    next = page_round(next < h->size ? next : h->size);
    int rc = mproc__sys_populate(mproc__heap_at(h, h->reserved), next - h->reserved);
    if (rc == -ENOMEM || rc == -ENOSPC) {
        next = page_round(want); /* doubling asked too much: ask for what is needed */
        rc = mproc__sys_populate(mproc__heap_at(h, h->reserved), next - h->reserved);
    }
    if (rc < 0)
        return rc;
    h->reserved = next;
    return 0;
}

static int init_heap(struct mproc__heap *h, size_t size, const struct mproc__heap_kind *kind)
{
    int rc = mproc__sys_populate(h, FIRST_RESERVE); /* before the first touch (sparse) */
    if (rc < 0)
        return rc;
    h->size = size;
    h->reserved = FIRST_RESERVE;
    h->version = VERSION;
    if (mproc__sys_random(&h->seed, sizeof h->seed) < 0)
        h->seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15u; /* only the spread suffers */
    h->spin = mproc__sys_affinity_count(0) > 1;
    h->bump = START;
    __atomic_store_n(&h->magic, kind->magic, __ATOMIC_RELEASE); /* attachers wait for it */
    return 0;
}

/* An attacher may come while its creator is still setting the header up. */
static int wait_ready(struct mproc__heap *h, const struct mproc__heap_kind *kind)
{
    for (int ms = 0;; ms++) {
        uint32_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
        if (magic == kind->magic)
            return h->version == VERSION ? 0 : -EINVAL;
        if (magic != 0)
            return -EINVAL; /* another kind of object has that name */
        if (ms == ATTACH_WAIT_MS)
            return -EAGAIN; /* its creator died making it, or is very slow */
        usleep(1000);
    }
}

int mproc__heap_open(struct mproc__heap_map *m, const char *name, unsigned flags, size_t max_bytes,
                     const struct mproc__heap_kind *kind)
{
    unsigned known = MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK | MPROC_SHM_NAMED;
    if ((flags & ~known) != 0 || max_bytes > MAX_SIZE)
        return -EINVAL;
    bool create = name == NULL || (flags & MPROC_SHM_CREATE) != 0;
    size_t size = max_bytes == 0 ? DEFAULT_SIZE : page_round(max_bytes);
    if (size < START + FIRST_RESERVE)
        size = START + FIRST_RESERVE;
    int rc = mproc__shm_new_sparse(&m->shm, name, create ? size : 0, flags);
    if (rc < 0)
        return rc;
    m->h = mproc_shm_buf(m->shm);
    if (create) {
        rc = init_heap(m->h, mproc_shm_size(m->shm), kind);
        if (rc < 0 && mproc_shm_name(m->shm) != NULL)
            (void)mproc_shm_unlink(m->shm); /* a failed creation leaves no name */
    } else {
        rc = mproc_shm_size(m->shm) < START ? -EINVAL : wait_ready(m->h, kind);
    }
    if (rc < 0) {
        mproc_shm_free(m->shm);
        m->shm = NULL;
        m->h = NULL;
    }
    return rc;
}

void mproc__heap_close(struct mproc__heap_map *m)
{
    mproc_shm_free(m->shm);
    m->shm = NULL;
    m->h = NULL;
}

int mproc__container_new(struct mproc__container **out, const char *name, unsigned flags,
                         size_t max_bytes, const struct mproc__heap_kind *kind)
{
    if (out == NULL)
        return -EINVAL;
    struct mproc__container *c = mproc__calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    int rc = mproc__heap_open(&c->m, name, flags, max_bytes, kind);
    if (rc < 0) {
        mproc__free(c);
        return rc;
    }
    c->kind = kind;
    *out = c;
    return 0;
}

void mproc__container_free(struct mproc__container *c)
{
    if (c == NULL || c->kind == NULL)
        return;
    mproc__heap_close(&c->m);
    c->kind = NULL;
    mproc__free(c);
}

const char *mproc__container_name(const struct mproc__container *c,
                                  const struct mproc__heap_kind *kind)
{
    return c != NULL && c->kind == kind ? mproc_shm_name(c->m.shm) : NULL;
}

int mproc__container_unlink(struct mproc__container *c, const struct mproc__heap_kind *kind)
{
    return mproc__container_heap(c, kind) != NULL ? mproc_shm_unlink(c->m.shm) : -EINVAL;
}

/* ---- the lock ------------------------------------------------------------------------- */

int mproc__heap_lock(struct mproc__heap *h, const struct mproc__heap_kind *kind)
{
    uint64_t self = mproc__owner_self_id();
    int rc = 0;
    if (!mproc__owner_trylock(&h->lock, self))
        rc = mproc__owner_lock_wait(&h->lock, self, MPROC__NO_DEADLINE, h->spin != 0);
    if (h->broken)
        rc = -MPROC_ECORRUPT;
    else if (rc == MPROC_OWNER_DIED) /* its holder was killed: see DESIGN */
        rc = mproc__heap_repair(h, kind);
    if (rc < 0)
        mproc__heap_unlock(h);
    return rc < 0 ? rc : 0;
}

void mproc__heap_unlock(struct mproc__heap *h)
{
    mproc__owner_unlock(&h->lock);
}

/* ---- blocks ---------------------------------------------------------------------------- */

static void push_free(struct mproc__heap *h, uint64_t off, uint64_t size)
{
    struct block *b = blk(h, off);
    unsigned i = list_of(size);
    b->user = h->free_list[i];
    mproc__heap_commit(&b->head, size | FREE);
    (void)MPROC__FAULT("heap.free.linked"); /* kill points, for the tests */
    mproc__heap_commit(&h->free_list[i], off);
}

int mproc__heap_alloc(struct mproc__heap *h, size_t payload, uint64_t *off)
{
    if (payload > h->size)
        return -ENOSPC;
    unsigned i;
    uint64_t need = class_of(HEAP_HDR + (uint64_t)payload, &i), got = h->free_list[i];
    if (got != 0) {
        struct block *b = blk(h, got);
        mproc__heap_commit(&h->free_list[i], b->user);
        (void)MPROC__FAULT("heap.alloc.popped");
        mproc__heap_commit(&b->head, need);
    } else {
        if (need > h->size - h->bump)
            return -ENOSPC;
        int rc = grow_reserve(h, h->bump + need);
        if (rc < 0)
            return rc;
        got = h->bump;
        blk(h, got)->head = need; /* the header first: a walk up to bump must see it */
        (void)MPROC__FAULT("heap.bump.written");
        mproc__heap_commit(&h->bump, got + need);
    }
    *off = got;
    return 0;
}

void mproc__heap_free(struct mproc__heap *h, uint64_t off)
{
    push_free(h, off, blk_size(blk(h, off)));
}

void mproc__heap_clear(struct mproc__heap *h)
{
    mproc__heap_commit(&h->root, 0); /* empty from here; the rest only frees */
    h->count = h->aux = 0;
    for (unsigned i = 0; i < HEAP_LISTS; i++)
        mproc__heap_commit(&h->free_list[i], 0);
    mproc__heap_commit(&h->bump, START);
}

/* ---- repair ---------------------------------------------------------------------------- */

void mproc__heap_mark(struct mproc__heap *h, uint64_t off)
{
    if (off >= START && off < h->bump && off % HEAP_ALIGN == 0)
        blk(h, off)->head |= MARK;
}

/* Every header from start to bump is sane, and the marks are cleared. */
static int walk_clear(struct mproc__heap *h)
{
    if (h->bump < START || h->bump > h->reserved || h->bump % HEAP_ALIGN != 0)
        return -MPROC_ECORRUPT;
    for (uint64_t off = START; off < h->bump;) {
        struct block *b = blk(h, off);
        uint64_t size = blk_size(b);
        if (size < HEAP_MIN || size % HEAP_ALIGN != 0 || size > h->bump - off)
            return -MPROC_ECORRUPT;
        b->head &= ~MARK;
        off += size;
    }
    return 0;
}

int mproc__heap_repair(struct mproc__heap *h, const struct mproc__heap_kind *kind)
{
    int rc = walk_clear(h);
    if (rc < 0) {
        h->broken = 1; /* a header the commits cannot explain: say so, for ever */
        return rc;
    }
    kind->mark(h);
    for (unsigned i = 0; i < HEAP_LISTS; i++)
        mproc__heap_commit(&h->free_list[i], 0);
    uint64_t tail = START; /* where the blocks after the last reachable one start */
    for (uint64_t off = START; off < h->bump;) {
        struct block *b = blk(h, off);
        uint64_t size = blk_size(b);
        if ((b->head & MARK) != 0)
            tail = off + size;
        off += size;
    }
    mproc__heap_commit(&h->bump, tail); /* the unreachable tail goes back to bump */
    for (uint64_t off = START; off < tail;) {
        struct block *b = blk(h, off);
        uint64_t size = blk_size(b);
        if ((b->head & MARK) != 0)
            mproc__heap_commit(&b->head, size); /* in use: no flags */
        else
            push_free(h, off, size); /* each on its class's list (see DESIGN) */
        off += size;
    }
    if (h->seq % 2 != 0)
        mproc__heap_write_end(h); /* the dead holder was in a change: readers may go on */
    return 0;
}

int mproc__heap_check(struct mproc__heap *h, const struct mproc__heap_kind *kind, uint64_t *used,
                      uint64_t *free_bytes)
{
    int rc = walk_clear(h);
    if (rc < 0)
        return rc;
    kind->mark(h);
    uint64_t u = 0, f = 0, nfree = 0;
    for (uint64_t off = START; off < h->bump;) {
        struct block *b = blk(h, off);
        bool marked = (b->head & MARK) != 0, is_free = (b->head & FREE) != 0;
        if (marked == is_free)
            rc = -MPROC_ECORRUPT; /* reachable and free, or neither: lost */
        if (marked)
            u += blk_size(b);
        else
            nfree++;
        b->head &= ~MARK;
        off += blk_size(b);
    }
    for (unsigned i = 0; i < HEAP_LISTS; i++) {
        for (uint64_t off = h->free_list[i]; off != 0; off = blk(h, off)->user) {
            if (off < START || off >= h->bump || (blk(h, off)->head & FREE) == 0 ||
                list_of(blk_size(blk(h, off))) != i || nfree == 0)
                return -MPROC_ECORRUPT; /* on a list and not free, or on a wrong list */
            nfree--;
            f += blk_size(blk(h, off));
        }
    }
    if (nfree != 0)
        rc = -MPROC_ECORRUPT; /* a free block on no list */
    *used = u;
    *free_bytes = f;
    return rc;
}

int mproc__container_check(struct mproc__container *c, uint64_t *used, uint64_t *free_bytes)
{
    struct mproc__heap *h = c != NULL ? mproc__container_heap(c, c->kind) : NULL;
    if (h == NULL)
        return -EINVAL;
    int rc = mproc__heap_lock(h, c->kind);
    if (rc < 0)
        return rc;
    rc = mproc__heap_check(h, c->kind, used, free_bytes);
    mproc__heap_unlock(h);
    return rc;
}
