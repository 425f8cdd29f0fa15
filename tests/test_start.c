/* tests/test_start.c - mproc_init and the start methods (mproc/init.h): what is particular
 * to workers that do not fork from the caller. The pool's own behaviour under each method
 * is tested by the pool's test programs, run once per method (tests/CMakeLists.txt). */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sys/forkserver.h"

static const mproc_start_method clean[] = {MPROC_START_FORKSERVER, MPROC_START_SPAWN};

/* ---- mproc_init, the default --------------------------------------------------------- */

static void test_init_arguments(void **state)
{
    (void)state;
    char a0[] = "prog", a1[] = "one", a2[] = "--mproc-start=spawn", a3[] = "two";
    char *v[] = {a0, a1, a2, a3, NULL};
    char **argv = v;
    int argc = 4;
    assert_ok(mproc_init(&argc, &argv));
    assert_int_equal(argc, 3);
    assert_string_equal(argv[1], "one");
    assert_string_equal(argv[2], "two");
    assert_null(argv[3]);
    assert_int_equal(mproc_get_start_method(), MPROC_START_SPAWN);

    char b2[] = "--mproc-start=vfork";
    char *w[] = {a0, b2, a1, NULL};
    char **wv = w;
    argc = 3;
    assert_code(mproc_init(&argc, &wv), -EINVAL);
    assert_int_equal(argc, 3); /* left as it was */
    assert_ptr_equal(wv[1], b2);
    assert_int_equal(mproc_get_start_method(), MPROC_START_SPAWN);
    assert_ok(mproc_init(NULL, NULL));

    assert_code(mproc_set_start_method((mproc_start_method)99), -EINVAL);
    assert_ok(mproc_set_start_method(MPROC_START_DEFAULT)); /* fork */
    assert_int_equal(mproc_get_start_method(), MPROC_START_FORK);
    assert_string_equal(mproc_start_method_name(MPROC_START_FORKSERVER), "forkserver");
    assert_null(mproc_start_method_name((mproc_start_method)99));
    mproc_pool *p;
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = (mproc_start_method)99}), -EINVAL);
}

/* ---- what travels: the initializer's argument, the environment, the directory --------- */

static int init_copy(void *arg, void **state)
{
    int64_t *s = malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    memcpy(s, arg, sizeof *s);
    *state = s;
    return 0;
}

static int init_copy_process(void *arg)
{
    return arg != NULL ? 0 : 1;
}

static int report(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    char *o = out;
    const char *e = getenv("MPROC_TEST_START_VAR");
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return -errno;
    int n = snprintf(o, 600, "%lld|%d|%s|%s", (long long)*(int64_t *)mproc_task_state(t),
                     (int)getppid(), e != NULL ? e : "(none)", cwd);
    *out_len = (size_t)n + 1;
    return 0;
}

static void test_what_travels(void **state)
{
    (void)state;
    char old[PATH_MAX], dir[] = "/tmp/mproc-start-XXXXXX";
    assert_non_null(getcwd(old, sizeof old));
    assert_non_null(mkdtemp(dir));
    assert_ok(chdir(dir));
    assert_ok(setenv("MPROC_TEST_START_VAR", "spawned", 1));
    for (size_t m = 0; m < sizeof clean / sizeof clean[0]; m++) {
        int64_t arg = 4242;
        mproc_pool *p;
        /* a pointer means nothing in another program image: its bytes must be given */
        assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = clean[m],
                                                          .initializer = init_copy,
                                                          .initarg = &arg}),
                    -EINVAL);
        assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = clean[m], .initarg_size = 8}),
                    -EINVAL);
        assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = clean[m],
                                                          .initarg = &arg,
                                                          .initarg_size = SIZE_MAX}),
                    -EINVAL); /* absurd: refused before anything is copied */
        mproc_process *pr;
        assert_code(mproc_process_new(
                        &pr, init_copy_process, &arg,
                        &(mproc_process_opts){.start = clean[m], .arg_size = (size_t)1 << 40}),
                    -EINVAL);
        assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1,
                                                        .start = clean[m],
                                                        .initializer = init_copy,
                                                        .initarg = &arg,
                                                        .initarg_size = sizeof arg}));
        arg = 1; /* the workers have their copy */
        char out[600];
        size_t len;
        assert_ok(mproc_pool_apply(p, report, "", 1, out, sizeof out, &len, NULL, 10));
        char want[700];
        snprintf(want, sizeof want, "4242|%d|spawned|%s", (int)getpid(), dir);
        if (clean[m] == MPROC_START_FORKSERVER) /* the server's child, started before the
                                                   chdir and setenv: what it was given */
            snprintf(want, sizeof want, "4242|%d|", (int)mproc__forkserver_pid());
        assert_memory_equal(out, want, strlen(want));
        mproc_pool_free(p);
    }
    assert_ok(unsetenv("MPROC_TEST_START_VAR"));
    assert_ok(chdir(old));
    assert_ok(rmdir(dir));
}

