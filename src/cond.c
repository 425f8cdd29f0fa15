/* src/cond.c - Condition: a lock (an RLock unless asked otherwise) and a wait queue.
 *
 * DESIGN: `seq` is the futex word, `waiters` the number of registered waiters. A
 * waiter, holding the lock, reads `seq`, registers in `waiters`, releases the lock
 * completely (every recursion level, remembering the depth), sleeps while `seq` is
 * unchanged (or until its deadline), unregisters and re-acquires the lock to the same
 * depth, without a deadline: like Python, wait() always returns holding the lock. A
 * notifier, holding the lock, advances `seq` and wakes n sleepers (all for
 * notify_all), making the system call only when `waiters` is non-zero. Because both
 * the registration and the notification happen under the lock, a notification can
 * never fall between a waiter's check of its predicate and its sleep.
 * Waiters that registered but were not yet asleep see `seq` moved and return too, so
 * notify(n) may wake more than n: callers re-check their predicate (Python says so).
 *
 * Death: the lock is a robust Lock. When a holder dies, the next process to take the
 * lock, a returning waiter included, gets MPROC_OWNER_DIED; cond_wait passes it up
 * even when its own wait timed out, since the caller must now repair the state and
 * call mproc_lock_consistent(). A waiter that dies asleep leaves `waiters` one too
 * high, which only costs later notifies a useless wake system call.
 */
#include "internal.h"

#include "lock_internal.h"

#define COND_MAGIC 0x4d434e44u /* "MCND" */

struct cond_impl {
    mproc_lock lock;
    uint32_t magic;
    uint32_t flags;
    uint32_t seq;     /* futex word: advanced by every notify */
    uint32_t waiters; /* registered waiters */
};

_Static_assert(sizeof(struct cond_impl) <= sizeof(mproc_cond), "mproc_cond too small");
_Static_assert(_Alignof(struct cond_impl) <= _Alignof(mproc_cond), "mproc_cond misaligned");

static struct cond_impl *impl(const mproc_cond *c)
{
    struct cond_impl *ci = (struct cond_impl *)(uintptr_t)(const void *)c;
    return ci != NULL && __atomic_load_n(&ci->magic, __ATOMIC_RELAXED) == COND_MAGIC ? ci : NULL;
}

int mproc_cond_init(mproc_cond *c, unsigned flags)
{
    if (c == NULL || (flags & ~(unsigned)MPROC_COND_PLAIN_LOCK) != 0)
        return -EINVAL;
    memset(c, 0, sizeof *c);
    struct cond_impl *ci = (struct cond_impl *)(void *)c;
    int rc =
        mproc_lock_init(&ci->lock, (flags & MPROC_COND_PLAIN_LOCK) ? 0u : MPROC_LOCK_RECURSIVE);
    if (rc < 0)
        return rc;
    ci->flags = flags;
    __atomic_store_n(&ci->magic, COND_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int mproc_cond_new(mproc_cond **out, unsigned flags)
{
    if (out == NULL)
        return -EINVAL;
    void *mem;
    int rc = mproc__sys_map_shared(-1, sizeof(mproc_cond), &mem);
    if (rc < 0)
        return rc;
    rc = mproc_cond_init(mem, flags);
    if (rc < 0) {
        mproc__sys_unmap(mem, sizeof(mproc_cond));
        return rc;
    }
    *out = mem;
    return 0;
}

void mproc_cond_free(mproc_cond *c)
{
    mproc__sys_unmap(c, sizeof(mproc_cond));
}

mproc_lock *mproc_cond_lock(mproc_cond *c)
{
    struct cond_impl *ci = impl(c);
    return ci == NULL ? NULL : &ci->lock;
}

int mproc_cond_wait(mproc_cond *c, double timeout)
{
    struct cond_impl *ci = impl(c);
    if (ci == NULL)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    rc = mproc__lock_held(&ci->lock);
    if (rc <= 0)
        return rc == 0 ? -EPERM : rc;

    uint32_t seq0 = __atomic_load_n(&ci->seq, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&ci->waiters, 1, __ATOMIC_SEQ_CST);
    unsigned depth = 0;
    rc = mproc__lock_release_all(&ci->lock, &depth);
    if (rc < 0) {
        __atomic_fetch_sub(&ci->waiters, 1, __ATOMIC_SEQ_CST);
        return rc;
    }

    int waited = 0;
    while (__atomic_load_n(&ci->seq, __ATOMIC_SEQ_CST) == seq0) {
        if (mproc__sys_futex_wait(&ci->seq, seq0, deadline, true) == -ETIMEDOUT) {
            if (__atomic_load_n(&ci->seq, __ATOMIC_SEQ_CST) == seq0)
                waited = -ETIMEDOUT;
            break;
        }
    }
    __atomic_fetch_sub(&ci->waiters, 1, __ATOMIC_SEQ_CST);

    rc = mproc__lock_restore(&ci->lock, depth);
    if (rc != 0)
        return rc; /* MPROC_OWNER_DIED outranks a timeout; or the lock is lost */
    return waited;
}

int mproc_cond_notify(mproc_cond *c, int n)
{
    struct cond_impl *ci = impl(c);
    if (ci == NULL || n < 0)
        return -EINVAL;
    int held = mproc__lock_held(&ci->lock);
    if (held <= 0)
        return held == 0 ? -EPERM : held;
    if (n == 0)
        return 0;
    __atomic_fetch_add(&ci->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ci->waiters, __ATOMIC_SEQ_CST) > 0)
        (void)mproc__sys_futex_wake(&ci->seq, n, true);
    return 0;
}

int mproc_cond_notify_all(mproc_cond *c)
{
    return mproc_cond_notify(c, INT32_MAX);
}
