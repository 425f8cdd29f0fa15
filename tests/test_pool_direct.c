/* tests/test_pool_direct.c - blocking applies that go straight to an idle worker
 * (src/pool/transport.c, the local transport's direct applies), and the promise they keep without
 * the supervisor in the path: a worker that dies before beginning the task hands it back (it runs
 * once, elsewhere); one that dies in it fails it once; terminate cancels it; a caller that stops
 * waiting leaves nothing stuck; many threads at once each get their own outcome; idle workers
 * sleep. The fault matrix of the usual path is repeated on this one.
 */
#include "harness.h"
#include "internal.h"

#include "fnref.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* counters the workers write (the harness's region, shared under every start method) */
struct shared {
    _Atomic int runs; /* tasks begun */
    _Atomic int pid;  /* the worker of the last task begun */
};
static struct shared *sh;

struct req {
    int64_t x;
    int32_t nap_ms; /* sleep this long first */
    int32_t kill;   /* SIGKILL itself instead of answering */
};

static int task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    assert_true(in_len == sizeof(struct req));
    struct req j;
    memcpy(&j, in, sizeof j);
    atomic_store(&sh->pid, (int)getpid()); /* before runs: a test that saw runs move reads
                                              this worker's pid, not an older one */
    atomic_fetch_add(&sh->runs, 1);
    if (j.nap_ms > 0)
        mproc_test_sleep(j.nap_ms / 1000.0);
    if (j.kill)
        kill(getpid(), SIGKILL);
    if (j.x < 0)
        return mproc_task_fail(t, -EDOM, "negative: %lld", (long long)j.x);
    int64_t y = j.x + 1;
    memcpy(out, &y, sizeof y);
    *out_len = sizeof y;
    return 0;
}

static int apply(mproc_pool *p, struct req j, int64_t *y, double timeout)
{
    size_t len = 0;
    int rc = mproc_pool_apply(p, task, &j, sizeof j, y, sizeof *y, &len, NULL, timeout);
    if (rc == 0)
        assert_int_equal(len, sizeof *y);
    return rc;
}

static mproc_pool *pool_of(int n)
{
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = n}));
    return p;
}

static mproc_pool_stats stats(mproc_pool *p)
{
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    return st;
}

/* Wait (at most 10 s) until the pool has accepted `n` tasks. */
static void wait_submitted(mproc_pool *p, uint64_t n)
{
    double t0 = mproc_test_now();
    while (stats(p).submitted < n) {
        if (mproc_test_now() - t0 > 10)
            fail_msg("the apply was never accepted");
        mproc_test_sleep(0.001);
    }
}

/* Wait (at most 10 s) until every accepted task has an outcome. */
static void wait_settled(mproc_pool *p)
{
    double t0 = mproc_test_now();
    while (stats(p).pending != 0) {
        assert_true(mproc_test_now() - t0 < 10);
        mproc_test_sleep(0.005);
    }
}

static void wait_runs(int n)
{
    double t0 = mproc_test_now();
    while (atomic_load(&sh->runs) < n) {
        if (mproc_test_now() - t0 > 10)
            fail_msg("the task never began");
        mproc_test_sleep(0.001);
    }
}

struct call {
    pthread_t th;
    mproc_pool *p;
    struct req j;
    int64_t y;
    int rc;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    c->rc = apply(c->p, c->j, &c->y, 30);
    return NULL;
}

static void call_start(struct call *c, mproc_pool *p, struct req j)
{
    *c = (struct call){.p = p, .j = j, .rc = 1};
    assert_int_equal(pthread_create(&c->th, NULL, call_main, c), 0);
}

/* ---- outcomes ------------------------------------------------------------------------- */

