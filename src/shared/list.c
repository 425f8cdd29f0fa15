/* src/shared/list.c - the shared list, a double-ended queue (mproc/list.h), on the
 * shared heap.
 *
 * DESIGN. The root is a ring block: its user word is the ring's capacity (a power of
 * two), its payload starts with one word holding where the first item is and how many
 * there are (32 bits each), then the slots, each the offset of an item block (the
 * item's size in the block's user word, the bytes in its payload). Slots outside the
 * window [first, first + count) mean nothing.
 *
 * Every change is one commit (src/shared/heap.h): an append writes the item and its
 * slot outside the window, then stores the window word with one more; a pop copies the
 * item out, stores the window word with one less, then frees the item; a set writes
 * the new item and then its slot; a full ring is copied into one twice its size, which
 * becomes the root in one store.
 */
#include "mproc/list.h"

#include "shared/heap.h"

#define LIST_MAGIC 0x5453494cu /* "LIST" */

/* mproc_list is a container (src/shared/heap.h): the public type is its handle. */

enum { MIN_CAP = 16 };

static void list_mark(struct mproc__heap *h);

static const struct mproc__heap_kind LIST_KIND = {LIST_MAGIC, list_mark};

/* ---- layout ------------------------------------------------------------------------------ */

static inline uint64_t *window_of(struct mproc__heap *h, uint64_t ring)
{
    return (uint64_t *)mproc__heap_at(h, ring + HEAP_HDR);
}

static inline uint64_t *slots_of(struct mproc__heap *h, uint64_t ring)
{
    return window_of(h, ring) + 1;
}

static inline uint64_t first_of(uint64_t window)
{
    return window & 0xffffffffu;
}

static inline uint64_t count_of(uint64_t window)
{
    return window >> 32;
}

static inline uint64_t window(uint64_t first, uint64_t count)
{
    return first | (count << 32);
}

/* The ring's state: capacity, first, count (all 0 before the first item). */
struct ring {
    uint64_t off, cap, first, count;
};

static struct ring ring_of(struct mproc__heap *h)
{
    struct ring r = {h->root, 0, 0, 0};
    if (r.off != 0) {
        r.cap = *mproc__heap_user(h, r.off);
        uint64_t w = *window_of(h, r.off);
        r.first = first_of(w);
        r.count = count_of(w);
    }
    return r;
}

/* The slot of the item at position i (0: the first) of the window. */
static inline uint64_t *slot(struct mproc__heap *h, const struct ring *r, uint64_t i)
{
    return &slots_of(h, r->off)[(r->first + i) & (r->cap - 1)];
}

/* ---- changing ---------------------------------------------------------------------------- */

/* A ring with room for one more item: the current one, or a copy twice its size. */
static int make_room(struct mproc__heap *h, struct ring *r)
{
    if (r->off != 0 && r->count < r->cap)
        return 0;
    uint64_t cap = r->cap == 0 ? MIN_CAP : r->cap * 2;
    if (cap > (UINT64_C(1) << 32))
        return -ENOSPC; /* the window's 32-bit count */
    uint64_t ring;
    int rc = mproc__heap_alloc(h, (size_t)(cap + 1) * 8, &ring);
    if (rc < 0)
        return rc;
    *mproc__heap_user(h, ring) = cap;
    uint64_t *to = slots_of(h, ring);
    for (uint64_t i = 0; i < r->count; i++)
        to[i] = *slot(h, r, i);
    *window_of(h, ring) = window(0, r->count);
    (void)MPROC__FAULT("list.grow.copied"); /* kill points, for the tests */
    uint64_t old = r->off;
    mproc__heap_commit(&h->root, ring);
    if (old != 0)
        mproc__heap_free(h, old);
    *r = ring_of(h);
    return 0;
}

static int new_item(struct mproc__heap *h, const void *item, size_t len, uint64_t *off)
{
    if (len > h->size)
        return -ENOSPC;
    int rc = mproc__heap_alloc(h, len, off);
    if (rc < 0)
        return rc;
    *mproc__heap_user(h, *off) = len;
    if (len > 0)
        memcpy(mproc__heap_at(h, *off + HEAP_HDR), item, len);
    return 0;
}

/* A copy of an item block's bytes from malloc. */
static int copy_item(struct mproc__heap *h, uint64_t off, void **out, size_t *len)
{
    size_t n = (size_t)*mproc__heap_user(h, off);
    void *buf = mproc__malloc(n > 0 ? n : 1);
    if (buf == NULL)
        return -ENOMEM;
    if (n > 0)
        memcpy(buf, mproc__heap_at(h, off + HEAP_HDR), n);
    *out = buf;
    *len = n;
    return 0;
}

/* ---- the repair's view ------------------------------------------------------------------- */

static void list_mark(struct mproc__heap *h)
{
    struct ring r = ring_of(h);
    if (r.off == 0)
        return;
    mproc__heap_mark(h, r.off);
    for (uint64_t i = 0; i < r.count && i < r.cap; i++)
        mproc__heap_mark(h, *slot(h, &r, i));
}

/* ---- the calls ------------------------------------------------------------------------- */

static struct mproc__heap *heap_of(mproc_list *l)
{
    return mproc__container_heap((struct mproc__container *)l, &LIST_KIND);
}

int mproc_list_new(mproc_list **out, const char *name, unsigned flags, size_t max_bytes)
{
    return mproc__container_new((struct mproc__container **)out, name, flags, max_bytes,
                                &LIST_KIND);
}

void mproc_list_free(mproc_list *l)
{
    mproc__container_free((struct mproc__container *)l);
}

