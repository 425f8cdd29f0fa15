/* mproc/sync.h - process-shared synchronisation: Lock, RLock, Semaphore,
 * BoundedSemaphore, Event, Condition, Barrier (Python's multiprocessing names).
 *
 * Every object lives in memory shared between the processes that use it. Either let
 * mproc place it (mproc_X_new: a fresh anonymous shared mapping, inherited by children
 * forked afterwards; mproc_X_free unmaps it) or place it yourself inside shared memory
 * you own (mproc_X_init on a struct inside an mproc_shm block or mproc_queue...). The
 * structs have a fixed public size and private contents; they hold no kernel resources,
 * so a placed object needs no teardown: unmapping the memory is enough.
 *
 * Every wait has a timeout in seconds (MPROC_FOREVER for none) and returns -ETIMEDOUT
 * when it expires. Nothing deadlocks because a process died:
 *  - Locks are robust. When the holder dies, the next acquirer gets the lock and the
 *    return value MPROC_OWNER_DIED (a positive success code). It may repair the data the
 *    lock protects and call mproc_lock_consistent(); if it releases the lock without
 *    doing so, the lock is unusable from then on (-ENOTRECOVERABLE for everyone).
 *  - A Barrier breaks (-MPROC_EBROKEN for every waiter) when a waiter's timeout expires,
 *    when it is aborted, or when a party is known to have died; a party that died
 *    before arriving therefore breaks it at the others' timeouts.
 *  - Semaphores and Events have no owner: a process dying never leaves them held
 *    (a unit a dead process had acquired is simply not given back).
 * Every object carries a magic word: one that was never initialised, or was zeroed,
 * gives -EINVAL instead of undefined behaviour.
 *
 * All functions are thread-safe and usable in forked children; none is
 * async-signal-safe except mproc_event_set and mproc_sem_release.
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returned (as a success) by lock acquisitions when the previous holder died. */
#define MPROC_OWNER_DIED 1

/* ---- Lock and RLock -------------------------------------------------------- */

typedef struct mproc_lock {
    _Alignas(8) unsigned char opaque_[64];
} mproc_lock;

enum mproc_lock_flags {
    MPROC_LOCK_RECURSIVE = 1u << 0 /* RLock: the holder may acquire again; release as often */
};

/* Initialise a lock placed in shared memory. 0, or -EINVAL (NULL, unknown flags). */
MPROC_API int mproc_lock_init(mproc_lock *l, unsigned flags);

/* A lock in a fresh shared mapping. Errors: -EINVAL, -ENOMEM. */
MPROC_API int mproc_lock_new(mproc_lock **out, unsigned flags);
MPROC_API void mproc_lock_free(mproc_lock *l);

/* Acquire, waiting at most timeout seconds (0: try once, Python's blocking=False).
 * 0, or MPROC_OWNER_DIED (acquired; the previous holder died holding it). Errors:
 * -ETIMEDOUT, -EDEADLK (non-recursive lock already held by this thread),
 * -ENOTRECOVERABLE, -EAGAIN (recursion count overflow), -EINVAL. */
MPROC_API int mproc_lock_acquire(mproc_lock *l, double timeout);

/* Release. 0, or -EPERM (not held by the calling thread), -EINVAL. */
MPROC_API int mproc_lock_release(mproc_lock *l);

/* After MPROC_OWNER_DIED: declare the protected state repaired. 0, -EPERM (the calling
 * thread does not hold the lock), -EINVAL (NULL, not a lock, or the lock is not in the
 * owner-died state: nothing to repair). */
MPROC_API int mproc_lock_consistent(mproc_lock *l);

/* ---- Semaphore and BoundedSemaphore ---------------------------------------- */

typedef struct mproc_sem {
    _Alignas(8) unsigned char opaque_[32];
} mproc_sem;

enum mproc_sem_flags {
    MPROC_SEM_BOUNDED = 1u << 0 /* BoundedSemaphore: release above the initial value fails */
};

/* Initialise with an initial value (0..INT32_MAX). 0, or -EINVAL. */
MPROC_API int mproc_sem_init(mproc_sem *s, unsigned value, unsigned flags);
MPROC_API int mproc_sem_new(mproc_sem **out, unsigned value, unsigned flags);
MPROC_API void mproc_sem_free(mproc_sem *s);

/* Decrement, waiting at most timeout seconds for the value to be positive.
 * 0, -ETIMEDOUT, -EINVAL. No system call when the value is positive. A process that
 * dies after acquiring never gives its unit back (anyone may release it instead). */
MPROC_API int mproc_sem_acquire(mproc_sem *s, double timeout);

/* Increment, waking a waiter (a system call only when someone sleeps). 0, -EOVERFLOW
 * (bounded and already at its initial value, or at INT32_MAX), -EINVAL.
 * Async-signal-safe. */
MPROC_API int mproc_sem_release(mproc_sem *s);

/* Current value (>= 0), or -EINVAL. */
MPROC_API int mproc_sem_value(const mproc_sem *s);

/* ---- Event ----------------------------------------------------------------- */