static void test_results_and_failures(void **state)
{
    (void)state;
    atomic_store(&sh->runs, 0);
    mproc_pool *p = pool_of(2);
    int64_t y = 0;
    for (int i = 0; i < 1000; i++) {
        assert_ok(apply(p, (struct req){.x = i}, &y, 10));
        assert_int_equal(y, i + 1);
    }
    assert_code(apply(p, (struct req){.x = -1}, &y, 10), -EDOM);
    /* an output larger than the caller's room: -MPROC_ETOOSMALL and the size needed */
    struct req j = {.x = 1};
    size_t len = 0;
    char small[4];
    assert_code(mproc_pool_apply(p, task, &j, sizeof j, small, sizeof small, &len, NULL, 10),
                -MPROC_ETOOSMALL);
    assert_int_equal(len, sizeof(int64_t));
    mproc_pool_stats st = stats(p);
    assert_int_equal(st.submitted, 1002);
    assert_int_equal(st.done, 1002);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.pending, 0);
    assert_int_equal(atomic_load(&sh->runs), 1002);
    mproc_worker_stats ws[2];
    assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    assert_int_equal(ws[0].done + ws[1].done, 1002);
    assert_int_equal(ws[0].failed + ws[1].failed, 1);
    mproc_pool_free(p);
}

/* Many threads at once: each gets its own outcome, none is lost or crossed. */
struct hammer {
    pthread_t th;
    mproc_pool *p;
    int id;
    int bad;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 1500; i++) {
        int64_t x = (int64_t)h->id * 1000000 + i, y = 0;
        if (apply(h->p, (struct req){.x = x}, &y, 30) != 0 || y != x + 1)
            h->bad++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    atomic_store(&sh->runs, 0);
    mproc_pool *p = pool_of(2);
    struct hammer h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){.p = p, .id = i};
        assert_int_equal(pthread_create(&h[i].th, NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(h[i].th, NULL);
        assert_int_equal(h[i].bad, 0);
    }
    mproc_pool_stats st = stats(p);
    assert_int_equal(st.submitted, 6000);
    assert_int_equal(st.done, 6000);
    assert_int_equal(st.failed, 0);
    assert_int_equal(atomic_load(&sh->runs), 6000);
    mproc_pool_free(p);
}

/* ---- deaths ------------------------------------------------------------------------------ */

/* The worker dies with the task posted but not begun (it is stopped, then killed): the
 * task goes to the replacement and runs exactly once there. */
static void test_death_before_begin(void **state)
{
    (void)state;
    atomic_store(&sh->runs, 0);
    mproc_pool *p = pool_of(1);
    mproc_worker_stats ws[1];
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, ws, 1));
    pid_t victim = ws[0].pid;
    assert_true(victim > 0);
    assert_int_equal(kill(victim, SIGSTOP), 0);
    struct call c;
    call_start(&c, p, (struct req){.x = 41});
    wait_submitted(p, 1);
    mproc_test_sleep(0.05);
    assert_int_equal(atomic_load(&sh->runs), 0); /* stopped: it has not begun */
    assert_int_equal(kill(victim, SIGKILL), 0);
    pthread_join(c.th, NULL);
    assert_ok(c.rc);
    assert_int_equal(c.y, 42);
    assert_int_equal(atomic_load(&sh->runs), 1);
    assert_true(atomic_load(&sh->pid) != victim);
    st = stats(p);
    assert_int_equal(st.submitted, 1);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.restarts, 1);
    int64_t y;
    assert_ok(apply(p, (struct req){.x = 1}, &y, 10));
    assert_int_equal(y, 2);
    mproc_pool_free(p);
}

/* The worker is killed from outside while it runs the task: the task fails once with
 * -MPROC_EDIED, the others are untouched, a replacement takes the next one. */
static void test_death_while_running(void **state)
{
    (void)state;
    atomic_store(&sh->runs, 0);
    mproc_pool *p = pool_of(2);
    struct call c;
    call_start(&c, p, (struct req){.x = 1, .nap_ms = 20000});
    wait_runs(1);
    pid_t victim = atomic_load(&sh->pid);
    int64_t y;
    assert_ok(apply(p, (struct req){.x = 7}, &y, 10)); /* the other worker */
    assert_int_equal(y, 8);
    assert_int_equal(kill(victim, SIGKILL), 0);
    pthread_join(c.th, NULL);
    assert_code(c.rc, -MPROC_EDIED);
    /* a task that kills its own worker */
    assert_code(apply(p, (struct req){.x = 1, .kill = 1}, &y, 10), -MPROC_EDIED);
    for (int i = 0; i < 100; i++) {
        assert_ok(apply(p, (struct req){.x = i}, &y, 10));
        assert_int_equal(y, i + 1);
    }
    mproc_pool_stats st = stats(p);
    assert_int_equal(st.submitted, 103);
    assert_int_equal(st.done, 103);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.restarts, 2);
    mproc_pool_free(p);
}

