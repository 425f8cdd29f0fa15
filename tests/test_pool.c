/* tests/test_pool.c - the worker pool: apply, map, imap, results, lifecycle, bad input,
 * function references. Crashes, kills and fault points are in test_pool_crash.c.
 *
 * Every pool here has real worker processes; the leak gate checks after each test that
 * no worker, zombie, thread, fd or /dev/shm entry is left.
 */
#include "harness.h"
#include "internal.h"
#include "fnref.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- tasks ------------------------------------------------------------------------------ */

static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    int64_t x;
    if (in_len != sizeof x || *out_len < sizeof x)
        return -EINVAL;
    memcpy(&x, in, sizeof x);
    if (x < 0)
        return mproc_task_fail(t, -EDOM, "negative input %lld", (long long)x);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

/* bytes in, the same bytes reversed out */
static int reverse(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    if (in_len > *out_len)
        return -EMSGSIZE;
    for (size_t i = 0; i < in_len; i++)
        ((unsigned char *)out)[i] = ((const unsigned char *)in)[in_len - 1 - i];
    *out_len = in_len;
    return 0;
}

/* sleep in ms (int64), output the worker's pid */
static int nap_pid(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    int64_t ms;
    memcpy(&ms, in, sizeof ms);
    if (ms > 0)
        mproc_test_sleep((double)ms / 1000);
    int64_t pid = getpid();
    memcpy(out, &pid, sizeof pid);
    *out_len = sizeof pid;
    return 0;
}

static int state_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out_len;
    int *st = mproc_task_state(t);
    int64_t v = st != NULL ? *st * 1000 + mproc_task_worker(t) : -1;
    memcpy(out, &v, sizeof v);
    *out_len = sizeof v;
    return 0;
}

static int init_ok(void *arg, void **state)
{
    int *s = malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    memcpy(s, arg, sizeof *s); /* initarg: an int (initarg_size bytes, copied under spawn) */
    *state = s;
    return 0;
}

static int init_fail(void *arg, void **state)
{
    (void)arg;
    (void)state;
    return -ENOEXEC;
}

/* Words shared with the workers under every start method, each with a fixed role (the
 * harness's region, at the same address in every process of this program). */
enum { WORD_GATE, WORD_INIT_HANG, WORD_HELD_AT };

static _Atomic int *shared_at(int k)
{
    _Atomic int *words = mproc_test_shared();
    assert_non_null(words);
    return &words[k];
}

static mproc_pool *pool_of(int workers)
{
    mproc_pool *p = NULL;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = workers}));
    return p;
}

/* ---- apply --------------------------------------------------------------------------- */

static void test_apply(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    assert_int_equal(mproc_pool_workers(p), 2);
    int64_t x = 12, y = 0;
    size_t len = 0;
    assert_ok(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, &len, NULL, 10));
    assert_int_equal(y, 144);
    assert_int_equal(len, sizeof y);

    /* variable-size bytes, including empty input */
    char buf[64];
    assert_ok(mproc_pool_apply(p, reverse, "hello", 5, buf, sizeof buf, &len, NULL, 10));
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "olleh", 5);
    assert_ok(mproc_pool_apply(p, reverse, NULL, 0, buf, sizeof buf, &len, NULL, 10));
    assert_int_equal(len, 0);
    assert_code(mproc_pool_apply(p, reverse, "hello", 5, buf, 2, &len, NULL, 10), -MPROC_ETOOSMALL);
    assert_int_equal(len, 5);

    /* the output without a copy; the outcome without the output */
    mproc_result *r;
    assert_ok(mproc_pool_apply_async(p, reverse, "abc", 3, NULL, &r));
    const void *data;
    assert_ok(mproc_result_get(r, NULL, 0, &len, 10));
    assert_int_equal(len, 3);
    assert_ok(mproc_result_output(r, &data, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(data, "cba", 3);
    assert_code(mproc_result_output(r, NULL, &len), -EINVAL);
    mproc_result_free(r);

    /* a task's own failure */
    x = -3;
    assert_code(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, &len, NULL, 10), -EDOM);
    mproc_pool_free(p);
}

/* A blocking apply or map that fails leaves its message for the calling thread
 * (mproc_pool_message), on the direct path and the usual one alike; a blocking apply
 * takes per-call options (a time limit for that task). */
struct msg_thread_arg {
    mproc_pool *p;
    char seen[300];
};

static void *fail_in_thread(void *arg)
{
    struct msg_thread_arg *a = arg;
    int64_t x = -5, y;
    if (mproc_pool_apply(a->p, square, &x, sizeof x, &y, sizeof y, NULL, NULL, 10) == -EDOM)
        snprintf(a->seen, sizeof a->seen, "%s", mproc_pool_message());
    return NULL;
}

static void never_called(mproc_result *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void test_apply_message_and_options(void **state)
{
    (void)state;
    for (int path = 0; path < 2; path++) {
        /* path 0: idle workers take blocking applies directly; 1: a pool time limit
           sends them through the supervisor */
        mproc_pool *p;
        assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .timeout = path ? 60 : 0}));
        int64_t x = -3, y = 0;
        assert_code(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, NULL, NULL, 10), -EDOM);
        assert_string_equal(mproc_pool_message(), "negative input -3");
        x = 4;
        assert_ok(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, NULL, NULL, 10));
        assert_string_equal(mproc_pool_message(), ""); /* a success clears it */

        /* per thread: another thread's failure is its own */
        struct msg_thread_arg a = {.p = p};
        pthread_t th;
        x = -3;
        assert_code(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, NULL, NULL, 10), -EDOM);
        assert_int_equal(pthread_create(&th, NULL, fail_in_thread, &a), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_string_equal(a.seen, "negative input -5");
        assert_string_equal(mproc_pool_message(), "negative input -3");

        /* a per-call time limit, here stricter than the pool's */
        int64_t ms = 5000;
        double t0 = mproc_test_now();
        assert_code(mproc_pool_apply(p, nap_pid, &ms, sizeof ms, &y, sizeof y, NULL,
                                     &(mproc_call_opts){.timeout = 0.2}, 30),
                    -MPROC_ETIMELIMIT);
        assert_true(mproc_test_now() - t0 < 4);
        assert_true(strlen(mproc_pool_message()) > 0);
        ms = 0;
        assert_ok(mproc_pool_apply(p, nap_pid, &ms, sizeof ms, &y, sizeof y, NULL,
                                   &(mproc_call_opts){.timeout = 5}, 30));

        /* callbacks have no place in a blocking call */
        assert_code(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, NULL,
                                     &(mproc_call_opts){.callback = never_called}, 10),
                    -EINVAL);
        assert_string_equal(mproc_pool_message(), mproc_strerror(-EINVAL));

        /* a blocking map: the lowest-numbered failure's message */
        int64_t in[6] = {1, 2, -7, 4, -9, 6}, out[6];
        assert_code(mproc_pool_map(p, square, in, 6, sizeof in[0], out, sizeof out[0], NULL),
                    -EDOM);
        assert_string_equal(mproc_pool_message(), "negative input -7");
        in[2] = 3;
        in[4] = 5;
        assert_ok(mproc_pool_map(p, square, in, 6, sizeof in[0], out, sizeof out[0], NULL));
        assert_string_equal(mproc_pool_message(), "");
        mproc_pool_free(p);
    }
}

struct cb_count {
    _Atomic int ok, err;
    _Atomic int concurrent, max_concurrent;
    pthread_t caller;
    _Atomic int on_caller_thread;
};

static void on_ok(mproc_result *r, void *arg)
{
    struct cb_count *c = arg;
    int now = atomic_fetch_add(&c->concurrent, 1) + 1;
    if (now > atomic_load(&c->max_concurrent))
        atomic_store(&c->max_concurrent, now);
    assert_int_equal(mproc_result_ready(r), 1);
    assert_int_equal(mproc_result_successful(r), 1);
    if (pthread_equal(pthread_self(), c->caller))
        atomic_fetch_add(&c->on_caller_thread, 1);
    atomic_fetch_add(&c->ok, 1);
    atomic_fetch_sub(&c->concurrent, 1);
}

static void on_err(mproc_result *r, void *arg)
{
    struct cb_count *c = arg;
    assert_int_equal(mproc_result_successful(r), 0);
    assert_code(mproc_result_get(r, NULL, 0, NULL, 0), -EDOM);
    assert_non_null(strstr(mproc_result_message(r), "negative input"));
    atomic_fetch_add(&c->err, 1);
}

/* A message longer than the limit is cut, and the cut is marked with "...". */
static int long_message(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    char text[600];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    return mproc_task_fail(t, -EDOM, "%s", text);
}

/* A task reporting who runs it: its current_process() facts. */
static int who_am_i(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in;
    (void)in_len;
    mproc_self me;
    if (mproc_current_process(&me) < 0 || me.parent_name == NULL)
        return -EINVAL;
    int n = snprintf(out, *out_len, "%s %d %d %s %d", me.name, (int)me.pid, (int)me.parent_pid,
                     me.parent_name, me.daemon);
    if (n < 0 || (size_t)n >= *out_len)
        return -EMSGSIZE;
    *out_len = (size_t)n + 1;
    return 0;
}

/* Python's pool workers are ForkPoolWorker-N; ours say PoolWorker-N, their parent is
 * the pool's process, and they are daemons. */
static void test_worker_identity(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    bool seen[3] = {false};
    for (int i = 0; i < 200 && !(seen[1] && seen[2]); i++) {
        char out[256];
        size_t len = 0;
        assert_ok(mproc_pool_apply(p, who_am_i, NULL, 0, out, sizeof out, &len, NULL, 10));
        int n = 0, pid = 0, parent = 0, daemon = 0;
        char pname[64];
        assert_int_equal(
            sscanf(out, "PoolWorker-%d %d %d %63s %d", &n, &pid, &parent, pname, &daemon), 5);
        assert_true(n == 1 || n == 2);
        seen[n] = true;
        assert_true(pid != getpid());
        assert_int_equal(parent, getpid());
        assert_string_equal(pname, "MainProcess");
        assert_int_equal(daemon, 1);
    }
    assert_true(seen[1] || seen[2]);
    assert_ok(mproc_pool_close(p));
    assert_ok(mproc_pool_join(p, MPROC_FOREVER));
    mproc_pool_free(p);
}

