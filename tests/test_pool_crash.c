/* tests/test_pool_crash.c - the pool when workers die: crashes inside tasks, deaths at
 * fault points (task decode, task run, result encode, after the result was sent), kills
 * from outside, the restart budget, a kill storm, and the caller's own death.
 *
 * Each fault is provoked for real in real worker processes. The promise checked every
 * time: each task has exactly one outcome, a dead worker fails only the task it was
 * running, and the pool stays usable (or, past its restart budget, breaks cleanly).
 */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { M_NONE, M_ABORT, M_SEGV, M_EXIT, M_KILL, M_EXIT0, M_OOM };

/* M_OOM: the task moves its worker into this memory cgroup (a small limit) and allocates
 * until the kernel's OOM killer kills it. */
/* the cgroup's procs file the M_OOM task joins: in the harness's shared region, so that a
   worker started by spawn or the fork server reads what the test wrote */
#define OOM_PROCS_SIZE 800
#define oom_procs ((char *)mproc_test_shared() + 4096)

struct item {
    int64_t x;
    int32_t mode; /* what to do instead of squaring */
    int32_t usec; /* sleep first */
};

static int crashy(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    struct item it;
    memcpy(&it, in, sizeof it);
    if (it.usec > 0) {
        struct timespec ts = {0, (long)it.usec * 1000};
        nanosleep(&ts, NULL);
    }
    switch (it.mode) {
    case M_ABORT:
        abort();
    case M_SEGV: {
        /* workers inherit the caller's handlers (cmocka's, ASan's): die of the signal.
         * A small non-null address: a real fault that UBSan's null check lets through. */
        signal(SIGSEGV, SIG_DFL);
        volatile uintptr_t bad = 16;
        *(volatile int *)bad = 1;
        break;
    }
    case M_EXIT:
        _exit(3);
    case M_KILL:
        kill(getpid(), SIGKILL);
        break;
    case M_EXIT0:
        exit(0);
    case M_OOM: {
        FILE *f = fopen(oom_procs, "w");
        if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
            return mproc_task_fail(t, -EPERM, "could not join %s", oom_procs);
        for (;;) { /* never freed: the OOM killer ends this process */
            char *m = malloc((size_t)1 << 20);
            if (m == NULL)
                return mproc_task_fail(t, -ENOMEM, "malloc failed before the OOM killer");
            memset(m, 1, (size_t)1 << 20);
        }
    }
    }
    int64_t y = it.x * it.x;
    memcpy(out, &y, sizeof y);
    *out_len = sizeof y;
    return 0;
}

/* Check a finished map of n items where item k got y = k*k unless it failed; return the
 * number of failures, each checked to carry one of the allowed codes. */
static size_t check_outcomes(mproc_result *r, const int64_t *out, size_t n, int code1, int code2)
{
    int nf = mproc_result_failures(r, 0, NULL, NULL, NULL);
    assert_true(nf >= 0);
    unsigned char *failed = calloc(n, 1);
    for (int k = 0; k < nf; k++) {
        size_t idx;
        int code;
        const char *msg;
        assert_int_equal(mproc_result_failures(r, (size_t)k, &idx, &code, &msg), nf);
        assert_true(idx < n);
        assert_int_equal(failed[idx], 0); /* once */
        failed[idx] = 1;
        if (code != code1 && code != code2)
            fail_msg("item %zu: %s (%s)", idx, mproc_errname(code), msg);
    }
    for (size_t i = 0; i < n; i++)
        if (!failed[i] && out[i] != (int64_t)(i * i))
            fail_msg("item %zu: %lld", i, (long long)out[i]);
    free(failed);
    return (size_t)nf;
}

static void fill(struct item *in, size_t n, int mode_all, int32_t usec)
{
    for (size_t i = 0; i < n; i++)
        in[i] = (struct item){.x = (int64_t)i, .mode = mode_all, .usec = usec};
}

