/* src/owner_lock.h - a small robust lock for shared memory that records its owner
 * process, taken with one compare-and-swap (see owner_lock.c for the protocol).
 *
 * Private to the library (the queue's two side locks). The fast paths are inline: a
 * put or a get takes and releases a side lock per message.
 */
#ifndef MPROC_OWNER_LOCK_H
#define MPROC_OWNER_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The lock word: the owner's pid (bits 0-21; Linux pids are below 2^22), a generation
 * bumped by every acquisition (bits 22-31) and the owner's start-time stamp (bits 32-63).
 * Free: pid and stamp 0 (the generation stays). Sleepers futex-wait on bits 0-31. */
#define MPROC__OWNER_PID_BITS 22
#define MPROC__OWNER_PID_MASK ((UINT64_C(1) << MPROC__OWNER_PID_BITS) - 1)
#define MPROC__OWNER_GEN_ONE (UINT64_C(1) << MPROC__OWNER_PID_BITS)
#define MPROC__OWNER_GEN_MASK (UINT64_C(0xffffffff) & ~MPROC__OWNER_PID_MASK)

/* Zero-filled memory is a free lock. Lives in shared memory; 16 bytes. */
typedef struct mproc__owner_lock {
    _Atomic uint64_t word;
    _Atomic uint32_t waiters; /* 1: a waiter may sleep on word (may be stale: costs a wake) */
    uint32_t unused_;
} mproc__owner_lock;

/* The calling process's identity as an owner (pid and start-time stamp), cached per
 * process in a page that fork() clears, so a child never uses its parent's. */
typedef struct mproc__owner_self {
    _Atomic uint64_t id;    /* 0: not computed yet in this process */
    _Atomic uint32_t light; /* 1: unlocks may skip the fence (sleepers use membarrier) */
} mproc__owner_self;

extern mproc__owner_self *_Atomic mproc__owner_self_page;

uint64_t mproc__owner_self_slow(void);

static inline uint64_t mproc__owner_self_id(void)
{
    mproc__owner_self *s = atomic_load_explicit(&mproc__owner_self_page, memory_order_acquire);
    if (__builtin_expect(s != NULL, 1)) {
        uint64_t id = atomic_load_explicit(&s->id, memory_order_relaxed);
        if (__builtin_expect(id != 0, 1))
            return id;
    }
    return mproc__owner_self_slow();
}

/* The store-load barrier that pairs an unlocker (or any store followed by a check for
 * sleepers) with a sleeper that announced itself and then called
 * mproc__owner_sleeper_barrier(). A full fence, unless this process registered for
 * membarrier, in which case the sleeper's barrier does the work and this is only a
 * compiler barrier. */
static inline void mproc__owner_store_load_barrier(void)
{
    mproc__owner_self *s = atomic_load_explicit(&mproc__owner_self_page, memory_order_acquire);
    if (s != NULL && atomic_load_explicit(&s->light, memory_order_relaxed))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
}

/* The other half, called by a sleeper after it announced itself (a store) and before it
 * re-reads the condition. Returns true when every process that skips the fence is
 * covered; false when membarrier failed here (the caller must then sleep in short slices:
 * a wake may be missed). */
bool mproc__owner_sleeper_barrier(void);

/* Take a free lock for self (mproc__owner_self_id()): true on success. Acquire order. */
static inline bool mproc__owner_trylock(mproc__owner_lock *l, uint64_t self)
{
    uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
    if ((v & MPROC__OWNER_PID_MASK) != 0)
        return false;
    uint64_t next = self | ((v + MPROC__OWNER_GEN_ONE) & MPROC__OWNER_GEN_MASK);
    return atomic_compare_exchange_strong_explicit(&l->word, &v, next, memory_order_acquire,
                                                   memory_order_relaxed);
}

/* Wait for the lock until the absolute monotonic deadline (MPROC__NO_DEADLINE: none),
 * spinning briefly first if spin. 0 (acquired), MPROC_OWNER_DIED (acquired from an owner
 * that died or whose pid now names another process), -ETIMEDOUT. */
int mproc__owner_lock_wait(mproc__owner_lock *l, uint64_t self, int64_t deadline, bool spin);

void mproc__owner_lock_wake(mproc__owner_lock *l);

/* Release a lock the caller holds. Stores made before are visible to the next owner
 * (release); on return, they are also ordered before every later load, against sleepers
 * that use mproc__owner_sleeper_barrier() (see mproc__owner_store_load_barrier). */
static inline void mproc__owner_unlock(mproc__owner_lock *l)
{
    uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
    atomic_store_explicit(&l->word, v & MPROC__OWNER_GEN_MASK, memory_order_release);
    mproc__owner_store_load_barrier();
    if (atomic_load_explicit(&l->waiters, memory_order_relaxed) != 0)
        mproc__owner_lock_wake(l);
}

/* For tests: the pid and stamp in an owner id, and whether that owner is gone. */
int mproc__owner_gone(uint64_t id);

#endif
