/* tests/test_lock.c - Lock and RLock: mutual exclusion across processes, recursion,
 * ownership errors, timeouts, and holders that die (robustness), provoked for real. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Shared scratch for a test: the lock and whatever the children report. */
struct shared {
    mproc_lock lock;
    int counter; /* a plain int: only the lock protects it */
    int flag;
    int iterations;
};

static struct shared *shared_new(unsigned flags)
{
    void *mem = NULL;
    assert_ok(mproc__sys_map_shared(-1, sizeof(struct shared), &mem));
    struct shared *sh = mem;
    assert_ok(mproc_lock_init(&sh->lock, flags));
    return sh;
}

static void shared_free(struct shared *sh)
{
    mproc__sys_unmap(sh, sizeof *sh);
}

static void wait_flag(const int *flag, int value)
{
    double end = mproc_test_now() + 10;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != value && mproc_test_now() < end)
        mproc_test_sleep(0.001);
    assert_int_equal(__atomic_load_n(flag, __ATOMIC_ACQUIRE), value);
}

static void test_lock_bad_input(void **state)
{
    (void)state;
    mproc_lock zero;
    memset(&zero, 0, sizeof zero);
    mproc_lock *l = NULL;
    assert_code(mproc_lock_init(NULL, 0), -EINVAL);
    assert_code(mproc_lock_init(&zero, 1u << 5), -EINVAL);
    assert_code(mproc_lock_new(NULL, 0), -EINVAL);
    assert_code(mproc_lock_new(&l, 0x80), -EINVAL);
    assert_null(l);
    assert_code(mproc_lock_acquire(NULL, 0), -EINVAL);
    assert_code(mproc_lock_acquire(&zero, 0), -EINVAL); /* never initialised */
    assert_code(mproc_lock_release(&zero), -EINVAL);
    assert_code(mproc_lock_consistent(&zero), -EINVAL);
    assert_code(mproc_lock_release(NULL), -EINVAL);
    memset(&zero, 0xa5, sizeof zero); /* garbage */
    assert_code(mproc_lock_acquire(&zero, MPROC_FOREVER), -EINVAL);
    mproc_lock_free(NULL);

    assert_ok(mproc_lock_new(&l, 0));
    assert_code(mproc_lock_acquire(l, -1), -EINVAL);
    assert_code(mproc_lock_acquire(l, NAN), -EINVAL);
    assert_code(mproc_lock_release(l), -EPERM); /* not held */
    assert_ok(mproc_lock_acquire(l, 0));
    assert_ok(mproc_lock_release(l));
    memset(l, 0, sizeof *l); /* "freed and zeroed" */
    assert_code(mproc_lock_acquire(l, 0), -EINVAL);
    mproc_lock_free(l);
}

static int increment_many(void *arg)
{
    struct shared *sh = arg;
    for (int i = 0; i < sh->iterations; i++) {
        if (mproc_lock_acquire(&sh->lock, 30) != 0)
            return 1;
        int v = sh->counter; /* a deliberately non-atomic read-modify-write */
        __asm__ volatile("" ::: "memory");
        sh->counter = v + 1;
        if (mproc_lock_release(&sh->lock) != 0)
            return 2;
    }
    return 0;
}

static void mutual_exclusion(unsigned flags)
{
    struct shared *sh = shared_new(flags);
    sh->iterations = 20000;
    pid_t pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = mproc_test_fork(increment_many, sh);
    for (int i = 0; i < 4; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 60), 0);
    assert_int_equal(sh->counter, 4 * 20000);
    shared_free(sh);
}

static void test_lock_mutual_exclusion(void **state)
{
    (void)state;
    mutual_exclusion(0);
}

static void test_rlock_mutual_exclusion(void **state)
{
    (void)state;
    mutual_exclusion(MPROC_LOCK_RECURSIVE);
}