static void test_long_message_marked(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(1);
    mproc_result *r;
    int64_t x = 1;
    assert_ok(mproc_pool_apply_async(p, long_message, &x, sizeof x, NULL, &r));
    assert_code(mproc_result_get(r, NULL, 0, NULL, 10), -EDOM);
    const char *m = mproc_result_message(r);
    assert_int_equal(strlen(m), 255);
    assert_string_equal(m + 252, "...");
    assert_int_equal(m[251], 'x');
    mproc_result_free(r);
    assert_code(mproc_pool_apply(p, long_message, &x, sizeof x, NULL, 0, NULL, NULL, 10), -EDOM);
    mproc_pool_free(p);
}

static void test_apply_async_callbacks(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    struct cb_count c = {.caller = pthread_self()};
    mproc_call_opts o = {.callback = on_ok, .error_callback = on_err, .cb_arg = &c};
    enum { N = 200 };
    mproc_result *r[N];
    for (int64_t i = 0; i < N; i++) {
        int64_t x = i % 10 == 9 ? -i : i;
        /* half keep a handle, half are fire-and-forget */
        assert_ok(mproc_pool_apply_async(p, square, &x, sizeof x, &o, i % 2 ? &r[i] : NULL));
        if (i % 2 == 0)
            r[i] = NULL;
    }
    for (int i = 0; i < N; i++) {
        if (r[i] == NULL)
            continue;
        int64_t y = 0;
        size_t len = 0;
        int rc = mproc_result_get(r[i], &y, sizeof y, &len, 10);
        if (i % 10 == 9) {
            assert_code(rc, -EDOM);
            assert_int_equal(mproc_result_successful(r[i]), 0);
        } else {
            assert_ok(rc);
            assert_int_equal(y, (int64_t)i * i);
            assert_int_equal(mproc_result_successful(r[i]), 1);
        }
        assert_int_equal(mproc_result_ready(r[i]), 1);
        mproc_result_free(r[i]);
    }
    mproc_pool_close(p);
    assert_ok(mproc_pool_join(p, 10)); /* all callbacks have run once join returns */
    assert_int_equal(atomic_load(&c.ok), N - N / 10);
    assert_int_equal(atomic_load(&c.err), N / 10);
    assert_int_equal(atomic_load(&c.max_concurrent), 1);
    assert_int_equal(atomic_load(&c.on_caller_thread), 0);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.submitted, N);
    assert_int_equal(st.done, N);
    assert_int_equal(st.failed, N / 10);
    assert_int_equal(st.pending, 0);
    mproc_pool_free(p);
}

static void test_apply_wait_timeout(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(1);
    int64_t x = 400, y;
    double t0 = mproc_test_now();
    /* the wait times out; the task goes on, its outcome is dropped */
    assert_code(mproc_pool_apply(p, nap_pid, &x, sizeof x, &y, sizeof y, NULL, NULL, 0.05),
                -ETIMEDOUT);
    assert_true(mproc_test_now() - t0 < 0.35);
    x = 0;
    assert_ok(mproc_pool_apply(p, nap_pid, &x, sizeof x, &y, sizeof y, NULL, NULL, 10));
    mproc_pool_stats st;
    mproc_worker_stats ws[1];
    assert_ok(mproc_pool_stats_get(p, &st, ws, 1));
    assert_int_equal(st.done, 2);
    assert_int_equal(ws[0].done, 2);
    assert_int_equal(ws[0].pid, y);
    mproc_pool_free(p);
}

struct chain {
    mproc_pool *p;
    _Atomic int left;
    _Atomic int ran;
};

/* a callback that submits the next task (allowed: it does not wait) */
static void resubmit(mproc_result *r, void *arg)
{
    struct chain *c = arg;
    const void *data;
    size_t len;
    assert_ok(mproc_result_output(r, &data, &len));
    atomic_fetch_add(&c->ran, 1);
    if (atomic_fetch_sub(&c->left, 1) > 1) {
        int64_t x = 1;
        assert_ok(mproc_pool_apply_async(c->p, square, &x, sizeof x,
                                         &(mproc_call_opts){.callback = resubmit, .cb_arg = c},
                                         NULL));
    }
}

static void test_callback_submits(void **state)
{
    (void)state;
    struct chain c = {.p = pool_of(2), .left = 50};
    int64_t x = 1;
    assert_ok(mproc_pool_apply_async(c.p, square, &x, sizeof x,
                                     &(mproc_call_opts){.callback = resubmit, .cb_arg = &c}, NULL));
    double t0 = mproc_test_now();
    while (atomic_load(&c.ran) < 50 && mproc_test_now() - t0 < 10)
        mproc_test_sleep(0.01);
    assert_int_equal(atomic_load(&c.ran), 50);
    mproc_pool_close(c.p);
    assert_ok(mproc_pool_join(c.p, 10));
    mproc_pool_stats st;
    mproc_worker_stats ws[2];
    assert_ok(mproc_pool_stats_get(c.p, &st, ws, 2));
    assert_int_equal(st.done, 50);
    assert_int_equal(ws[0].done + ws[1].done, 50);
    mproc_pool_free(c.p);
}

/* ---- map ------------------------------------------------------------------------------- */

static void check_map(mproc_pool *p, size_t n, size_t chunksize)
{
    int64_t *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    assert_ok(mproc_pool_map(p, square, in, n, sizeof *in, out, sizeof *out,
                             &(mproc_call_opts){.chunksize = chunksize}));
    for (size_t i = 0; i < n; i++)
        if (out[i] != (int64_t)(i * i))
            fail_msg("item %zu: %lld (chunksize %zu)", i, (long long)out[i], chunksize);
    free(in);
    free(out);
}

static void test_map_chunksizes(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(3);
    size_t sizes[] = {0, 1, 7, 1000, 5000};
    for (size_t k = 0; k < MPROC__ARRAY_LEN(sizes); k++)
        check_map(p, 1000, sizes[k]);
    check_map(p, 1, 0);
    check_map(p, 100000, 0); /* default chunks bounded by the channel size */
    /* zero items: done at once */
    int64_t dummy;
    assert_ok(mproc_pool_map(p, square, &dummy, 0, sizeof dummy, &dummy, sizeof dummy, NULL));
    mproc_pool_free(p);
}

/* input: ms to sleep; output: the worker's slot */
static int nap_slot(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    (void)out_len;
    int64_t ms;
    memcpy(&ms, in, sizeof ms);
    if (ms > 0)
        mproc_test_sleep((double)ms / 1000);
    int64_t slot = mproc_task_worker(t);
    memcpy(out, &slot, sizeof slot);
    return 0;
}

/* The default chunksize adapts to uneven task times: a run of slow tasks at the front,
 * where Python's len / (4 * workers) would hand all of them to one worker in one chunk,
 * is spread over both; then the fast rest goes in large chunks. */
static void test_map_paced_uneven(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 400, SLOW = 40 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = i < SLOW ? 5 : 0;
        out[i] = -1;
    }
    assert_ok(mproc_pool_map(p, nap_slot, in, N, sizeof *in, out, sizeof *out, NULL));
    int per[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        assert_true(out[i] == 0 || out[i] == 1);
        if (i < SLOW)
            per[out[i]]++;
    }
    print_message("slow tasks: %d and %d per worker\n", per[0], per[1]);
    assert_true(per[0] >= SLOW / 4 && per[1] >= SLOW / 4);
    mproc_pool_free(p);
}

static void test_map_async_failures(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 300 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = i % 50 == 7 ? -i : i;
        out[i] = -1;
    }
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, square, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 4}, &r));
    assert_code(mproc_result_get(r, NULL, 0, NULL, 10), -EDOM);
    assert_string_equal(mproc_result_message(r), "negative input -7");
    assert_int_equal(mproc_result_successful(r), 0);
    assert_int_equal(mproc_result_failures(r, 0, NULL, NULL, NULL), N / 50);
    for (size_t k = 0; k < N / 50; k++) {
        size_t idx;
        int code;
        const char *msg;
        assert_int_equal(mproc_result_failures(r, k, &idx, &code, &msg), N / 50);
        assert_int_equal(idx, 50 * k + 7);
        assert_code(code, -EDOM);
        char want[64];
        snprintf(want, sizeof want, "negative input -%zu", idx);
        assert_string_equal(msg, want);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(out[i], i % 50 == 7 ? -1 : (int64_t)i * i);
    mproc_result_free(r);
    mproc_pool_free(p);
}

/* the address the task saw its input at, and its value + 1 */
static int where(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    int64_t x, o[2] = {(int64_t)(uintptr_t)in, 0};
    memcpy(&x, in, sizeof x);
    o[1] = x + 1;
    memcpy(out, o, sizeof o);
    return 0;
}