/* ---- refusals: another build, a program without mproc_init ------------------------------ */

static int copy_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    memcpy(out, in, sizeof(int64_t));
    *out_len = sizeof(int64_t);
    return 0;
}

#ifdef MPROC_FAULT_INJECTION
static void test_other_build_refused(void **state)
{
    (void)state;
    for (size_t m = 0; m < sizeof clean / sizeof clean[0]; m++) {
        /* the supervisor sends a build-id that is not the program's: what a worker running
           another build of the program sees */
        mproc_fault_set("pool.boot.build", MPROC_FAULT_FAIL, &(mproc_fault_opts){.sticky = 1});
        mproc_pool *p;
        assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = clean[m]}),
                    -ESTALE);
        mproc_fault_clear();
        assert_non_null(strstr(mproc_pool_message(), "another build"));
        assert_int_equal(mproc_test_count_children(), 0);
    }
}

/* The caller's addresses taken in a spawned worker (its own layout put something there):
 * it executes itself again for a new layout and starts; taken in every exec, the start
 * fails with the reason after a few tries (MPROC_FAULT arms the point in each exec). */
static void test_address_taken(void **state)
{
    (void)state;
    assert_ok(setenv("MPROC_FAULT", "pool.boot.map.first", 1));
    mproc_pool *p;
    int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = MPROC_START_SPAWN});
    if (rc == 0) {
        int64_t in[8] = {0}, out[8];
        rc = mproc_pool_map(p, copy_task, in, 8, sizeof *in, out, sizeof *out, NULL);
        mproc_pool_free(p);
    }
    assert_ok(setenv("MPROC_FAULT", "pool.boot.map", 1));
    int rc2 = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = MPROC_START_SPAWN});
    assert_ok(unsetenv("MPROC_FAULT"));
    assert_ok(rc);
    assert_code(rc2, -EEXIST);
    assert_non_null(strstr(mproc_pool_message(), "could not map the pool's shared memory"));
    assert_int_equal(mproc_test_count_children(), 0);
}
#endif

/* Run the helper that never calls mproc_init; its line of output into buf. */
static void run_no_init(const char *args, int hang, char *buf, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s%s/no_init %s", hang ? "NO_INIT_HANG=1 " : "",
             MPROC_TEST_HELPERS_DIR, args);
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    buf[0] = '\0';
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    assert_int_equal(pclose(f), 0);
}

static void test_no_init(void **state)
{
    (void)state;
    char out[1024];
    /* spawn: each worker runs main() to its end (its own pool refused) */
    run_no_init("spawn", 0, out, sizeof out);
    assert_non_null(strstr(out, "MPROC_ENOINIT|"));
    assert_non_null(strstr(out, "mproc_init(&argc, &argv)"));
    assert_null(strchr(strchr(out, '\n') + 1, '|')); /* one line: no copy printed its own */
    /* a worker that hangs in main() instead: killed at the start's limit */
    double t0 = mproc_test_now();
    run_no_init("spawn 0.5", 1, out, sizeof out);
    assert_non_null(strstr(out, "MPROC_ENOINIT|"));
    assert_non_null(strstr(out, "did not reach mproc_init"));
    assert_true(mproc_test_now() - t0 < 8);
    /* forkserver: the server itself never comes up */
    run_no_init("forkserver", 0, out, sizeof out);
    assert_non_null(strstr(out, "MPROC_ENOINIT|"));
    assert_non_null(strstr(out, "mproc_init(&argc, &argv)"));
}

