/* src/lock.c - Lock and RLock: robust, process-shared mutexes with timeouts.
 *
 * DESIGN: a glibc robust, process-shared mutex (PTHREAD_MUTEX_ROBUST +
 * PTHREAD_PROCESS_SHARED) placed in the caller's shared memory. glibc keeps a
 * per-thread robust list registered with the kernel; when a thread dies holding
 * the mutex, the kernel marks the futex word OWNER_DIED and wakes one waiter, which
 * gets EOWNERDEAD (our MPROC_OWNER_DIED) while owning the lock. We cannot write our
 * own robust futex lock without fighting glibc over the thread's single robust list,
 * so we use glibc's and keep the wrapper thin. Timed waits use
 * pthread_mutex_clocklock on CLOCK_MONOTONIC, so clock changes do not matter.
 *
 * Non-recursive locks are ERRORCHECK mutexes: acquiring twice from one thread is
 * -EDEADLK instead of a silent deadlock, and a release by a thread that does not hold
 * the lock is -EPERM (robust mutexes always check the owner).
 */
#include "internal.h"

#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#define LOCK_MAGIC 0x4d4c434bu /* "MLCK" */

struct lock_impl {
    pthread_mutex_t m;
    uint32_t magic;
    uint32_t flags;
};

_Static_assert(sizeof(struct lock_impl) <= sizeof(mproc_lock), "mproc_lock too small");
_Static_assert(_Alignof(struct lock_impl) <= _Alignof(mproc_lock), "mproc_lock misaligned");

static struct lock_impl *impl(mproc_lock *l)
{
    struct lock_impl *li = (struct lock_impl *)(void *)l;
    return li != NULL && li->magic == LOCK_MAGIC ? li : NULL;
}

int mproc_lock_init(mproc_lock *l, unsigned flags)
{
    if (l == NULL || (flags & ~(unsigned)MPROC_LOCK_RECURSIVE) != 0)
        return -EINVAL;
    struct lock_impl *li = (struct lock_impl *)(void *)l;
    memset(l, 0, sizeof *l);
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return -rc;
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&attr, (flags & MPROC_LOCK_RECURSIVE) ? PTHREAD_MUTEX_RECURSIVE
                                                                     : PTHREAD_MUTEX_ERRORCHECK);
    rc = pthread_mutex_init(&li->m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0)
        return -rc;
    li->flags = flags;
    li->magic = LOCK_MAGIC;
    return 0;
}

int mproc_lock_new(mproc_lock **out, unsigned flags)
{
    if (out == NULL)
        return -EINVAL;
    void *mem;
    int rc = mproc__sys_map_shared(-1, sizeof(mproc_lock), &mem);
    if (rc < 0)
        return rc;
    rc = mproc_lock_init(mem, flags);
    if (rc < 0) {
        mproc__sys_unmap(mem, sizeof(mproc_lock));
        return rc;
    }
    *out = mem;
    return 0;
}

void mproc_lock_free(mproc_lock *l)
{
    mproc__sys_unmap(l, sizeof(mproc_lock));
}

int mproc__lock_acquire_until(mproc_lock *l, int64_t deadline)
{
    struct lock_impl *li = impl(l);
    if (li == NULL)
        return -EINVAL;
    int rc;
    if (deadline == MPROC__NO_DEADLINE) {
        rc = pthread_mutex_lock(&li->m);
    } else {
        rc = pthread_mutex_trylock(&li->m);
        if (rc == EBUSY) {
            struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000),
                                  .tv_nsec = (long)(deadline % 1000000000)};
            rc = mproc__remaining_ns(deadline) == 0 ? ETIMEDOUT
                                                    : pthread_mutex_clocklock(&li->m, CLOCK_MONOTONIC, &ts);
        }
    }
    switch (rc) {
    case 0:
        return 0;
    case EOWNERDEAD:
        return MPROC_OWNER_DIED;
    case EBUSY:
        return -ETIMEDOUT;
    default:
        return -rc;
    }
}

int mproc_lock_acquire(mproc_lock *l, double timeout)
{
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    return mproc__lock_acquire_until(l, deadline);
}

int mproc_lock_release(mproc_lock *l)
{
    struct lock_impl *li = impl(l);
    if (li == NULL)
        return -EINVAL;
    return -pthread_mutex_unlock(&li->m);
}

int mproc_lock_consistent(mproc_lock *l)
{
    struct lock_impl *li = impl(l);
    if (li == NULL)
        return -EINVAL;
    return -pthread_mutex_consistent(&li->m);
}