/* Arrays in a shared block made before the pool are read and written in place. */
static void test_map_zero_copy(void **state)
{
    (void)state;
    MPROC_TEST_FORK_ONLY(); /* in place: only forked workers share the caller's mappings */
    enum { N = 5000 };
    mproc_shm *before, *after;
    assert_ok(mproc_shm_new(&before, NULL, N * 3 * sizeof(int64_t), 0));
    mproc_pool *p = pool_of(2);
    assert_ok(mproc_shm_new(&after, NULL, N * 3 * sizeof(int64_t), 0));
    for (int round = 0; round < 3; round++) {
        int64_t *base = round == 0   ? mproc_shm_buf(before)
                        : round == 1 ? mproc_shm_buf(after)
                                     : malloc(N * 3 * sizeof(int64_t));
        int64_t *in = base, *out = base + N; /* out: pairs */
        for (int i = 0; i < N; i++) {
            in[i] = i;
            out[2 * i] = out[2 * i + 1] = -1;
        }
        assert_ok(mproc_pool_map(p, where, in, N, sizeof *in, out, 2 * sizeof *out, NULL));
        size_t inplace = 0;
        for (int i = 0; i < N; i++) {
            assert_int_equal(out[2 * i + 1], i + 1);
            inplace += out[2 * i] == (int64_t)(uintptr_t)&in[i];
        }
        /* zero-copy only where the workers share the memory at the same address */
        assert_int_equal(inplace, round == 0 ? N : 0);
        if (round == 2)
            free(base);
    }
    /* input private, output shared: the output still comes back right */
    int64_t *priv = malloc(N * sizeof *priv);
    int64_t *out = (int64_t *)mproc_shm_buf(before) + N;
    for (int i = 0; i < N; i++)
        priv[i] = 2 * i;
    assert_ok(mproc_pool_map(p, where, priv, N, sizeof *priv, out, 2 * sizeof *out, NULL));
    for (int i = 0; i < N; i++)
        assert_int_equal(out[2 * i + 1], 2 * i + 1);
    free(priv);
    mproc_pool_free(p);
    mproc_shm_free(before);
    mproc_shm_free(after);
}

/* A placed map (over shared arrays: one part per worker, src/pool/dispatch.c): item i
 * fails when i % 7 == 3, one worker dies once at the item *die_at, and the output says
 * which worker ran it. */
static _Atomic int64_t *die_at; /* shared: -1 once used */

static int placed_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    (void)out_len;
    int64_t x, o[2];
    memcpy(&x, in, sizeof x);
    int64_t at = atomic_load(die_at);
    if (x == at && atomic_compare_exchange_strong(die_at, &at, -1))
        raise(SIGKILL);
    if (x % 7 == 3)
        return mproc_task_fail(t, -EDOM, "item %lld", (long long)x);
    o[0] = x * x;
    o[1] = mproc_task_worker(t);
    memcpy(out, o, sizeof o);
    return 0;
}

static void test_map_placed(void **state)
{
    (void)state;
    MPROC_TEST_FORK_ONLY(); /* in place: only forked workers share the caller's mappings */
    enum { N = 60000 };
    size_t bytes = N * 3 * sizeof(int64_t) + sizeof(int64_t);
    unsigned char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    die_at = (_Atomic int64_t *)(void *)m;
    int64_t *in = (int64_t *)(void *)(m + sizeof(int64_t)), *out = in + N; /* out: pairs */
    mproc_pool *p = pool_of(3);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            in[i] = i;
            out[2 * i] = out[2 * i + 1] = -1;
        }
        /* round 1: a worker is killed in the second part; round 2: small chunks */
        atomic_store(die_at, round == 1 ? N / 2 + 11 : -1);
        mproc_call_opts o = {.chunksize = round == 2 ? 7 : 0};
        mproc_result *r;
        assert_ok(
            mproc_pool_map_async(p, placed_task, in, N, sizeof *in, out, 2 * sizeof *out, &o, &r));
        int rc = mproc_result_get(r, NULL, 0, NULL, MPROC_FOREVER);
        int nf = mproc_result_failures(r, 0, NULL, NULL, NULL);
        size_t died = 0;
        for (int k = 0; k < nf; k++) {
            size_t idx;
            int code;
            assert_int_equal(mproc_result_failures(r, (size_t)k, &idx, &code, NULL), nf);
            if (code == -MPROC_EDIED) {
                assert_int_equal(idx, N / 2 + 11);
                died++;
            } else {
                assert_int_equal(code, -EDOM);
                assert_int_equal(idx % 7, 3);
            }
        }
        assert_int_equal(died, round == 1 ? 1 : 0);
        assert_int_equal(nf, (N + 3) / 7 + (int)died);
        assert_code(rc, -EDOM); /* the lowest-numbered failure: item 3 */
        for (int i = 0; i < N; i++)
            if (i % 7 != 3 && !(round == 1 && i == N / 2 + 11)) {
                assert_int_equal(out[2 * i], (int64_t)i * i);
                assert_in_range(out[2 * i + 1], 0, 2);
            }
        mproc_result_free(r);
    }
    mproc_pool_free(p);
    munmap(m, bytes);
}

/* .phase_times: where the time went, measured only when asked for. */
static void test_phase_times(void **state)
{
    (void)state;
    enum { N = 200000 };
    int64_t *in = malloc(N * sizeof *in), *out = malloc(N * 2 * sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i < N; i++)
        in[i] = i;
    for (int timed = 0; timed < 2; timed++) {
        mproc_pool *p;
        assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .phase_times = timed}));
        assert_ok(mproc_pool_map(p, where, in, N, sizeof *in, out, 2 * sizeof *out, NULL));
        mproc_pool_stats st;
        assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
        if (timed) {
            assert_true(st.ns.dispatch > 0 && st.ns.run > 0 && st.ns.publish > 0 &&
                        st.ns.settle > 0);
        } else {
            assert_true(st.ns.dispatch == 0 && st.ns.fault == 0 && st.ns.copy == 0 &&
                        st.ns.run == 0 && st.ns.publish == 0 && st.ns.settle == 0);
        }
        for (int i = 0; i < N; i++)
            assert_int_equal(out[2 * i + 1], i + 1);
        mproc_pool_free(p);
    }
    free(in);
    free(out);
}

/* Cancelling a placed map: what no worker was given is cancelled, in every part. */
static int slow_square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    mproc_test_sleep(0.001);
    x *= x;
    memcpy(out, &x, sizeof x);
    return 0;
}

static void test_map_placed_cancel(void **state)
{
    (void)state;
    MPROC_TEST_FORK_ONLY(); /* in place: only forked workers share the caller's mappings */
    enum { N = 4000 };
    size_t bytes = 2 * N * sizeof(int64_t);
    int64_t *in = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(in != MAP_FAILED);
    int64_t *out = in + N;
    for (int i = 0; i < N; i++)
        in[i] = i;
    mproc_pool *p = pool_of(2);
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, slow_square, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 10}, &r));
    mproc_test_sleep(0.05);
    int cancelled = mproc_result_cancel(r);
    assert_true(cancelled > 0 && cancelled < N);
    assert_code(mproc_result_get(r, NULL, 0, NULL, MPROC_FOREVER), -MPROC_ECANCELLED);
    int nf = mproc_result_failures(r, 0, NULL, NULL, NULL);
    assert_int_equal(nf, cancelled); /* every one of them, from both parts */
    size_t from_second = 0;
    for (int k = 0; k < nf; k++) {
        size_t idx;
        int code;
        assert_int_equal(mproc_result_failures(r, (size_t)k, &idx, &code, NULL), nf);
        assert_code(code, -MPROC_ECANCELLED);
        from_second += idx >= N / 2;
    }
    assert_true(from_second > 0 && from_second < (size_t)nf); /* both parts had some left */
    /* the second part began at its front at once (one cursor would have reached it only
       after the first 2,000, seconds later) while the end of the first was still waiting */
    assert_int_equal(out[N / 2], (int64_t)(N / 2) * (N / 2));
    assert_true(out[N / 2 - 1] != (int64_t)(N / 2 - 1) * (N / 2 - 1));
    for (int i = 0; i < N; i++) /* the others ran */
        if (out[i] != (int64_t)i * i) {
            bool listed = false;
            for (int k = 0; k < nf && !listed; k++) {
                size_t idx;
                assert_int_equal(mproc_result_failures(r, (size_t)k, &idx, NULL, NULL), nf);
                listed = idx == (size_t)i;
            }
            assert_true(listed);
        }
    mproc_result_free(r);
    mproc_pool_free(p);
    munmap(in, bytes);
}

static int wide(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    for (size_t k = 0; k < *out_len / sizeof x; k++)
        memcpy((char *)out + k * sizeof x, &x, sizeof x);
    return 0;
}

static void slow_callback(mproc_result *r, void *arg)
{
    (void)r;
    (void)arg;
    mproc_test_sleep(0.3); /* the supervisor collects nothing meanwhile: rings fill */
}

/* Tiny channels: chunks and result rings fill up; workers wait for room, nothing is lost. */
static void test_small_channel_backpressure(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .channel_size = 4096}));
    enum { N = 3000, W = 8 };
    static int64_t in[N], out[N][W];
    for (int i = 0; i < N; i++)
        in[i] = i;
    /* A finishes first and its callback holds the supervisor while the workers fill
     * their result rings with B's outputs (B's chunks are already in their channels) */
    int64_t x = 1, y;
    mproc_result *a, *b;
    assert_ok(mproc_pool_map_async(p, square, &x, 1, sizeof x, &y, sizeof y,
                                   &(mproc_call_opts){.callback = slow_callback}, &a));
    assert_ok(mproc_pool_map_async(p, wide, in, N, sizeof *in, out, sizeof out[0], NULL, &b));
    assert_ok(mproc_result_get(b, NULL, 0, NULL, 20));
    assert_ok(mproc_result_get(a, NULL, 0, NULL, 20));
    mproc_result_free(a);
    mproc_result_free(b);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < W; k++)
            assert_int_equal(out[i][k], i);
    /* an item larger than a channel is refused up front */
    assert_code(mproc_pool_map(p, wide, in, N, sizeof *in, out, 4096, NULL), -EMSGSIZE);
    mproc_pool_free(p);
}

/* ---- imap ------------------------------------------------------------------------------ */

struct gen {
    int64_t next, n;
    int fail_at;              /* >= 0: the generator fails there */
    _Atomic int64_t consumed; /* items the test has read */
    int64_t max_ahead;        /* most items generated but not read */
};

