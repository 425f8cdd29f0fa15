/* src/sem.c - Semaphore and BoundedSemaphore: a counter in shared memory.
 *
 * DESIGN: `value` is the count and also the futex word; `waiters` counts processes
 * that are about to sleep or are sleeping on it. acquire decrements `value` with a
 * compare-and-swap when it is positive (no system call); otherwise it registers in
 * `waiters` and sleeps while value == 0. release increments `value` and, only when
 * `waiters` is non-zero, wakes one sleeper. Both sides use sequentially consistent
 * atomics, so either the releaser sees the waiter's registration (and wakes it) or
 * the waiter's futex_wait sees the new value (and does not sleep): no lost wake-up.
 *
 * Death: a semaphore has no owner. A process that dies after acquiring never
 * releases, so its unit is simply lost (as with Python's); nothing blocks because of
 * it beyond that. A process that dies while waiting leaves `waiters` one too high,
 * which costs later releases a useless wake system call, nothing more.
 *
 * release is async-signal-safe: it is a CAS loop and one futex system call.
 */
#include "internal.h"

#define SEM_MAGIC 0x4d53454du /* "MSEM" */

struct sem_impl {
    uint32_t magic;
    uint32_t flags;
    uint32_t value;   /* futex word */
    uint32_t waiters; /* registered sleepers (approximate upper bound) */
    uint32_t initial; /* the bound of a BoundedSemaphore */
};

_Static_assert(sizeof(struct sem_impl) <= sizeof(mproc_sem), "mproc_sem too small");
_Static_assert(_Alignof(struct sem_impl) <= _Alignof(mproc_sem), "mproc_sem misaligned");

static struct sem_impl *impl(const mproc_sem *s)
{
    struct sem_impl *si = (struct sem_impl *)(uintptr_t)(const void *)s;
    return si != NULL && __atomic_load_n(&si->magic, __ATOMIC_RELAXED) == SEM_MAGIC ? si : NULL;
}

int mproc_sem_init(mproc_sem *s, unsigned value, unsigned flags)
{
    if (s == NULL || value > INT32_MAX || (flags & ~(unsigned)MPROC_SEM_BOUNDED) != 0)
        return -EINVAL;
    memset(s, 0, sizeof *s);
    struct sem_impl *si = (struct sem_impl *)(void *)s;
    si->flags = flags;
    si->value = value;
    si->initial = value;
    __atomic_store_n(&si->magic, SEM_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int mproc_sem_new(mproc_sem **out, unsigned value, unsigned flags)
{
    if (out == NULL)
        return -EINVAL;
    void *mem;
    int rc = mproc__sys_map_shared(-1, sizeof(mproc_sem), &mem);
    if (rc < 0)
        return rc;
    rc = mproc_sem_init(mem, value, flags);
    if (rc < 0) {
        mproc__sys_unmap(mem, sizeof(mproc_sem));
        return rc;
    }
    *out = mem;
    return 0;
}

void mproc_sem_free(mproc_sem *s)
{
    mproc__sys_unmap(s, sizeof(mproc_sem));
}

/* One attempt to take a unit. */
static bool try_take(struct sem_impl *si)
{
    uint32_t v = __atomic_load_n(&si->value, __ATOMIC_RELAXED);
    while (v > 0) {
        if (__atomic_compare_exchange_n(&si->value, &v, v - 1, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

int mproc_sem_acquire(mproc_sem *s, double timeout)
{
    struct sem_impl *si = impl(s);
    if (si == NULL)
        return -EINVAL;
    if (!(timeout >= 0)) /* negative or NaN */
        return -EINVAL;
    if (try_take(si))
        return 0; /* the fast path reads no clock */
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    for (;;) {
        if (try_take(si))
            return 0;
        if (mproc__remaining_ns(deadline) == 0)
            return -ETIMEDOUT;
        __atomic_fetch_add(&si->waiters, 1, __ATOMIC_SEQ_CST);
        rc = 0;
        if (__atomic_load_n(&si->value, __ATOMIC_SEQ_CST) == 0)
            rc = mproc__sys_futex_wait(&si->value, 0, deadline, true);
        __atomic_fetch_sub(&si->waiters, 1, __ATOMIC_SEQ_CST);
        if (rc == -ETIMEDOUT)
            return try_take(si) ? 0 : -ETIMEDOUT;
    }
}

int mproc_sem_release(mproc_sem *s)
{
    struct sem_impl *si = impl(s);
    if (si == NULL)
        return -EINVAL;
    uint32_t limit = (si->flags & MPROC_SEM_BOUNDED) ? si->initial : (uint32_t)INT32_MAX;
    uint32_t v = __atomic_load_n(&si->value, __ATOMIC_RELAXED);
    do {
        if (v >= limit)
            return -EOVERFLOW;
    } while (!__atomic_compare_exchange_n(&si->value, &v, v + 1, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (__atomic_load_n(&si->waiters, __ATOMIC_SEQ_CST) > 0)
        (void)mproc__sys_futex_wake(&si->value, 1, true);
    return 0;
}

int mproc_sem_value(const mproc_sem *s)
{
    struct sem_impl *si = impl(s);
    if (si == NULL)
        return -EINVAL;
    return (int)__atomic_load_n(&si->value, __ATOMIC_RELAXED);
}
