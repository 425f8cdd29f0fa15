/* src/queue.c - Queue and JoinableQueue: a bounded MPMC queue of byte messages in one
 * anonymous shared mapping (see mproc/queue.h).
 *
 * DESIGN: one mapping holds a control block and a byte ring of capacity bytes (a power
 * of two). Each message is a record: an 8-byte header (length, and a check word derived
 * from the message's number) and the payload padded to 8 bytes; a record wraps around
 * the end of the ring (copied in two parts), a header never does. Two 64-bit words say
 * where the data is: `tail` (written by producers) and `head` (written by consumers).
 * Each packs a byte position (low 36 bits, counting up for ever, modulo 2^36) and a
 * message count (high 28 bits), so ONE atomic store publishes a message, or retires
 * one, together with its count: qsize, maxsize and the JoinableQueue's unfinished count
 * (puts in `tail` minus `done`) can never disagree with the data after a crash.
 *
 * Producers serialise on put_lock, consumers on get_lock (owner locks, src/sys/
 * owner_lock.c: one CAS to take, a store to give back, robust against a holder's death),
 * so a producer and a consumer never contend for a lock; between the two sides the ring
 * is single-producer single-consumer: a producer writes past tail, then stores tail
 * (release); a consumer loads tail (acquire), copies out, then stores head likewise, and
 * only then may a producer overwrite that space. Each side keeps a cached copy of the
 * other side's word under its own lock and re-reads the real one only when the cache
 * says empty/full, so a busy queue does not bounce that cache line per message.
 *
 * Per message a side pays one CAS (its lock) and one store-load barrier (in the unlock,
 * which follows the tail or head store; a full fence, or nothing where membarrier lets
 * the sleepers pay instead, see owner_lock.c); that barrier also serves the doorbell
 * below. put and get_into first try a straight-line fast path (lock free, room or a
 * message by the cached word, nothing unusual) and fall back to the general loop; no
 * clock is read until a call must wait.
 *
 * Who dies where: a producer killed holding put_lock (before or after writing, before
 * the tail store) published nothing; the next producer takes the lock over (the owner
 * lock reports MPROC_OWNER_DIED within a slice of its death) and overwrites the garbage
 * past tail. A consumer killed before its head store retired nothing: the next consumer
 * reads the same message again. Nothing else needs repair.
 *
 * Who wakes whom: three doorbells, each a bell (src/sys/bell.h: a futex sequence and a
 * sleeper count): not_empty (consumers sleep, producers ring), not_full (producers
 * sleep, consumers ring), joined (join() sleeps, task_done() rings when unfinished
 * reaches 0). A sleeper arms the bell, passes the owner lock's sleeper barrier, re-checks
 * its condition, then sleeps on it; the other side stores its word, passes the
 * store-load barrier (its unlock; task_done's CAS), then rings, which makes a system
 * call only if someone counted in: none per message while both sides are busy, and one
 * wake per sleep, not one per message while the sleeper is waking up. Waking all (they re-check and
 * most sleep again) is the price of having no per-sleeper state a dying process could leave wrong:
 * a count left by a sleeper that timed out or died only costs one needless wake. A process
 * SIGKILLed between its store and its wake could leave a sleeper asleep with work available, so
 * sleeps are cut into slices of SLICE_NS after which the sleeper re-checks: a stray kill costs at
 * most that delay, never a hang (slices are 1 ms where the sleeper barrier failed and a wake may be
 * missed). Before sleeping a waiter spins briefly (SPIN_ITERS pauses, a few
 * microseconds, against a wake-up's 40-50), only if the process may use more than one
 * CPU (the spin rule, docs/benchmarks.md). Nobody sleeps holding a lock.
 *
 * close() sets `closed` under put_lock (so every put either completed before it or
 * fails) and rings every doorbell; gets drain what is left, then see closed and empty.
 * A try-once call (timeout 0, *_nowait) still waits up to LOCK_GRACE_NS for the side's
 * lock, which is held only for one message copy, so "full"/"empty" answers mean the
 * queue's state, not that another process happened to be mid-copy.
 */
#include "internal.h"

