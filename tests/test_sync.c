/* tests/test_sync.c - Semaphore, BoundedSemaphore, Event, Condition and Barrier
 * across processes: normal use, bad input, timeouts, and participants that die. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { RING = 4, ROUNDS = 100, NPROC = 4 };

/* Everything a test shares with its children, in one anonymous shared mapping. */
struct shared {
    mproc_sem sem, empty, full;
    mproc_lock mutex;
    mproc_event event;
    mproc_cond cond;
    mproc_barrier barrier;
    int ring[RING];
    int head, tail, count;
    long sum;
    int flag;
    int ready;
    int tickets;
    int rounds[ROUNDS][NPROC];
    double t_done[NPROC];
};

static struct shared *shared_new(void)
{
    void *mem = NULL;
    assert_ok(mproc__sys_map_shared(-1, sizeof(struct shared), &mem));
    return mem;
}

static void shared_free(struct shared *sh)
{
    mproc__sys_unmap(sh, sizeof *sh);
}

static void wait_until(const int *word, int value)
{
    double end = mproc_test_now() + 10;
    while (__atomic_load_n(word, __ATOMIC_ACQUIRE) < value && mproc_test_now() < end)
        mproc_test_sleep(0.001);
    assert_true(__atomic_load_n(word, __ATOMIC_ACQUIRE) >= value);
}

/* A child's result as an exit code: >= 0 as is (< 100), errors mapped. */
static int code(int rc)
{
    if (rc >= 0)
        return rc < 100 ? rc : 99;
    if (rc == -ETIMEDOUT)
        return 200;
    if (rc == -MPROC_EBROKEN)
        return 201;
    if (rc == -EINVAL)
        return 202;
    return 250;
}

/* ---- Semaphore ------------------------------------------------------------ */

static void test_sem_bad_input(void **state)
{
    (void)state;
    mproc_sem zero, *s = NULL;
    memset(&zero, 0, sizeof zero);
    assert_code(mproc_sem_init(NULL, 1, 0), -EINVAL);
    assert_code(mproc_sem_init(&zero, (unsigned)INT32_MAX + 1u, 0), -EINVAL);
    assert_code(mproc_sem_init(&zero, 1, 1u << 7), -EINVAL);
    assert_code(mproc_sem_new(NULL, 0, 0), -EINVAL);
    assert_code(mproc_sem_new(&s, 0, 99), -EINVAL);
    assert_null(s);
    memset(&zero, 0, sizeof zero);
    assert_code(mproc_sem_acquire(&zero, 0), -EINVAL);
    assert_code(mproc_sem_release(&zero), -EINVAL);
    assert_code(mproc_sem_value(&zero), -EINVAL);
    assert_code(mproc_sem_acquire(NULL, 0), -EINVAL);
    assert_code(mproc_sem_release(NULL), -EINVAL);
    assert_code(mproc_sem_value(NULL), -EINVAL);
    mproc_sem_free(NULL);
    assert_ok(mproc_sem_new(&s, 1, 0));
    assert_code(mproc_sem_acquire(s, -0.5), -EINVAL);
    assert_code(mproc_sem_acquire(s, NAN), -EINVAL);
    assert_int_equal(mproc_sem_value(s), 1); /* a rejected call changed nothing */
    memset(s, 0xff, sizeof *s);
    assert_code(mproc_sem_acquire(s, MPROC_FOREVER), -EINVAL);
    mproc_sem_free(s);
}

static void test_sem_counting_and_timeouts(void **state)
{
    (void)state;
    mproc_sem *s;
    assert_ok(mproc_sem_new(&s, 2, 0));
    assert_ok(mproc_sem_acquire(s, 0));
    assert_ok(mproc_sem_acquire(s, MPROC_FOREVER));
    assert_int_equal(mproc_sem_value(s), 0);
    assert_code(mproc_sem_acquire(s, 0), -ETIMEDOUT);
    double t0 = mproc_test_now();
    assert_code(mproc_sem_acquire(s, 0.1), -ETIMEDOUT);
    double dt = mproc_test_now() - t0;
    assert_true(dt >= 0.09 && dt < 3.0);
    for (int i = 0; i < 5; i++)
        assert_ok(mproc_sem_release(s)); /* unbounded: above the initial value is fine */
    assert_int_equal(mproc_sem_value(s), 5);
    mproc_sem_free(s);

    assert_ok(mproc_sem_new(&s, INT32_MAX, 0));
    assert_code(mproc_sem_release(s), -EOVERFLOW);
    mproc_sem_free(s);
}