const char *mproc_list_name(const mproc_list *l)
{
    return mproc__container_name((const struct mproc__container *)l, &LIST_KIND);
}

int mproc_list_unlink(mproc_list *l)
{
    return mproc__container_unlink((struct mproc__container *)l, &LIST_KIND);
}

/* Lock l's heap for a call: the heap, or NULL with *rc set. */
static struct mproc__heap *lock_list(mproc_list *l, int *rc)
{
    struct mproc__heap *h = heap_of(l);
    if (h == NULL) {
        *rc = -EINVAL;
        return NULL;
    }
    *rc = mproc__heap_lock(h, &LIST_KIND);
    return *rc < 0 ? NULL : h;
}

static int push(mproc_list *l, const void *item, size_t len, bool front)
{
    int rc;
    if (item == NULL && len > 0)
        return -EINVAL;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    struct ring r = ring_of(h);
    uint64_t off;
    if ((rc = make_room(h, &r)) == 0 && (rc = new_item(h, item, len, &off)) == 0) {
        uint64_t first = front ? (r.first + r.cap - 1) & (r.cap - 1) : r.first;
        slots_of(h, r.off)[front ? first : (r.first + r.count) & (r.cap - 1)] = off;
        (void)MPROC__FAULT("list.push.written");
        mproc__heap_commit(window_of(h, r.off), window(first, r.count + 1));
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_list_append(mproc_list *l, const void *item, size_t len)
{
    return push(l, item, len, false);
}

int mproc_list_appendleft(mproc_list *l, const void *item, size_t len)
{
    return push(l, item, len, true);
}

static int take(mproc_list *l, void **item, size_t *len, bool front)
{
    int rc;
    if (item == NULL || len == NULL)
        return -EINVAL;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    struct ring r = ring_of(h);
    if (r.count == 0) {
        rc = -ERANGE;
    } else {
        uint64_t off = *slot(h, &r, front ? 0 : r.count - 1);
        if ((rc = copy_item(h, off, item, len)) == 0) {
            uint64_t first = front ? (r.first + 1) & (r.cap - 1) : r.first;
            mproc__heap_commit(window_of(h, r.off), window(first, r.count - 1));
            (void)MPROC__FAULT("list.pop.committed");
            mproc__heap_free(h, off);
        }
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_list_pop(mproc_list *l, void **item, size_t *len)
{
    return take(l, item, len, false);
}

int mproc_list_popleft(mproc_list *l, void **item, size_t *len)
{
    return take(l, item, len, true);
}

/* Python's index (negative from the end) into the window: the position, or -ERANGE. */
static int position(const struct ring *r, long index, uint64_t *at)
{
    int64_t i = index < 0 ? (int64_t)r->count + index : index;
    if (i < 0 || (uint64_t)i >= r->count)
        return -ERANGE;
    *at = (uint64_t)i;
    return 0;
}

int mproc_list_get(mproc_list *l, long index, void *out, size_t cap, size_t *len)
{
    int rc;
    if (len == NULL || (out == NULL && cap > 0))
        return -EINVAL;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    struct ring r = ring_of(h);
    uint64_t at;
    if ((rc = position(&r, index, &at)) == 0) {
        uint64_t off = *slot(h, &r, at);
        *len = (size_t)*mproc__heap_user(h, off);
        if (*len > cap)
            rc = -MPROC_ETOOSMALL;
        else if (*len > 0)
            memcpy(out, mproc__heap_at(h, off + HEAP_HDR), *len);
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_list_set(mproc_list *l, long index, const void *item, size_t len)
{
    int rc;
    if (item == NULL && len > 0)
        return -EINVAL;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    struct ring r = ring_of(h);
    uint64_t at, off;
    if ((rc = position(&r, index, &at)) == 0 && (rc = new_item(h, item, len, &off)) == 0) {
        uint64_t *s = slot(h, &r, at), old = *s;
        mproc__heap_commit(s, off);
        mproc__heap_free(h, old);
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_list_len(mproc_list *l, size_t *n)
{
    int rc;
    if (n == NULL)
        return -EINVAL;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    *n = (size_t)ring_of(h).count;
    mproc__heap_unlock(h);
    return 0;
}

int mproc_list_clear(mproc_list *l)
{
    int rc;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    mproc__heap_clear(h);
    mproc__heap_unlock(h);
    return 0;
}

int mproc_list_items(mproc_list *l, mproc_list_item **items, size_t *n)
{
    int rc;
    if (items == NULL || n == NULL)
        return -EINVAL;
    struct mproc__heap *h = lock_list(l, &rc);
    if (h == NULL)
        return rc;
    struct ring r = ring_of(h);
    size_t bytes = 0;
    for (uint64_t i = 0; i < r.count; i++)
        bytes += (size_t)*mproc__heap_user(h, *slot(h, &r, i));
    mproc_list_item *all = mproc__malloc((size_t)r.count * sizeof *all + bytes + 1);
    if (all == NULL) {
        mproc__heap_unlock(h);
        return -ENOMEM;
    }
    unsigned char *at = (unsigned char *)(all + r.count);
    for (uint64_t i = 0; i < r.count; i++) {
        uint64_t off = *slot(h, &r, i);
        size_t len = (size_t)*mproc__heap_user(h, off);
        memcpy(at, mproc__heap_at(h, off + HEAP_HDR), len);
        all[i] = (mproc_list_item){at, len};
        at += len;
    }
    mproc__heap_unlock(h);
    *items = all;
    *n = (size_t)r.count;
    return 0;
}
