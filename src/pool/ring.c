/* src/pool/ring.c - a worker's result ring: one producer (the worker), one consumer (the
 * supervisor), in the pool's shared mapping, without locks.
 *
 * DESIGN. Results are small and many (one record per task), so they do not go through an
 * mproc_queue (two robust-mutex round trips per record) but through a single-producer
 * single-consumer byte ring. A record is an 8-byte length word and its bytes, padded to
 * 8, copied in two parts when it wraps. `tail` (the worker's) and `head` (the
 * supervisor's) count bytes for ever; each side caches the other's word and re-reads it
 * only when its cache says full (worker) or empty (supervisor).
 *
 * Publication: the worker writes a record past tail, then stores tail (release). A
 * worker killed before that store published nothing; one killed after published a whole
 * record. The supervisor reads every record up to tail (acquire), then stores head once
 * for the batch
 * (a record in one piece is read in place, one that wraps is copied out):
 * nothing half-written is ever read, nothing published is ever lost, even when the
 * worker dies at any instruction. A dead worker's ring is drained, then reset (both
 * words to 0) before its replacement is forked.
 *
 * Who wakes whom: the supervisor is woken by the pool's doorbell (the worker rings it
 * after publishing, only if the supervisor announced it sleeps). A worker that finds the
 * ring full arms the ring's `space` bell, re-reads head, and sleeps on it; the
 * supervisor rings it after storing head (src/sys/bell.h). Sleeps are cut into slices, so a wake
 * lost to any surprise costs a slice, never a hang.
 */
#include "internal.h"

#include "pool/wire.h"

#define SLICE_NS INT64_C(100000000)

static size_t padded(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static void copy_in(unsigned char *data, size_t cap, uint64_t pos, const void *src, size_t n)
{
    size_t off = (size_t)(pos & (cap - 1)), first = cap - off;
    if (first >= n) {
        memcpy(data + off, src, n);
    } else {
        memcpy(data + off, src, first);
        memcpy(data, (const unsigned char *)src + first, n - first);
    }
}

static void copy_out(const unsigned char *data, size_t cap, uint64_t pos, void *dst, size_t n)
{
    size_t off = (size_t)(pos & (cap - 1)), first = cap - off;
    if (first >= n) {
        memcpy(dst, data + off, n);
    } else {
        memcpy(dst, data + off, first);
        memcpy((unsigned char *)dst + first, data, n - first);
    }
}

void mproc__ring_reset(struct pool_ring *r)
{
    atomic_store(&r->tail, 0);
    atomic_store(&r->head, 0);
    atomic_store(&r->space.sleepers, 0);
}

static int put(struct pool_ring *r, unsigned char *data, size_t cap, uint64_t *head_seen,
               const void *rec, size_t len, bool wait)
{
    size_t need = 8 + padded(len);
    if (need > cap)
        return -EMSGSIZE;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed); /* ours */
    while (tail - *head_seen + need > cap) {
        *head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - *head_seen + need <= cap)
            break;
        if (!wait)
            return -EAGAIN;
        uint32_t seq = mproc__bell_arm(&r->space);
        *head_seen = atomic_load(&r->head);
        if (tail - *head_seen + need <= cap)
            break;
        (void)mproc__bell_sleep(&r->space, seq, mproc__sys_now_ns() + SLICE_NS, true);
    }
    uint64_t word = len;
    copy_in(data, cap, tail, &word, sizeof word);
    copy_in(data, cap, tail + 8, rec, len);
    atomic_store(&r->tail, tail + need); /* seq_cst: publishes; the bell barrier */
    return 0;
}

int mproc__ring_put(struct pool_ring *r, unsigned char *data, size_t cap, uint64_t *head_seen,
                    const void *rec, size_t len)
{
    return put(r, data, cap, head_seen, rec, len, true);
}

int mproc__ring_put_nowait(struct pool_ring *r, unsigned char *data, size_t cap,
                           uint64_t *head_seen, const void *rec, size_t len)
{
    return put(r, data, cap, head_seen, rec, len, false);
}

bool mproc__ring_pending(struct pool_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) !=
           atomic_load_explicit(&r->head, memory_order_relaxed);
}

uint64_t mproc__ring_head(struct pool_ring *r)
{
    return atomic_load_explicit(&r->head, memory_order_relaxed); /* the consumer's own */
}

uint64_t mproc__ring_tail(struct pool_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire);
}

void mproc__ring_release(struct pool_ring *r, uint64_t pos)
{
    atomic_store(&r->head, pos); /* seq_cst: the bell's store-load barrier */
    mproc__bell_ring(&r->space, true);
}

int mproc__ring_next(const unsigned char *data, size_t cap, uint64_t *pos, uint64_t tail, void *buf,
                     size_t bufcap, const unsigned char **rec, size_t *len)
{
    if (*pos == tail)
        return 0;
    uint64_t word;
    copy_out(data, cap, *pos, &word, sizeof word); /* 8-aligned: never split */
    size_t off = (size_t)((*pos + 8) & (cap - 1));
    if (word > bufcap || 8 + padded((size_t)word) > tail - *pos)
        return -MPROC_ECORRUPT; /* cannot happen with a sane worker */
    if (off + word <= cap) {
        *rec = data + off; /* in one piece: read in place (no copy) */
    } else {
        copy_out(data, cap, *pos + 8, buf, (size_t)word);
        *rec = buf;
    }
    *len = (size_t)word;
    *pos += 8 + padded((size_t)word);
    return 1;
}