static void test_sem_bounded(void **state)
{
    (void)state;
    mproc_sem *s;
    assert_ok(mproc_sem_new(&s, 2, MPROC_SEM_BOUNDED));
    assert_code(mproc_sem_release(s), -EOVERFLOW);
    assert_ok(mproc_sem_acquire(s, 0));
    assert_ok(mproc_sem_acquire(s, 0));
    assert_ok(mproc_sem_release(s));
    assert_ok(mproc_sem_release(s));
    assert_code(mproc_sem_release(s), -EOVERFLOW);
    assert_int_equal(mproc_sem_value(s), 2);
    mproc_sem_free(s);
    assert_ok(mproc_sem_new(&s, 0, MPROC_SEM_BOUNDED));
    assert_code(mproc_sem_release(s), -EOVERFLOW); /* a bound of 0 */
    mproc_sem_free(s);
}

static int sem_waiter(void *arg)
{
    struct shared *sh = arg;
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_RELEASE);
    return code(mproc_sem_acquire(&sh->sem, 20));
}

/* Sleepers in other processes are woken, one per release. */
static void test_sem_wakes_sleepers(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_sem_init(&sh->sem, 0, 0));
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = mproc_test_fork(sem_waiter, sh);
    wait_until(&sh->ready, 3);
    mproc_test_sleep(0.05);
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_sem_release(&sh->sem));
    for (int i = 0; i < 3; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 20), 0);
    assert_int_equal(mproc_sem_value(&sh->sem), 0);
    shared_free(sh);
}

enum { ITEMS = 3000 };

static int producer(void *arg)
{
    struct shared *sh = arg;
    for (int i = 1; i <= ITEMS; i++) {
        if (mproc_sem_acquire(&sh->empty, 20) != 0)
            return 1;
        if (mproc_lock_acquire(&sh->mutex, 20) != 0)
            return 2;
        sh->ring[sh->tail] = i;
        sh->tail = (sh->tail + 1) % RING;
        mproc_lock_release(&sh->mutex);
        if (mproc_sem_release(&sh->full) != 0)
            return 3;
    }
    return 0;
}

static int consumer(void *arg)
{
    struct shared *sh = arg;
    for (;;) {
        if (mproc_sem_acquire(&sh->full, 20) != 0)
            return 1;
        if (mproc_lock_acquire(&sh->mutex, 20) != 0)
            return 2;
        int v = sh->ring[sh->head];
        sh->head = (sh->head + 1) % RING;
        sh->sum += v;
        sh->count++;
        mproc_lock_release(&sh->mutex);
        if (mproc_sem_release(&sh->empty) != 0)
            return 3;
        if (v == 0)
            return 0; /* the stop item */
    }
}

/* A bounded buffer between 2 producers and 2 consumers, counted by semaphores. */
static void test_sem_producer_consumer(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_sem_init(&sh->empty, RING, MPROC_SEM_BOUNDED));
    assert_ok(mproc_sem_init(&sh->full, 0, 0));
    assert_ok(mproc_lock_init(&sh->mutex, 0));
    pid_t c[2], p[2];
    for (int i = 0; i < 2; i++)
        c[i] = mproc_test_fork(consumer, sh);
    for (int i = 0; i < 2; i++)
        p[i] = mproc_test_fork(producer, sh);
    for (int i = 0; i < 2; i++)
        assert_int_equal(mproc_test_exitcode(p[i], 60), 0);
    for (int i = 0; i < 2; i++) { /* one stop item per consumer */
        assert_ok(mproc_sem_acquire(&sh->empty, 20));
        assert_ok(mproc_lock_acquire(&sh->mutex, 20));
        sh->ring[sh->tail] = 0;
        sh->tail = (sh->tail + 1) % RING;
        assert_ok(mproc_lock_release(&sh->mutex));
        assert_ok(mproc_sem_release(&sh->full));
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(mproc_test_exitcode(c[i], 60), 0);
    assert_int_equal(sh->count, 2 * ITEMS + 2);
    assert_int_equal(sh->sum, 2L * ITEMS * (ITEMS + 1) / 2);
    assert_int_equal(mproc_sem_value(&sh->full), 0);
    assert_int_equal(mproc_sem_value(&sh->empty), RING);
    shared_free(sh);
}

static int sem_take_and_die(void *arg)
{
    struct shared *sh = arg;
    if (mproc_sem_acquire(&sh->sem, 10) != 0)
        return 1;
    kill(getpid(), SIGKILL);
    return 2;
}