static void usable(mproc_pool *p)
{
    struct item in[30];
    int64_t out[30];
    fill(in, 30, M_NONE, 0);
    assert_ok(mproc_pool_map(p, crashy, in, 30, sizeof *in, out, sizeof *out, NULL));
    for (int i = 0; i < 30; i++)
        assert_int_equal(out[i], (int64_t)i * i);
}

/* ---- crashes inside a task ------------------------------------------------------------- */

static void crash_one(int mode, const char *want)
{
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    enum { N = 40 };
    struct item in[N];
    int64_t out[N];
    fill(in, N, M_NONE, 0);
    in[7].mode = mode;
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 3}, &r));
    assert_code(mproc_result_get(r, NULL, 0, NULL, 20), -MPROC_EDIED);
    assert_int_equal(check_outcomes(r, out, N, -MPROC_EDIED, -MPROC_EDIED), 1);
    size_t idx;
    const char *msg;
    mproc_result_failures(r, 0, &idx, NULL, &msg);
    assert_int_equal(idx, 7);
    if (strstr(msg, want) == NULL)
        fail_msg("message '%s' lacks '%s'", msg, want);
    mproc_result_free(r);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.restarts, 1);
    assert_int_equal(st.failed, 1);
    usable(p);
    mproc_pool_free(p);
}

static void test_crash_in_task(void **state)
{
    (void)state;
    crash_one(M_ABORT, "signal 6 (ABRT)");
    crash_one(M_SEGV, "signal 11 (SEGV)");
    crash_one(M_EXIT, "exited with status 3");
    crash_one(M_KILL, "signal 9 (KILL)");
    crash_one(M_EXIT0, "exited with status"); /* 0, or LeakSanitizer's code */
}

/* ---- a host program whose SIGCHLD handler reaps every child ------------------------- */

static void reap_every_child(int sig)
{
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int init_edom(void *arg, void **state)
{
    (void)arg;
    (void)state;
    return -EDOM;
}

/* Servers often reap with waitpid(-1) in a SIGCHLD handler, taking our workers' statuses:
 * an initializer's code must still come back (it came back as -ESRCH about half the
 * time: the worker was reaped before the spawn held it), planned retirements must not
 * count as crashes (they broke the pool after 10), and a death whose status was taken
 * must say so rather than name a signal the worker never got (it said "signal 9"). */
static void test_host_reaps_children(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reap_every_child;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, &old);
    char why[300] = "";
    for (int k = 0; k < 20 && why[0] == '\0'; k++) {
        mproc_pool *p;
        int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .initializer = init_edom});
        if (rc == 0)
            mproc_pool_free(p);
        if (rc != -EDOM)
            snprintf(why, sizeof why, "initializer round %d: %s", k, mproc_errname(rc));
    }
    mproc_pool *p = NULL;
    enum { N = 120 };
    struct item in[N];
    int64_t out[N];
    if (why[0] == '\0' &&
        mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .maxtasksperchild = 2}) != 0)
        snprintf(why, sizeof why, "pool_new failed");
    if (why[0] == '\0') {
        fill(in, N, M_NONE, 0);
        int rc = mproc_pool_map(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                &(mproc_call_opts){.chunksize = 1});
        if (rc != 0)
            snprintf(why, sizeof why, "retirements: map %s (%s)", mproc_errname(rc),
                     mproc_pool_broken(p, NULL) != 0 ? "pool broken" : "pool fine");
    }
    if (why[0] == '\0') {
        in[7].mode = M_SEGV;
        mproc_result *r = NULL;
        int rc = mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                      &(mproc_call_opts){.chunksize = 1}, &r);
        if (rc == 0)
            rc = mproc_result_wait(r, 30);
        size_t idx = 0;
        int code = 0;
        const char *msg = "";
        if (rc == 0 && mproc_result_failures(r, 0, &idx, &code, &msg) != 1)
            rc = -1;
        if (rc != 0 || idx != 7 || code != -MPROC_EDIED || strstr(msg, "signal 9") != NULL ||
            (strstr(msg, "signal 11") == NULL && strstr(msg, "unknown") == NULL))
            snprintf(why, sizeof why, "segfault: rc %d idx %zu code %s msg '%.200s'", rc, idx,
                     mproc_errname(code), msg);
        mproc_result_free(r);
    }
    mproc_pool_free(p);
    sigaction(SIGCHLD, &old, NULL);
    if (why[0] != '\0')
        fail_msg("%s", why);
}

