/* tests/test_mpi.c - the pool on the ranks of an MPI job (.start = MPROC_START_MPI).
 *
 * ctest runs it under mpirun (tests/CMakeLists.txt): 3 ranks with Open MPI's default
 * transports, again with TCP only (--mca btl self,tcp: the path between nodes), and over
 * a hostfile naming localhost twice. Rank 0 runs the tests; mproc_init turns ranks 1 and
 * 2 into the pool's two hosts. A rank that dies is tests/sh/mpi_rank_death.sh's (this
 * program with --rank-death): the job cannot go on after it.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const mproc_pool_opts mpi_opts = {.start = MPROC_START_MPI};

static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

/* Which process ran it: the worker's pid and its parent's (the host rank). */
static int where(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in;
    (void)in_len;
    int32_t v[2] = {(int32_t)getpid(), (int32_t)getppid()};
    memcpy(out, v, sizeof v);
    *out_len = sizeof v;
    return 0;
}

static int worker_no(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    int32_t k = mproc_task_worker(t);
    mproc_test_sleep(0.001); /* so that the other worker gets some */
    memcpy(out, &k, sizeof k);
    *out_len = sizeof k;
    return 0;
}

/* in: 0 ok, 1 sleep for ever, 2 crash, 3 fail with a message */
static int misbehave(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    (void)out;
    int what;
    memcpy(&what, in, sizeof what);
    *out_len = 0;
    if (what == 1)
        for (;;)
            pause();
    if (what == 2)
        raise(SIGSEGV);
    if (what == 3)
        return mproc_task_fail(t, -EDOM, "failed on purpose");
    return 0;
}

/* ---- the pool's outcomes, as on one machine --------------------------------------------- */

static void test_map_and_apply(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &mpi_opts));
    assert_int_equal(mproc_pool_workers(p), 2);
    enum { N = 200000 };
    int64_t *in = malloc(N * sizeof *in), *out = calloc(N, sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i < N; i++)
        in[i] = i - N / 2;
    assert_ok(mproc_pool_map(p, square, in, N, 8, out, 8, NULL)); /* paced chunks */
    for (int i = 0; i < N; i++)
        assert_true(out[i] == in[i] * in[i]);
    memset(out, 0, N * sizeof *out);
    assert_ok(mproc_pool_map(p, square, in, 3000, 8, out, 8, &(mproc_call_opts){.chunksize = 1}));
    for (int i = 0; i < 3000; i++)
        assert_true(out[i] == in[i] * in[i]);
    for (int i = 0; i < 100; i++) {
        int64_t x = i, y = 0;
        size_t len = 0;
        assert_ok(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, &len, NULL, 10));
        assert_int_equal(len, 8);
        assert_true(y == (int64_t)i * i);
    }
    /* the tasks ran on the hosts, in a worker forked by each (not in this process) */
    int32_t v[2];
    size_t len;
    assert_ok(mproc_pool_apply(p, where, NULL, 0, v, sizeof v, &len, NULL, 10));
    assert_true(v[0] != getpid() && v[1] != getpid());
    /* each worker knows its number in the pool, as on one machine */
    int32_t seen[2] = {0, 0}, k[64];
    assert_ok(
        mproc_pool_map(p, worker_no, in, 64, 8, k, sizeof *k, &(mproc_call_opts){.chunksize = 1}));
    for (int i = 0; i < 64; i++) {
        assert_true(k[i] == 0 || k[i] == 1);
        seen[k[i]] = 1;
    }
    assert_true(seen[0] && seen[1]);
    /* close and join: the workers run what they were sent, then end */
    assert_ok(mproc_pool_close(p));
    assert_ok(mproc_pool_join(p, 30));
    mproc_pool_free(p);
    free(in);
    free(out);
}