#include "sys/cpu.h"
#include "owner_lock.h"
#include "sys/bell.h"
#include "sys/evfd.h"
#include "sys/relax.h"

#include <stdatomic.h>

#define QUEUE_MAGIC 0x4d515545u /* "MQUE" */
#define DEFAULT_CAPACITY ((size_t)1 << 20)
#define MIN_CAPACITY ((size_t)64)
#define MAX_CAPACITY ((size_t)1 << 30)
#define HEADER_SIZE ((size_t)8)
#define CHECK_MARK 0x5a3c0000u

#define POS_BITS 36
#define POS_MASK ((UINT64_C(1) << POS_BITS) - 1)
#define CNT_MASK ((UINT64_C(1) << (64 - POS_BITS)) - 1)
/* Counts are compared modulo 2^28: keep every difference far below that. */
#define MAX_COUNT (CNT_MASK >> 1)

#define SPIN_ITERS 300
#define SLICE_NS INT64_C(250000000)
#define UNPAIRED_SLICE_NS INT64_C(1000000)
#define LOCK_GRACE_NS INT64_C(50000000)
#define CLOSE_LOCK_S 1.0

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(MAX_CAPACITY / HEADER_SIZE < CNT_MASK, "count field too narrow");
_Static_assert(MAX_CAPACITY * 2 <= POS_MASK, "position field too narrow");

/* Cache lines apart (128: adjacent-line prefetch) so the sides do not false-share. */
struct mproc_queue {
    /* constant after new(), plus the closed flag (rarely written) */
    _Alignas(128) uint32_t magic;
    uint32_t flags;
    uint64_t cap; /* ring bytes, power of two */
    uint64_t maxsize;
    size_t map_size;
    uint32_t spin; /* spin before sleeping: more than one usable CPU */
    _Atomic uint32_t closed;
    int evfd; /* rung after a put once watched (mproc_queue_fd); -errno if none could be
             had: the queue works without it (its waits are futexes) */
    struct mproc__fd_id evfd_id; /* what evfd names: a process that closed it skips it */
    _Atomic uint32_t fd_watched; /* someone asked for the fd: puts ring it */

    /* producer side: put_lock and its cache are touched by producers only; tail, on its
     * own line, is what consumers read (a spinning consumer must not steal the lock's
     * line from the producer on every message) */
    _Alignas(128) mproc__owner_lock put_lock;
    uint64_t head_seen; /* a value head had (lower bound); under put_lock */
    _Alignas(128) _Atomic uint64_t tail;

    /* consumer side, likewise */
    _Alignas(128) mproc__owner_lock get_lock;
    uint64_t tail_seen; /* a value tail had (lower bound); under get_lock */
    _Alignas(128) _Atomic uint64_t head;

    _Alignas(128) struct mproc__bell not_empty;
    _Alignas(128) struct mproc__bell not_full;
    _Alignas(128) struct mproc__bell joined;
    _Atomic uint32_t done; /* task_done() calls, modulo 2^28 */
    /* the ring follows, at sizeof(struct mproc_queue) (a multiple of 128) */
};

/* A call's timeout, turned into a deadline only when the call first has to wait (the
 * fast path reads no clock). The timeout was checked (>= 0, not NaN) on entry. */
struct budget {
    double timeout;
    int64_t deadline;
    bool known;
};

static int64_t deadline_of(struct budget *b)
{
    if (!b->known) {
        int rc = mproc__deadline(b->timeout, &b->deadline);
        assert(rc == 0);
        (void)rc;
        b->known = true;
    }
    return b->deadline;
}

static inline bool timeout_ok(double timeout)
{
    return timeout >= 0; /* false for negative and NaN */
}

static inline uint64_t w_pos(uint64_t w)
{
    return w & POS_MASK;
}

static inline uint64_t w_cnt(uint64_t w)
{
    return w >> POS_BITS;
}

static inline uint64_t w_advance(uint64_t w, uint64_t bytes)
{
    return ((w_pos(w) + bytes) & POS_MASK) | (((w_cnt(w) + 1) & CNT_MASK) << POS_BITS);
}

static inline uint64_t bytes_used(uint64_t tail, uint64_t head)
{
    return (w_pos(tail) - w_pos(head)) & POS_MASK;
}