/* A memory cgroup of our own with a 64 MiB limit: 0, or -1 (then the test is skipped). */
static int oom_cgroup(char *dir, size_t size)
{
    return mproc_test_memory_cgroup(dir, size, 64 << 20, oom_procs, OOM_PROCS_SIZE);
}

/* The OOM killer, for real: a worker that outgrows its memory cgroup is killed by the
 * kernel (SIGKILL); its task fails, every other task completes, the pool goes on. */
static void test_oom_killed_worker(void **state)
{
    (void)state;
    char dir[700];
    if (oom_cgroup(dir, sizeof dir) < 0) {
        print_message("no memory cgroup of our own (needs root and a cgroup mount): skipped\n");
        skip();
    }
    crash_one(M_OOM, "signal 9 (KILL)");
    /* the dead worker has been reaped: the cgroup is empty (the kernel may take a moment
       to notice) */
    int tries = 0;
    while (rmdir(dir) != 0 && tries++ < 200)
        mproc_test_sleep(0.01);
    assert_int_equal(access(dir, F_OK), -1);
    oom_procs[0] = '\0';
}

/* apply: the one task fails, the next apply works */
static void test_crash_apply(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1}));
    struct item it = {.x = 5, .mode = M_SEGV};
    int64_t y;
    assert_code(mproc_pool_apply(p, crashy, &it, sizeof it, &y, sizeof y, NULL, NULL, 20),
                -MPROC_EDIED);
    it.mode = M_NONE;
    assert_ok(mproc_pool_apply(p, crashy, &it, sizeof it, &y, sizeof y, NULL, NULL, 20));
    assert_int_equal(y, 25);
    mproc_pool_free(p);
}

/* ---- deaths and failures at the fault points ---------------------------------------------- */

#ifdef MPROC_FAULT_INJECTION
/* A pool of one worker with `point` armed in that worker only (it inherits it; a
 * replacement is forked after the clear, so it runs clean): it trips at its nth pass. One
 * worker, so the count of passes it makes does not depend on scheduling. */
static mproc_pool *pool_with_fault(const char *point, mproc_fault_action action, unsigned nth,
                                   double timeout)
{
    assert_ok(mproc_fault_set(point, action, &(mproc_fault_opts){.nth = nth}));
    mproc_pool *p;
    int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1, .timeout = timeout});
    mproc_fault_clear();
    assert_ok(rc);
    return p;
}

/* Map 60 tasks in chunks of 2 with point armed to trip at the worker's 3rd pass. */
static void fault_case(const char *point, mproc_fault_action action, size_t want_failed,
                       int want_code, uint64_t want_restarts)
{
    mproc_pool *p = pool_with_fault(point, action, 3, 0);
    enum { N = 60 };
    struct item in[N];
    int64_t out[N];
    fill(in, N, M_NONE, 0);
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 2}, &r));
    assert_ok(mproc_result_wait(r, 20));
    size_t nf = check_outcomes(r, out, N, want_code, want_code);
    if (nf != want_failed)
        fail_msg("%s action %d: %zu failed, expected %zu", point, action, nf, want_failed);
    mproc_result_free(r);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    if (st.restarts != want_restarts)
        fail_msg("%s action %d: %llu restarts, expected %llu", point, action,
                 (unsigned long long)st.restarts, (unsigned long long)want_restarts);
    usable(p);
    mproc_pool_free(p);
}