/* A semaphore has no owner: a holder's death loses its unit, nothing else. */
static void test_sem_holder_dies(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_sem_init(&sh->sem, 1, MPROC_SEM_BOUNDED));
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(sem_take_and_die, sh), 20), -SIGKILL);
    assert_int_equal(mproc_sem_value(&sh->sem), 0);
    assert_code(mproc_sem_acquire(&sh->sem, 0.01), -ETIMEDOUT);
    assert_ok(mproc_sem_release(&sh->sem)); /* anyone may give the unit back */
    assert_ok(mproc_sem_acquire(&sh->sem, 0));
    assert_ok(mproc_sem_release(&sh->sem));
    /* A waiter killed while asleep does not disturb the others either. */
    assert_ok(mproc_sem_acquire(&sh->sem, 0));
    sh->ready = 0;
    pid_t victim = mproc_test_fork(sem_waiter, sh);
    wait_until(&sh->ready, 1);
    mproc_test_sleep(0.05);
    kill(victim, SIGKILL);
    assert_int_equal(mproc_test_exitcode(victim, 10), -SIGKILL);
    pid_t waiter = mproc_test_fork(sem_waiter, sh);
    wait_until(&sh->ready, 2);
    assert_ok(mproc_sem_release(&sh->sem));
    assert_int_equal(mproc_test_exitcode(waiter, 20), 0);
    shared_free(sh);
}

/* ---- Event ---------------------------------------------------------------- */

static void test_event_bad_input(void **state)
{
    (void)state;
    mproc_event zero, *e = NULL;
    memset(&zero, 0, sizeof zero);
    assert_code(mproc_event_init(NULL), -EINVAL);
    assert_code(mproc_event_new(NULL), -EINVAL);
    assert_code(mproc_event_set(&zero), -EINVAL);
    assert_code(mproc_event_clear(&zero), -EINVAL);
    assert_code(mproc_event_is_set(&zero), -EINVAL);
    assert_code(mproc_event_wait(&zero, 0), -EINVAL);
    assert_code(mproc_event_set(NULL), -EINVAL);
    assert_code(mproc_event_wait(NULL, 1), -EINVAL);
    mproc_event_free(NULL);
    assert_ok(mproc_event_new(&e));
    assert_code(mproc_event_wait(e, -1), -EINVAL);
    assert_code(mproc_event_wait(e, NAN), -EINVAL);
    mproc_event_free(e);
}

static void test_event_basic(void **state)
{
    (void)state;
    mproc_event *e;
    assert_ok(mproc_event_new(&e));
    assert_int_equal(mproc_event_is_set(e), 0);
    assert_code(mproc_event_wait(e, 0), -ETIMEDOUT);
    double t0 = mproc_test_now();
    assert_code(mproc_event_wait(e, 0.1), -ETIMEDOUT);
    assert_true(mproc_test_now() - t0 >= 0.09);
    assert_ok(mproc_event_set(e));
    assert_ok(mproc_event_set(e));
    assert_int_equal(mproc_event_is_set(e), 1);
    assert_ok(mproc_event_wait(e, 0));
    assert_ok(mproc_event_wait(e, MPROC_FOREVER));
    assert_ok(mproc_event_clear(e));
    assert_int_equal(mproc_event_is_set(e), 0);
    assert_code(mproc_event_wait(e, 0), -ETIMEDOUT);
    mproc_event_free(e);
}

static int event_waiter(void *arg)
{
    struct shared *sh = arg;
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_RELEASE);
    int rc = mproc_event_wait(&sh->event, sh->flag > 0 ? sh->flag : 20);
    return code(rc);
}

/* set() wakes every waiter in every process at once. */
static void test_event_wakes_many(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_event_init(&sh->event));
    pid_t pids[5];
    for (int i = 0; i < 5; i++)
        pids[i] = mproc_test_fork(event_waiter, sh);
    wait_until(&sh->ready, 5);
    mproc_test_sleep(0.1);
    for (int i = 0; i < 5; i++)
        assert_true(mproc_test_pid_alive(pids[i])); /* really waiting */
    assert_ok(mproc_event_set(&sh->event));
    for (int i = 0; i < 5; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 10), 0);
    shared_free(sh);
}

/* A waiter woken by set() succeeds even if the flag is cleared before it runs: it is
 * stopped while set() and clear() happen, and only then continues. */
static void test_event_set_then_clear(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_event_init(&sh->event));
    sh->flag = 3; /* the waiter's timeout, seconds */
    pid_t pid = mproc_test_fork(event_waiter, sh);
    wait_until(&sh->ready, 1);
    mproc_test_sleep(0.1);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
    assert_ok(mproc_event_set(&sh->event));
    assert_ok(mproc_event_clear(&sh->event));
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_int_equal(mproc_test_exitcode(pid, 30), 0);
    assert_int_equal(mproc_event_is_set(&sh->event), 0);
    shared_free(sh);
}

/* ---- Condition -------------------------------------------------------------- */