static int gen_count(void *arg, void *item, size_t size)
{
    struct gen *g = arg;
    assert_int_equal(size, sizeof(int64_t));
    int64_t ahead = g->next - atomic_load(&g->consumed);
    if (ahead > g->max_ahead)
        g->max_ahead = ahead;
    if (g->fail_at >= 0 && g->next == g->fail_at)
        return -EIO;
    if (g->next >= g->n)
        return 0;
    memcpy(item, &g->next, sizeof g->next);
    g->next++;
    return 1;
}

/* Every output the caller receives has a capacity: a buffer too small for an imap item
 * is -MPROC_ETOOSMALL with the size needed, and the item stays for the next call. */
static void test_imap_next_capacity(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    struct gen g = {.n = 3, .fail_at = -1};
    mproc_imap *it;
    assert_ok(
        mproc_pool_imap(p, square, gen_count, &g, sizeof(int64_t), sizeof(int64_t), NULL, &it));
    int32_t small = 0;
    size_t len = 0, idx = 99;
    assert_code(mproc_imap_next(it, &small, sizeof small, &len, &idx, NULL, 10), -MPROC_ETOOSMALL);
    assert_int_equal(len, sizeof(int64_t));
    assert_int_equal(idx, 99); /* nothing taken */
    assert_code(mproc_imap_next(it, NULL, 0, &len, NULL, NULL, 10), -MPROC_ETOOSMALL);
    assert_code(mproc_imap_next(it, NULL, 8, &len, NULL, NULL, 10), -EINVAL);
    for (int64_t i = 0; i < 3; i++) {
        int64_t y[2] = {-1, -1}; /* room to spare: only the item is written */
        len = 0;
        assert_ok(mproc_imap_next(it, y, sizeof y, &len, &idx, NULL, 10));
        assert_int_equal(idx, i);
        assert_int_equal(len, sizeof(int64_t));
        assert_int_equal(y[0], i * i);
        assert_int_equal(y[1], -1);
    }
    int64_t y;
    assert_code(mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10), -MPROC_EEOF);
    mproc_imap_free(it);
    mproc_pool_free(p);
}

/* ---- map over items of any size ------------------------------------------------------ */

/* reverse, but fail on an input starting with '!' and give an empty output for "" */
static int reverse_or_fail(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    if (in_len > 0 && ((const char *)in)[0] == '!')
        return mproc_task_fail(t, -EILSEQ, "bang at %zu bytes", in_len);
    return reverse(t, in, in_len, out, out_len);
}

static void test_map_var(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 5000 };
    mproc_item *in = calloc(N, sizeof *in), *out = calloc(N, sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    uint64_t seed = 7;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t len = i == 17 ? 0 : 1 + (seed >> 33) % 3000; /* 0 .. 3000 bytes */
        if (i == 4321)
            len = 100000; /* one large item among small ones */
        char *d = malloc(len + 1);
        assert_non_null(d);
        for (size_t k = 0; k < len; k++)
            d[k] = (char)('a' + (i + k) % 26);
        in[i] = (mproc_item){d, len};
    }
    ((char *)in[99].data)[0] = '!';
    ((char *)in[3000].data)[0] = '!';
    out[5] = (mproc_item){(void *)0x1, 77}; /* whatever was there is overwritten */

    assert_code(mproc_pool_map_var(p, reverse_or_fail, in, N, out, NULL), -EILSEQ);
    char want[64];
    snprintf(want, sizeof want, "bang at %zu bytes", in[99].len); /* the lowest failed item */
    assert_string_equal(mproc_pool_message(), want);
    for (size_t i = 0; i < N; i++) {
        if (i == 99 || i == 3000) {
            assert_null(out[i].data); /* a failed item: nothing */
            assert_int_equal(out[i].len, 0);
            continue;
        }
        assert_non_null(out[i].data); /* a success, even an empty one */
        assert_int_equal(out[i].len, in[i].len);
        for (size_t k = 0; k < in[i].len; k++)
            assert_int_equal(((char *)out[i].data)[k], ((char *)in[i].data)[in[i].len - 1 - k]);
        mproc_item_free(&out[i]);
    }

    /* async: the per-item failures, in order */
    mproc_result *r;
    assert_ok(mproc_pool_map_var_async(p, reverse_or_fail, in, N, out,
                                       &(mproc_call_opts){.chunksize = 7}, &r));
    assert_code(mproc_result_get(r, NULL, 0, NULL, 30), -EILSEQ);
    assert_int_equal(mproc_result_failures(r, 0, NULL, NULL, NULL), 2);
    size_t idx;
    int code;
    const char *msg;
    assert_int_equal(mproc_result_failures(r, 1, &idx, &code, &msg), 2);
    assert_int_equal(idx, 3000);
    assert_int_equal(code, -EILSEQ);
    mproc_result_free(r);
    for (size_t i = 0; i < N; i++) /* every output aligned for any type */
        assert_int_equal((uintptr_t)out[i].data % _Alignof(max_align_t), 0);
    mproc_items_free(out, N); /* all at once, the pool long done with them */
    for (size_t i = 0; i < N; i++)
        assert_null(out[i].data);
    mproc_items_free(NULL, 3);
    mproc_item_free(NULL);
    mproc_items_trim(); /* the released slabs go back to the system */
    mproc_items_trim();

    /* zero items; bad arguments; an item larger than a channel message */
    assert_ok(mproc_pool_map_var(p, reverse, in, 0, out, NULL));
    assert_code(mproc_pool_map_var(p, NULL, in, N, out, NULL), -EINVAL);
    assert_code(mproc_pool_map_var(p, reverse, NULL, N, out, NULL), -EINVAL);
    assert_code(mproc_pool_map_var(p, reverse, in, N, NULL, NULL), -EINVAL);
    mproc_item bad = {NULL, 5};
    assert_code(mproc_pool_map_var(p, reverse, &bad, 1, out, NULL), -EINVAL);
    mproc_item huge = {in[0].data, (size_t)64 << 20};
    assert_code(mproc_pool_map_var(p, reverse, &huge, 1, out, NULL), -EMSGSIZE);
    for (size_t i = 0; i < N; i++)
        free(in[i].data);
    free(in);
    free(out);
    mproc_pool_free(p);
}

/* imap over items of any size: item i is i % 1500 bytes (with 'a' + i % 26), except
 * item `bang` ("!..." fails) and item `huge` (too large for a chunk); n items. */
struct var_gen {
    size_t n, next, bang, huge;
    char buf[1500];
    char *big;
};

static int var_gen_next(void *arg, mproc_item *item)
{
    struct var_gen *g = arg;
    if (g->next >= g->n)
        return 0;
    size_t i = g->next++;
    if (i == g->huge) {
        *item = (mproc_item){g->big, (size_t)64 << 20};
        return 1;
    }
    size_t len = i % 1500;
    memset(g->buf, 'a' + (int)(i % 26), len);
    if (i == g->bang && len > 0)
        g->buf[0] = '!';
    *item = (mproc_item){g->buf, len}; /* copied before the next call */
    return 1;
}

static void test_imap_var(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    for (int unordered = 0; unordered < 2; unordered++) {
        struct var_gen g = {.n = 3000, .bang = 1234, .huge = SIZE_MAX};
        mproc_imap *it;
        assert_ok(mproc_pool_imap_var(
            p, reverse_or_fail, var_gen_next, &g,
            &(mproc_call_opts){.window = 64, .flags = unordered ? MPROC_IMAP_UNORDERED : 0}, &it));
        bool seen[3000] = {false};
        char out[1500];
        size_t got = 0;
        for (;;) {
            size_t len = 0, idx = 0;
            const char *msg;
            int rc = mproc_imap_next(it, out, 1, &len, &idx, &msg, 30);
            if (rc == -MPROC_ETOOSMALL) { /* said how large: the same item, with room */
                size_t want = len;
                rc = mproc_imap_next(it, out, sizeof out, &len, &idx, &msg, 30);
                assert_int_equal(len, want);
            }
            if (rc == -MPROC_EEOF)
                break;
            if (!unordered)
                assert_int_equal(idx, got);
            assert_false(seen[idx]);
            seen[idx] = true;
            got++;
            if (idx == 1234) {
                assert_code(rc, -EILSEQ);
                assert_string_equal(msg, "bang at 1234 bytes");
                continue;
            }
            assert_ok(rc);
            assert_int_equal(len, idx % 1500);
            for (size_t k = 0; k < len; k++)
                assert_int_equal(out[k], 'a' + (int)(idx % 26));
        }
        assert_int_equal(got, 3000);
        mproc_imap_free(it);
    }

    /* an item too large for a chunk stops the generator with -EMSGSIZE, reported once
       after the items before it */
    struct var_gen g = {.n = 100, .bang = SIZE_MAX, .huge = 50, .big = malloc((size_t)64 << 20)};
    assert_non_null(g.big);
    mproc_imap *it;
    assert_ok(mproc_pool_imap_var(p, reverse, var_gen_next, &g, NULL, &it));
    char out[1500];
    size_t len;
    for (int i = 0; i < 50; i++)
        assert_ok(mproc_imap_next(it, out, sizeof out, &len, NULL, NULL, 30));
    assert_code(mproc_imap_next(it, out, sizeof out, &len, NULL, NULL, 30), -EMSGSIZE);
    assert_code(mproc_imap_next(it, out, sizeof out, &len, NULL, NULL, 30), -MPROC_EEOF);
    mproc_imap_free(it);
    free(g.big);
    assert_code(mproc_pool_imap_var(p, reverse, NULL, NULL, NULL, &it), -EINVAL);
    mproc_pool_free(p);
}