static inline uint64_t msgs_queued(uint64_t tail, uint64_t head)
{
    return (w_cnt(tail) - w_cnt(head)) & CNT_MASK;
}

static inline size_t record_size(size_t len)
{
    return HEADER_SIZE + ((len + 7) & ~(size_t)7);
}

static inline unsigned char *ring(mproc_queue *q)
{
    return (unsigned char *)(q + 1);
}

static inline mproc_queue *valid(const mproc_queue *q)
{
    /* a queue starts a mapping: anything else is not one (and must not be read as one) */
    if (q == NULL || (uintptr_t)q % _Alignof(mproc_queue) != 0 || q->magic != QUEUE_MAGIC)
        return NULL;
    return (mproc_queue *)(uintptr_t)q;
}

/* ---- ring copies ------------------------------------------------------------------ */

/* memcpy, with small messages (the common case in a busy queue) copied inline rather
 * than through a library call. */
static inline void copy_bytes(unsigned char *dst, const unsigned char *src, size_t n)
{
    if (n > 16) {
        memcpy(dst, src, n);
    } else if (n >= 8) { /* two 8-byte moves, overlapping when n < 16 */
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n > 0) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

static inline void ring_write(mproc_queue *q, uint64_t pos, const void *src, size_t n)
{
    size_t off = (size_t)(pos & (q->cap - 1)), first = (size_t)q->cap - off;
    if (first >= n) {
        copy_bytes(ring(q) + off, src, n);
    } else {
        memcpy(ring(q) + off, src, first);
        memcpy(ring(q), (const unsigned char *)src + first, n - first);
    }
}

static inline void ring_read(mproc_queue *q, uint64_t pos, void *dst, size_t n)
{
    size_t off = (size_t)(pos & (q->cap - 1)), first = (size_t)q->cap - off;
    if (first >= n) {
        copy_bytes(dst, ring(q) + off, n);
    } else {
        memcpy(dst, ring(q) + off, first);
        memcpy((unsigned char *)dst + first, ring(q), n - first);
    }
}

static inline uint32_t check_word(uint64_t w)
{
    return (uint32_t)w_cnt(w) ^ CHECK_MARK;
}

/* ---- doorbells ---------------------------------------------------------------------- */

/* After a store the other side may sleep on, and a store-load barrier (the side's
 * unlock paired with the sleeper's barrier, or a seq_cst RMW): wake the sleepers, if any
 * (src/sys/bell.h). */
static inline void notify(struct mproc__bell *b)
{
    mproc__bell_ring(b, true);
}

/* Ring the queue's eventfd, in a process that still holds it (the number may name
 * something else in one that closed it: a pool worker keeps only the fds it was told). */
static void ring_fd(const mproc_queue *q)
{
    if (mproc__sys_fd_same(q->evfd, &q->evfd_id))
        mproc__sys_eventfd_ring(q->evfd);
}

/* A message was published: wake the getters, and the fd's watchers once there are any
 * (an atomic load per put until then). */
static inline void notify_put(mproc_queue *q)
{
    notify(&q->not_empty);
    if (atomic_load(&q->fd_watched) != 0)
        ring_fd(q);
}

/* Sleep on a doorbell until it rings, the deadline passes or a slice ends. The caller
 * armed it, passed the sleeper barrier (paired: it covered every process), and then
 * found its condition still false. */
static void bell_sleep(struct mproc__bell *b, uint32_t seq, int64_t deadline, bool paired)
{
    int64_t slice = mproc__sys_now_ns() + (paired ? SLICE_NS : UNPAIRED_SLICE_NS);
    (void)mproc__bell_sleep(b, seq, deadline < slice ? deadline : slice, true);
}

/* Arm a doorbell and pass the sleeper barrier; *paired: the barrier covered every
 * process. Returns the bell's seq. */
static uint32_t bell_arm(struct mproc__bell *b, bool *paired)
{
    uint32_t seq = mproc__bell_arm(b);
    *paired = mproc__owner_sleeper_barrier();
    return seq;
}

/* Wait until *word differs from seen or the queue is closed (or a slice ends: callers
 * re-check anyway). 0 to re-check, -ETIMEDOUT once the deadline has passed (callers
 * have made one last check since then). */
static int wait_change(mproc_queue *q, _Atomic uint64_t *word, uint64_t seen, struct mproc__bell *b,
                       int64_t deadline)
{
    if (mproc__remaining_ns(deadline) == 0)
        return -ETIMEDOUT;
    if (q->spin) {
        for (int i = 0; i < SPIN_ITERS; i++) {
            if (atomic_load_explicit(word, memory_order_relaxed) != seen ||
                atomic_load_explicit(&q->closed, memory_order_relaxed))
                return 0;
            mproc__sys_cpu_relax();
        }
    }
    bool paired;
    uint32_t seq = bell_arm(b, &paired);
    if (atomic_load(word) == seen && !atomic_load(&q->closed))
        bell_sleep(b, seq, deadline, paired);
    return 0;
}

/* ---- the two side locks ----------------------------------------------------------- */

/* The contended path of lock_side: wait until the deadline, but at least LOCK_GRACE_NS
 * (holders only copy one message). A dead holder published nothing half-done (see
 * DESIGN); only the caches may be stale, and they are lower bounds anyway: refresh them. */
static int lock_side_wait(mproc_queue *q, mproc__owner_lock *l, uint64_t self, struct budget *b)
{
    int64_t deadline = deadline_of(b);
    if (deadline != MPROC__NO_DEADLINE) {
        int64_t grace = mproc__sys_now_ns() + LOCK_GRACE_NS;
        if (deadline < grace)
            deadline = grace;
    }
    int rc = mproc__owner_lock_wait(l, self, deadline, q->spin);
    if (rc == MPROC_OWNER_DIED) {
        if (l == &q->put_lock)
            q->head_seen = atomic_load(&q->head);
        else
            q->tail_seen = atomic_load(&q->tail);
        rc = 0;
    }
    return rc;
}

static inline int lock_side(mproc_queue *q, mproc__owner_lock *l, uint64_t self, struct budget *b)
{
    if (__builtin_expect(mproc__owner_trylock(l, self), 1))
        return 0;
    return lock_side_wait(q, l, self, b);
}

/* ---- create, free ----------------------------------------------------------------- */

/* A queue on a memfd (*memfd >= 0 on return, owned by the caller) or on an anonymous
 * shared mapping (memfd == NULL). */
static int queue_new(mproc_queue **out, const mproc_queue_opts *opts, int *memfd)
{
    if (out == NULL)
        return -EINVAL;
    mproc_queue_opts o = opts != NULL ? *opts : (mproc_queue_opts){0};
    if ((o.flags & ~(unsigned)MPROC_QUEUE_JOINABLE) != 0 || o.capacity > MAX_CAPACITY ||
        o.maxsize > MAX_COUNT)
        return -EINVAL;
    size_t cap = o.capacity == 0 ? DEFAULT_CAPACITY : o.capacity;
    size_t pow2 = MIN_CAPACITY;
    while (pow2 < cap)
        pow2 <<= 1;
    size_t map_size = sizeof(mproc_queue) + pow2;

    void *mem;
    int fd = -1, rc;
    if (memfd != NULL) {
        fd = mproc__sys_memfd("mproc-queue");
        if (fd < 0)
            return fd;
        if ((rc = mproc__sys_set_size(fd, map_size)) < 0) { /* lazily, as an anonymous one */
            mproc__sys_close(fd);
            return rc;
        }
    }
    rc = mproc__sys_map_shared(fd, map_size, &mem);
    if (rc < 0) {
        if (fd >= 0)
            mproc__sys_close(fd);
        return rc;
    }
    if (memfd != NULL)
        *memfd = fd;
    mproc_queue *q = mem; /* zero-filled: both locks free, every count 0 */
    /* a queue needs no fd: at the fd limit it is made all the same, and only
       mproc_queue_fd answers the error */
    q->evfd = mproc__sys_eventfd();
    if (q->evfd >= 0 && mproc__sys_fd_id(q->evfd, &q->evfd_id) < 0)
        q->evfd_id = (struct mproc__fd_id){0}; /* cannot happen: fstat of our own fd */
    q->flags = o.flags;
    q->cap = pow2;
    q->maxsize = o.maxsize;
    q->map_size = map_size;
    q->spin = mproc__sys_affinity_count(0) > 1;
    q->magic = QUEUE_MAGIC;
    (void)mproc__owner_self_id(); /* set up this process's owner id now, not in a put */
    *out = q;
    return 0;
}

int mproc_queue_new(mproc_queue **out, const mproc_queue_opts *opts)
{
    return queue_new(out, opts, NULL);
}

int mproc__queue_new_memfd(mproc_queue **out, const mproc_queue_opts *opts, int *memfd)
{
    return queue_new(out, opts, memfd);
}

size_t mproc__queue_map_size(const mproc_queue *q)
{
    return q->map_size;
}

void mproc_queue_free(mproc_queue *q)
{
    mproc_queue *v = valid(q);
    if (v != NULL) {
        size_t size = v->map_size;
        if (mproc__sys_fd_same(v->evfd, &v->evfd_id))
            mproc__sys_close(v->evfd);
        mproc__sys_unmap(v, size);
    }
}

/* ---- put ---------------------------------------------------------------------------- */

static inline bool has_room(const mproc_queue *q, uint64_t tail, uint64_t head, size_t need)
{
    if (q->maxsize != 0 && msgs_queued(tail, head) >= q->maxsize)
        return false;
    return bytes_used(tail, head) + need <= q->cap;
}

static __attribute__((noinline)) int put_msg(mproc_queue *q, const void *buf, size_t len,
                                             double timeout)
{
    struct budget budget = {timeout, 0, false}, *b = &budget;
    if (len > MAX_CAPACITY || record_size(len) > q->cap)
        return -EMSGSIZE;
    size_t need = record_size(len);
    uint64_t self = mproc__owner_self_id();
    int rc;
    for (;;) {
        rc = lock_side(q, &q->put_lock, self, b);
        if (rc < 0)
            return rc;
        if ((rc = MPROC__FAULT("queue.put.locked")) < 0)
            goto unlock;
        if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
            rc = -MPROC_ECLOSED;
            goto unlock;
        }
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed); /* ours */
        uint64_t h = q->head_seen;
        if (!has_room(q, t, h, need))
            q->head_seen = h = atomic_load_explicit(&q->head, memory_order_acquire);
        if (has_room(q, t, h, need)) {
            if ((q->flags & MPROC_QUEUE_JOINABLE) &&
                ((w_cnt(t) - atomic_load(&q->done)) & CNT_MASK) >= MAX_COUNT) {
                rc = -EOVERFLOW; /* too many unfinished tasks to count */
                goto unlock;
            }
            /* the header never wraps: positions and the capacity are multiples of 8 */
            uint32_t hdr[2] = {(uint32_t)len, check_word(t)};
            memcpy(ring(q) + (w_pos(t) & (q->cap - 1)), hdr, HEADER_SIZE);
            ring_write(q, w_pos(t) + HEADER_SIZE, buf, len);
            if ((rc = MPROC__FAULT("queue.put.written")) < 0)
                goto unlock; /* never published: the next put overwrites it */
            atomic_store_explicit(&q->tail, w_advance(t, need), memory_order_release);
            mproc__owner_unlock(&q->put_lock); /* ...and the store-load barrier */
            notify_put(q);
            return 0;
        }
        mproc__owner_unlock(&q->put_lock);
        if ((rc = wait_change(q, &q->head, h, &q->not_full, deadline_of(b))) < 0)
            return rc;
    }