static void test_cond_bad_input(void **state)
{
    (void)state;
    mproc_cond zero, *c = NULL;
    memset(&zero, 0, sizeof zero);
    assert_code(mproc_cond_init(NULL, 0), -EINVAL);
    assert_code(mproc_cond_init(&zero, 1u << 9), -EINVAL);
    assert_code(mproc_cond_new(NULL, 0), -EINVAL);
    assert_code(mproc_cond_new(&c, 1u << 9), -EINVAL);
    assert_null(c);
    memset(&zero, 0, sizeof zero);
    assert_null(mproc_cond_lock(&zero));
    assert_null(mproc_cond_lock(NULL));
    assert_code(mproc_cond_wait(&zero, 0), -EINVAL);
    assert_code(mproc_cond_notify(&zero, 1), -EINVAL);
    assert_code(mproc_cond_notify_all(&zero), -EINVAL);
    assert_code(mproc_cond_wait(NULL, 0), -EINVAL);
    mproc_cond_free(NULL);

    assert_ok(mproc_cond_new(&c, 0));
    assert_code(mproc_cond_wait(c, 1), -EPERM); /* lock not held */
    assert_code(mproc_cond_notify(c, 1), -EPERM);
    assert_code(mproc_cond_notify_all(c), -EPERM);
    assert_ok(mproc_lock_acquire(mproc_cond_lock(c), 0));
    assert_code(mproc_cond_wait(c, -1), -EINVAL);
    assert_code(mproc_cond_wait(c, NAN), -EINVAL);
    assert_code(mproc_cond_notify(c, -1), -EINVAL);
    assert_ok(mproc_cond_notify(c, 0));
    assert_ok(mproc_cond_notify(c, 1)); /* nobody waits: fine */
    assert_ok(mproc_cond_notify_all(c));
    assert_ok(mproc_lock_release(mproc_cond_lock(c)));
    mproc_cond_free(c);
}

static void cond_timeout(unsigned flags)
{
    mproc_cond *c;
    assert_ok(mproc_cond_new(&c, flags));
    mproc_lock *l = mproc_cond_lock(c);
    assert_ok(mproc_lock_acquire(l, 0));
    assert_code(mproc_cond_wait(c, 0), -ETIMEDOUT);
    double t0 = mproc_test_now();
    assert_code(mproc_cond_wait(c, 0.1), -ETIMEDOUT);
    double dt = mproc_test_now() - t0;
    assert_true(dt >= 0.09 && dt < 3.0);
    assert_ok(mproc_lock_release(l)); /* re-acquired after the timeout */
    assert_code(mproc_lock_release(l), -EPERM);
    mproc_cond_free(c);
}

static void test_cond_wait_timeout(void **state)
{
    (void)state;
    cond_timeout(0);
    cond_timeout(MPROC_COND_PLAIN_LOCK);
}

/* Child: take the lock (proving the waiter released it fully), flag, notify. */
static int cond_notifier(void *arg)
{
    struct shared *sh = arg;
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    if (mproc_lock_acquire(l, 20) != 0)
        return 1;
    sh->flag = 1;
    int rc = mproc_cond_notify(&sh->cond, 1);
    mproc_lock_release(l);
    if (rc != 0)
        return 2;
    /* Not holding it now. */
    return mproc_cond_notify(&sh->cond, 1) == -EPERM ? 0 : 3;
}

/* wait() releases an RLock held 3 deep and restores the depth. */
static void test_cond_rlock_depth(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_cond_init(&sh->cond, 0));
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_lock_acquire(l, 0));
    pid_t pid = mproc_test_fork(cond_notifier, sh);
    double end = mproc_test_now() + 20;
    while (sh->flag == 0 && mproc_test_now() < end) {
        int rc = mproc_cond_wait(&sh->cond, 20);
        assert_true(rc == 0 || rc == -ETIMEDOUT);
    }
    assert_int_equal(sh->flag, 1);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_lock_release(l));
    assert_code(mproc_lock_release(l), -EPERM);
    shared_free(sh);
}

static int cond_consumer(void *arg)
{
    struct shared *sh = arg;
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    for (;;) {
        if (mproc_lock_acquire(l, 20) != 0)
            return 1;
        while (sh->count == 0) {
            int rc = mproc_cond_wait(&sh->cond, 20);
            if (rc != 0) {
                mproc_lock_release(l);
                return 2;
            }
        }
        int v = sh->ring[sh->head];
        sh->head = (sh->head + 1) % RING;
        sh->count--;
        sh->sum += v;
        mproc_cond_notify_all(&sh->cond);
        mproc_lock_release(l);
        if (v == 0)
            return 0;
    }
}