static void on_done(mproc_result *r, void *arg)
{
    (void)r;
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static int gen_count(void *arg, void *item, size_t item_size)
{
    int64_t *next = arg;
    if (*next >= 500)
        return 0;
    memcpy(item, next, item_size);
    (*next)++;
    return 1;
}

static void test_async_imap_callbacks(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &mpi_opts));
    _Atomic int called = 0;
    mproc_result *r[20];
    int64_t x[20];
    for (int i = 0; i < 20; i++) {
        x[i] = i;
        assert_ok(mproc_pool_apply_async(p, square, &x[i], 8,
                                         &(mproc_call_opts){.callback = on_done, .cb_arg = &called},
                                         &r[i]));
    }
    for (int i = 0; i < 20; i++) {
        int64_t y;
        assert_ok(mproc_result_wait(r[i], 10));
        assert_ok(mproc_result_get(r[i], &y, sizeof y, NULL, 0));
        assert_true(y == (int64_t)i * i);
        mproc_result_free(r[i]);
    }
    assert_int_equal(atomic_load(&called), 20);
    int64_t next = 0;
    mproc_imap *it;
    assert_ok(mproc_pool_imap(p, square, gen_count, &next, 8, 8, NULL, &it));
    int64_t y;
    size_t index, k = 0;
    int rc;
    while ((rc = mproc_imap_next(it, &y, sizeof y, NULL, &index, NULL, 10)) == 0) {
        assert_int_equal(index, k); /* in order */
        assert_true(y == (int64_t)k * (int64_t)k);
        k++;
    }
    assert_code(rc, -MPROC_EEOF);
    assert_int_equal(k, 500);
    mproc_imap_free(it);
    mproc_pool_free(p);
}

/* ---- faults of a task: its worker on the host ends, the host and the pool go on -------- */

static void test_task_faults(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &mpi_opts));
    int what = 1;
    const char *msg = NULL;
    assert_code(mproc_pool_apply(p, misbehave, &what, sizeof what, NULL, 0, NULL,
                                 &(mproc_call_opts){.timeout = 0.3}, 20),
                -MPROC_ETIMELIMIT);
    what = 2;
    assert_code(mproc_pool_apply(p, misbehave, &what, sizeof what, NULL, 0, NULL, NULL, 20),
                -MPROC_EDIED);
    msg = mproc_pool_message();
    assert_non_null(strstr(msg, "signal 11"));
    what = 3;
    assert_code(mproc_pool_apply(p, misbehave, &what, sizeof what, NULL, 0, NULL, NULL, 20), -EDOM);
    assert_string_equal(mproc_pool_message(), "failed on purpose");
    /* replacements serve the rest: a map over both hosts */
    int64_t in[64], out[64];
    for (int i = 0; i < 64; i++)
        in[i] = i;
    assert_ok(mproc_pool_map(p, square, in, 64, 8, out, 8, &(mproc_call_opts){.chunksize = 1}));
    assert_true(out[63] == 63 * 63);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_true(st.restarts >= 2);
    assert_false(st.broken);
    /* a map whose tasks hang: terminate ends it, and the pool */
    int hang = 1;
    mproc_result *r[4];
    for (int i = 0; i < 4; i++)
        assert_ok(mproc_pool_apply_async(p, misbehave, &hang, sizeof hang, NULL, &r[i]));
    mproc_test_sleep(0.2);
    assert_ok(mproc_pool_terminate(p));
    for (int i = 0; i < 4; i++) {
        assert_ok(mproc_result_wait(r[i], 20));
        assert_int_equal(mproc_result_successful(r[i]), 0);
        mproc_result_free(r[i]);
    }
    mproc_pool_free(p);
}

static int init_from(void *arg, void **state)
{
    int64_t *s = malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    memcpy(s, arg, sizeof *s);
    *state = s;
    return 0;
}

static int init_die(void *arg, void **state)
{
    (void)arg;
    (void)state;
    raise(SIGKILL);
    return 0;
}

static int init_refuse(void *arg, void **state)
{
    (void)arg;
    (void)state;
    return -EACCES;
}

static int task_state(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    int64_t *s = mproc_task_state(t);
    memcpy(out, s, sizeof *s);
    *out_len = sizeof *s;
    free(s); /* once: maxtasksperchild 1 */
    return 0;
}

static void test_initializer(void **state)
{
    (void)state;
    int64_t seed = 4242, got = 0;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI,
                                                    .initializer = init_from,
                                                    .initarg = &seed,
                                                    .initarg_size = sizeof seed,
                                                    .maxtasksperchild = 1}));
    for (int i = 0; i < 6; i++) { /* a new worker each time, each initialised */
        assert_ok(mproc_pool_apply(p, task_state, NULL, 0, &got, sizeof got, NULL, NULL, 20));
        assert_true(got == 4242);
    }
    mproc_pool_free(p);
    /* a worker that dies in its initializer ends at once, without a word: its end can
   reach the master before its start is recorded there (that once hung the pool's
   creation for good) */
    for (int i = 0; i < 5; i++) {
        assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI,
                                                          .initializer = init_refuse}),
                    -EACCES);
        assert_code(mproc_pool_new(
                        &p, &(mproc_pool_opts){.start = MPROC_START_MPI, .initializer = init_die}),
                    -MPROC_EDIED);
        assert_non_null(strstr(mproc_pool_message(), "signal 9"));
    }
}