static void test_fault_matrix(void **state)
{
    (void)state;
    const char *dying[] = {"pool.task.decode", "pool.task.run", "pool.result.encode"};
    for (size_t k = 0; k < 3; k++) {
        /* a death there fails exactly the task in flight */
        fault_case(dying[k], MPROC_FAULT_KILL, 1, -MPROC_EDIED, 1);
        fault_case(dying[k], MPROC_FAULT_SEGV, 1, -MPROC_EDIED, 1);
    }
    /* between tasks, the last one's outcome held in a batch, not yet published: it ran
       to its end, so it runs again instead of failing as the one that killed its worker */
    fault_case("pool.task.held", MPROC_FAULT_KILL, 0, 0, 1);
    fault_case("pool.task.held", MPROC_FAULT_SEGV, 0, 0, 1);
    /* after the result was sent: nothing is lost */
    fault_case("pool.result.sent", MPROC_FAULT_KILL, 0, 0, 1);
    fault_case("pool.result.sent", MPROC_FAULT_SEGV, 0, 0, 1);
    /* error returns: the task (decode: the whole chunk of 2) fails with the code */
    fault_case("pool.task.decode", MPROC_FAULT_FAIL, 2, -MPROC_EFAULT, 0);
    fault_case("pool.task.run", MPROC_FAULT_FAIL, 1, -MPROC_EFAULT, 0);
    fault_case("pool.result.encode", MPROC_FAULT_FAIL, 1, -MPROC_EFAULT, 0);
    fault_case("pool.result.sent", MPROC_FAULT_FAIL, 0, 0, 0);
}

/* A timed task that has returned (its outcome held in a batch) is not running: however
 * long its worker then takes (here: stopped), neither it nor its worker is taken for past
 * its limit (its worker was killed for it when the check looked only at `started`). */
static void test_returned_task_not_timed_out(void **state)
{
    (void)state;
    mproc_pool *p = pool_with_fault("pool.task.held", MPROC_FAULT_STOP, 1, 0.2);
    enum { N = 2 };
    struct item in[N];
    int64_t out[N];
    fill(in, N, M_NONE, 0);
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 2}, &r));
    mproc_worker_stats ws;
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, &ws, 1));
    double end = mproc_test_now() + 10;
    char path[64], stat[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)ws.pid);
    while (mproc_test_now() < end) { /* until the worker has stopped itself */
        FILE *f = fopen(path, "r");
        stat[0] = '\0';
        if (f != NULL) {
            if (fgets(stat, sizeof stat, f) == NULL)
                stat[0] = '\0';
            fclose(f);
        }
        char *paren = strrchr(stat, ')');
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'T')
            break;
        mproc_test_sleep(0.01);
    }
    mproc_test_sleep(0.6); /* three times its limit */
    kill(ws.pid, SIGCONT);
    assert_ok(mproc_result_wait(r, 20));
    assert_int_equal(check_outcomes(r, out, N, 0, 0), 0);
    mproc_result_free(r);
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.restarts, 0); /* its worker was not killed for it */
    mproc_pool_free(p);
}

/* A replacement that can never be forked spends the budget and breaks the pool. */
static void test_fork_fails_breaks_pool(void **state)
{
    (void)state;
    if (mproc_get_start_method() == MPROC_START_FORKSERVER)
        skip(); /* the server forks there: this process's fork cannot fail it */
    mproc_pool *p;
    assert_ok(mproc_pool_new(
        &p, &(mproc_pool_opts){.workers = 1, .max_restarts = 2, .restart_period = 60}));
    assert_ok(mproc_fault_set("sys.fork", MPROC_FAULT_FAIL,
                              &(mproc_fault_opts){.code = -EAGAIN, .sticky = 1}));
    struct item it = {.x = 2, .mode = M_KILL};
    int64_t y;
    assert_code(mproc_pool_apply(p, crashy, &it, sizeof it, &y, sizeof y, NULL, NULL, 20),
                -MPROC_EDIED);
    it.mode = M_NONE;
    mproc_result *r;
    int rc = mproc_pool_apply_async(p, crashy, &it, sizeof it, NULL, &r);
    if (rc == 0) { /* accepted before the pool broke: fails with the cause */
        assert_code(mproc_result_get(r, &y, sizeof y, NULL, 20), -MPROC_EBROKEN);
        mproc_result_free(r);
    } else {
        assert_code(rc, -MPROC_EBROKEN);
    }
    mproc_fault_clear();
    const char *msg;
    assert_code(mproc_pool_broken(p, &msg), -MPROC_EBROKEN);
    assert_non_null(strstr(msg, "could not start a worker"));
    mproc_pool_free(p);
}
#endif