unlock:
    mproc__owner_unlock(&q->put_lock);
    return rc;
}

/* The common case in one straight line: the lock is free, there is room, the queue is
 * open and not joinable. Returns 1 (nothing done) when put_msg must handle the call. */
static inline int put_fast(mproc_queue *q, const void *buf, size_t len)
{
    size_t need = record_size(len);
    if (len > MAX_CAPACITY || need > q->cap || (q->flags & MPROC_QUEUE_JOINABLE))
        return 1;
    if (!mproc__owner_trylock(&q->put_lock, mproc__owner_self_id()))
        return 1;
    int rc = MPROC__FAULT("queue.put.locked");
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed); /* ours */
    if (rc < 0 || atomic_load_explicit(&q->closed, memory_order_relaxed) ||
        !has_room(q, t, q->head_seen, need)) {
        mproc__owner_unlock(&q->put_lock);
        return rc < 0 ? rc : 1;
    }
    uint32_t hdr[2] = {(uint32_t)len, check_word(t)};
    memcpy(ring(q) + (w_pos(t) & (q->cap - 1)), hdr, HEADER_SIZE);
    ring_write(q, w_pos(t) + HEADER_SIZE, buf, len);
    if ((rc = MPROC__FAULT("queue.put.written")) < 0) {
        mproc__owner_unlock(&q->put_lock);
        return rc;
    }
    atomic_store_explicit(&q->tail, w_advance(t, need), memory_order_release);
    mproc__owner_unlock(&q->put_lock);
    notify_put(q);
    return 0;
}