/* ---- what the launcher refuses ------------------------------------------------------------ */

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static void test_refusals(void **state)
{
    (void)state;
    mproc_pool *p, *q;
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI, .workers = 3}),
                -EINVAL);
    assert_non_null(strstr(mproc_pool_message(), "2 ranks besides"));
    int fd = 0;
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI,
                                                      .inherit_fds = &fd,
                                                      .n_inherit_fds = 1}),
                -EINVAL);
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI, .workers = 1}));
    assert_int_equal(mproc_pool_workers(p), 1);
    assert_code(mproc_pool_new(&q, &mpi_opts), -EBUSY); /* the ranks serve p */
    assert_non_null(strstr(mproc_pool_message(), "another pool"));
    mproc_pool_free(p);
    for (int i = 0; i < 10; i++) { /* one after another: each host starts afresh */
        assert_ok(mproc_pool_new(&q, &mpi_opts));
        int64_t x = i, y;
        assert_ok(mproc_pool_apply(q, square, &x, 8, &y, 8, NULL, NULL, 10));
        assert_true(y == (int64_t)i * i);
        mproc_pool_free(q);
    }
    mproc_process *pr; /* a process object stays local */
    assert_code(mproc_process_new(&pr, noop, NULL, &(mproc_process_opts){.start = MPROC_START_MPI}),
                -EINVAL);
}

/* ---- a host rank that dies (tests/sh/mpi_rank_death.sh) ------------------------------------ */

static int kill_host(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    if (x == 300)
        kill(getppid(), SIGKILL); /* the host rank, and with it this worker */
    mproc_test_sleep(0.002);
    x *= 3;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

/* Prints what it saw; the script checks it and how the job ended. */
static int rank_death(void)
{
    mproc_pool *p;
    int rc = mproc_pool_new(&p, &mpi_opts);
    if (rc < 0)
        return 2;
    enum { N = 2000 };
    static int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -1;
    }
    mproc_result *r;
    if (mproc_pool_map_async(p, kill_host, in, N, 8, out, 8, &(mproc_call_opts){.chunksize = 1},
                             &r) < 0)
        return 3;
    rc = mproc_result_wait(r, 60); /* bounded: the wait ends, whatever happened */
    printf("wait: %s\n", mproc_errname(rc));
    int code = 0;
    const char *msg = "";
    (void)mproc_result_failures(r, 0, NULL, &code, &msg);
    printf("map: %s: %s\n", mproc_errname(code), msg);
    /* every outcome that came before the death is there */
    int nf = mproc_result_failures(r, 0, NULL, NULL, NULL);
    static char failed[N];
    for (int k = 0; k < nf; k++) {
        size_t index;
        if (mproc_result_failures(r, (size_t)k, &index, NULL, NULL) >= 0 && index < N)
            failed[index] = 1;
    }
    size_t ok = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        if (failed[i])
            continue;
        if (out[i] == 3 * i)
            ok++;
        else
            bad++;
    }
    printf("outcomes: %zu ok, %zu wrong, %d failed\n", ok, bad, nf);
    const char *why = "";
    int broken = mproc_pool_broken(p, &why);
    printf("broken: %s: %s\n", mproc_errname(broken), why != NULL ? why : "");
    mproc_result_free(r);
    mproc_pool_free(p);
    printf("rank-death: done\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0)
        return 2;
    /* --spawn: run on its own, not by mpirun: the first pool starts two workers by
       MPI_Comm_spawn, and every later one uses them (as with ranks) */
    bool spawn = false, death = false;
    for (int i = 1; i < argc; i++) {
        spawn |= strcmp(argv[i], "--spawn") == 0;
        death |= strcmp(argv[i], "--rank-death") == 0;
    }
    mproc_pool *p; /* MPI connects ranks on first use: its descriptors are not a test's */
    if (mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI, .workers = spawn ? 2 : 0}) <
        0)
        return 3;
    mproc_pool_free(p);
    mproc_test_keep_children(); /* spawned: Open MPI's daemon (orted), the workers' parent */
    if (death)
        return rank_death();
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_map_and_apply), MPROC_TEST(test_async_imap_callbacks),
        MPROC_TEST(test_task_faults),   MPROC_TEST(test_initializer),
        MPROC_TEST(test_refusals),
    };
    return mproc_test_run(tests);
}