/* Child: try to take the lock once and within 0.2 s; report what happened. */
static int try_from_child(void *arg)
{
    struct shared *sh = arg;
    if (mproc_lock_release(&sh->lock) != -EPERM)
        return 10; /* a stranger must not release it */
    if (mproc_lock_consistent(&sh->lock) != -EPERM)
        return 11;
    int rc = mproc_lock_acquire(&sh->lock, 0);
    if (rc == 0) {
        mproc_lock_release(&sh->lock);
        return 0; /* it was free */
    }
    if (rc != -ETIMEDOUT)
        return 12;
    double t0 = mproc_test_now();
    rc = mproc_lock_acquire(&sh->lock, 0.2);
    double dt = mproc_test_now() - t0;
    if (rc != -ETIMEDOUT)
        return 13;
    if (dt < 0.15 || dt > 3.0)
        return 14; /* the timed wait neither returned early nor overstayed */
    return 1;      /* it was held, and the timeouts behaved */
}

static void test_lock_errors_and_timeouts(void **state)
{
    (void)state;
    struct shared *sh = shared_new(0);
    assert_ok(mproc_lock_acquire(&sh->lock, MPROC_FOREVER));
    assert_code(mproc_lock_acquire(&sh->lock, 0), -EDEADLK);
    assert_code(mproc_lock_acquire(&sh->lock, 0.05), -EDEADLK);
    assert_code(mproc_lock_acquire(&sh->lock, MPROC_FOREVER), -EDEADLK);
    assert_code(mproc_lock_consistent(&sh->lock), -EINVAL); /* nobody died */
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(try_from_child, sh), 20), 1);
    assert_ok(mproc_lock_release(&sh->lock));
    assert_code(mproc_lock_release(&sh->lock), -EPERM);
    assert_code(mproc_lock_consistent(&sh->lock), -EPERM);
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(try_from_child, sh), 20), 0);
    shared_free(sh);
}

static void test_rlock_depth(void **state)
{
    (void)state;
    struct shared *sh = shared_new(MPROC_LOCK_RECURSIVE);
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_lock_acquire(&sh->lock, i == 0 ? MPROC_FOREVER : 0));
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(try_from_child, sh), 20), 1);
    assert_ok(mproc_lock_release(&sh->lock));
    assert_ok(mproc_lock_release(&sh->lock));
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(try_from_child, sh), 20), 1);
    assert_ok(mproc_lock_release(&sh->lock));
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(try_from_child, sh), 20), 0);
    assert_code(mproc_lock_release(&sh->lock), -EPERM);
    shared_free(sh);
}

/* Child: take the lock (depth sh->iterations), say so, and die holding it. */
static int die_holding(void *arg)
{
    struct shared *sh = arg;
    int depth = sh->iterations > 0 ? sh->iterations : 1;
    for (int i = 0; i < depth; i++)
        if (mproc_lock_acquire(&sh->lock, 10) < 0)
            return 1;
    sh->counter = -1; /* half-updated state */
    __atomic_store_n(&sh->flag, 1, __ATOMIC_RELEASE);
    if (sh->flag == 1 && depth > 0)
        mproc_test_sleep(0.05);
    kill(getpid(), SIGKILL);
    return 2;
}

/* Child: block on the lock and report the acquisition's result: 100 + rc on success,
 * -rc (an errno value) on failure. */
static int block_on_lock(void *arg)
{
    struct shared *sh = arg;
    int rc = mproc_lock_acquire(&sh->lock, 20);
    if (rc == MPROC_OWNER_DIED) {
        sh->counter = 0; /* repair */
        if (mproc_lock_consistent(&sh->lock) != 0)
            return 3;
    }
    if (rc >= 0 && mproc_lock_release(&sh->lock) != 0)
        return 4;
    return rc >= 0 ? 100 + rc : -rc < 100 || -rc > 255 ? 255 : -rc;
}

static void owner_died(unsigned flags, int depth)
{
    struct shared *sh = shared_new(flags);
    sh->iterations = depth;
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(die_holding, sh), 20), -SIGKILL);
    assert_code(mproc_lock_acquire(&sh->lock, 5), MPROC_OWNER_DIED);
    assert_int_equal(sh->counter, -1);
    sh->counter = 0;
    assert_ok(mproc_lock_consistent(&sh->lock));
    assert_code(mproc_lock_consistent(&sh->lock), -EINVAL); /* already consistent */
    assert_ok(mproc_lock_release(&sh->lock));
    assert_code(mproc_lock_release(&sh->lock), -EPERM); /* the dead one's depth is gone */
    /* Normal afterwards, for us and for others. */
    assert_ok(mproc_lock_acquire(&sh->lock, 0));
    assert_ok(mproc_lock_release(&sh->lock));
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(try_from_child, sh), 20), 0);
    shared_free(sh);
}