static int cond_put(struct shared *sh, int v)
{
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    if (mproc_lock_acquire(l, 20) != 0)
        return 1;
    while (sh->count == RING) {
        if (mproc_cond_wait(&sh->cond, 20) != 0) {
            mproc_lock_release(l);
            return 2;
        }
    }
    sh->ring[sh->tail] = v;
    sh->tail = (sh->tail + 1) % RING;
    sh->count++;
    int rc = mproc_cond_notify_all(&sh->cond);
    mproc_lock_release(l);
    return rc == 0 ? 0 : 3;
}

static int cond_producer(void *arg)
{
    struct shared *sh = arg;
    for (int i = 1; i <= ITEMS / 3; i++)
        if (cond_put(sh, i) != 0)
            return 1;
    return 0;
}

/* A bounded buffer guarded by one Condition (notify_all), 2 producers, 2 consumers. */
static void cond_producer_consumer(unsigned flags)
{
    struct shared *sh = shared_new();
    assert_ok(mproc_cond_init(&sh->cond, flags));
    pid_t c[2], p[2];
    for (int i = 0; i < 2; i++)
        c[i] = mproc_test_fork(cond_consumer, sh);
    for (int i = 0; i < 2; i++)
        p[i] = mproc_test_fork(cond_producer, sh);
    for (int i = 0; i < 2; i++)
        assert_int_equal(mproc_test_exitcode(p[i], 60), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cond_put(sh, 0), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(mproc_test_exitcode(c[i], 60), 0);
    int n = ITEMS / 3;
    assert_int_equal(sh->sum, 2L * n * (n + 1) / 2);
    assert_int_equal(sh->count, 0);
    shared_free(sh);
}

static void test_cond_producer_consumer(void **state)
{
    (void)state;
    cond_producer_consumer(0);
    cond_producer_consumer(MPROC_COND_PLAIN_LOCK);
}

static int ticket_taker(void *arg)
{
    struct shared *sh = arg;
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    if (mproc_lock_acquire(l, 20) != 0)
        return 1;
    sh->ready++;
    while (sh->tickets == 0) {
        if (mproc_cond_wait(&sh->cond, 20) != 0) {
            mproc_lock_release(l);
            return 2;
        }
    }
    sh->tickets--;
    mproc_lock_release(l);
    return 0;
}

/* notify(1) wakes a waiter per call: three notifies let three waiters through. */
static void test_cond_notify_one(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_cond_init(&sh->cond, MPROC_COND_PLAIN_LOCK));
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = mproc_test_fork(ticket_taker, sh);
    wait_until(&sh->ready, 3);
    mproc_test_sleep(0.05);
    for (int i = 0; i < 3; i++) {
        assert_ok(mproc_lock_acquire(l, 20));
        sh->tickets++;
        assert_ok(mproc_cond_notify(&sh->cond, 1));
        assert_ok(mproc_lock_release(l));
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 20), 0);
    assert_int_equal(sh->tickets, 0);
    shared_free(sh);
}

/* Child: wait on the condition; report what wait returned, then repair. */
static int cond_waiter_reports(void *arg)
{
    struct shared *sh = arg;
    mproc_lock *l = mproc_cond_lock(&sh->cond);
    if (mproc_lock_acquire(l, 20) != 0)
        return 1;
    __atomic_store_n(&sh->ready, 1, __ATOMIC_RELEASE);
    int rc = mproc_cond_wait(&sh->cond, sh->flag == 2 ? 0.3 : 20);
    if (rc == MPROC_OWNER_DIED && mproc_lock_consistent(l) != 0)
        return 3;
    if (rc >= 0 || rc == -ETIMEDOUT)
        if (mproc_lock_release(l) != 0)
            return 4;
    return rc == MPROC_OWNER_DIED ? 100 : code(rc);
}

static int cond_take_notify_die(void *arg)
{
    struct shared *sh = arg;
    if (mproc_lock_acquire(mproc_cond_lock(&sh->cond), 20) != 0)
        return 1;
    if (sh->flag == 1)
        mproc_cond_notify_all(&sh->cond);
    kill(getpid(), SIGKILL);
    return 2;
}

/* The lock's holder dies while another process waits: wait() returns OWNER_DIED,
 * whether it was notified (flag 1) or timed out (flag 2). */
static void test_cond_holder_killed(void **state)
{
    (void)state;
    for (int flag = 1; flag <= 2; flag++) {
        struct shared *sh = shared_new();
        assert_ok(mproc_cond_init(&sh->cond, 0));
        sh->flag = flag;
        pid_t waiter = mproc_test_fork(cond_waiter_reports, sh);
        wait_until(&sh->ready, 1);
        /* The killer can only take the lock once the waiter sleeps in wait(). */
        pid_t killer = mproc_test_fork(cond_take_notify_die, sh);
        assert_int_equal(mproc_test_exitcode(killer, 20), -SIGKILL);
        assert_int_equal(mproc_test_exitcode(waiter, 20), 100);
        /* Repaired by the waiter: normal again. */
        assert_ok(mproc_lock_acquire(mproc_cond_lock(&sh->cond), 0));
        assert_ok(mproc_lock_release(mproc_cond_lock(&sh->cond)));
        shared_free(sh);
    }
}