/* ---- kills from outside ------------------------------------------------------------------- */

static void test_kill_worker_mid_map(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    enum { N = 60 };
    struct item in[N];
    int64_t out[N];
    fill(in, N, M_NONE, 30000); /* 30 ms each */
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    mproc_pool_stats st;
    mproc_worker_stats ws[2];
    double t0 = mproc_test_now();
    do {
        mproc_test_sleep(0.01);
        assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    } while (st.done < 10 && mproc_test_now() - t0 < 20);
    assert_true(ws[0].pid > 0);
    assert_ok(kill(ws[0].pid, SIGKILL));
    assert_code(mproc_result_get(r, NULL, 0, NULL, 20), -MPROC_EDIED);
    assert_int_equal(check_outcomes(r, out, N, -MPROC_EDIED, -MPROC_EDIED), 1);
    const char *msg;
    mproc_result_failures(r, 0, NULL, NULL, &msg);
    assert_non_null(strstr(msg, "signal 9"));
    mproc_result_free(r);
    assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    assert_int_equal(st.restarts, 1);
    assert_int_equal(ws[0].restarts, 1);
    assert_int_equal(ws[1].restarts, 0);
    assert_true(ws[0].pid > 0 && mproc_test_pid_alive(ws[0].pid));
    usable(p);
    mproc_pool_free(p);
}

/* A worker killed in the middle of a huge chunk: the rest of the chunk is sent again as
 * runs (quickly), exactly the task in flight fails. */
static void test_kill_in_huge_chunk(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1}));
    enum { N = 120000 };
    static struct item in[N];
    static int64_t out[N];
    fill(in, N, M_NONE, 0);
    for (int i = 0; i < 200; i++)
        in[i].usec = 2000; /* the first 200 take 0.4 s: time to kill in the chunk */
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 60000}, &r));
    mproc_pool_stats st;
    mproc_worker_stats ws[1];
    double t0 = mproc_test_now();
    do {
        mproc_test_sleep(0.01);
        assert_ok(mproc_pool_stats_get(p, &st, ws, 1));
    } while (st.done < 20 && mproc_test_now() - t0 < 20);
    assert_ok(kill(ws[0].pid, SIGKILL));
    t0 = mproc_test_now();
    assert_code(mproc_result_get(r, NULL, 0, NULL, 30), -MPROC_EDIED);
    assert_true(mproc_test_now() - t0 < 15);
    assert_int_equal(check_outcomes(r, out, N, -MPROC_EDIED, -MPROC_EDIED), 1);
    mproc_result_free(r);
    mproc_pool_free(p);
}

/* The budget holds whatever the period: a period of 1e10 s or more once overflowed its
 * conversion to nanoseconds and switched the budget off (the pool never broke). */
static void budget_breaks(double period)
{
    mproc_pool *p;
    assert_ok(mproc_pool_new(
        &p, &(mproc_pool_opts){.workers = 2, .max_restarts = 3, .restart_period = period}));
    enum { N = 50 };
    struct item in[N];
    int64_t out[N];
    fill(in, N, M_ABORT, 0);
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    assert_ok(mproc_result_wait(r, 20));
    assert_int_equal(check_outcomes(r, out, N, -MPROC_EDIED, -MPROC_EBROKEN), N);
    size_t died = 0;
    for (size_t k = 0; k < N; k++) {
        int code;
        mproc_result_failures(r, k, NULL, &code, NULL);
        died += code == -MPROC_EDIED;
    }
    assert_int_equal(died, 4); /* three restarts allowed, the fourth death breaks */
    mproc_result_free(r);
    const char *msg;
    assert_code(mproc_pool_broken(p, &msg), -MPROC_EBROKEN);
    assert_non_null(strstr(msg, "restart budget"));
    assert_non_null(strstr(msg, "signal 6"));
    int64_t y;
    assert_code(mproc_pool_apply(p, crashy, &in[0], sizeof in[0], &y, sizeof y, NULL, NULL, 5),
                -MPROC_EBROKEN);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.broken, 1);
    assert_int_equal(st.done, N);
    assert_int_equal(mproc_test_count_children(), 0); /* every worker gone */
    mproc_pool_close(p);
    assert_ok(mproc_pool_join(p, 5));
    mproc_pool_free(p);
}