/* 16 KiB of output for 8 bytes of input: a chunk's outputs far exceed the result ring */
static int expand(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    if (in_len != 8 || *out_len < 16384)
        return -EINVAL;
    for (size_t k = 0; k < 16384; k += 8)
        memcpy((char *)out + k, in, 8);
    *out_len = 16384;
    return 0;
}

/* Outputs sent alone are published without waking the supervisor for each; a chunk whose
 * outputs exceed the worker's result ring many times over still completes, each output
 * whole and in its place. */
static void test_map_var_outputs_exceed_ring(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 4000 }; /* 64 MiB of outputs, each chunk's far beyond a ring */
    uint64_t *vals = malloc(N * sizeof *vals);
    mproc_item *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    assert_non_null(vals);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < N; i++) {
        vals[i] = i * 0x9e3779b97f4a7c15u;
        in[i] = (mproc_item){&vals[i], 8};
    }
    assert_ok(mproc_pool_map_var(p, expand, in, N, out, &(mproc_call_opts){.chunksize = 2000}));
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(out[i].len, 16384);
        assert_memory_equal((char *)out[i].data + 16376, &vals[i], 8);
    }
    mproc_items_free(out, N);
    mproc_items_trim();
    free(vals);
    free(in);
    free(out);
    mproc_pool_free(p);
}

static int crash_on_x(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    if (in_len == 1 && ((const char *)in)[0] == 'x')
        raise(SIGKILL);
    return reverse(t, in, in_len, out, out_len);
}

/* A worker killed in the middle of a var map fails the one item it ran, no other. */
static void test_map_var_worker_killed(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 300 };
    mproc_item in[N], out[N];
    char text[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "%d", i);
        in[i] = (mproc_item){text[i], strlen(text[i])};
    }
    in[150] = (mproc_item){"x", 1};
    assert_code(mproc_pool_map_var(p, crash_on_x, in, N, out, NULL), -MPROC_EDIED);
    for (int i = 0; i < N; i++) {
        if (i == 150) {
            assert_null(out[i].data);
            continue;
        }
        size_t len = in[i].len;
        assert_int_equal(out[i].len, len);
        for (size_t k = 0; k < len; k++)
            assert_int_equal(((char *)out[i].data)[k], text[i][len - 1 - k]);
        mproc_item_free(&out[i]);
    }
    mproc_pool_free(p);
}

static void test_imap_ordered(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(3);
    struct gen g = {.n = 2000, .fail_at = -1};
    mproc_imap *it;
    assert_ok(mproc_pool_imap(p, square, gen_count, &g, sizeof(int64_t), sizeof(int64_t),
                              &(mproc_call_opts){.window = 16, .chunksize = 3}, &it));
    for (int64_t i = 0; i < 2000; i++) {
        int64_t y;
        size_t idx;
        assert_ok(mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, 10));
        atomic_fetch_add(&g.consumed, 1);
        assert_int_equal(idx, i);
        assert_int_equal(y, i * i);
    }
    int64_t y;
    assert_code(mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10), -MPROC_EEOF);
    assert_code(mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10), -MPROC_EEOF);
    mproc_imap_free(it);
    /* memory stays bounded: never more than the window generated ahead of the reader */
    assert_true(g.max_ahead <= 16);
    assert_true(g.max_ahead >= 2);

    /* a failing item and a failing generator */
    g = (struct gen){.n = 100, .fail_at = 50};
    assert_ok(
        mproc_pool_imap(p, square, gen_count, &g, sizeof(int64_t), sizeof(int64_t), NULL, &it));
    int got = 0;
    for (;;) {
        int rc = mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10);
        if (rc == -MPROC_EEOF)
            break;
        if (rc == -EIO) {
            assert_int_equal(got, 50);
            continue;
        }
        assert_ok(rc);
        got++;
    }
    assert_int_equal(got, 50);
    mproc_imap_free(it);
    mproc_pool_free(p);
}

static void test_imap_unordered(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(3);
    enum { N = 30000 };
    struct gen g = {.n = N, .fail_at = -1};
    mproc_imap *it;
    assert_ok(mproc_pool_imap(p, square, gen_count, &g, sizeof(int64_t), sizeof(int64_t),
                              &(mproc_call_opts){.flags = MPROC_IMAP_UNORDERED}, &it));
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        int64_t y;
        size_t idx;
        assert_ok(mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, 10));
        atomic_fetch_add(&g.consumed, 1);
        assert_true(idx < N);
        assert_int_equal(seen[idx], 0);
        seen[idx] = 1;
        assert_int_equal(y, (int64_t)idx * (int64_t)idx);
    }
    int64_t y;
    assert_code(mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10), -MPROC_EEOF);
    mproc_imap_free(it);
    assert_true(g.max_ahead <= 16384); /* the default window of small items */

    /* freeing an iterator early stops the generator; the pool stays usable */
    g = (struct gen){.n = 1000000, .fail_at = -1};
    assert_ok(
        mproc_pool_imap(p, square, gen_count, &g, sizeof(int64_t), sizeof(int64_t), NULL, &it));
    assert_ok(mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10));
    mproc_imap_free(it);
    check_map(p, 100, 0);
    mproc_pool_free(p);
    assert_true(g.next < 1000000);
}

/* Item held_at waits until the test opens the gate (a word shared with the workers). */
enum { HELD = 5 };
/* held_at: HELD unless a test moves it (the word holds the distance) */
#define held_at ((int64_t)atomic_load(shared_at(WORD_HELD_AT)) + HELD)
#define gate shared_at(WORD_GATE)

static int held_square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    int64_t x;
    memcpy(&x, in, sizeof x);
    while (x == held_at && atomic_load(gate) == 0)
        mproc_test_sleep(0.001);
    return square(t, in, in_len, out, out_len);
}

/* Unordered, one slow item does not stop the imap: it holds back only its own window slot
 * and the few items its worker holds with it (at most a 2 * workers-th of the window);
 * every other item comes back while it runs. */
static void test_imap_unordered_slow_item(void **state)
{
    (void)state;
    atomic_store(gate, 0);
    mproc_pool *p = pool_of(2);
    enum { N = 400, WINDOW = 16 };
    struct gen g = {.n = N, .fail_at = -1};
    mproc_imap *it;
    assert_ok(mproc_pool_imap(
        p, held_square, gen_count, &g, sizeof(int64_t), sizeof(int64_t),
        &(mproc_call_opts){.flags = MPROC_IMAP_UNORDERED, .window = WINDOW, .chunksize = 1}, &it));
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    int64_t y;
    size_t idx;
    for (int i = 0; i < N; i++) {
        if (i == N - WINDOW / 4) /* all the others are back */
            atomic_store(gate, 1);
        assert_ok(mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, 10));
        atomic_fetch_add(&g.consumed, 1);
        assert_true(idx < N && !seen[idx]);
        seen[idx] = 1;
        assert_true(idx != HELD || i >= N - WINDOW / 4);
        assert_int_equal(y, (int64_t)idx * (int64_t)idx);
    }
    assert_code(mproc_imap_next(it, &y, sizeof y, NULL, NULL, NULL, 10), -MPROC_EEOF);
    assert_true(g.max_ahead <= WINDOW); /* still bounded by the window */
    mproc_imap_free(it);
    mproc_pool_free(p);
}

/* With chunksize 1, tiny items travel many to a message once their time is measured; a
 * held item in such a message does not hold back the finished items before it: they are
 * published at the end of each of the caller's chunks (each item here), not of the
 * message. */
static void test_imap_held_in_merged_message(void **state)
{
    (void)state;
    atomic_store(gate, 0);
    enum { N = 60000, AT = 50000 };
    atomic_store(shared_at(WORD_HELD_AT), AT - HELD); /* after several ms of tiny items:
                                                          merged messages by then */
    mproc_pool *p = pool_of(2);
    struct gen g = {.n = N, .fail_at = -1};
    mproc_imap *it;
    assert_ok(mproc_pool_imap(p, held_square, gen_count, &g, sizeof(int64_t), sizeof(int64_t),
                              &(mproc_call_opts){.flags = MPROC_IMAP_UNORDERED, .chunksize = 1},
                              &it));
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    size_t below = 0, idx;
    int64_t y;
    while (below < AT) { /* every item before the held one comes back while it is held */
        assert_ok(mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, 10));
        atomic_fetch_add(&g.consumed, 1);
        assert_true(idx < N && idx != AT && !seen[idx]);
        seen[idx] = 1;
        below += idx < AT;
    }
    atomic_store(gate, 1);
    while (mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, 10) == 0) {
        assert_true(idx < N && !seen[idx]);
        seen[idx] = 1;
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    mproc_imap_free(it);
    mproc_pool_free(p);
    atomic_store(shared_at(WORD_HELD_AT), 0);
}

/* Work stealing: the chunk queued behind a task that runs long is taken back from its
 * worker's channel and run by the idle one, so every task but the long one finishes
 * while it runs (without stealing, the one queued behind it would wait for it). */
static void test_steal_behind_long_task(void **state)
{
    (void)state;
    atomic_store(gate, 0);
    mproc_pool *p = pool_of(2);
    enum { N = 50 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -1;
    }
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, held_square, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    mproc_pool_stats st;
    double waited = 0;
    do {
        mproc_test_sleep(0.005);
        waited += 0.005;
        assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    } while (st.done < N - 1 && waited < 10);
    assert_int_equal(st.done, N - 1); /* all but the held one */
    assert_int_equal(mproc_result_ready(r), 0);
    atomic_store(gate, 1);
    assert_ok(mproc_result_get(r, NULL, 0, NULL, 10));
    for (int i = 0; i < N; i++)
        assert_int_equal(out[i], (int64_t)i * i);
    mproc_result_free(r);
    mproc_pool_free(p);
}

/* ---- workers: initializer, maxtasksperchild ------------------------------------------ */