/* ---- Barrier ---------------------------------------------------------------- */

static void test_barrier_bad_input(void **state)
{
    (void)state;
    mproc_barrier zero, *b = NULL;
    memset(&zero, 0, sizeof zero);
    assert_code(mproc_barrier_init(NULL, 2), -EINVAL);
    assert_code(mproc_barrier_init(&zero, 0), -EINVAL);
    assert_code(mproc_barrier_init(&zero, MPROC_BARRIER_MAX_PARTIES + 1), -EINVAL);
    assert_ok(mproc_barrier_init(&zero, MPROC_BARRIER_MAX_PARTIES));
    assert_code(mproc_barrier_new(NULL, 2), -EINVAL);
    assert_code(mproc_barrier_new(&b, 0), -EINVAL);
    assert_null(b);
    memset(&zero, 0, sizeof zero);
    assert_code(mproc_barrier_wait(&zero, 0), -EINVAL);
    assert_code(mproc_barrier_abort(&zero), -EINVAL);
    assert_code(mproc_barrier_reset(&zero), -EINVAL);
    assert_code(mproc_barrier_broken(&zero), -EINVAL);
    assert_code(mproc_barrier_parties(&zero), -EINVAL);
    assert_code(mproc_barrier_n_waiting(&zero), -EINVAL);
    assert_code(mproc_barrier_wait(NULL, 0), -EINVAL);
    mproc_barrier_free(NULL);
    assert_ok(mproc_barrier_new(&b, 2));
    assert_code(mproc_barrier_wait(b, -1), -EINVAL);
    assert_code(mproc_barrier_wait(b, NAN), -EINVAL);
    assert_int_equal(mproc_barrier_n_waiting(b), 0); /* a rejected wait did not arrive */
    assert_int_equal(mproc_barrier_broken(b), 0);
    assert_int_equal(mproc_barrier_parties(b), 2);
    mproc_barrier_free(b);
}

static void test_barrier_single_and_timeout(void **state)
{
    (void)state;
    mproc_barrier *b;
    assert_ok(mproc_barrier_new(&b, 1));
    for (int i = 0; i < 3; i++)
        assert_int_equal(mproc_barrier_wait(b, 0), 0);
    mproc_barrier_free(b);

    assert_ok(mproc_barrier_new(&b, 2));
    double t0 = mproc_test_now();
    assert_code(mproc_barrier_wait(b, 0.1), -ETIMEDOUT);
    assert_true(mproc_test_now() - t0 >= 0.09);
    assert_int_equal(mproc_barrier_broken(b), 1);
    assert_code(mproc_barrier_wait(b, 1), -MPROC_EBROKEN); /* persists */
    assert_code(mproc_barrier_wait(b, 0), -MPROC_EBROKEN);
    assert_ok(mproc_barrier_reset(b));
    assert_int_equal(mproc_barrier_broken(b), 0);
    assert_code(mproc_barrier_wait(b, 0), -ETIMEDOUT);
    assert_int_equal(mproc_barrier_broken(b), 1);
    mproc_barrier_free(b);
}

static int barrier_rounds(void *arg)
{
    struct shared *sh = arg;
    int me = __atomic_fetch_add(&sh->ready, 1, __ATOMIC_ACQ_REL);
    for (int r = 0; r < ROUNDS; r++) {
        int rc = mproc_barrier_wait(&sh->barrier, 20);
        if (rc < 0)
            return code(rc);
        sh->rounds[r][me] = rc;
    }
    return 0;
}

/* 4 processes, 100 rounds: every round's arrival indices are a permutation of 0..3. */
static void test_barrier_rounds(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_barrier_init(&sh->barrier, NPROC));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = mproc_test_fork(barrier_rounds, sh);
    for (int i = 0; i < NPROC; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 60), 0);
    for (int r = 0; r < ROUNDS; r++) {
        int seen = 0;
        for (int i = 0; i < NPROC; i++) {
            int idx = sh->rounds[r][i];
            assert_true(idx >= 0 && idx < NPROC);
            seen |= 1 << idx;
        }
        assert_int_equal(seen, (1 << NPROC) - 1);
    }
    assert_int_equal(mproc_barrier_broken(&sh->barrier), 0);
    assert_int_equal(mproc_barrier_n_waiting(&sh->barrier), 0);
    shared_free(sh);
}

