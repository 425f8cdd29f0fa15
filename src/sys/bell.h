/* src/sys/bell.h - the bell: how every sleeper in mproc waits for news from another
 * process or thread, and how the one with news wakes it without a system call when
 * nobody sleeps.
 *
 * A bell is two words: `seq`, the futex word, bumped by each ring that wakes, and
 * `sleepers`, the waiters counted in since the last such ring. The handshake, the same
 * everywhere (queue doorbells, a result ring's writer, the direct mailbox, results, imap,
 * the pool's supervisor, Event and Barrier):
 *
 *   waiter                                   waker
 *   seq = mproc__bell_arm(b)   (count in)    make the change (a store)
 *   re-check the condition: done? return     mproc__bell_ring(b)
 *   mproc__bell_sleep(b, seq, deadline)      (wakes only if someone counted in)
 *
 * Why no wake-up is lost: the waiter's count-in and the waker's change are both followed
 * by a store-load barrier (the count-in is a seq_cst read-modify-write; the waker's change
 * must be a seq_cst store or RMW, or be paired with the waiter's own barrier, as the
 * queue's membarrier does), so either the waiter's re-check sees the change or the waker
 * sees the count. A ring after the waiter read seq bumps it, and futex_wait then returns
 * at once.
 *
 * A ring wakes every sleeper and takes the count to 0: the rings that follow while the
 * woken are still on their way (tens of microseconds) make no system call. A waiter that
 * leaves without being rung (its deadline, its condition came true) may stay counted; the
 * next ring then wakes nobody, once. A single waiter that sleeps often (the supervisor)
 * leaves with mproc__bell_leave to spare that.
 *
 * The supervisor sleeps in poll() over many fds, not on the futex: its waker claims the
 * sleepers (mproc__bell_claim) and writes an eventfd instead of ringing.
 *
 * Not bells, on purpose: the protocols whose futex word is the value they count and that
 * wake one sleeper, not all (the Semaphore, a Condition's notify(n), the owner lock and
 * glibc's mutex): waking all there would be a herd, and the word is the state.
 */
#ifndef MPROC_SYS_BELL_H
#define MPROC_SYS_BELL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct mproc__bell {
    _Atomic uint32_t seq;      /* futex word: bumped by each ring that wakes */
    _Atomic uint32_t sleepers; /* counted in since the last ring (may overcount) */
};

/* Waiter: count in, then read seq (before re-checking the condition). */
static inline uint32_t mproc__bell_arm(struct mproc__bell *b)
{
    atomic_fetch_add(&b->sleepers, 1);
    return atomic_load(&b->seq);
}

/* Waiter: the condition is still false: sleep until a ring after arm, the absolute
 * monotonic deadline (MPROC__NO_DEADLINE: none), or a spurious wake; callers re-check.
 * shared: the bell lives in memory shared between processes. 0, or -ETIMEDOUT at the
 * deadline. */
int mproc__bell_sleep(struct mproc__bell *b, uint32_t seq, int64_t deadline, bool shared);

/* Waiter: leave without having been rung (one count off, if any is left). */
static inline void mproc__bell_leave(struct mproc__bell *b)
{
    uint32_t n = atomic_load_explicit(&b->sleepers, memory_order_relaxed);
    while (n != 0 && !atomic_compare_exchange_weak(&b->sleepers, &n, n - 1)) {
    }
}

/* Waker: were there sleepers? Takes them all: the caller wakes them (an eventfd). */
static inline bool mproc__bell_claim(struct mproc__bell *b)
{
    return atomic_load(&b->sleepers) != 0 && atomic_exchange(&b->sleepers, 0) != 0;
}

/* Waker: bump seq and wake every sleeper, counted or not (a close, a reset). */
void mproc__bell_ring_all(struct mproc__bell *b, bool shared);

/* Waker, after the change: wake the sleepers, if any counted in. */
static inline void mproc__bell_ring(struct mproc__bell *b, bool shared)
{
    if (mproc__bell_claim(b))
        mproc__bell_ring_all(b, shared);
}

#endif