int mproc_queue_put(mproc_queue *q, const void *buf, size_t len, double timeout)
{
    q = valid(q);
    if (q == NULL || (buf == NULL && len != 0) || !timeout_ok(timeout))
        return -EINVAL;
    int rc = put_fast(q, buf, len);
    if (__builtin_expect(rc <= 0, 1))
        return rc;
    return put_msg(q, buf, len, timeout);
}

int mproc_queue_put_nowait(mproc_queue *q, const void *buf, size_t len)
{
    int rc = mproc_queue_put(q, buf, len, 0);
    return rc == -ETIMEDOUT ? -EAGAIN : rc;
}

/* ---- get ---------------------------------------------------------------------------- */

/* Take the oldest message: into a new buffer (out != NULL) or into buf/cap. */
static __attribute__((noinline)) int get_msg(mproc_queue *q, void **out, void *buf, size_t cap,
                                             size_t *len, double timeout)
{
    struct budget budget = {timeout, 0, false}, *b = &budget;
    uint64_t self = mproc__owner_self_id();
    int rc;
    for (;;) {
        rc = lock_side(q, &q->get_lock, self, b);
        if (rc < 0)
            return rc;
        if ((rc = MPROC__FAULT("queue.get.locked")) < 0)
            goto unlock;
        uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed); /* ours */
        uint64_t t = q->tail_seen;
        if (w_pos(t) == w_pos(h))
            q->tail_seen = t = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (w_pos(t) == w_pos(h) && atomic_load(&q->closed)) {
            /* closed: whatever was put before close() is visible now */
            q->tail_seen = t = atomic_load_explicit(&q->tail, memory_order_acquire);
            if (w_pos(t) == w_pos(h)) {
                rc = -MPROC_ECLOSED;
                goto unlock;
            }
        }
        if (w_pos(t) != w_pos(h)) {
            uint32_t hdr[2];
            memcpy(hdr, ring(q) + (w_pos(h) & (q->cap - 1)), HEADER_SIZE);
            size_t mlen = hdr[0], rec = record_size(mlen);
            if (hdr[1] != check_word(h) || rec > bytes_used(t, h)) {
                rc = -MPROC_ECORRUPT; /* cannot happen unless the mapping was scribbled on */
                goto unlock;
            }
            void *dst = buf;
            if (out != NULL) {
                if ((dst = mproc__malloc(mlen)) == NULL) {
                    rc = -ENOMEM;
                    goto unlock;
                }
            } else if (mlen > cap) {
                *len = mlen;
                rc = -MPROC_ETOOSMALL;
                goto unlock;
            }
            ring_read(q, w_pos(h) + HEADER_SIZE, dst, mlen);
            if ((rc = MPROC__FAULT("queue.get.read")) < 0) {
                if (out != NULL)
                    mproc__free(dst);
                goto unlock; /* not retired: the message stays */
            }
            atomic_store_explicit(&q->head, w_advance(h, rec), memory_order_release);
            mproc__owner_unlock(&q->get_lock); /* ...and the store-load barrier */
            notify(&q->not_full);
            if (out != NULL)
                *out = dst;
            *len = mlen;
            return 0;
        }
        mproc__owner_unlock(&q->get_lock);
        if ((rc = wait_change(q, &q->tail, t, &q->not_empty, deadline_of(b))) < 0)
            return rc;
    }