static void test_restart_budget_breaks_pool(void **state)
{
    (void)state;
    budget_breaks(60);
    budget_breaks(1e10);
    budget_breaks(1e300);
    budget_breaks(INFINITY);
}

/* Time limits far beyond any run are no limits, never an overflow: a worker start bounded
 * by 1e10 s or more once failed at once with -MPROC_ETIMELIMIT. */
static void test_huge_time_limits(void **state)
{
    (void)state;
    const double huge[] = {1e10, 9.3e9, 1e300, INFINITY};
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        mproc_pool *p;
        assert_ok(mproc_pool_new(
            &p, &(mproc_pool_opts){.workers = 2, .init_timeout = huge[k], .timeout = huge[k]}));
        enum { N = 64 };
        struct item in[N];
        int64_t out[N];
        fill(in, N, M_NONE, 0);
        assert_ok(mproc_pool_map(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                 &(mproc_call_opts){.chunksize = 1, .timeout = huge[k]}));
        for (int i = 0; i < N; i++)
            assert_int_equal(out[i], (int64_t)i * i);
        mproc_result *r;
        assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out, NULL, &r));
        assert_ok(mproc_result_wait(r, huge[k]));
        assert_ok(mproc_result_get(r, NULL, 0, NULL, huge[k]));
        mproc_result_free(r);
        mproc_pool_close(p);
        assert_ok(mproc_pool_join(p, huge[k]));
        mproc_pool_free(p);
    }
}

struct storm {
    mproc_pool *p;
    _Atomic int stop;
    int kills;
};

static void *killer(void *arg)
{
    struct storm *s = arg;
    unsigned seed = 12345;
    while (!atomic_load(&s->stop)) {
        mproc_test_sleep(0.05);
        mproc_pool_stats st;
        mproc_worker_stats ws[2];
        if (mproc_pool_stats_get(s->p, &st, ws, 2) < 0)
            break;
        pid_t pid = ws[rand_r(&seed) % 2].pid;
        if (pid > 0 && kill(pid, SIGKILL) == 0)
            s->kills++;
    }
    return NULL;
}

static void test_kill_storm(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .max_restarts = 100000}));
    enum { N = 20000 };
    static struct item in[N];
    static int64_t out[N];
    fill(in, N, M_NONE, 100); /* 0.1 ms each: about 1-2 s in all */
    printf("kill storm: seed 12345\n");
    struct storm s = {.p = p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer, &s), 0);
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, crashy, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 8}, &r));
    assert_ok(mproc_result_wait(r, 60));
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    size_t nf = check_outcomes(r, out, N, -MPROC_EDIED, -MPROC_EDIED);
    printf("kill storm: %d kills, %zu tasks failed of %d\n", s.kills, nf, N);
    assert_true(nf <= (size_t)s.kills);
    mproc_result_free(r);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.done, N);
    assert_int_equal(st.broken, 0);
    assert_true(st.restarts >= (uint64_t)s.kills / 2);
    usable(p);
    mproc_pool_free(p);
}

/* ---- a worker dies while the pool starts ---- */

struct start_race {
    _Atomic int *counter; /* shared with the workers */
    int fd;               /* the first worker writes its pid here */
};