/* Variables of ours inherited from elsewhere (not naming our boot message, or our
 * server's socket) change nothing: the program runs as itself, and starts its pools. */
static void test_stray_variables(void **state)
{
    (void)state;
    const char *envs[] = {"MPROC_BOOT=0",       "MPROC_BOOT=1",
                          "MPROC_BOOT=2",       "MPROC_BOOT=3",
                          "MPROC_BOOT=x",       "MPROC_FORKSERVER=1",
                          "MPROC_FORKSERVER=3", "MPROC_BOOT=99999 MPROC_FORKSERVER=99999"};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        char cmd[512], out[256];
        snprintf(cmd, sizeof cmd, "%s %s/start_plain 3</dev/null", envs[i], MPROC_TEST_HELPERS_DIR);
        fflush(NULL);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        int st = pclose(f);
        if (st != 0 || strcmp(out, "ok\n") != 0)
            fail_msg("%s: status 0x%x, output \"%s\"", envs[i], (unsigned)st, out);
    }
}

/* In a child with descriptors 0-2 closed, the pool's own descriptors take those numbers:
 * workers of every method get them at the same numbers and work. */
static int closed_stdio_child(void *arg)
{
    (void)arg;
    close(0);
    close(1);
    close(2);
    int rc = 0;
    for (size_t m = 0; m < sizeof clean / sizeof clean[0] && rc == 0; m++) {
        mproc_pool *p;
        if (mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = clean[m]}) < 0) {
            rc = 10 + (int)m;
            break;
        }
        int64_t in[40], out[40];
        for (int i = 0; i < 40; i++)
            in[i] = i;
        if (mproc_pool_map(p, copy_task, in, 40, sizeof *in, out, sizeof *out, NULL) < 0)
            rc = 20 + (int)m;
        for (int i = 0; rc == 0 && i < 40; i++)
            if (out[i] != i)
                rc = 30 + (int)m;
        mproc_pool_free(p);
    }
    mproc__forkserver_stop(); /* its own server (a fork does not share its parent's) */
    return rc;
}

static void test_closed_stdio(void **state)
{
    (void)state;
    assert_int_equal(mproc_test_exitcode(mproc_test_fork(closed_stdio_child, NULL), 60), 0);
}

/* Chosen at the start (--mproc-start=forkserver), the server starts in mproc_init. */
static void test_server_at_init(void **state)
{
    (void)state;
    const char *args[] = {"--mproc-start=forkserver --server-at-init", "--server-at-init"};
    const char *want[] = {"server at init: yes\n", "server at init: no\n"};
    for (int k = 0; k < 2; k++) {
        char cmd[512], out[128];
        snprintf(cmd, sizeof cmd, "%s/start_plain %s", MPROC_TEST_HELPERS_DIR, args[k]);
        fflush(NULL);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        assert_int_equal(pclose(f), 0);
        assert_string_equal(out, want[k]);
    }
}

/* ---- the fork server ----------------------------------------------------------------------- */

/* A program with threads that hold locks at any moment: malloc's, stdio's, its own. A
 * worker forked from it (MPROC_START_FORK) gets copies of whatever was held at that
 * instant, and a task that takes one waits forever: run this test with fork and it hangs
 * (tried: with .start = MPROC_START_FORK the map had not finished after 20 s, its workers
 * stuck on copies of held locks) (glibc resets malloc's locks in a fork child, but not a FILE's,
 * nor the program's mutexes). Workers of the fork server never hold a copy of them. */
static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *busy_file;
static _Atomic int busy_stop;