typedef struct mproc_event {
    _Alignas(8) unsigned char opaque_[16];
} mproc_event;

MPROC_API int mproc_event_init(mproc_event *e);
MPROC_API int mproc_event_new(mproc_event **out);
MPROC_API void mproc_event_free(mproc_event *e);

/* Set the flag and wake every waiter (set is async-signal-safe); clear it. 0 or -EINVAL. */
MPROC_API int mproc_event_set(mproc_event *e);
MPROC_API int mproc_event_clear(mproc_event *e);

/* 1 if set, 0 if not, -EINVAL. */
MPROC_API int mproc_event_is_set(const mproc_event *e);

/* Wait until the flag is set: 0 when set (also when a set() happened during the wait
 * and a clear() followed before this waiter ran, as in Python), -ETIMEDOUT, -EINVAL. */
MPROC_API int mproc_event_wait(mproc_event *e, double timeout);

/* ---- Condition (with its own lock, an RLock unless flags say otherwise) ------- */

typedef struct mproc_cond {
    _Alignas(8) unsigned char opaque_[96];
} mproc_cond;

/* flags: 0 for an RLock inside (Python's default), or MPROC_COND_PLAIN_LOCK. */
enum mproc_cond_flags { MPROC_COND_PLAIN_LOCK = 1u << 0 };

MPROC_API int mproc_cond_init(mproc_cond *c, unsigned flags);
MPROC_API int mproc_cond_new(mproc_cond **out, unsigned flags);
MPROC_API void mproc_cond_free(mproc_cond *c);

/* The condition's lock, to acquire/release around waits (Python `with cond:`). */
MPROC_API mproc_lock *mproc_cond_lock(mproc_cond *c);

/* With the lock held: release it completely (an RLock held n deep is released n
 * times and re-acquired n times), wait for a notify (or the timeout), re-acquire it
 * (without a deadline, as Python does). 0 when notified, -ETIMEDOUT (the lock is
 * re-acquired either way), MPROC_OWNER_DIED (re-acquired from a holder that died; this
 * outranks a timeout: repair and call mproc_lock_consistent), -ENOTRECOVERABLE (the
 * lock is unusable and NOT held), -EPERM (lock not held by the calling thread; nothing
 * done), -EINVAL. Spurious wake-ups are possible: re-check the predicate. */
MPROC_API int mproc_cond_wait(mproc_cond *c, double timeout);

/* Wake up to n waiters / all waiters (waiters that had not yet gone to sleep may
 * also return, so more than n can wake). The lock must be held by the calling thread
 * (Python requires it): -EPERM if not. n == 0 does nothing; n < 0 is -EINVAL. */
MPROC_API int mproc_cond_notify(mproc_cond *c, int n);
MPROC_API int mproc_cond_notify_all(mproc_cond *c);

/* ---- Barrier --------------------------------------------------------------- */

typedef struct mproc_barrier {
    _Alignas(8) unsigned char opaque_[64];
} mproc_barrier;

/* A barrier for parties (1..MPROC_BARRIER_MAX_PARTIES) processes. 0 or -EINVAL. */
#define MPROC_BARRIER_MAX_PARTIES 32767
MPROC_API int mproc_barrier_init(mproc_barrier *b, unsigned parties);
MPROC_API int mproc_barrier_new(mproc_barrier **out, unsigned parties);
MPROC_API void mproc_barrier_free(mproc_barrier *b);

/* Wait for all parties. Returns this party's arrival index, 0..parties-1 (distinct per
 * party in a round; the last to arrive gets parties-1 and returns without sleeping),
 * or -MPROC_EBROKEN (broken: aborted, reset, another waiter timed out, or a waiting
 * party died), -ETIMEDOUT (this waiter's timeout expired first; the barrier is now
 * broken for all), -EINVAL.
 * Dead parties: the first 8 waiters of a round are recorded (pid) in the barrier, and
 * every waiter checks them about every 50 ms while it sleeps; when one has died
 * (including a zombie not yet reaped), the round breaks, so the others return
 * -MPROC_EBROKEN within about 50 ms rather than at their timeouts. Waiters beyond the
 * 8th are not watched, a party that dies before arriving is only noticed at a timeout,
 * and a pid recycled by another process during the wait reads as alive. */
MPROC_API int mproc_barrier_wait(mproc_barrier *b, double timeout);

/* Break the barrier: current and future waiters get -MPROC_EBROKEN until reset.
 * 0 (also when already broken), -EINVAL. */
MPROC_API int mproc_barrier_abort(mproc_barrier *b);

/* Return to the initial, unbroken state (current waiters get -MPROC_EBROKEN). 0, -EINVAL. */
MPROC_API int mproc_barrier_reset(mproc_barrier *b);

/* 1 if broken, 0 if not; parties; number currently waiting. -EINVAL for a bad object. */
MPROC_API int mproc_barrier_broken(const mproc_barrier *b);
MPROC_API int mproc_barrier_parties(const mproc_barrier *b);
MPROC_API int mproc_barrier_n_waiting(const mproc_barrier *b);

#ifdef __cplusplus
}
#endif

#endif