static void test_initializer_state(void **state)
{
    (void)state;
    mproc_pool *p;
    int seven = 7;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2,
                                                    .initializer = init_ok,
                                                    .initarg = &seven,
                                                    .initarg_size = sizeof seven}));
    seven = 8; /* the workers have theirs: a copy (spawn) or the memory as it was (fork) */
    int64_t in[20] = {0}, out[20];
    assert_ok(mproc_pool_map(p, state_task, in, 20, sizeof *in, out, sizeof *out,
                             &(mproc_call_opts){.chunksize = 1}));
    for (int i = 0; i < 20; i++)
        assert_true(out[i] == 7000 || out[i] == 7001);
    mproc_pool_free(p);
}

/* output: the worker's slot, how many CPUs it may use, and the first of them */
static int affinity(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out_len;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return -errno;
    int64_t o[3] = {mproc_task_worker(t), CPU_COUNT(&set), -1};
    for (size_t c = 0; c < CPU_SETSIZE && o[2] < 0; c++)
        if (CPU_ISSET(c, &set))
            o[2] = (int64_t)c;
    memcpy(out, o, sizeof o);
    return 0;
}

static void test_pin(void **state)
{
    (void)state;
    int usable = mproc_cpu_usable();
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .pin = 1}));
    int64_t in[40] = {0}, out[40][3];
    assert_ok(mproc_pool_map(p, affinity, in, 40, sizeof *in, out, sizeof out[0],
                             &(mproc_call_opts){.chunksize = 1}));
    int64_t cpu_of[2] = {-1, -1};
    for (int i = 0; i < 40; i++) {
        assert_int_equal(out[i][1], 1); /* pinned: one CPU */
        int64_t w = out[i][0];
        assert_true(w == 0 || w == 1);
        if (cpu_of[w] < 0)
            cpu_of[w] = out[i][2];
        assert_int_equal(cpu_of[w], out[i][2]); /* always the same one */
    }
    if (usable >= 2 && cpu_of[0] >= 0 && cpu_of[1] >= 0)
        assert_true(cpu_of[0] != cpu_of[1]);
    mproc_pool_free(p);
    /* without pin: the caller's whole mask */
    p = pool_of(1);
    assert_ok(mproc_pool_map(p, affinity, in, 1, sizeof *in, out, sizeof out[0], NULL));
    cpu_set_t set;
    CPU_ZERO(&set);
    assert_ok(sched_getaffinity(0, sizeof set, &set));
    assert_int_equal(out[0][1], CPU_COUNT(&set));
    mproc_pool_free(p);
#ifdef MPROC_FAULT_INJECTION
    mproc_fault_set("sys.pin", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EPERM});
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .pin = 1}), -EPERM);
    mproc_fault_clear();
#endif
}

static void test_initializer_failure(void **state)
{
    (void)state;
    mproc_pool *p = (mproc_pool *)(uintptr_t)1;
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 3, .initializer = init_fail}),
                -ENOEXEC);
    assert_true(p == (mproc_pool *)(uintptr_t)1);     /* untouched */
    assert_int_equal(mproc_test_count_children(), 0); /* no worker left, not even a zombie */
}

/* An initializer that sleeps while *init_hang is set (a word shared with the workers). */
#define init_hang shared_at(WORD_INIT_HANG)

static int init_maybe_hang(void *arg, void **state)
{
    (void)arg;
    (void)state;
    while (atomic_load(init_hang) != 0)
        mproc_test_sleep(0.005);
    return 0;
}

/* init_timeout: a worker whose start hangs is killed. At creation, creation fails with
 * -MPROC_ETIMELIMIT and leaves nothing behind; later (a replacement's start hangs), the
 * pool goes on with its other workers and keeps trying, within the restart budget. */
static void test_initializer_timeout(void **state)
{
    (void)state;
    atomic_store(init_hang, 0);
    mproc_pool_opts o = {.workers = 2, .initializer = init_maybe_hang, .init_timeout = 0.2};
    atomic_store(init_hang, 1);
    mproc_pool *p;
    assert_code(mproc_pool_new(&p, &o), -MPROC_ETIMELIMIT);
    assert_int_equal(mproc_test_count_children(), 0);

    atomic_store(init_hang, 0);
    assert_ok(mproc_pool_new(&p, &o));
    atomic_store(init_hang, 1); /* from now on a new worker hangs in its start */
    mproc_worker_stats ws[2];
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    assert_int_equal(kill(ws[0].pid, SIGKILL), 0);
    double waited = 0;
    do { /* the kill, then replacements killed past the limit */
        mproc_test_sleep(0.01);
        waited += 0.01;
        assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    } while (st.restarts < 3 && waited < 20);
    assert_true(st.restarts >= 3);
    assert_int_equal(mproc_pool_broken(p, NULL), 0);
    check_map(p, 100, 1); /* the other worker serves */
    atomic_store(init_hang, 0);
    check_map(p, 100, 1);
    mproc_pool_free(p);
}

static void maxtasks(size_t max, size_t n)
{
    mproc_pool *p;
    assert_ok(
        mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .maxtasksperchild = (unsigned)max}));
    int64_t *in = calloc(n, sizeof *in), *out = calloc(n, sizeof *out);
    assert_ok(mproc_pool_map(p, nap_pid, in, n, sizeof *in, out, sizeof *out, NULL));
    /* each pid ran at most max tasks */
    for (size_t i = 0; i < n; i++) {
        size_t same = 0;
        for (size_t k = 0; k < n; k++)
            same += out[k] == out[i];
        if (same > max)
            fail_msg("pid %lld ran %zu tasks (max %zu)", (long long)out[i], same, max);
    }
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_true(st.restarts >= n / max - 2);
    assert_int_equal(st.done, n);
    assert_int_equal(st.failed, 0);
    free(in);
    free(out);
    mproc_pool_free(p);
}

/* ---- workers and the host's descriptors ---------------------------------------------- */

/* The worker's open descriptors (not counting the directory's own), and whether the
 * descriptor given as input is open. */
static int fd_census(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t, (void)in_len, (void)out_len;
    int64_t probe, res[2] = {0, 0};
    memcpy(&probe, in, sizeof probe);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return mproc_task_fail(t, -errno, "opendir");
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        res[0] += e->d_name[0] != '.';
    closedir(d);
    res[0]--; /* the directory's own */
    res[1] = fcntl((int)probe, F_GETFD) >= 0;
    memcpy(out, res, sizeof res);
    return 0;
}

static void census(mproc_pool *p, int probe, int64_t most)
{
    int64_t in[4] = {probe, probe, probe, probe}, out[4][2];
    assert_ok(mproc_pool_map(p, fd_census, in, 4, sizeof *in, out, sizeof *out,
                             &(mproc_call_opts){.chunksize = 1}));
    for (int i = 0; i < 4; i++) {
        if (out[i][0] > most)
            fail_msg("a worker has %lld descriptors open (at most %lld expected)",
                     (long long)out[i][0], (long long)most);
        assert_int_equal(out[i][1], 1); /* the one asked for is there */
    }
}

/* Workers do not keep what the host opened without close-on-exec (200 descriptors, and a
 * pipe whose write end the host then closes: its reader must see EOF while the pool
 * lives), replacements neither; a descriptor named in inherit_fds stays open in them. */
static void test_workers_close_inherited_fds(void **state)
{
    (void)state;
    enum { EXTRA = 200 };
    int extra[EXTRA];
    for (int i = 0; i < EXTRA; i++)
        assert_true((extra[i] = dup(0)) >= 0); /* dup: never close-on-exec */
    int pfd[2];
    assert_ok(pipe(pfd));
    int keep = extra[EXTRA / 2];
    int bad = -1;
    mproc_pool *p;
    assert_code(mproc_pool_new(
                    &p, &(mproc_pool_opts){.workers = 2, .inherit_fds = &bad, .n_inherit_fds = 1}),
                -EINVAL);
    assert_ok(mproc_pool_new(
        &p, &(mproc_pool_opts){.workers = 2, .inherit_fds = &keep, .n_inherit_fds = 1}));
    close(pfd[1]);
    /* EOF once the workers have closed their copies (right after their start) */
    struct pollfd pe = {.fd = pfd[0], .events = POLLIN};
    assert_int_equal(poll(&pe, 1, 10000), 1);
    char c;
    assert_int_equal(read(pfd[0], &c, 1), 0); /* EOF: no worker holds the write end */
    /* 0-2, the doorbell, the one kept, and what the runtime may hold (sanitizers) */
    census(p, keep, 8);
    mproc_pool_stats st;
    mproc_worker_stats ws[2];
    assert_ok(mproc_pool_stats_get(p, &st, ws, 2));
    kill(ws[0].pid, SIGKILL);
    int64_t waited = 0;
    do {
        mproc_test_sleep(0.01);
        assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    } while (st.restarts < 1 && waited++ < 2000);
    census(p, keep, 8); /* the replacement too */
    mproc_pool_free(p);
    close(pfd[0]);
    for (int i = 0; i < EXTRA; i++)
        close(extra[i]);
}

/* A task that closes every descriptor above 2 (what daemons do) closes the worker's own
 * doorbell: whatever the outcome, no call may hang. */
static int close_everything(mproc_task *t, const void *in, size_t in_len, void *out,
                            size_t *out_len)
{
    (void)t, (void)in, (void)in_len, (void)out_len;
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    memset(out, 0, 8);
    return 0;
}