unlock:
    mproc__owner_unlock(&q->get_lock);
    return rc;
}

/* The common case of get_into in one straight line: the lock is free, a message is
 * there (by the cached tail) and fits. Returns 1 (nothing done) when get_msg must
 * handle the call. */
static inline int get_fast(mproc_queue *q, void *buf, size_t cap, size_t *len)
{
    if (!mproc__owner_trylock(&q->get_lock, mproc__owner_self_id()))
        return 1;
    int rc = MPROC__FAULT("queue.get.locked");
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed); /* ours */
    uint64_t t = q->tail_seen;
    if (w_pos(t) == w_pos(h))
        q->tail_seen = t = atomic_load_explicit(&q->tail, memory_order_acquire);
    uint32_t hdr[2] = {0, 0};
    if (rc == 0 && w_pos(t) != w_pos(h)) /* (not before: a producer may be writing there) */
        memcpy(hdr, ring(q) + (w_pos(h) & (q->cap - 1)), HEADER_SIZE);
    size_t mlen = hdr[0], rec = record_size(mlen);
    if (rc < 0 || w_pos(t) == w_pos(h) || hdr[1] != check_word(h) || rec > bytes_used(t, h) ||
        mlen > cap) {
        mproc__owner_unlock(&q->get_lock);
        return rc < 0 ? rc : 1;
    }
    ring_read(q, w_pos(h) + HEADER_SIZE, buf, mlen);
    if ((rc = MPROC__FAULT("queue.get.read")) < 0) {
        mproc__owner_unlock(&q->get_lock);
        return rc;
    }
    atomic_store_explicit(&q->head, w_advance(h, rec), memory_order_release);
    mproc__owner_unlock(&q->get_lock);
    notify(&q->not_full);
    *len = mlen;
    return 0;
}