/* Past the restart budget the pool breaks; an apply waiting then gets the cause. */
static void test_break(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(
        &p, &(mproc_pool_opts){.workers = 1, .max_restarts = 2, .restart_period = 60}));
    int64_t y;
    int rc = 0;
    for (int i = 0; i < 10 && rc != -MPROC_EBROKEN; i++) {
        rc = apply(p, (struct req){.x = 1, .kill = 1}, &y, 10);
        assert_true(rc == -MPROC_EDIED || rc == -MPROC_EBROKEN);
    }
    assert_code(mproc_pool_broken(p, NULL), -MPROC_EBROKEN);
    assert_code(apply(p, (struct req){.x = 1}, &y, 10), -MPROC_EBROKEN);
    mproc_pool_free(p);
}

/* ---- the caller ------------------------------------------------------------------------ */

/* terminate while an apply waits: it completes as cancelled, promptly */
static void test_terminate(void **state)
{
    (void)state;
    atomic_store(&sh->runs, 0);
    mproc_pool *p = pool_of(2);
    struct call c;
    call_start(&c, p, (struct req){.x = 1, .nap_ms = 20000});
    wait_runs(1);
    double t0 = mproc_test_now();
    assert_ok(mproc_pool_terminate(p));
    pthread_join(c.th, NULL);
    assert_code(c.rc, -MPROC_ECANCELLED);
    assert_true(mproc_test_now() - t0 < 10);
    int64_t y;
    assert_code(apply(p, (struct req){.x = 1}, &y, 1), -MPROC_ECLOSED);
    mproc_pool_free(p);
}

/* A caller that stops waiting: the task finishes and frees its worker; nothing stuck. */
static void test_caller_gives_up(void **state)
{
    (void)state;
    atomic_store(&sh->runs, 0);
    mproc_pool *p = pool_of(1);
    int64_t y;
    assert_code(apply(p, (struct req){.x = 1, .nap_ms = 300}, &y, 0.02), -ETIMEDOUT);
    assert_ok(apply(p, (struct req){.x = 2}, &y, 10));
    assert_int_equal(y, 3);
    wait_settled(p);
    assert_int_equal(stats(p).done, 2);
    /* a give-up whose worker then dies: still one outcome, counted once */
    assert_code(apply(p, (struct req){.x = 1, .nap_ms = 100, .kill = 1}, &y, 0.02), -ETIMEDOUT);
    assert_ok(apply(p, (struct req){.x = 5}, &y, 10));
    assert_int_equal(y, 6);
    wait_settled(p);
    mproc_pool_stats st = stats(p);
    assert_int_equal(st.done, 4);
    assert_int_equal(st.failed, 1);
    mproc_pool_free(p);
}

/* Idle workers cost no CPU once the brief spin after their last task is over. */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *s = strrchr(buf, ')');
    assert_non_null(s);
    unsigned long ut = 0, st = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    assert_int_equal(sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
                     2);
    return (long)(ut + st);
}

static void test_idle_workers_sleep(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    int64_t y;
    for (int i = 0; i < 2000; i++)
        assert_ok(apply(p, (struct req){.x = i}, &y, 10));
    mproc_test_sleep(0.05);
    mproc_worker_stats ws[2];
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    long before = cpu_ticks(ws[0].pid) + cpu_ticks(ws[1].pid);
    mproc_test_sleep(0.5);
    long after = cpu_ticks(ws[0].pid) + cpu_ticks(ws[1].pid);
    /* spinning would show 50 ticks (0.5 s at 100 Hz); a few for a loaded machine's noise */
    if (after - before > 5)
        fail_msg("idle workers used %ld ticks in 0.5 s", after - before);
    mproc_pool_free(p);
}

/* Workers are forked (maxtasksperchild 1: one fork per task) while other threads encode
 * function references as fast as they can (what many submitting threads do): no worker
 * may start with the loader's lock held by one of those threads (it would hang in its
 * first decode). */
struct encoder {
    pthread_t th;
    _Atomic int *stop;
    int bad;
};

static void *encoder_main(void *arg)
{
    struct encoder *e = arg;
    unsigned char ref[MPROC__FNREF_MAX];
    uint32_t len;
    while (!atomic_load(e->stop))
        if (mproc__fnref_cached(task, ref, sizeof ref, &len) != 0)
            e->bad++;
    return NULL;
}