static int init_race(void *arg, void **state)
{
    (void)state;
    struct start_race *r = arg;
    if (atomic_fetch_add(r->counter, 1) == 0) { /* the first: ready at once */
        pid_t me = getpid();
        return write(r->fd, &me, sizeof me) == (ssize_t)sizeof me ? 0 : -EIO;
    }
    mproc_test_sleep(1.0); /* the others: still initializing when the first is killed */
    return 0;
}

static void *kill_first(void *arg)
{
    int fd = *(int *)arg;
    pid_t pid;
    if (read(fd, &pid, sizeof pid) == (ssize_t)sizeof pid) {
        mproc_test_sleep(0.1); /* it has reported ready by now */
        kill(pid, SIGKILL);
    }
    return NULL;
}

static void test_ready_worker_dies_during_start(void **state)
{
    (void)state;
    _Atomic int *counter = mproc_test_shared(); /* seen by workers of every start method */
    assert_non_null(counter);
    atomic_store(counter, 0);
    int fds[2];
    assert_ok(pipe(fds));
    struct start_race r = {.counter = counter, .fd = fds[1]};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_first, &fds[0]), 0);
    mproc_pool *p;
    double t0 = mproc_test_now();
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2,
                                                      .initializer = init_race,
                                                      .initarg = &r,
                                                      .initarg_size = sizeof r,
                                                      .inherit_fds = &fds[1],
                                                      .n_inherit_fds = 1}),
                -MPROC_EDIED);
    assert_true(mproc_test_now() - t0 < 10);
    pthread_join(th, NULL);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(mproc_test_count_children(), 0);
}

/* ---- the caller dies ------------------------------------------------------------------------ */

static int caller(void *arg)
{
    int fd = *(int *)arg;
    mproc_pool *p;
    if (mproc_pool_new(&p, &(mproc_pool_opts){.workers = 3}) < 0)
        return 1;
    mproc_worker_stats ws[3];
    mproc_pool_stats st;
    mproc_pool_stats_get(p, &st, ws, 3);
    pid_t pids[3] = {ws[0].pid, ws[1].pid, ws[2].pid};
    if (write(fd, pids, sizeof pids) != (ssize_t)sizeof pids)
        return 2;
    pause();
    return 0;
}

static void test_caller_killed(void **state)
{
    (void)state;
    int fds[2];
    assert_ok(pipe(fds));
    pid_t c = mproc_test_fork(caller, &fds[1]);
    pid_t pids[3];
    assert_int_equal(read(fds[0], pids, sizeof pids), (ssize_t)sizeof pids);
    close(fds[0]);
    close(fds[1]);
    for (int i = 0; i < 3; i++)
        assert_true(mproc_test_pid_alive(pids[i]));
    kill(c, SIGKILL);
    assert_int_equal(mproc_test_exitcode(c, 5), -SIGKILL);
    double t0 = mproc_test_now();
    for (int i = 0; i < 3; i++)
        while (mproc_test_pid_alive(pids[i]) && mproc_test_now() - t0 < 1.0)
            mproc_test_sleep(0.01);
    for (int i = 0; i < 3; i++)
        assert_false(mproc_test_pid_alive(pids[i]));
    assert_int_equal(mproc_test_reap_all(2), 0);
}

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0) /* a worker or fork server never gets past it */
        return 2;
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_crash_in_task),
        MPROC_TEST(test_oom_killed_worker),
        MPROC_TEST(test_crash_apply),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_fault_matrix),
        MPROC_TEST(test_returned_task_not_timed_out),
        MPROC_TEST(test_fork_fails_breaks_pool),
#endif
        MPROC_TEST(test_kill_worker_mid_map),
        MPROC_TEST(test_kill_in_huge_chunk),
        MPROC_TEST(test_restart_budget_breaks_pool),
        MPROC_TEST(test_huge_time_limits),
        MPROC_TEST(test_host_reaps_children),
        MPROC_TEST(test_kill_storm),
        MPROC_TEST(test_ready_worker_dies_during_start),
        MPROC_TEST(test_caller_killed),
    };
    return mproc_test_run(tests);
}