int mproc_queue_get(mproc_queue *q, void **buf, size_t *len, double timeout)
{
    q = valid(q);
    if (q == NULL || buf == NULL || len == NULL || !timeout_ok(timeout))
        return -EINVAL;
    return get_msg(q, buf, NULL, 0, len, timeout);
}

int mproc_queue_get_into(mproc_queue *q, void *buf, size_t cap, size_t *len, double timeout)
{
    q = valid(q);
    if (q == NULL || len == NULL || (buf == NULL && cap != 0) || !timeout_ok(timeout))
        return -EINVAL;
    int rc = get_fast(q, buf, cap, len);
    if (__builtin_expect(rc <= 0, 1))
        return rc;
    return get_msg(q, NULL, buf, cap, len, timeout);
}

int mproc_queue_get_nowait(mproc_queue *q, void **buf, size_t *len)
{
    int rc = mproc_queue_get(q, buf, len, 0);
    return rc == -ETIMEDOUT ? -EAGAIN : rc;
}
/* ---- state ---------------------------------------------------------------------------- */

/* head first, then tail: tail can only be ahead of the head we read. */
static void snapshot(mproc_queue *q, uint64_t *tail, uint64_t *head)
{
    *head = atomic_load(&q->head);
    *tail = atomic_load(&q->tail);
}

int mproc_queue_qsize(const mproc_queue *q)
{
    mproc_queue *v = valid(q);
    if (v == NULL)
        return -EINVAL;
    uint64_t t, h;
    snapshot(v, &t, &h);
    return (int)msgs_queued(t, h);
}

int mproc_queue_empty(const mproc_queue *q)
{
    mproc_queue *v = valid(q);
    if (v == NULL)
        return -EINVAL;
    uint64_t t, h;
    snapshot(v, &t, &h);
    return w_pos(t) == w_pos(h);
}

/* Full: a put of an empty message would have to wait. */
int mproc_queue_full(const mproc_queue *q)
{
    mproc_queue *v = valid(q);
    if (v == NULL)
        return -EINVAL;
    uint64_t t, h;
    snapshot(v, &t, &h);
    return !has_room(v, t, h, HEADER_SIZE);
}