static void test_fork_while_encoding(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .maxtasksperchild = 1}));
    _Atomic int stop = 0;
    struct encoder e[2];
    for (int i = 0; i < 2; i++) {
        e[i] = (struct encoder){.stop = &stop};
        assert_int_equal(pthread_create(&e[i].th, NULL, encoder_main, &e[i]), 0);
    }
    enum { N = 150 };
    struct req in[N];
    int64_t out[N];
    for (int i = 0; i < N; i++)
        in[i] = (struct req){.x = i};
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, task, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    int rc = mproc_result_wait(r, 30);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(e[i].th, NULL);
    assert_ok(rc);
    assert_ok(mproc_result_get(r, NULL, 0, NULL, 0));
    mproc_result_free(r);
    for (int i = 0; i < N; i++)
        assert_int_equal(out[i], i + 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(e[i].bad, 0);
    mproc_pool_free(p);
}

/* ---- the fault matrix on this path -------------------------------------------------------- */

#ifdef MPROC_FAULT_INJECTION
/* Armed in the first worker; it trips at its 3rd pass, i.e. in the 3rd apply. */
static void fault_case(const char *point, mproc_fault_action action, int want, uint64_t restarts)
{
    atomic_store(&sh->runs, 0);
    assert_ok(mproc_fault_set(point, action, &(mproc_fault_opts){.nth = 3}));
    mproc_pool *p;
    int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1});
    mproc_fault_clear();
    assert_ok(rc);
    int64_t y;
    for (int i = 0; i < 2; i++)
        assert_ok(apply(p, (struct req){.x = i}, &y, 10));
    rc = apply(p, (struct req){.x = 9}, &y, 10);
    if (rc != want)
        fail_msg("%s action %d: %s, expected %s", point, action, mproc_errname(rc),
                 mproc_errname(want));
    if (rc == 0)
        assert_int_equal(y, 10);
    for (int i = 0; i < 20; i++) { /* usable, whatever happened */
        assert_ok(apply(p, (struct req){.x = i}, &y, 10));
        assert_int_equal(y, i + 1);
    }
    mproc_pool_stats st = stats(p);
    if (st.restarts != restarts)
        fail_msg("%s action %d: %llu restarts, expected %llu", point, action,
                 (unsigned long long)st.restarts, (unsigned long long)restarts);
    assert_int_equal(st.submitted, 23);
    assert_int_equal(st.done, 23);
    assert_int_equal(st.failed, want != 0);
    mproc_pool_free(p);
}

static void test_fault_matrix(void **state)
{
    (void)state;
    const char *dying[] = {"pool.task.decode", "pool.task.run", "pool.result.encode"};
    for (size_t k = 0; k < 3; k++) {
        fault_case(dying[k], MPROC_FAULT_KILL, -MPROC_EDIED, 1);
        fault_case(dying[k], MPROC_FAULT_SEGV, -MPROC_EDIED, 1);
        fault_case(dying[k], MPROC_FAULT_FAIL, -MPROC_EFAULT, 0);
    }
    /* after the answer: the caller has it; the worker is replaced */
    fault_case("pool.result.sent", MPROC_FAULT_KILL, 0, 1);
    fault_case("pool.result.sent", MPROC_FAULT_SEGV, 0, 1);
    fault_case("pool.result.sent", MPROC_FAULT_FAIL, 0, 0);
}
#endif

int main(int argc, char **argv)
{
    sh = mproc_test_shared();         /* before mproc_init: so in a spawned worker too */
    if (mproc_init(&argc, &argv) < 0) /* a worker or fork server never gets past it */
        return 2;
    if (sh == NULL)
        return 1;
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_results_and_failures),
        MPROC_TEST(test_threads),
        MPROC_TEST(test_death_before_begin),
        MPROC_TEST(test_death_while_running),
        MPROC_TEST(test_break),
        MPROC_TEST(test_terminate),
        MPROC_TEST(test_caller_gives_up),
        MPROC_TEST(test_idle_workers_sleep),
        MPROC_TEST(test_fork_while_encoding),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_fault_matrix),
#endif
    };
    return mproc_test_run(tests);
}
