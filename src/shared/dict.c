/* src/shared/dict.c - the shared dictionary (mproc/dict.h) on the shared heap.
 *
 * DESIGN. The root is a table block: open addressing with linear probing over a power
 * of two of 8-byte slots. A slot is EMPTY, a TOMB (a deleted entry: probes go on past
 * it), or the offset of an entry block with the top 16 bits of the key's hash beside it
 * (a probe compares those before it touches the entry). An entry block holds the key's
 * length and 32 bits of its hash in the block's user word, then the value's length, the
 * key and the value.
 *
 * Every change is one commit (src/shared/heap.h): a set writes a whole new entry and
 * then stores its slot (a replaced entry is freed after); a delete stores TOMB in the
 * slot, then frees the entry; a table that fills (live and deleted slots past 3/4)
 * is rebuilt into a new table sized for twice the live entries, which becomes the
 * root in one store. The counts (entries, tombstones) are written after the commit;
 * the repair recounts them from the table. The hash is seeded per dictionary, from
 * getrandom at creation.
 */
#include "mproc/dict.h"

#include "shared/heap.h"
#include "sys/relax.h"

#define DICT_MAGIC 0x54434944u /* "DICT" */

/* mproc_dict is a container (src/shared/heap.h): the public type is its handle. */
#define EMPTY UINT64_C(0)
#define TOMB UINT64_C(1)
#define OFF_MASK ((UINT64_C(1) << 48) - 1)
#define TAG_SHIFT 48

enum { MIN_CAP = 16 };

/* An entry block's payload: the value's length, then the key and the value. */
struct entry {
    uint64_t value_len;
    unsigned char bytes[];
};

static void dict_mark(struct mproc__heap *h);

static const struct mproc__heap_kind DICT_KIND = {DICT_MAGIC, dict_mark};

/* ---- layout ------------------------------------------------------------------------------ */

static inline uint64_t *slots_of(struct mproc__heap *h, uint64_t table)
{
    return (uint64_t *)mproc__heap_at(h, table + HEAP_HDR);
}

static inline uint64_t cap_of(struct mproc__heap *h, uint64_t table)
{
    return *mproc__heap_user(h, table);
}

static inline struct entry *entry_at(struct mproc__heap *h, uint64_t off)
{
    return (struct entry *)mproc__heap_at(h, off + HEAP_HDR);
}

static inline size_t key_len_of(struct mproc__heap *h, uint64_t off)
{
    return (size_t)(*mproc__heap_user(h, off) & 0xffffffffu);
}

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    return x ^ (x >> 32);
}

static uint64_t hash_key(const void *key, size_t n, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)n * UINT64_C(0x9e3779b97f4a7c15));
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w);
    }
    uint64_t w = 0;
    if (n > 0)
        memcpy(&w, p, n);
    return mix(h ^ w ^ ((uint64_t)n << 59));
}

static inline uint64_t tag_of(uint64_t hash)
{
    return (hash >> TAG_SHIFT) << TAG_SHIFT;
}

/* ---- finding ----------------------------------------------------------------------------- */

struct probe {
    uint64_t hash;
    uint64_t found; /* the slot's index holding the key, or UINT64_MAX */
    uint64_t hole;  /* the first EMPTY or TOMB slot on the way, for an insert */
};

static void find(struct mproc__heap *h, const void *key, size_t klen, struct probe *p)
{
    p->hash = hash_key(key, klen, h->seed);
    p->found = p->hole = UINT64_MAX;
    if (h->root == 0)
        return;
    uint64_t cap = cap_of(h, h->root), *slots = slots_of(h, h->root), tag = tag_of(p->hash);
    for (uint64_t i = p->hash & (cap - 1), n = 0; n < cap; i = (i + 1) & (cap - 1), n++) {
        uint64_t s = slots[i];
        if (s == EMPTY) {
            if (p->hole == UINT64_MAX)
                p->hole = i;
            return;
        }
        if (s == TOMB) {
            if (p->hole == UINT64_MAX)
                p->hole = i;
            continue;
        }
        uint64_t off = s & OFF_MASK;
        if ((s & ~OFF_MASK) == tag && key_len_of(h, off) == klen &&
            (klen == 0 || memcmp(entry_at(h, off)->bytes, key, klen) == 0)) {
            p->found = i;
            return;
        }
    }
}

