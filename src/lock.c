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
 *
 * Who holds it, and how deep: a robust mutex keeps its owner's thread id in the futex
 * word (the kernel needs it to mark the word OWNER_DIED), and glibc keeps an RLock's
 * recursion count in the mutex; the Condition reads both through lock_internal.h
 * rather than keeping a second copy that a dying process could leave out of step.
 * Only src/sys/mutex.c reads glibc's pthread_mutex_t fields (their layout is glibc's ABI).
 *
 * Death: the kernel walks a dying thread's robust list and wakes one waiter; that
 * waiter returns MPROC_OWNER_DIED. A release without mproc_lock_consistent() makes the
 * mutex permanently unrecoverable (-ENOTRECOVERABLE for every later acquire).
 */
#include "internal.h"

#include "lock_internal.h"
#include "sys/liveness.h"

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
        /* Not pthread_mutex_trylock, even for "try once": glibc 2.36's trylock on an
         * unrecoverable robust mutex returns ENOTRECOVERABLE but leaves the futex word
         * owned by the caller (it never unlocks it), after which lock() returns
         * EDEADLK or succeeds. clocklock tries to take the lock before it looks at the
         * (possibly past) deadline, as POSIX requires, and gets that case right. */
        struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000),
                              .tv_nsec = (long)(deadline % 1000000000)};
        rc = pthread_mutex_clocklock(&li->m, CLOCK_MONOTONIC, &ts);
    }
    switch (rc) {
    case 0:
        return 0;
    case EOWNERDEAD:
        return MPROC_OWNER_DIED;
    default:
        return -rc;
    }
}

int mproc_lock_acquire(mproc_lock *l, double timeout)
{
    if (timeout == 0)
        return mproc__lock_acquire_until(l, 0); /* any past deadline: no clock read */
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

/* The owner's thread id, from the robust futex word (0 when free or after its owner died). */
static pid_t owner_tid(const struct lock_impl *li)
{
    return mproc__sys_mutex_owner(&li->m);
}

int mproc_lock_consistent(mproc_lock *l)
{
    struct lock_impl *li = impl(l);
    if (li == NULL)
        return -EINVAL;
    /* glibc does not check the owner here: a stranger could mark the holder's half-
     * repaired state consistent. */
    if (owner_tid(li) != mproc__sys_gettid())
        return -EPERM;
    return -pthread_mutex_consistent(&li->m); /* -EINVAL: the holder did not die */
}

int mproc__lock_held(mproc_lock *l)
{
    struct lock_impl *li = impl(l);
    if (li == NULL)
        return -EINVAL;
    if (owner_tid(li) != mproc__sys_gettid())
        return 0;
    if ((li->flags & MPROC_LOCK_RECURSIVE) == 0)
        return 1;
    /* We hold it, so nobody else writes the count. */
    unsigned count = mproc__sys_mutex_depth(&li->m);
    return count == 0 ? 1 : count > INT32_MAX ? INT32_MAX : (int)count;
}

int mproc__lock_release_all(mproc_lock *l, unsigned *depth)
{
    int held = mproc__lock_held(l);
    if (held < 0)
        return held;
    if (held == 0)
        return -EPERM;
    struct lock_impl *li = impl(l);
    for (int i = 0; i < held; i++) {
        int rc = pthread_mutex_unlock(&li->m);
        if (rc != 0) {
            /* Cannot happen while we hold it; put back what we released. */
            assert(i == 0);
            *depth = (unsigned)i;
            return -rc;
        }
    }
    *depth = (unsigned)held;
    return 0;
}

int mproc__lock_restore(mproc_lock *l, unsigned depth)
{
    if (depth == 0)
        return -EINVAL;
    int first = mproc__lock_acquire_until(l, MPROC__NO_DEADLINE);
    if (first < 0)
        return first;
    for (unsigned i = 1; i < depth; i++) {
        int rc = mproc__lock_acquire_until(l, MPROC__NO_DEADLINE);
        if (rc < 0) {
            assert(0 && "recursive re-acquire cannot fail below the saved depth");
            break;
        }
    }
    return first;
}