static int barrier_once(void *arg)
{
    struct shared *sh = arg;
    int me = __atomic_fetch_add(&sh->ready, 1, __ATOMIC_ACQ_REL);
    double timeout = sh->flag > 0 ? sh->flag / 10.0 : 30;
    int rc = mproc_barrier_wait(&sh->barrier, timeout);
    sh->t_done[me] = mproc_test_now();
    return code(rc);
}

static int die_at_once(void *arg)
{
    (void)arg;
    kill(getpid(), SIGKILL);
    return 0;
}

/* A party killed before it arrives: the others break at the first timeout: that one
 * gets -ETIMEDOUT, the other -MPROC_EBROKEN. */
static void test_barrier_party_never_arrives(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_barrier_init(&sh->barrier, 3));
    sh->flag = 5; /* 0.5 s */
    pid_t dead = mproc_test_fork(die_at_once, sh);
    pid_t a = mproc_test_fork(barrier_once, sh);
    pid_t b = mproc_test_fork(barrier_once, sh);
    assert_int_equal(mproc_test_exitcode(dead, 10), -SIGKILL);
    int ra = mproc_test_exitcode(a, 20), rb = mproc_test_exitcode(b, 20);
    assert_true((ra == 200 && rb == 201) || (ra == 201 && rb == 200));
    assert_int_equal(mproc_barrier_broken(&sh->barrier), 1);
    assert_int_equal(mproc_barrier_n_waiting(&sh->barrier), 0);
    shared_free(sh);
}

/* `point`: NULL to SIGKILL the third party from outside while it sleeps in wait(), else
 * the fault point inside wait() where it kills itself. */
static void party_killed_while_waiting(const char *point)
{
    struct shared *sh = shared_new();
    assert_ok(mproc_barrier_init(&sh->barrier, 4));
    pid_t pids[3];
    for (int i = 0; i < 2; i++)
        pids[i] = mproc_test_fork(barrier_once, sh);
    wait_until(&sh->ready, 2);
    double t0;
    if (point != NULL) {
#ifdef MPROC_FAULT_INJECTION
        assert_ok(mproc_fault_set(point, MPROC_FAULT_KILL, NULL));
        pids[2] = mproc_test_fork(barrier_once, sh);
        assert_ok(mproc_fault_clear());
        t0 = mproc_test_now();
#endif
    } else {
        pids[2] = mproc_test_fork(barrier_once, sh);
        double end = mproc_test_now() + 10;
        while (mproc_barrier_n_waiting(&sh->barrier) < 3 && mproc_test_now() < end)
            mproc_test_sleep(0.001);
        assert_int_equal(mproc_barrier_n_waiting(&sh->barrier), 3);
        mproc_test_sleep(0.1); /* let it settle in its sleep */
        t0 = mproc_test_now();
        kill(pids[2], SIGKILL);
    }
    /* The survivors (30 s timeouts) notice the death promptly, without anyone
     * reaping the dead one first (it stays a zombie until we wait for it below). */
    for (int i = 0; i < 2; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 20), 201);
    for (int i = 0; i < 2; i++)
        assert_true(sh->t_done[i] - t0 < 3.0);
    assert_int_equal(mproc_test_exitcode(pids[2], 10), -SIGKILL);
    assert_int_equal(mproc_barrier_broken(&sh->barrier), 1);
    /* Reset makes it usable again; the dead party's record does not break it anew. */
    assert_ok(mproc_barrier_reset(&sh->barrier));
    sh->ready = 0;
    for (int i = 0; i < 3; i++)
        pids[i] = mproc_test_fork(barrier_once, sh);
    wait_until(&sh->ready, 3);
    mproc_test_sleep(0.2); /* a few liveness polls */
    int idx = mproc_barrier_wait(&sh->barrier, 20);
    assert_true(idx >= 0 && idx < 4);
    int seen = 1 << idx;
    for (int i = 0; i < 3; i++) {
        int rc = mproc_test_exitcode(pids[i], 20);
        assert_true(rc >= 0 && rc < 4);
        seen |= 1 << rc;
    }
    assert_int_equal(seen, 15);
    shared_free(sh);
}

static void test_barrier_party_killed_while_waiting(void **state)
{
    (void)state;
    party_killed_while_waiting(NULL);
}

#ifdef MPROC_FAULT_INJECTION
/* The third party dies inside wait(), right after it recorded itself. */
static void test_barrier_party_dies_in_wait(void **state)
{
    (void)state;
    party_killed_while_waiting("barrier.wait.registered");
}

/* The third party dies the instant it is counted as arrived: it must already be known
 * by then (it was counted before it recorded its pid, and the others waited until
 * their own timeouts). */
static void test_barrier_party_dies_as_it_arrives(void **state)
{
    (void)state;
    party_killed_while_waiting("barrier.wait.arrived");
}
#endif