/* ---- changing ---------------------------------------------------------------------------- */

/* Rebuild the table for twice the live entries (plus the one coming). */
static int rebuild(struct mproc__heap *h)
{
    uint64_t cap = MIN_CAP;
    while (cap < (h->count + 1) * 2)
        cap *= 2;
    if (cap > (h->size / 8) || cap > (UINT64_C(1) << 32)) /* 32 hash bits place an entry */
        return -ENOSPC;
    uint64_t table;
    int rc = mproc__heap_alloc(h, (size_t)cap * 8, &table);
    if (rc < 0)
        return rc;
    *mproc__heap_user(h, table) = cap;
    uint64_t *to = slots_of(h, table);
    memset(to, 0, (size_t)cap * 8);
    uint64_t old = h->root;
    if (old != 0) {
        uint64_t ocap = cap_of(h, old), *from = slots_of(h, old);
        for (uint64_t i = 0; i < ocap; i++) {
            if (from[i] <= TOMB)
                continue;
            uint64_t off = from[i] & OFF_MASK;
            uint64_t j = (*mproc__heap_user(h, off) >> 32) & (cap - 1); /* the hash's low bits */
            while (to[j] != EMPTY)
                j = (j + 1) & (cap - 1);
            to[j] = from[i];
        }
    }
    (void)MPROC__FAULT("dict.grow.copied"); /* kill points, for the tests */
    mproc__heap_commit(&h->root, table);
    h->aux = 0;
    if (old != 0)
        mproc__heap_free(h, old);
    return 0;
}

/* A new entry block holding key and value: its offset. */
static int new_entry(struct mproc__heap *h, const void *key, size_t klen, uint64_t hash,
                     const void *value, size_t vlen, uint64_t *off)
{
    if (klen > UINT32_MAX || vlen > h->size || klen + vlen > h->size)
        return -ENOSPC;
    int rc = mproc__heap_alloc(h, sizeof(struct entry) + klen + vlen, off);
    if (rc < 0)
        return rc;
    /* the hash's low 32 bits beside the key's length: a rebuild places the entry
       without hashing the key again */
    *mproc__heap_user(h, *off) = (uint64_t)klen | (hash << 32);
    struct entry *e = entry_at(h, *off);
    e->value_len = vlen;
    if (klen > 0)
        memcpy(e->bytes, key, klen);
    if (vlen > 0)
        memcpy(e->bytes + klen, value, vlen);
    return 0;
}

/* Set under the lock, p from find(). */
static int store(struct mproc__heap *h, struct probe *p, const void *key, size_t klen,
                 const void *value, size_t vlen)
{
    int rc;
    if (p->found == UINT64_MAX &&
        (h->root == 0 || (h->count + h->aux + 1) * 4 > cap_of(h, h->root) * 3)) {
        if ((rc = rebuild(h)) < 0)
            return rc;
        find(h, key, klen, p); /* the slots moved */
    }
    uint64_t off;
    if ((rc = new_entry(h, key, klen, p->hash, value, vlen, &off)) < 0)
        return rc;
    (void)MPROC__FAULT("dict.set.written");
    uint64_t *slots = slots_of(h, h->root);
    if (p->found != UINT64_MAX) {
        uint64_t old = slots[p->found] & OFF_MASK;
        mproc__heap_commit(&slots[p->found], tag_of(p->hash) | off);
        (void)MPROC__FAULT("dict.set.committed");
        mproc__heap_free(h, old);
        return 0;
    }
    bool was_tomb = slots[p->hole] == TOMB;
    mproc__heap_commit(&slots[p->hole], tag_of(p->hash) | off);
    (void)MPROC__FAULT("dict.set.committed");
    h->count++;
    if (was_tomb)
        h->aux--;
    return 0;
}

/* ---- the repair's view ------------------------------------------------------------------- */