static void *busy(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&busy_stop)) {
        void *m = malloc(16 + (size_t)rand_r(&seed) % 70000);
        pthread_mutex_lock(&busy_mu);
        fprintf(busy_file, "%p %u\n", m, seed);
        pthread_mutex_unlock(&busy_mu);
        free(m);
    }
    return NULL;
}

static int locking_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    void *m = malloc(100000);
    pthread_mutex_lock(&busy_mu);
    if (busy_file != NULL)
        fprintf(busy_file, "task %lld\n", (long long)x);
    pthread_mutex_unlock(&busy_mu);
    free(m);
    if (x % 10 == 3)
        kill(getpid(), SIGKILL);
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

static void test_forkserver_with_threads(void **state)
{
    (void)state;
    busy_file = fopen("/dev/null", "w");
    assert_non_null(busy_file);
    atomic_store(&busy_stop, 0);
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, busy, (void *)(uintptr_t)(i + 1)), 0);
    /* 1,000 workers: each runs one task and leaves, one task in ten kills its worker */
    enum { N = 1000 };
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2,
                                                    .start = MPROC_START_FORKSERVER,
                                                    .maxtasksperchild = 1,
                                                    .max_restarts = 1000000}));
    static int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, locking_task, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    int rc = mproc_result_get(r, NULL, 0, NULL, 240);
    atomic_store(&busy_stop, 1);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_code(rc, -MPROC_EDIED); /* not -ETIMEDOUT: no worker hung */
    assert_int_equal(mproc_result_failures(r, 0, NULL, NULL, NULL), N / 10);
    for (int i = 0; i < N; i++)
        if (i % 10 != 3)
            assert_int_equal(out[i], i);
    mproc_result_free(r);
    mproc_pool_free(p);
    fclose(busy_file);
    busy_file = NULL;
    mproc__forkserver_stop(); /* this test may start the server: leave none behind */
}

static int napping(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    mproc_test_sleep(0.02);
    memcpy(out, in, sizeof(int64_t));
    *out_len = sizeof(int64_t);
    return 0;
}

/* The server killed under a running pool: its workers die with it (what they ran fails
 * -MPROC_EDIED), a new server starts their replacements, and the pool goes on. */
static void test_forkserver_killed(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(
        mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = MPROC_START_FORKSERVER}));
    pid_t server = mproc__forkserver_pid();
    assert_true(server > 0);
    enum { N = 200 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, napping, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    mproc_test_sleep(0.3);
    assert_ok(kill(server, SIGKILL));
    int rc = mproc_result_get(r, NULL, 0, NULL, 60);
    int nf = mproc_result_failures(r, 0, NULL, NULL, NULL);
    assert_true(rc == 0 || rc == -MPROC_EDIED);
    assert_true(nf <= 2); /* at most what the two workers were running */
    mproc_result_free(r);
    assert_ok(mproc_pool_map(p, napping, in, 20, sizeof *in, out, sizeof *out, NULL));
    for (int i = 0; i < 20; i++)
        assert_int_equal(out[i], i);
    assert_true(mproc__forkserver_pid() != server);
    mproc_pool_free(p);
    mproc__forkserver_stop(); /* the server it started is not the one before the test */
}

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0)
        return 2;
    mproc_pool *p; /* the fork server starts now: its socket and process are not a test's */
    if (mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1, .start = MPROC_START_FORKSERVER}) < 0)
        return 3;
    mproc_pool_free(p);
    (void)mproc_test_reap_all(5);
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_init_arguments),
        MPROC_TEST(test_what_travels),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_other_build_refused),
        MPROC_TEST(test_address_taken),
#endif
        MPROC_TEST(test_no_init),
        MPROC_TEST(test_stray_variables),
        MPROC_TEST(test_closed_stdio),
        MPROC_TEST(test_server_at_init),
        MPROC_TEST(test_forkserver_killed),
        MPROC_TEST(test_forkserver_with_threads),
    };
    return mproc_test_run(tests);
}