static void test_task_closes_all_fds(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    enum { N = 64 };
    int64_t in[N], out[N];
    memset(in, 0, sizeof in);
    for (int round = 0; round < 3; round++) {
        mproc_result *r;
        int rc = mproc_pool_map_async(p, close_everything, in, N, sizeof *in, out, sizeof *out,
                                      &(mproc_call_opts){.chunksize = 1}, &r);
        if (rc == -MPROC_EBROKEN)
            break; /* past the restart budget: an answer too */
        assert_ok(rc);
        assert_ok(mproc_result_wait(r, 30)); /* it used to wait for ever */
        mproc_result_free(r);
        int64_t x = 0, y;
        rc = mproc_pool_apply(p, close_everything, &x, sizeof x, &y, sizeof y, NULL, NULL, 30);
        if (rc != 0 && rc != -MPROC_EDIED && rc != -MPROC_EBROKEN)
            fail_msg("apply: %s", mproc_errname(rc));
    }
    /* workers that lost their doorbell left and were replaced (or, past the restart
       budget, the pool broke): either way it answers */
    if (mproc_pool_broken(p, NULL) == 0)
        check_map(p, 100, 1);
    mproc_pool_free(p);
}

static void test_maxtasksperchild(void **state)
{
    (void)state;
    maxtasks(1, 30);
    maxtasks(10, 200);
}

/* ---- timeouts, cancel, terminate, close/join -------------------------------------------- */

static void test_task_timeout(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .timeout = 0.3}));
    int64_t in[6] = {0, 20000, 0, 0, 20000, 0}, out[6];
    double t0 = mproc_test_now();
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, nap_pid, in, 6, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    assert_code(mproc_result_get(r, NULL, 0, NULL, 15), -MPROC_ETIMELIMIT);
    assert_true(mproc_test_now() - t0 < 10);
    assert_int_equal(mproc_result_failures(r, 0, NULL, NULL, NULL), 2);
    size_t idx;
    int code;
    const char *msg;
    mproc_result_failures(r, 0, &idx, &code, &msg);
    assert_int_equal(idx, 1);
    assert_code(code, -MPROC_ETIMELIMIT);
    assert_non_null(strstr(msg, "time limit"));
    mproc_result_failures(r, 1, &idx, &code, NULL);
    assert_int_equal(idx, 4);
    mproc_result_free(r);
    /* a per-call limit overrides the pool's; the pool is still usable */
    int64_t x = 500, y;
    assert_ok(
        mproc_pool_apply_async(p, nap_pid, &x, sizeof x, &(mproc_call_opts){.timeout = 5}, &r));
    assert_ok(mproc_result_get(r, &y, sizeof y, NULL, 10));
    mproc_result_free(r);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.restarts, 2);
    assert_int_equal(st.broken, 0);
    mproc_pool_free(p);
}

static void test_cancel(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 400 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = 20;
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, nap_pid, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    mproc_test_sleep(0.1);
    int n = mproc_result_cancel(r);
    assert_true(n > N / 2 && n <= N);
    assert_code(mproc_result_get(r, NULL, 0, NULL, 10), -MPROC_ECANCELLED);
    assert_int_equal(mproc_result_failures(r, 0, NULL, NULL, NULL), n);
    assert_int_equal(mproc_result_cancel(r), 0); /* ready: nothing left */
    mproc_result_free(r);
    check_map(p, 50, 0);
    mproc_pool_free(p);
}

static void test_terminate_10000_queued(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    enum { N = 10000 };
    static int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = 10000; /* 10 s each */
    mproc_result *r, *a;
    assert_ok(mproc_pool_map_async(p, nap_pid, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    int64_t x = 10000;
    assert_ok(mproc_pool_apply_async(p, nap_pid, &x, sizeof x, NULL, &a));
    mproc_test_sleep(0.2);
    double t0 = mproc_test_now();
    assert_ok(mproc_pool_terminate(p));
    assert_true(mproc_test_now() - t0 < 2.0);
    assert_int_equal(mproc_result_ready(r), 1);
    assert_code(mproc_result_get(r, NULL, 0, NULL, 0), -MPROC_ECANCELLED);
    assert_int_equal(mproc_result_failures(r, 0, NULL, NULL, NULL), N);
    assert_code(mproc_result_get(a, NULL, 0, NULL, 0), -MPROC_ECANCELLED);
    mproc_pool_stats st;
    assert_ok(mproc_pool_stats_get(p, &st, NULL, 0));
    assert_int_equal(st.done, N + 1);
    assert_int_equal(st.pending, 0);
    /* after terminate: closed */
    assert_code(mproc_pool_apply_async(p, nap_pid, &x, sizeof x, NULL, NULL), -MPROC_ECLOSED);
    assert_ok(mproc_pool_terminate(p));
    mproc_result_free(r);
    mproc_result_free(a);
    mproc_pool_free(p);
}

static void test_close_then_join(void **state)
{
    (void)state;
    mproc_pool *p = pool_of(2);
    assert_code(mproc_pool_join(p, 1), -MPROC_ESTATE); /* not closed */
    enum { N = 20 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = 10;
    mproc_result *r;
    assert_ok(mproc_pool_map_async(p, nap_pid, in, N, sizeof *in, out, sizeof *out,
                                   &(mproc_call_opts){.chunksize = 1}, &r));
    assert_ok(mproc_pool_close(p));
    assert_ok(mproc_pool_close(p));
    int64_t x = 1;
    assert_code(mproc_pool_apply(p, square, &x, sizeof x, &x, sizeof x, NULL, NULL, 1),
                -MPROC_ECLOSED);
    assert_code(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out, NULL),
                -MPROC_ECLOSED);
    assert_ok(mproc_pool_join(p, 20)); /* accepted work still completes */
    assert_int_equal(mproc_result_ready(r), 1);
    assert_ok(mproc_result_get(r, NULL, 0, NULL, 0));
    assert_int_equal(mproc_test_count_children(), 0);
    assert_ok(mproc_pool_join(p, 1));
    mproc_result_free(r);
    mproc_pool_free(p);

    /* close with nothing submitted; join with a short timeout on a busy pool */
    p = pool_of(1);
    x = 1500;
    assert_ok(mproc_pool_apply_async(p, nap_pid, &x, sizeof x, NULL, NULL));
    mproc_pool_close(p);
    assert_code(mproc_pool_join(p, 0.05), -ETIMEDOUT);
    assert_ok(mproc_pool_join(p, 20));
    mproc_pool_free(p);
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_code(mproc_pool_new(NULL, NULL), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = -1}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 100000}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.timeout = -1}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.init_timeout = -1}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.timeout = NAN}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.restart_period = -2}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.max_restarts = -2}), -EINVAL);
    assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.channel_size = 10}), -EINVAL);

    p = pool_of(1);
    int64_t x = 2, y;
    size_t len;
    mproc_result *r;
    assert_code(mproc_pool_apply(NULL, square, &x, sizeof x, &y, sizeof y, &len, NULL, 1), -EINVAL);
    assert_code(mproc_pool_apply(p, NULL, &x, sizeof x, &y, sizeof y, &len, NULL, 1), -EINVAL);
    assert_code(mproc_pool_apply(p, square, NULL, 8, &y, sizeof y, &len, NULL, 1), -EINVAL);
    assert_code(mproc_pool_apply(p, square, &x, sizeof x, NULL, 8, &len, NULL, 1), -EINVAL);
    assert_code(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, &len, NULL, -1), -EINVAL);
    assert_code(mproc_pool_apply(p, square, &x, sizeof x, &y, sizeof y, &len, NULL, NAN), -EINVAL);
    static char big[2 << 20];
    assert_code(mproc_pool_apply_async(p, reverse, big, sizeof big, NULL, &r), -EMSGSIZE);
    assert_code(
        mproc_pool_apply_async(p, square, &x, sizeof x, &(mproc_call_opts){.timeout = NAN}, &r),
        -EINVAL);
    assert_code(mproc_pool_apply_async(p, square, &x, sizeof x, &(mproc_call_opts){.flags = 8}, &r),
                -EINVAL);
    /* a function pointer that is in no module */
    assert_code(mproc_pool_apply_async(p, (mproc_task_fn)(uintptr_t)16, &x, sizeof x, NULL, &r),
                -ENOENT);
    int64_t in[4] = {1, 2, 3, 4}, out[4];
    assert_code(mproc_pool_map(p, square, NULL, 4, 8, out, 8, NULL), -EINVAL);
    assert_code(mproc_pool_map(p, square, in, 4, 8, NULL, 8, NULL), -EINVAL);
    assert_code(mproc_pool_map(p, square, in, 4, 0, out, 8, NULL), -EINVAL);
    assert_code(mproc_pool_map(p, square, in, 4, 8, out, 0, NULL), -EINVAL);
    assert_code(mproc_pool_map(p, square, in, SIZE_MAX / 2, 8, out, 8, NULL), -EINVAL);
    /* an item larger than the channel allows: -EMSGSIZE, as for apply */
    assert_code(mproc_pool_map(p, square, in, 4, (size_t)1 << 40, out, 8, NULL), -EMSGSIZE);
    assert_code(mproc_pool_map(p, square, in, 4, 8, out, 4 << 20, NULL), -EMSGSIZE);
    assert_code(mproc_pool_map(p, square, in, 4, 2 << 20, out, 8, NULL), -EMSGSIZE);
    assert_code(
        mproc_pool_imap(p, square, gen_count, NULL, 8, 4 << 20, NULL, &(mproc_imap *){NULL}),
        -EMSGSIZE);
    assert_code(
        mproc_pool_imap(p, square, gen_count, NULL, 2 << 20, 8, NULL, &(mproc_imap *){NULL}),
        -EMSGSIZE);
    assert_code(mproc_pool_map_async(p, square, in, 4, 8, out, 8, NULL, NULL), -EINVAL);
    mproc_imap *it;
    assert_code(mproc_pool_imap(p, square, NULL, NULL, 8, 8, NULL, &it), -EINVAL);
    assert_code(mproc_pool_imap(p, square, gen_count, NULL, 8, 8, NULL, NULL), -EINVAL);
    assert_code(mproc_pool_imap(p, square, gen_count, NULL, 8, 8,
                                &(mproc_call_opts){.window = SIZE_MAX}, &it),
                -EINVAL);
    assert_code(mproc_imap_next(NULL, &y, sizeof y, NULL, NULL, NULL, 1), -EINVAL);

    assert_code(mproc_result_wait(NULL, 1), -EINVAL);
    assert_code(mproc_result_ready(NULL), -EINVAL);
    assert_code(mproc_result_successful(NULL), -EINVAL);
    assert_code(mproc_result_get(NULL, NULL, 0, NULL, 1), -EINVAL);
    assert_code(mproc_result_cancel(NULL), -EINVAL);
    assert_null(mproc_result_message(NULL));
    assert_code(mproc_result_failures(NULL, 0, NULL, NULL, NULL), -EINVAL);
    mproc_result_free(NULL);
    mproc_imap_free(NULL);

    /* a result not ready yet */
    x = 300;
    assert_ok(mproc_pool_apply_async(p, nap_pid, &x, sizeof x, NULL, &r));
    assert_code(mproc_result_successful(r), -MPROC_ESTATE);
    assert_code(mproc_result_failures(r, 0, NULL, NULL, NULL), -MPROC_ESTATE);
    assert_code(mproc_result_wait(r, 0), -ETIMEDOUT);
    assert_code(mproc_result_wait(r, -1), -EINVAL);
    assert_string_equal(mproc_result_message(r), "");
    assert_ok(mproc_result_wait(r, 10));
    mproc_result_free(r);

    assert_code(mproc_pool_close(NULL), -EINVAL);
    assert_code(mproc_pool_join(NULL, 1), -EINVAL);
    assert_code(mproc_pool_join(p, NAN), -EINVAL);
    assert_code(mproc_pool_terminate(NULL), -EINVAL);
    assert_code(mproc_pool_workers(NULL), -EINVAL);
    mproc_pool_stats st;
    assert_code(mproc_pool_stats_get(NULL, &st, NULL, 0), -EINVAL);
    assert_code(mproc_pool_stats_get(p, NULL, NULL, 0), -EINVAL);
    assert_code(mproc_pool_broken(NULL, NULL), -EINVAL);
    const char *msg;
    assert_ok(mproc_pool_broken(p, &msg));
    assert_string_equal(msg, "");
    mproc_pool_free(p);
    mproc_pool_free(NULL);
}