static void test_barrier_abort_reset(void **state)
{
    (void)state;
    struct shared *sh = shared_new();
    assert_ok(mproc_barrier_init(&sh->barrier, 3));
    pid_t pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = mproc_test_fork(barrier_once, sh);
    double end = mproc_test_now() + 10;
    while (mproc_barrier_n_waiting(&sh->barrier) < 2 && mproc_test_now() < end)
        mproc_test_sleep(0.001);
    assert_int_equal(mproc_barrier_n_waiting(&sh->barrier), 2);
    assert_ok(mproc_barrier_abort(&sh->barrier));
    for (int i = 0; i < 2; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 10), 201);
    assert_int_equal(mproc_barrier_broken(&sh->barrier), 1);
    assert_ok(mproc_barrier_abort(&sh->barrier)); /* again: no change */
    assert_code(mproc_barrier_wait(&sh->barrier, 1), -MPROC_EBROKEN);
    assert_ok(mproc_barrier_reset(&sh->barrier));
    assert_int_equal(mproc_barrier_broken(&sh->barrier), 0);

    /* reset while a party waits: it gets -MPROC_EBROKEN, the barrier stays usable. */
    sh->ready = 0;
    pid_t pid = mproc_test_fork(barrier_once, sh);
    end = mproc_test_now() + 10;
    while (mproc_barrier_n_waiting(&sh->barrier) < 1 && mproc_test_now() < end)
        mproc_test_sleep(0.001);
    assert_ok(mproc_barrier_reset(&sh->barrier));
    assert_int_equal(mproc_test_exitcode(pid, 10), 201);
    assert_int_equal(mproc_barrier_broken(&sh->barrier), 0);
    assert_int_equal(mproc_barrier_n_waiting(&sh->barrier), 0);
    for (int i = 0; i < 2; i++)
        pids[i] = mproc_test_fork(barrier_once, sh);
    int idx = mproc_barrier_wait(&sh->barrier, 20);
    int r0 = mproc_test_exitcode(pids[0], 20), r1 = mproc_test_exitcode(pids[1], 20);
    assert_true(idx >= 0 && r0 >= 0 && r1 >= 0 && idx < 3 && r0 < 3 && r1 < 3);
    assert_int_equal((1 << idx) | (1 << r0) | (1 << r1), 7);
    shared_free(sh);
}

#ifdef MPROC_FAULT_INJECTION
static void test_new_fails_cleanly(void **state)
{
    (void)state;
    assert_ok(mproc_fault_set("sys.mmap", MPROC_FAULT_FAIL,
                              &(mproc_fault_opts){.code = -ENOMEM, .sticky = 1}));
    mproc_sem *s = NULL;
    mproc_event *e = NULL;
    mproc_cond *c = NULL;
    mproc_barrier *b = NULL;
    assert_code(mproc_sem_new(&s, 1, 0), -ENOMEM);
    assert_code(mproc_event_new(&e), -ENOMEM);
    assert_code(mproc_cond_new(&c, 0), -ENOMEM);
    assert_code(mproc_barrier_new(&b, 2), -ENOMEM);
    assert_null(s);
    assert_null(e);
    assert_null(c);
    assert_null(b);
    assert_ok(mproc_fault_clear());
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_sem_bad_input),
        MPROC_TEST(test_sem_counting_and_timeouts),
        MPROC_TEST(test_sem_bounded),
        MPROC_TEST(test_sem_wakes_sleepers),
        MPROC_TEST(test_sem_producer_consumer),
        MPROC_TEST(test_sem_holder_dies),
        MPROC_TEST(test_event_bad_input),
        MPROC_TEST(test_event_basic),
        MPROC_TEST(test_event_wakes_many),
        MPROC_TEST(test_event_set_then_clear),
        MPROC_TEST(test_cond_bad_input),
        MPROC_TEST(test_cond_wait_timeout),
        MPROC_TEST(test_cond_rlock_depth),
        MPROC_TEST(test_cond_producer_consumer),
        MPROC_TEST(test_cond_notify_one),
        MPROC_TEST(test_cond_holder_killed),
        MPROC_TEST(test_barrier_bad_input),
        MPROC_TEST(test_barrier_single_and_timeout),
        MPROC_TEST(test_barrier_rounds),
        MPROC_TEST(test_barrier_party_never_arrives),
        MPROC_TEST(test_barrier_party_killed_while_waiting),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_barrier_party_dies_in_wait),
        MPROC_TEST(test_barrier_party_dies_as_it_arrives),
#endif
        MPROC_TEST(test_barrier_abort_reset),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_new_fails_cleanly),
#endif
    };
    return mproc_test_run(tests);
}