static void dict_mark(struct mproc__heap *h)
{
    uint64_t live = 0, tombs = 0;
    if (h->root != 0) {
        mproc__heap_mark(h, h->root);
        uint64_t cap = cap_of(h, h->root), *slots = slots_of(h, h->root);
        for (uint64_t i = 0; i < cap; i++) {
            if (slots[i] == TOMB)
                tombs++;
            if (slots[i] <= TOMB)
                continue;
            mproc__heap_mark(h, slots[i] & OFF_MASK);
            live++;
        }
    }
    h->count = live;
    h->aux = tombs;
}

/* ---- the calls ------------------------------------------------------------------------- */

static struct mproc__heap *heap_of(mproc_dict *d)
{
    return mproc__container_heap((struct mproc__container *)d, &DICT_KIND);
}

static bool bad_bytes(const void *p, size_t len)
{
    return p == NULL && len > 0;
}

int mproc_dict_new(mproc_dict **out, const char *name, unsigned flags, size_t max_bytes)
{
    return mproc__container_new((struct mproc__container **)out, name, flags, max_bytes,
                                &DICT_KIND);
}

void mproc_dict_free(mproc_dict *d)
{
    mproc__container_free((struct mproc__container *)d);
}

const char *mproc_dict_name(const mproc_dict *d)
{
    return mproc__container_name((const struct mproc__container *)d, &DICT_KIND);
}

int mproc_dict_unlink(mproc_dict *d)
{
    return mproc__container_unlink((struct mproc__container *)d, &DICT_KIND);
}

/* Take d's lock and look for key: the heap, or NULL with *rc set. */
static struct mproc__heap *lock_find(mproc_dict *d, const void *key, size_t klen, struct probe *p,
                                     int *rc)
{
    struct mproc__heap *h = heap_of(d);
    *rc = h == NULL || bad_bytes(key, klen) ? -EINVAL : mproc__heap_lock(h, &DICT_KIND);
    if (*rc < 0)
        return NULL;
    find(h, key, klen, p);
    return h;
}

int mproc_dict_set(mproc_dict *d, const void *key, size_t klen, const void *value, size_t vlen)
{
    struct probe p;
    int rc;
    if (bad_bytes(value, vlen))
        return -EINVAL;
    struct mproc__heap *h = lock_find(d, key, klen, &p, &rc);
    if (h == NULL)
        return rc;
    mproc__heap_write_begin(h);
    rc = store(h, &p, key, klen, value, vlen);
    mproc__heap_write_end(h);
    mproc__heap_unlock(h);
    return rc;
}

int mproc_dict_cas(mproc_dict *d, const void *key, size_t klen, const void *expect, size_t elen,
                   const void *value, size_t vlen)
{
    struct probe p;
    int rc;
    if (bad_bytes(value, vlen) || (expect == NULL && elen > 0))
        return -EINVAL;
    struct mproc__heap *h = lock_find(d, key, klen, &p, &rc);
    if (h == NULL)
        return rc;
    bool match;
    if (p.found == UINT64_MAX) {
        match = expect == NULL;
    } else {
        uint64_t off = slots_of(h, h->root)[p.found] & OFF_MASK;
        struct entry *e = entry_at(h, off);
        match = expect != NULL && e->value_len == elen &&
                (elen == 0 || memcmp(e->bytes + klen, expect, elen) == 0);
    }
    if (match) {
        mproc__heap_write_begin(h);
        rc = store(h, &p, key, klen, value, vlen);
        mproc__heap_write_end(h);
    }
    mproc__heap_unlock(h);
    return rc < 0 ? rc : match;
}

/* Find key under the lock: its entry's offset, or 0. */
static int locate(mproc_dict *d, const void *key, size_t klen, uint64_t *off)
{
    struct probe p;
    int rc;
    struct mproc__heap *h = lock_find(d, key, klen, &p, &rc);
    if (h == NULL)
        return rc;
    *off = p.found == UINT64_MAX ? 0 : slots_of(h, h->root)[p.found] & OFF_MASK;
    return 0;
}

/* ---- reading without the lock ------------------------------------------------------------ */

enum { PEEK_AGAIN = 1 };
#define PEEK_STUCK_NS 200000 /* a change this long in progress: its writer died or sleeps */