#ifdef MPROC_FAULT_INJECTION
static int start_fails(void *arg)
{
    const char *point = arg;
    mproc_fault_set(point, MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = 2, .code = -EAGAIN});
    mproc_pool *p;
    int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 3});
    if (rc != -EAGAIN)
        return 1;
    if (mproc_test_count_children() != 0)
        return 2;
    return 0;
}

static void test_start_failures(void **state)
{
    (void)state;
    if (mproc_get_start_method() != MPROC_START_FORKSERVER) /* the server forks, not we */
        assert_int_equal(mproc_test_exitcode(mproc_test_fork(start_fails, "sys.fork"), 20), 0);
    /* every allocation in turn. A worker forked before the clear inherits the armed point
       and may fail at its own n-th allocation, and so may each replacement forked before
       the clear (a loaded machine can make that window long): a generous restart budget
       keeps that from breaking the pool, which is not what is tested here */
    for (unsigned n = 1; n < 40; n++) {
        mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = n});
        mproc_pool *p;
        int rc = mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .max_restarts = 100000});
        mproc_fault_clear();
        if (rc == 0) {
            check_map(p, 10, 0);
            mproc_pool_free(p);
        } else {
            if (rc != -ENOMEM)
                fail_msg("alloc %u: %s", n, mproc_errname(rc));
        }
        assert_int_equal(mproc_test_count_children(), 0);
    }
    const char *points[] = {"pool.thread", "sys.eventfd", "sys.pidfd_open"};
    for (size_t k = 0; k < MPROC__ARRAY_LEN(points); k++) {
        if (k == 2 && mproc_get_start_method() == MPROC_START_FORKSERVER)
            break; /* the server opens the pidfds there, not this process */
        /* the second pass: sys.pidfd_open fails for the second worker, after the first */
        mproc_fault_set(points[k], MPROC_FAULT_FAIL,
                        &(mproc_fault_opts){.code = -EMFILE, .nth = k == 2 ? 2 : 1});
        mproc_pool *p;
        assert_code(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}), -EMFILE);
        mproc_fault_clear();
        assert_int_equal(mproc_test_count_children(), 0);
    }
}
#endif

/* ---- function references --------------------------------------------------------------- */

static int fnref_target(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return 42;
}

static void test_fnref_roundtrip(void **state)
{
    (void)state;
    unsigned char buf[MPROC__FNREF_MAX];
    size_t len;
    void (*fn)(void);
    /* main program, and a libc function (another module) */
    assert_ok(mproc__fnref_encode((void (*)(void))fnref_target, buf, sizeof buf, &len));
    assert_ok(mproc__fnref_decode(buf, len, &fn));
    assert_true(fn == (void (*)(void))fnref_target);
    assert_ok(mproc__fnref_encode((void (*)(void))abs, buf, sizeof buf, &len));
    assert_ok(mproc__fnref_decode(buf, len, &fn));
    assert_true(fn == (void (*)(void))abs);
    assert_code(mproc__fnref_encode((void (*)(void))abs, buf, 4, &len), -MPROC_ETOOSMALL);
    assert_code(mproc__fnref_encode(NULL, buf, sizeof buf, &len), -EINVAL);
    /* corrupted references are refused, never called */
    assert_ok(mproc__fnref_encode((void (*)(void))fnref_target, buf, sizeof buf, &len));
    assert_code(mproc__fnref_decode(buf, len - 1, &fn), -EINVAL);
    assert_code(mproc__fnref_decode(buf, 3, &fn), -EINVAL);
    unsigned char bad[MPROC__FNREF_MAX];
    memcpy(bad, buf, len);
    bad[0] ^= 1;
    assert_code(mproc__fnref_decode(bad, len, &fn), -EINVAL);
    memcpy(bad, buf, len);
    uint64_t off = (uint64_t)1 << 40;
    memcpy(bad + 8, &off, 8);
    assert_code(mproc__fnref_decode(bad, len, &fn), -EFAULT);
    if (buf[6] > 0) { /* has a build-id: another build is refused */
        memcpy(bad, buf, len);
        bad[16] ^= 0xff;
        assert_code(mproc__fnref_decode(bad, len, &fn), -ESTALE);
    }
}

/* Across exec: this test binary runs itself with --fnref HEX, decodes and calls. */
static int fnref_child(const char *hex)
{
    unsigned char buf[MPROC__FNREF_MAX];
    size_t len = strlen(hex) / 2;
    if (len > sizeof buf)
        return 3;
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return 4;
        buf[i] = (unsigned char)v;
    }
    void (*fn)(void);
    if (mproc__fnref_decode(buf, len, &fn) != 0)
        return 5;
    size_t ol = 0;
    return ((mproc_task_fn)fn)(NULL, NULL, 0, NULL, &ol); /* 42 */
}

static void test_fnref_across_exec(void **state)
{
    (void)state;
    unsigned char buf[MPROC__FNREF_MAX];
    size_t len;
    assert_ok(mproc__fnref_encode((void (*)(void))fnref_target, buf, sizeof buf, &len));
    char hex[2 * MPROC__FNREF_MAX + 1];
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", buf[i]);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *argv[] = {self, "--fnref", hex, NULL};
    mproc_process *proc;
    assert_ok(mproc_process_spawn(&proc, argv, NULL));
    assert_ok(mproc_process_join(proc, 20));
    int code = -1;
    assert_int_equal(mproc_process_exitcode(proc, &code), 1);
    assert_int_equal(code, 42);
    mproc_process_free(proc);
}

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0) /* a worker or fork server never gets past it */
        return 2;
    if (argc == 3 && strcmp(argv[1], "--fnref") == 0)
        return fnref_child(argv[2]);
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_apply),
        MPROC_TEST(test_apply_message_and_options),

        MPROC_TEST(test_apply_async_callbacks),
        MPROC_TEST(test_long_message_marked),
        MPROC_TEST(test_worker_identity),

        MPROC_TEST(test_apply_wait_timeout),
        MPROC_TEST(test_callback_submits),
        MPROC_TEST(test_map_chunksizes),
        MPROC_TEST(test_map_paced_uneven),
        MPROC_TEST(test_map_async_failures),
        MPROC_TEST(test_map_zero_copy),
        MPROC_TEST(test_map_placed),
        MPROC_TEST(test_map_placed_cancel),
        MPROC_TEST(test_phase_times),
        MPROC_TEST(test_small_channel_backpressure),
        MPROC_TEST(test_imap_ordered),
        MPROC_TEST(test_imap_next_capacity),
        MPROC_TEST(test_map_var),
        MPROC_TEST(test_map_var_worker_killed),
        MPROC_TEST(test_map_var_outputs_exceed_ring),

        MPROC_TEST(test_imap_var),

        MPROC_TEST(test_imap_unordered),
        MPROC_TEST(test_imap_unordered_slow_item),
        MPROC_TEST(test_steal_behind_long_task),
        MPROC_TEST(test_imap_held_in_merged_message),
        MPROC_TEST(test_initializer_state),
        MPROC_TEST(test_initializer_failure),
        MPROC_TEST(test_initializer_timeout),
        MPROC_TEST(test_pin),
        MPROC_TEST(test_maxtasksperchild),
        MPROC_TEST(test_workers_close_inherited_fds),
        MPROC_TEST(test_task_closes_all_fds),
        MPROC_TEST(test_task_timeout),
        MPROC_TEST(test_cancel),
        MPROC_TEST(test_terminate_10000_queued),
        MPROC_TEST(test_close_then_join),
        MPROC_TEST(test_bad_input),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_start_failures),
#endif
        MPROC_TEST(test_fnref_roundtrip),
        MPROC_TEST(test_fnref_across_exec),
    };
    return mproc_test_run(tests);
}