static void test_lock_owner_died(void **state)
{
    (void)state;
    owner_died(0, 1);
}

static void test_rlock_owner_died_deep(void **state)
{
    (void)state;
    owner_died(MPROC_LOCK_RECURSIVE, 3);
}

/* A process already blocked on the lock is woken by the holder's death. */
static void test_lock_waiter_woken_by_death(void **state)
{
    (void)state;
    struct shared *sh = shared_new(0);
    sh->iterations = 1;
    pid_t holder = mproc_test_fork(die_holding, sh);
    wait_flag(&sh->flag, 1);
    pid_t waiter = mproc_test_fork(block_on_lock, sh);
    assert_int_equal(mproc_test_exitcode(holder, 20), -SIGKILL);
    assert_int_equal(mproc_test_exitcode(waiter, 20), 100 + MPROC_OWNER_DIED);
    assert_int_equal(sh->counter, 0); /* repaired by the waiter */
    assert_ok(mproc_lock_acquire(&sh->lock, 0));
    assert_ok(mproc_lock_release(&sh->lock));
    shared_free(sh);
}

static void test_lock_not_recoverable(void **state)
{
    (void)state;
    struct shared *sh = shared_new(MPROC_LOCK_RECURSIVE);
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(die_holding, sh), 20), -SIGKILL);
    assert_code(mproc_lock_acquire(&sh->lock, 5), MPROC_OWNER_DIED);
    assert_ok(mproc_lock_release(&sh->lock)); /* without mproc_lock_consistent */
    assert_code(mproc_lock_acquire(&sh->lock, 0), -ENOTRECOVERABLE);
    assert_code(mproc_lock_acquire(&sh->lock, MPROC_FOREVER), -ENOTRECOVERABLE);
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(block_on_lock, sh), 20), ENOTRECOVERABLE);
    shared_free(sh);
}

/* A holder stopped forever: a timed acquire still returns within its bound. */
static void test_lock_timeout_bound(void **state)
{
    (void)state;
    struct shared *sh = shared_new(0);
    sh->iterations = 1;
    assert_ok(mproc_lock_acquire(&sh->lock, 0));
    double t0 = mproc_test_now();
    pid_t pid = mproc_test_fork(block_on_lock, sh); /* 20 s timeout: we kill it first */
    mproc_test_sleep(0.1);
    assert_true(mproc_test_pid_alive(pid));
    kill(pid, SIGKILL);
    assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
    /* The waiter's death does not disturb the holder. */
    assert_ok(mproc_lock_release(&sh->lock));
    t0 = mproc_test_now();
    assert_ok(mproc_lock_acquire(&sh->lock, 1.0));
    assert_true(mproc_test_now() - t0 < 1.0);
    assert_ok(mproc_lock_release(&sh->lock));
    shared_free(sh);
}

#ifdef MPROC_FAULT_INJECTION
static void test_lock_new_fails_cleanly(void **state)
{
    (void)state;
    mproc_lock *l = NULL;
    assert_ok(mproc_fault_set("sys.mmap", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -ENOMEM}));
    assert_code(mproc_lock_new(&l, 0), -ENOMEM);
    assert_null(l);
    assert_ok(mproc_fault_clear());
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_lock_bad_input),
        MPROC_TEST(test_lock_mutual_exclusion),
        MPROC_TEST(test_rlock_mutual_exclusion),
        MPROC_TEST(test_lock_errors_and_timeouts),
        MPROC_TEST(test_rlock_depth),
        MPROC_TEST(test_lock_owner_died),
        MPROC_TEST(test_rlock_owner_died_deep),
        MPROC_TEST(test_lock_waiter_woken_by_death),
        MPROC_TEST(test_lock_not_recoverable),
        MPROC_TEST(test_lock_timeout_bound),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_lock_new_fails_cleanly),
#endif
    };
    return mproc_test_run(tests);
}