/* A get that takes no lock (a seqlock read; see heap.h): look and copy, then check that
 * no change began or ended meanwhile, and look again if one did. What it reads may be
 * half changed or freed and reused, so every offset and length is checked against the
 * populated part of the region before it is followed: a read of garbage is wasted,
 * never harmful (the region is mapped whole, and its populated part never shrinks).
 * 0, -ENOENT, -MPROC_ETOOSMALL, or PEEK_AGAIN when the same change has been in progress
 * for PEEK_STUCK_NS (its writer died, or is not running): the lock then settles it. */
static int peek(struct mproc__heap *h, const void *key, size_t klen, void *out, size_t cap,
                size_t *len)
{
    uint64_t hash = hash_key(key, klen, h->seed), tag = tag_of(hash);
    uint64_t odd = 0; /* the change in progress when last seen, and since when */
    int64_t odd_since = 0;
    for (;;) {
        uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
        if (seq % 2 != 0) {
            if (seq != odd) {
                odd = seq;
                odd_since = mproc__sys_now_ns();
            } else if (mproc__sys_now_ns() - odd_since > PEEK_STUCK_NS) {
                return PEEK_AGAIN;
            }
            mproc__sys_cpu_relax();
            continue;
        }
        uint64_t limit = __atomic_load_n(&h->reserved, __ATOMIC_RELAXED);
        uint64_t table = __atomic_load_n(&h->root, __ATOMIC_RELAXED);
        int rc = -ENOENT;
        uint64_t cap_slots = table != 0 && table < limit - HEAP_HDR ? cap_of(h, table) : 0;
        bool sane = table == 0 || (cap_slots != 0 && (cap_slots & (cap_slots - 1)) == 0 &&
                                   cap_slots <= (limit - table - HEAP_HDR) / 8);
        for (uint64_t i = hash, n = 0; sane && n < cap_slots; i++, n++) {
            uint64_t s =
                __atomic_load_n(&slots_of(h, table)[i & (cap_slots - 1)], __ATOMIC_RELAXED);
            if (s == EMPTY)
                break;
            if (s == TOMB || (s & ~OFF_MASK) != tag)
                continue;
            uint64_t off = s & OFF_MASK;
            if (off > limit - HEAP_HDR - sizeof(struct entry) || key_len_of(h, off) != klen ||
                klen > limit - off - HEAP_HDR - sizeof(struct entry))
                continue;
            const struct entry *e = entry_at(h, off);
            if (klen > 0 && memcmp(e->bytes, key, klen) != 0)
                continue;
            uint64_t vlen = e->value_len;
            if (vlen > limit - off - HEAP_HDR - sizeof(struct entry) - klen) {
                sane = false; /* garbage: read again */
                break;
            }
            *len = (size_t)vlen;
            rc = vlen > cap ? -MPROC_ETOOSMALL : 0;
            if (rc == 0 && vlen > 0)
                memcpy(out, e->bytes + klen, (size_t)vlen);
            break;
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the reads above come before the check */
        if (__atomic_load_n(&h->seq, __ATOMIC_RELAXED) == seq)
            return sane ? rc : PEEK_AGAIN; /* not sane in a quiet moment: the lock decides */
    }
}

int mproc_dict_get(mproc_dict *d, const void *key, size_t klen, void *out, size_t cap, size_t *len)
{
    struct mproc__heap *h = heap_of(d);
    if (h == NULL || len == NULL || bad_bytes(key, klen) || bad_bytes(out, cap))
        return -EINVAL;
    int rc = h->broken ? -MPROC_ECORRUPT : peek(h, key, klen, out, cap, len);
    if (rc != PEEK_AGAIN)
        return rc;
    uint64_t off; /* no quiet moment: take the lock (it repairs after a dead writer) */
    if ((rc = locate(d, key, klen, &off)) < 0)
        return rc;
    if (off == 0) {
        rc = -ENOENT;
    } else {
        struct entry *e = entry_at(h, off);
        *len = (size_t)e->value_len;
        if (e->value_len > cap)
            rc = -MPROC_ETOOSMALL;
        else if (e->value_len > 0)
            memcpy(out, e->bytes + klen, (size_t)e->value_len);
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_dict_get_alloc(mproc_dict *d, const void *key, size_t klen, void **out, size_t *len)
{
    uint64_t off;
    if (out == NULL || len == NULL)
        return -EINVAL;
    int rc = locate(d, key, klen, &off);
    if (rc < 0)
        return rc;
    struct mproc__heap *h = heap_of(d);
    if (off == 0) {
        rc = -ENOENT;
    } else {
        struct entry *e = entry_at(h, off);
        size_t n = (size_t)e->value_len;
        void *buf = mproc__malloc(n > 0 ? n : 1);
        if (buf == NULL) {
            rc = -ENOMEM;
        } else {
            if (n > 0)
                memcpy(buf, e->bytes + klen, n);
            *out = buf;
            *len = n;
        }
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_dict_contains(mproc_dict *d, const void *key, size_t klen)
{
    uint64_t off;
    int rc = locate(d, key, klen, &off);
    if (rc < 0)
        return rc;
    mproc__heap_unlock(heap_of(d));
    return off != 0;
}

int mproc_dict_delete(mproc_dict *d, const void *key, size_t klen)
{
    struct probe p;
    int rc;
    struct mproc__heap *h = lock_find(d, key, klen, &p, &rc);
    if (h == NULL)
        return rc;
    if (p.found == UINT64_MAX) {
        rc = -ENOENT;
    } else {
        uint64_t *slot = &slots_of(h, h->root)[p.found];
        uint64_t off = *slot & OFF_MASK;
        mproc__heap_write_begin(h);
        mproc__heap_commit(slot, TOMB);
        (void)MPROC__FAULT("dict.delete.committed");
        h->count--;
        h->aux++;
        mproc__heap_free(h, off);
        mproc__heap_write_end(h);
    }
    mproc__heap_unlock(h);
    return rc;
}

int mproc_dict_len(mproc_dict *d, size_t *n)
{
    struct mproc__heap *h = heap_of(d);
    if (h == NULL || n == NULL)
        return -EINVAL;
    int rc = mproc__heap_lock(h, &DICT_KIND);
    if (rc < 0)
        return rc;
    *n = (size_t)h->count;
    mproc__heap_unlock(h);
    return 0;
}

int mproc_dict_clear(mproc_dict *d)
{
    struct mproc__heap *h = heap_of(d);
    if (h == NULL)
        return -EINVAL;
    int rc = mproc__heap_lock(h, &DICT_KIND);
    if (rc < 0)
        return rc;
    mproc__heap_write_begin(h);
    mproc__heap_clear(h);
    mproc__heap_write_end(h);
    mproc__heap_unlock(h);
    return 0;
}

int mproc_dict_items(mproc_dict *d, mproc_dict_item **items, size_t *n)
{
    struct mproc__heap *h = heap_of(d);
    if (h == NULL || items == NULL || n == NULL)
        return -EINVAL;
    int rc = mproc__heap_lock(h, &DICT_KIND);
    if (rc < 0)
        return rc;
    uint64_t cap = h->root != 0 ? cap_of(h, h->root) : 0;
    uint64_t *slots = h->root != 0 ? slots_of(h, h->root) : NULL;
    size_t count = 0, bytes = 0;
    for (uint64_t i = 0; i < cap; i++) {
        if (slots[i] <= TOMB)
            continue;
        uint64_t off = slots[i] & OFF_MASK;
        count++;
        bytes += key_len_of(h, off) + (size_t)entry_at(h, off)->value_len;
    }
    mproc_dict_item *all = mproc__malloc(count * sizeof *all + bytes + 1);
    if (all == NULL) {
        mproc__heap_unlock(h);
        return -ENOMEM;
    }
    unsigned char *at = (unsigned char *)(all + count);
    size_t k = 0;
    for (uint64_t i = 0; i < cap; i++) {
        if (slots[i] <= TOMB)
            continue;
        uint64_t off = slots[i] & OFF_MASK;
        struct entry *e = entry_at(h, off);
        size_t klen = key_len_of(h, off), vlen = (size_t)e->value_len;
        memcpy(at, e->bytes, klen + vlen);
        all[k++] = (mproc_dict_item){at, klen, at + klen, vlen};
        at += klen + vlen;
    }
    mproc__heap_unlock(h);
    *items = all;
    *n = count;
    return 0;
}