int mproc_queue_close(mproc_queue *q)
{
    q = valid(q);
    if (q == NULL)
        return -EINVAL;
    /* Under put_lock, so no put publishes after a get has seen "closed and empty". A
     * holder stuck for a whole second (stopped) cannot block close: it goes on without. */
    struct budget b = {CLOSE_LOCK_S, 0, false};
    int rc = lock_side(q, &q->put_lock, mproc__owner_self_id(), &b);
    atomic_store(&q->closed, 1);
    if (rc >= 0)
        mproc__owner_unlock(&q->put_lock);
    mproc__bell_ring_all(&q->not_empty, true);
    mproc__bell_ring_all(&q->not_full, true);
    if (atomic_load(&q->fd_watched) != 0)
        ring_fd(q); /* closed is ready too: a get answers at once */
    return 0;
}

int mproc_queue_fd(mproc_queue *q)
{
    q = valid(q);
    if (q == NULL)
        return -EINVAL;
    if (q->evfd < 0)
        return q->evfd; /* none could be had */
    if (!mproc__sys_fd_same(q->evfd, &q->evfd_id))
        return -EBADF; /* this process closed it */
    atomic_store(&q->fd_watched, 1);
    /* messages put before the puts looked at fd_watched: say so now (seq_cst: a put
       publishes before it looks, and this looks after the store above) */
    if (mproc_queue_qsize(q) > 0 || atomic_load(&q->closed) != 0)
        mproc__sys_eventfd_ring(q->evfd);
    return q->evfd;
}

int mproc_queue_ready(mproc_queue *q)
{
    q = valid(q);
    if (q == NULL)
        return -EINVAL;
    if (mproc_queue_qsize(q) > 0 || atomic_load(&q->closed) != 0)
        return 1;
    /* not ready: reset the fd (in a process that holds it: the number may name something
   else), then look again, so that a put in between is not lost */
    if (mproc__sys_fd_same(q->evfd, &q->evfd_id))
        mproc__sys_eventfd_drain(q->evfd);
    return mproc_queue_qsize(q) > 0 || atomic_load(&q->closed) != 0;
}

/* ---- JoinableQueue ---------------------------------------------------------------------- */

static uint64_t unfinished(mproc_queue *q)
{
    uint32_t done = atomic_load(&q->done);
    return (w_cnt(atomic_load(&q->tail)) - done) & CNT_MASK;
}

int mproc_queue_task_done(mproc_queue *q)
{
    q = valid(q);
    if (q == NULL)
        return -EINVAL;
    if (!(q->flags & MPROC_QUEUE_JOINABLE))
        return -MPROC_ESTATE;
    uint32_t done = atomic_load(&q->done);
    uint64_t left;
    do {
        left = (w_cnt(atomic_load(&q->tail)) - done) & CNT_MASK;
        if (left == 0)
            return -EOVERFLOW;
    } while (!atomic_compare_exchange_weak(&q->done, &done, (uint32_t)((done + 1) & CNT_MASK)));
    if (left == 1)
        notify(&q->joined);
    return 0;
}

int mproc_queue_join(mproc_queue *q, double timeout)
{
    q = valid(q);
    if (q == NULL)
        return -EINVAL;
    if (!(q->flags & MPROC_QUEUE_JOINABLE))
        return -MPROC_ESTATE;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    struct mproc__bell *b = &q->joined;
    for (;;) {
        if (unfinished(q) == 0)
            return 0;
        if (mproc__remaining_ns(deadline) == 0)
            return -ETIMEDOUT;
        bool paired;
        uint32_t seq = bell_arm(b, &paired);
        if (unfinished(q) != 0)
            bell_sleep(b, seq, deadline, paired);
    }
}

/* ---- SimpleQueue: the queue with waits that never give up ------------------------------------ */

int mproc_simplequeue_new(mproc_queue **out)
{
    return mproc_queue_new(out, NULL);
}

int mproc_simplequeue_put(mproc_queue *q, const void *buf, size_t len)
{
    return mproc_queue_put(q, buf, len, MPROC_FOREVER);
}

int mproc_simplequeue_get(mproc_queue *q, void **buf, size_t *len)
{
    return mproc_queue_get(q, buf, len, MPROC_FOREVER);
}
