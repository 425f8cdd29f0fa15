/* src/pool/items.c - the blocks that hold map_var's outputs, and their release by the
 * caller (mproc_item_free, mproc_items_free).
 *
 * DESIGN. A map over items of any size hands back one output per item, in memory the
 * pool allocates. One malloc per output cost the supervisor thread a quarter of its time
 * (measured: 1 M outputs of about 500 bytes), so outputs are copied back to back into
 * slabs of at least SLAB_BYTES instead: each output is preceded by a pointer to its slab,
 * and a slab counts the outputs still held in it (plus one while its job may still add
 * to it). Freeing an output drops its slab's count; the last one frees the slab. The
 * count is atomic: the caller may free outputs from any thread, the job's hold is
 * dropped by the supervisor.
 */
#include "internal.h"

#include "pool/pool.h"

#include <pthread.h>
#include <stdatomic.h>

#define SLAB_BYTES ((size_t)256 << 10)
#define CACHE_SLABS 4096 /* 1 GiB */

struct item_slab {
    _Atomic size_t refs;
    size_t used, cap;       /* bytes of data below */
    struct item_slab *next; /* in the cache */
    _Alignas(16) unsigned char data[];
};

/* Released slabs of SLAB_BYTES, kept for the next outputs, as an allocator keeps freed
 * memory: on this kind of VM a page touched for the first time costs about 5 us, and
 * malloc's own trimming gave the pages of 100 MB of outputs (200 k items) back to the
 * system after each map, so every map faulted them in again (130-350 ms of a 200 ms map;
 * with the cache: 15-40 ms). At most CACHE_SLABS; larger slabs (one huge output) are not
 * kept; mproc_items_trim gives them all back. */
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct item_slab *cache;
static size_t ncache;

static struct item_slab *slab_new(size_t cap)
{
    if (cap == SLAB_BYTES) {
        pthread_mutex_lock(&cache_mu);
        struct item_slab *s = cache;
        if (s != NULL) {
            cache = s->next;
            ncache--;
        }
        pthread_mutex_unlock(&cache_mu);
        if (s != NULL)
            return s;
    }
    return mproc__malloc(sizeof(struct item_slab) + cap);
}

static void unref(struct item_slab *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->cap == SLAB_BYTES) {
        pthread_mutex_lock(&cache_mu);
        bool kept = ncache < CACHE_SLABS;
        if (kept) {
            s->next = cache;
            cache = s;
            ncache++;
        }
        pthread_mutex_unlock(&cache_mu);
        if (kept)
            return;
    }
    mproc__free(s);
}

/* Each output: HEAD bytes whose last 8 hold its slab, then its bytes, rounded up to 16
 * (so every output is aligned as malloc's are). */
#define HEAD ((size_t)16)

void *mproc__items_copy(struct item_slab **cur, const void *src, size_t len)
{
    size_t need = HEAD + ((len + 15) & ~(size_t)15);
    if (need < len)
        return NULL; /* cannot happen: an output fits a channel message */
    struct item_slab *s = *cur;
    if (s == NULL || s->cap - s->used < need) {
        size_t cap = need > SLAB_BYTES ? need : SLAB_BYTES;
        struct item_slab *n = slab_new(cap);
        if (n == NULL)
            return NULL;
        atomic_init(&n->refs, 1); /* the job's hold */
        n->used = 0;
        n->cap = cap;
        unref(s);
        *cur = s = n;
    }
    unsigned char *at = s->data + s->used + HEAD;
    memcpy(at - sizeof s, &s, sizeof s);
    if (len > 0)
        memcpy(at, src, len);
    s->used += need;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return at;
}

void mproc_items_trim(void)
{
    pthread_mutex_lock(&cache_mu);
    struct item_slab *s = cache;
    cache = NULL;
    ncache = 0;
    pthread_mutex_unlock(&cache_mu);
    while (s != NULL) {
        struct item_slab *next = s->next;
        mproc__free(s);
        s = next;
    }
}

void mproc__items_release(struct item_slab **cur)
{
    unref(*cur);
    *cur = NULL;
}

void mproc_item_free(mproc_item *it)
{
    if (it == NULL || it->data == NULL)
        return;
    struct item_slab *s;
    memcpy(&s, (unsigned char *)it->data - sizeof s, sizeof s);
    unref(s);
    *it = (mproc_item){NULL, 0};
}

void mproc_items_free(mproc_item *items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++)
        mproc_item_free(&items[i]);
}
