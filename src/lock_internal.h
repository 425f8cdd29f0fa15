/* src/lock_internal.h - what the Condition needs from the Lock (private).
 *
 * A Condition must release its lock completely before sleeping, even when an RLock
 * is held recursively, and take it back to the same depth afterwards. glibc keeps the
 * recursion count and the owner's thread id inside the mutex; these helpers read them
 * so the Condition does not have to duplicate (and keep in step) a copy.
 */
#ifndef MPROC_LOCK_INTERNAL_H
#define MPROC_LOCK_INTERNAL_H

#include "mproc/sync.h"

/* How deep the calling thread holds l: >= 1 held (the recursion depth; 1 for a plain
 * Lock), 0 not held by the calling thread, -EINVAL (NULL or not a lock). One system
 * call (gettid). */
int mproc__lock_held(mproc_lock *l);

/* Release every level the caller holds; *depth receives how many. 0, -EPERM (not
 * held by the calling thread), -EINVAL. */
int mproc__lock_release_all(mproc_lock *l, unsigned *depth);

/* Acquire l again depth (>= 1) times, waiting without a deadline (a Condition's
 * waiter must own the lock when it returns). 0, MPROC_OWNER_DIED (the lock is held,
 * its previous holder died), or -ENOTRECOVERABLE / -EINVAL (the lock is not held). */
int mproc__lock_restore(mproc_lock *l, unsigned depth);

#endif
