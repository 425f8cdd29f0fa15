/* tests/test_queue.c - Queue and JoinableQueue across processes, provoked faults included.
 *
 * Children never use cmocka's asserts (a failed assert would unwind into the parent's
 * copy of the test): they return a small code saying what went wrong, and the parent
 * checks it with mproc_test_exitcode().
 */
#include "harness.h"
#include "internal.h"
#include "owner_lock.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------------------- */

static void *shared_block(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

static mproc_queue *new_queue(size_t capacity, size_t maxsize, unsigned flags)
{
    mproc_queue *q = NULL;
    assert_ok(mproc_queue_new(
        &q, &(mproc_queue_opts){.capacity = capacity, .maxsize = maxsize, .flags = flags}));
    assert_non_null(q);
    return q;
}

static int put_u64(mproc_queue *q, uint64_t v, double timeout)
{
    return mproc_queue_put(q, &v, sizeof v, timeout);
}

/* Get one 8-byte message into *v; any other length is -EPROTO. */
static int get_u64(mproc_queue *q, uint64_t *v, double timeout)
{
    size_t len = 0;
    int rc = mproc_queue_get_into(q, v, sizeof *v, &len, timeout);
    return rc < 0 ? rc : len == sizeof *v ? 0 : -EPROTO;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Message i of the FIFO test: its length (0..5000) and byte j of its content. */
static size_t msg_len(uint64_t i)
{
    uint64_t s = i * 0x9e3779b97f4a7c15u + 1;
    return (size_t)(xorshift(&s) % 5001);
}

static unsigned char msg_byte(uint64_t i, size_t j)
{
    return (unsigned char)(i * 131u + j * 7u + (j >> 8));
}

/* ---- the seeds' example: numbers to 3 workers, squares back ---------------------------- */

struct squares {
    mproc_queue *in, *out;
};

static int square_worker(void *arg)
{
    struct squares *s = arg;
    for (;;) {
        uint64_t n;
        if (get_u64(s->in, &n, 10) < 0)
            return 1;
        if (mproc_queue_task_done(s->in) < 0)
            return 2;
        if (n == UINT64_MAX) /* sentinel */
            return 0;
        if (put_u64(s->out, n * n, 10) < 0)
            return 3;
    }
}

static void test_seed_squares(void **state)
{
    (void)state;
    struct squares s = {new_queue(0, 0, MPROC_QUEUE_JOINABLE), new_queue(0, 0, 0)};
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = mproc_test_fork(square_worker, &s);
    for (uint64_t n = 0; n < 100; n++)
        assert_ok(put_u64(s.in, n, 10));
    for (int i = 0; i < 3; i++)
        assert_ok(put_u64(s.in, UINT64_MAX, 10));
    assert_ok(mproc_queue_join(s.in, 10)); /* every number and sentinel marked done */
    int seen[100] = {0};
    for (int i = 0; i < 100; i++) {
        uint64_t sq;
        assert_ok(get_u64(s.out, &sq, 10));
        uint64_t r = (uint64_t)llround(sqrt((double)sq));
        assert_true(r < 100 && r * r == sq);
        seen[r]++;
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 10), 0);
    assert_int_equal(mproc_queue_qsize(s.out), 0);
    mproc_queue_free(s.in);
    mproc_queue_free(s.out);
}

/* ---- FIFO, one producer one consumer, 100k messages of 0..5000 bytes ------------------ */

enum { FIFO_COUNT = 100000 };

static int fifo_producer(void *arg)
{
    mproc_queue *q = arg;
    unsigned char *buf = malloc(5000);
    if (buf == NULL)
        return 1;
    for (uint64_t i = 0; i < FIFO_COUNT; i++) {
        size_t len = msg_len(i);
        for (size_t j = 0; j < len; j++)
            buf[j] = msg_byte(i, j);
        if (mproc_queue_put(q, buf, len, 10) < 0)
            return 2;
    }
    free(buf);
    return 0;
}

static void test_fifo_varying_sizes(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(64 * 1024, 0, 0); /* small: wraps and fills often */
    pid_t pid = mproc_test_fork(fifo_producer, q);
    unsigned char buf[5000];
    for (uint64_t i = 0; i < FIFO_COUNT; i++) {
        size_t len = 0;
        int rc;
        if (i % 2 == 0) {
            rc = mproc_queue_get_into(q, buf, sizeof buf, &len, 10);
        } else {
            void *p = NULL;
            rc = mproc_queue_get(q, &p, &len, 10);
            if (rc == 0) {
                memcpy(buf, p, len);
                free(p);
            }
        }
        if (rc != 0 || len != msg_len(i))
            fail_msg("message %" PRIu64 ": rc %d, len %zu, want %zu", i, rc, len, msg_len(i));
        for (size_t j = 0; j < len; j++)
            if (buf[j] != msg_byte(i, j))
                fail_msg("message %" PRIu64 " byte %zu differs", i, j);
    }
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_int_equal(mproc_queue_empty(q), 1);
    mproc_queue_free(q);
}

/* ---- 4 producers x 4 consumers: every message exactly once ------------------------------ */

enum { MPMC_PRODUCERS = 4, MPMC_CONSUMERS = 4, MPMC_EACH = 20000 };

struct mpmc {
    mproc_queue *q;
    int who;
    _Atomic uint8_t *seen; /* shared: count per message id */
};

static int mpmc_producer(void *arg)
{
    struct mpmc *m = arg;
    for (uint64_t i = 0; i < MPMC_EACH; i++) {
        uint64_t id = (uint64_t)m->who * MPMC_EACH + i;
        unsigned char msg[64];
        size_t len = 8 + (size_t)(id % 57);
        memset(msg, (int)(id & 0xff), sizeof msg);
        memcpy(msg, &id, 8);
        if (mproc_queue_put(m->q, msg, len, 10) < 0)
            return 1;
    }
    return 0;
}

static int mpmc_consumer(void *arg)
{
    struct mpmc *m = arg;
    for (;;) {
        unsigned char msg[64];
        size_t len = 0;
        int rc = mproc_queue_get_into(m->q, msg, sizeof msg, &len, 10);
        if (rc == -MPROC_ECLOSED)
            return 0;
        if (rc < 0)
            return 1;
        uint64_t id;
        memcpy(&id, msg, 8);
        if (id >= MPMC_PRODUCERS * MPMC_EACH || len != 8 + id % 57 ||
            (len > 8 && msg[len - 1] != (unsigned char)(id & 0xff)))
            return 2;
        atomic_fetch_add(&m->seen[id], 1);
    }
}

static void test_mpmc_exactly_once(void **state)
{
    (void)state;
    const size_t n = MPMC_PRODUCERS * MPMC_EACH;
    _Atomic uint8_t *seen = shared_block(n);
    mproc_queue *q = new_queue(4096, 0, 0);
    struct mpmc args[MPMC_PRODUCERS + MPMC_CONSUMERS];
    pid_t prod[MPMC_PRODUCERS], cons[MPMC_CONSUMERS];
    for (int i = 0; i < MPMC_CONSUMERS; i++) {
        args[i] = (struct mpmc){q, i, seen};
        cons[i] = mproc_test_fork(mpmc_consumer, &args[i]);
    }
    for (int i = 0; i < MPMC_PRODUCERS; i++) {
        args[MPMC_CONSUMERS + i] = (struct mpmc){q, i, seen};
        prod[i] = mproc_test_fork(mpmc_producer, &args[MPMC_CONSUMERS + i]);
    }
    for (int i = 0; i < MPMC_PRODUCERS; i++)
        assert_int_equal(mproc_test_exitcode(prod[i], 20), 0);
    assert_ok(mproc_queue_close(q));
    for (int i = 0; i < MPMC_CONSUMERS; i++)
        assert_int_equal(mproc_test_exitcode(cons[i], 20), 0);
    for (size_t i = 0; i < n; i++)
        if (seen[i] != 1)
            fail_msg("message %zu received %d times", i, (int)seen[i]);
    munmap((void *)seen, n);
    mproc_queue_free(q);
}

/* ---- wraparound, full, empty, sizes -------------------------------------------------------- */

static void test_wraparound(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(64, 0, 0); /* the smallest ring: 64 bytes */
    unsigned char in[56], out[56];
    for (uint64_t i = 0; i < 2000; i++) {
        /* sizes 0..40 so records start at every 8-byte offset and straddle the end */
        size_t len = (size_t)(i * 13 % 41);
        for (size_t j = 0; j < len; j++)
            in[j] = msg_byte(i, j);
        assert_ok(mproc_queue_put_nowait(q, in, len));
        if (i % 3 == 0) { /* sometimes two in flight */
            assert_ok(mproc_queue_put_nowait(q, in, len > 8 ? 8 : len));
            size_t l2;
            assert_ok(mproc_queue_get_into(q, out, sizeof out, &l2, 0));
            assert_int_equal(l2, len);
            assert_memory_equal(in, out, len);
            assert_ok(mproc_queue_get_into(q, out, sizeof out, &l2, 0));
            assert_int_equal(l2, len > 8 ? 8 : len);
            continue;
        }
        size_t got;
        assert_ok(mproc_queue_get_into(q, out, sizeof out, &got, 0));
        assert_int_equal(got, len);
        if (len > 0)
            assert_memory_equal(in, out, len);
    }
    /* the largest message that fits a 64-byte ring: 56 bytes of payload */
    assert_ok(mproc_queue_put_nowait(q, in, 56));
    assert_code(mproc_queue_put_nowait(q, in, 0), -EAGAIN);
    size_t got;
    assert_ok(mproc_queue_get_into(q, out, sizeof out, &got, 0));
    assert_int_equal(got, 56);
    assert_code(mproc_queue_put(q, in, 57, MPROC_FOREVER), -EMSGSIZE);
    mproc_queue_free(q);
}

static void test_full_queue(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(256, 0, 0);
    unsigned char blob[120] = {0};
    assert_int_equal(mproc_queue_full(q), 0);
    assert_ok(mproc_queue_put_nowait(q, blob, 120)); /* 128 bytes with its header */
    assert_ok(mproc_queue_put_nowait(q, blob, 112)); /* 120 */
    assert_int_equal(mproc_queue_full(q), 0);        /* 8 bytes left: an empty message fits */
    assert_code(mproc_queue_put_nowait(q, blob, 1), -EAGAIN);
    assert_ok(mproc_queue_put_nowait(q, NULL, 0));
    assert_int_equal(mproc_queue_full(q), 1);
    assert_code(mproc_queue_put_nowait(q, NULL, 0), -EAGAIN);
    assert_code(mproc_queue_put(q, blob, 1, 0), -ETIMEDOUT);
    double t0 = mproc_test_now();
    assert_code(mproc_queue_put(q, blob, 1, 0.2), -ETIMEDOUT);
    double dt = mproc_test_now() - t0;
    assert_true(dt >= 0.19 && dt < 3.0);
    assert_int_equal(mproc_queue_qsize(q), 3);
    void *p;
    size_t len;
    assert_ok(mproc_queue_get_nowait(q, &p, &len));
    assert_int_equal(len, 120);
    free(p);
    assert_ok(mproc_queue_put_nowait(q, blob, 1));
    mproc_queue_free(q);

    /* maxsize counts messages, whatever their size */
    q = new_queue(0, 3, 0);
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_queue_put_nowait(q, NULL, 0));
    assert_int_equal(mproc_queue_full(q), 1);
    assert_code(mproc_queue_put_nowait(q, NULL, 0), -EAGAIN);
    assert_code(mproc_queue_put(q, NULL, 0, 0.05), -ETIMEDOUT);
    assert_int_equal(mproc_queue_qsize(q), 3);
    assert_ok(mproc_queue_get_into(q, NULL, 0, &len, 0));
    assert_int_equal(mproc_queue_full(q), 0);
    assert_ok(mproc_queue_put_nowait(q, NULL, 0));
    mproc_queue_free(q);
}

/* A producer blocked on a full queue wakes when a consumer in another process makes room. */
static int make_room_later(void *arg)
{
    mproc_test_sleep(0.2);
    uint64_t v;
    return get_u64(arg, &v, 10) == 0 && v == 1 ? 0 : 1;
}

static void test_full_then_room(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 1, 0);
    assert_ok(put_u64(q, 1, 0));
    pid_t pid = mproc_test_fork(make_room_later, q);
    double t0 = mproc_test_now();
    assert_ok(put_u64(q, 2, 10));
    assert_true(mproc_test_now() - t0 >= 0.1);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    uint64_t v;
    assert_ok(get_u64(q, &v, 0));
    assert_int_equal(v, 2);
    mproc_queue_free(q);
}

static void test_empty_queue(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 0, 0);
    void *p = (void *)&p;
    size_t len = 12345;
    assert_int_equal(mproc_queue_empty(q), 1);
    assert_int_equal(mproc_queue_qsize(q), 0);
    assert_code(mproc_queue_get_nowait(q, &p, &len), -EAGAIN);
    assert_true(p == (void *)&p && len == 12345); /* a failed call changes nothing */
    assert_code(mproc_queue_get(q, &p, &len, 0), -ETIMEDOUT);
    double t0 = mproc_test_now();
    assert_code(mproc_queue_get(q, &p, &len, 0.2), -ETIMEDOUT);
    double dt = mproc_test_now() - t0;
    assert_true(dt >= 0.19 && dt < 3.0);
    char c;
    assert_code(mproc_queue_get_into(q, &c, 1, &len, 0.05), -ETIMEDOUT);
    /* an empty message is a message */
    assert_ok(mproc_queue_put(q, "", 0, 0));
    assert_int_equal(mproc_queue_empty(q), 0);
    assert_int_equal(mproc_queue_qsize(q), 1);
    assert_ok(mproc_queue_get(q, &p, &len, 0));
    assert_int_equal(len, 0);
    assert_non_null(p);
    free(p);
    assert_int_equal(mproc_queue_empty(q), 1);
    mproc_queue_free(q);
}

static void test_message_too_large(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(1000, 0, 0); /* rounded up to 1024 */
    static unsigned char big[4096];
    double t0 = mproc_test_now();
    assert_code(mproc_queue_put(q, big, 1017, MPROC_FOREVER), -EMSGSIZE);
    assert_code(mproc_queue_put(q, big, 4096, MPROC_FOREVER), -EMSGSIZE);
    assert_code(mproc_queue_put_nowait(q, big, SIZE_MAX), -EMSGSIZE);
    assert_true(mproc_test_now() - t0 < 1.0);
    assert_ok(mproc_queue_put(q, big, 1016, 0)); /* exactly the whole ring */
    assert_int_equal(mproc_queue_full(q), 1);
    mproc_queue_free(q);

    /* capacity 0 means 1 MiB */
    q = new_queue(0, 0, 0);
    size_t mib = (size_t)1 << 20;
    unsigned char *huge = calloc(1, mib);
    assert_non_null(huge);
    assert_code(mproc_queue_put(q, huge, mib - 7, MPROC_FOREVER), -EMSGSIZE);
    assert_ok(mproc_queue_put(q, huge, mib - 8, 0));
    size_t len = 0;
    assert_ok(mproc_queue_get_into(q, huge, mib, &len, 0));
    assert_int_equal(len, mib - 8);
    free(huge);
    mproc_queue_free(q);
}

static void test_get_into_too_small(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 0, 0);
    assert_ok(mproc_queue_put(q, "hello, world", 12, 0));
    char buf[16];
    size_t len = 0;
    assert_code(mproc_queue_get_into(q, buf, 5, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(len, 12);
    assert_code(mproc_queue_get_into(q, NULL, 0, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(mproc_queue_qsize(q), 1); /* kept */
    assert_ok(mproc_queue_get_into(q, buf, len, &len, 0));
    assert_int_equal(len, 12);
    assert_memory_equal(buf, "hello, world", 12);
    assert_int_equal(mproc_queue_empty(q), 1);
    mproc_queue_free(q);
}

/* ---- close ----------------------------------------------------------------------------------- */

static int drain_until_closed(void *arg)
{
    mproc_queue *q = arg;
    uint64_t v;
    for (uint64_t want = 0; want < 2; want++)
        if (get_u64(q, &v, 10) < 0 || v != want)
            return 1;
    double t0 = mproc_test_now();
    int rc = get_u64(q, &v, 10); /* blocks until the parent closes */
    if (rc != -MPROC_ECLOSED)
        return 2;
    if (mproc_test_now() - t0 < 0.1 || mproc_test_now() - t0 > 5)
        return 3;
    return get_u64(q, &v, 0) == -MPROC_ECLOSED ? 0 : 4;
}

static int put_until_closed(void *arg)
{
    mproc_queue *q = arg; /* maxsize 1 and already full */
    return put_u64(q, 9, 10) == -MPROC_ECLOSED ? 0 : 1;
}

static void test_close_across_processes(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 0, 0);
    assert_ok(put_u64(q, 0, 0));
    assert_ok(put_u64(q, 1, 0));
    pid_t pid = mproc_test_fork(drain_until_closed, q);
    mproc_test_sleep(0.3);
    assert_ok(mproc_queue_close(q));
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_code(put_u64(q, 2, 0), -MPROC_ECLOSED);
    assert_code(mproc_queue_put_nowait(q, NULL, 0), -MPROC_ECLOSED);
    assert_ok(mproc_queue_close(q)); /* twice is fine */
    mproc_queue_free(q);

    /* messages put before close are still delivered, then ECLOSED; a producer
     * blocked on a full queue wakes with ECLOSED */
    q = new_queue(0, 1, 0);
    assert_ok(put_u64(q, 7, 0));
    pid = mproc_test_fork(put_until_closed, q);
    mproc_test_sleep(0.2);
    assert_ok(mproc_queue_close(q));
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    uint64_t v;
    assert_ok(get_u64(q, &v, MPROC_FOREVER));
    assert_int_equal(v, 7);
    assert_code(get_u64(q, &v, MPROC_FOREVER), -MPROC_ECLOSED);
    void *p;
    size_t len;
    assert_code(mproc_queue_get_nowait(q, &p, &len), -MPROC_ECLOSED);
    mproc_queue_free(q);
}

/* ---- SimpleQueue --------------------------------------------------------------------------------
 */

struct simple_arg {
    mproc_queue *q;
    uint64_t from, n;
};

static int simple_producer(void *arg)
{
    struct simple_arg *a = arg;
    for (uint64_t i = a->from; i < a->from + a->n; i++)
        if (mproc_simplequeue_put(a->q, &i, sizeof i) < 0)
            return 1;
    return 0;
}

static int simple_wait_closed(void *arg)
{
    void *buf;
    size_t len;
    return mproc_simplequeue_get(arg, &buf, &len) == -MPROC_ECLOSED ? 0 : 1;
}

/* Python's SimpleQueue: put and get wait as long as they must (the producers here fill a
 * 64-byte queue many times over), empty, close. */
static void test_simplequeue(void **state)
{
    (void)state;
    mproc_queue *q;
    assert_ok(mproc_simplequeue_new(&q));
    assert_int_equal(mproc_queue_empty(q), 1);
    uint64_t x = 42;
    assert_ok(mproc_simplequeue_put(q, &x, sizeof x));
    assert_int_equal(mproc_queue_empty(q), 0);
    void *buf;
    size_t len;
    assert_ok(mproc_simplequeue_get(q, &buf, &len));
    assert_int_equal(len, sizeof x);
    assert_memory_equal(buf, &x, sizeof x);
    free(buf);
    mproc_queue_free(q);

    /* two producers, 2,000 messages each, through a queue that holds four */
    q = new_queue(64, 0, 0);
    struct simple_arg a1 = {q, 0, 2000}, a2 = {q, 1000000, 2000};
    pid_t p1 = mproc_test_fork(simple_producer, &a1), p2 = mproc_test_fork(simple_producer, &a2);
    uint64_t next1 = 0, next2 = 1000000;
    for (int i = 0; i < 4000; i++) {
        assert_ok(mproc_simplequeue_get(q, &buf, &len));
        assert_int_equal(len, sizeof x);
        memcpy(&x, buf, sizeof x);
        free(buf);
        if (x < 1000000)
            assert_int_equal(x, next1++); /* each producer's messages in order */
        else
            assert_int_equal(x, next2++);
    }
    assert_int_equal(mproc_test_exitcode(p1, 30), 0);
    assert_int_equal(mproc_test_exitcode(p2, 30), 0);
    assert_int_equal(mproc_queue_empty(q), 1);

    /* close: a get waiting in another process wakes with ECLOSED; puts fail */
    pid_t w = mproc_test_fork(simple_wait_closed, q);
    mproc_test_sleep(0.2);
    assert_ok(mproc_queue_close(q));
    assert_int_equal(mproc_test_exitcode(w, 10), 0);
    assert_code(mproc_simplequeue_put(q, &x, sizeof x), -MPROC_ECLOSED);
    mproc_queue_free(q);

    assert_code(mproc_simplequeue_new(NULL), -EINVAL);
    assert_code(mproc_simplequeue_put(NULL, &x, sizeof x), -EINVAL);
    assert_code(mproc_simplequeue_get(NULL, &buf, &len), -EINVAL);
}

/* ---- JoinableQueue ------------------------------------------------------------------------------
 */

static int slow_worker(void *arg)
{
    mproc_queue *q = arg;
    for (int i = 0; i < 5; i++) {
        uint64_t v;
        if (get_u64(q, &v, 10) < 0)
            return 1;
        mproc_test_sleep(0.03);
        if (mproc_queue_task_done(q) < 0)
            return 2;
    }
    return 0;
}

static void test_joinable(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 0, MPROC_QUEUE_JOINABLE);
    assert_ok(mproc_queue_join(q, 0)); /* nothing put: nothing to wait for */
    assert_code(mproc_queue_task_done(q), -EOVERFLOW);
    for (uint64_t i = 0; i < 5; i++)
        assert_ok(put_u64(q, i, 0));
    assert_code(mproc_queue_join(q, 0.05), -ETIMEDOUT);
    pid_t pid = mproc_test_fork(slow_worker, q);
    assert_ok(mproc_queue_join(q, 10));
    assert_int_equal(mproc_queue_qsize(q), 0);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_code(mproc_queue_task_done(q), -EOVERFLOW); /* one more than was put */
    /* task_done counts puts, not gets (Python's rule) */
    assert_ok(put_u64(q, 5, 0));
    assert_ok(mproc_queue_task_done(q));
    assert_code(mproc_queue_task_done(q), -EOVERFLOW);
    assert_ok(mproc_queue_join(q, 0));
    assert_code(mproc_queue_join(q, -1), -EINVAL);
    mproc_queue_free(q);

    q = new_queue(0, 0, 0);
    assert_code(mproc_queue_task_done(q), -MPROC_ESTATE);
    assert_code(mproc_queue_join(q, 0), -MPROC_ESTATE);
    mproc_queue_free(q);
}

/* ---- bad input ----------------------------------------------------------------------------------
 */

static void test_bad_input(void **state)
{
    (void)state;
    mproc_queue *q = NULL;
    assert_code(mproc_queue_new(NULL, NULL), -EINVAL);
    assert_code(mproc_queue_new(&q, &(mproc_queue_opts){.capacity = SIZE_MAX}), -EINVAL);
    assert_code(mproc_queue_new(&q, &(mproc_queue_opts){.capacity = ((size_t)1 << 30) + 1}),
                -EINVAL);
    assert_code(mproc_queue_new(&q, &(mproc_queue_opts){.maxsize = SIZE_MAX}), -EINVAL);
    assert_code(mproc_queue_new(&q, &(mproc_queue_opts){.flags = 2}), -EINVAL);
    assert_null(q);
    assert_ok(mproc_queue_new(&q, &(mproc_queue_opts){.capacity = 1})); /* rounded up */
    assert_ok(mproc_queue_put_nowait(q, "x", 1));
    mproc_queue_free(q);

    q = new_queue(0, 0, 0);
    void *p;
    size_t len;
    char c;
    double nan = __builtin_nan("");
    assert_code(mproc_queue_put(NULL, "x", 1, 0), -EINVAL);
    assert_code(mproc_queue_put(q, NULL, 1, 0), -EINVAL);
    assert_code(mproc_queue_put(q, "x", 1, -1), -EINVAL);
    assert_code(mproc_queue_put(q, "x", 1, nan), -EINVAL);
    assert_code(mproc_queue_put_nowait(NULL, "x", 1), -EINVAL);
    assert_code(mproc_queue_get(NULL, &p, &len, 0), -EINVAL);
    assert_code(mproc_queue_get(q, NULL, &len, 0), -EINVAL);
    assert_code(mproc_queue_get(q, &p, NULL, 0), -EINVAL);
    assert_code(mproc_queue_get(q, &p, &len, -0.5), -EINVAL);
    assert_code(mproc_queue_get(q, &p, &len, nan), -EINVAL);
    assert_code(mproc_queue_get_into(q, NULL, 5, &len, 0), -EINVAL);
    assert_code(mproc_queue_get_into(q, &c, 1, NULL, 0), -EINVAL);
    assert_code(mproc_queue_get_nowait(q, NULL, &len), -EINVAL);
    assert_code(mproc_queue_get_nowait(NULL, &p, &len), -EINVAL);
    assert_code(mproc_queue_qsize(NULL), -EINVAL);
    assert_code(mproc_queue_empty(NULL), -EINVAL);
    assert_code(mproc_queue_full(NULL), -EINVAL);
    assert_code(mproc_queue_close(NULL), -EINVAL);
    assert_code(mproc_queue_task_done(NULL), -EINVAL);
    assert_code(mproc_queue_join(NULL, 0), -EINVAL);
    /* something that is not a queue */
    static _Alignas(4096) uint64_t junk[512];
    assert_code(mproc_queue_put((mproc_queue *)(void *)junk, "x", 1, 0), -EINVAL);
    assert_code(mproc_queue_qsize((mproc_queue *)(void *)junk), -EINVAL);
    assert_code(mproc_queue_qsize((mproc_queue *)(void *)&junk[1]), -EINVAL); /* misaligned */
    mproc_queue_free(NULL);
    mproc_queue_free((mproc_queue *)(void *)junk); /* not ours: ignored */
    assert_int_equal(mproc_queue_qsize(q), 0);     /* nothing above changed the queue */
    mproc_queue_free(q);
}

static void test_qsize_empty_full(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(1024, 10, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(mproc_queue_qsize(q), i);
        assert_int_equal(mproc_queue_empty(q), i == 0);
        assert_int_equal(mproc_queue_full(q), 0);
        assert_ok(put_u64(q, (uint64_t)i, 0));
    }
    assert_int_equal(mproc_queue_full(q), 1);
    assert_int_equal(mproc_queue_qsize(q), 10);
    for (int i = 10; i > 0; i--) {
        uint64_t v;
        assert_ok(get_u64(q, &v, 0));
        assert_int_equal(v, 10 - i);
        assert_int_equal(mproc_queue_qsize(q), i - 1);
    }
    assert_int_equal(mproc_queue_empty(q), 1);
    mproc_queue_free(q);
}

/* ---- faults: processes killed inside put and get -----------------------------------------------
 */

#ifdef MPROC_FAULT_INJECTION
struct killer {
    mproc_queue *q;
    const char *point;
    bool into; /* die_in_get: get_into (the fast path) rather than get */
};

/* Puts 0, 1, 2: armed to die at the point on the third put. */
static int die_in_put(void *arg)
{
    struct killer *k = arg;
    if (mproc_fault_set(k->point, MPROC_FAULT_KILL, &(mproc_fault_opts){.nth = 3}) < 0)
        return 1;
    for (uint64_t i = 0; i < 3; i++)
        if (put_u64(k->q, i, 10) < 0)
            return 2;
    return 3; /* not reached */
}

static void test_producer_killed_in_put(void **state)
{
    (void)state;
    const char *points[] = {"queue.put.locked", "queue.put.written"};
    /* a JoinableQueue's puts take the general path, a plain queue's the fast one */
    for (size_t i = 0; i < 2 * MPROC__ARRAY_LEN(points); i++) {
        bool joinable = i < MPROC__ARRAY_LEN(points);
        mproc_queue *q = new_queue(0, 0, joinable ? MPROC_QUEUE_JOINABLE : 0);
        struct killer k = {q, points[i % MPROC__ARRAY_LEN(points)], false};
        pid_t pid = mproc_test_fork(die_in_put, &k);
        assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
        assert_int_equal(mproc_queue_qsize(q), 2);
        /* the dead producer held the put lock: the next put takes it over */
        assert_ok(put_u64(q, 100, 1));
        assert_ok(put_u64(q, 101, 1));
        uint64_t want[] = {0, 1, 100, 101}, v;
        for (size_t j = 0; j < 4; j++) {
            assert_ok(get_u64(q, &v, 1));
            assert_int_equal(v, want[j]); /* the half-written message 2 never appears */
        }
        assert_code(get_u64(q, &v, 0), -ETIMEDOUT);
        if (joinable) {
            for (int j = 0; j < 4; j++)
                assert_ok(mproc_queue_task_done(q));
            assert_ok(mproc_queue_join(q, 0)); /* the lost put never counted as a task */
        }
        mproc_queue_free(q);
    }
}

/* close() needs the put lock too: a dead holder delays it by a slice, not its full second. */
static void test_close_after_holder_died(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 0, 0);
    struct killer k = {q, "queue.put.written", false};
    pid_t pid = mproc_test_fork(die_in_put, &k);
    assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
    double t0 = mproc_test_now();
    assert_ok(mproc_queue_close(q));
    assert_true(mproc_test_now() - t0 < 0.9);
    assert_code(put_u64(q, 9, 0), -MPROC_ECLOSED);
    uint64_t v;
    for (uint64_t want = 0; want < 2; want++) {
        assert_ok(get_u64(q, &v, 0));
        assert_int_equal(v, want);
    }
    assert_code(get_u64(q, &v, 0), -MPROC_ECLOSED);
    mproc_queue_free(q);
}

static int die_in_get(void *arg)
{
    struct killer *k = arg;
    if (mproc_fault_set(k->point, MPROC_FAULT_KILL, &(mproc_fault_opts){.nth = 2}) < 0)
        return 1;
    void *p;
    size_t len;
    if (k->into) {
        uint64_t v;
        if (get_u64(k->q, &v, 10) < 0) /* message 0: fine */
            return 2;
        (void)get_u64(k->q, &v, 10); /* message 1: dies here */
        return 3;
    }
    if (mproc_queue_get(k->q, &p, &len, 10) < 0)
        return 2;
    free(p);
    (void)mproc_queue_get(k->q, &p, &len, 10);
    return 3;
}

static void test_consumer_killed_in_get(void **state)
{
    (void)state;
    const char *points[] = {"queue.get.locked", "queue.get.read"};
    for (size_t i = 0; i < 2 * MPROC__ARRAY_LEN(points); i++) {
        mproc_queue *q = new_queue(0, 0, 0);
        for (uint64_t j = 0; j < 3; j++)
            assert_ok(put_u64(q, j, 0));
        struct killer k = {q, points[i % MPROC__ARRAY_LEN(points)], i >= MPROC__ARRAY_LEN(points)};
        pid_t pid = mproc_test_fork(die_in_get, &k);
        assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
        assert_int_equal(mproc_queue_qsize(q), 2);
        uint64_t v;
        assert_ok(get_u64(q, &v, 1)); /* the one it was reading */
        assert_int_equal(v, 1);
        assert_ok(put_u64(q, 3, 1));
        assert_ok(get_u64(q, &v, 1));
        assert_int_equal(v, 2);
        assert_ok(get_u64(q, &v, 1));
        assert_int_equal(v, 3);
        assert_int_equal(mproc_queue_empty(q), 1);
        mproc_queue_free(q);
    }
}

/* Failures (not deaths) at the same points: the call fails, the queue is unchanged. */
static void test_failures_change_nothing(void **state)
{
    (void)state;
    mproc_queue *q = new_queue(0, 0, 0);
    const char *put_points[] = {"queue.put.locked", "queue.put.written"};
    for (size_t i = 0; i < 2; i++) {
        assert_ok(
            mproc_fault_set(put_points[i], MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
        assert_code(put_u64(q, 99, 0), -EIO);
        assert_int_equal(mproc_queue_qsize(q), 0);
    }
    assert_ok(put_u64(q, 1, 0));
    assert_ok(put_u64(q, 2, 0));
    const char *get_points[] = {"queue.get.locked", "queue.get.read"};
    uint64_t v;
    for (size_t i = 0; i < 2; i++) {
        assert_ok(
            mproc_fault_set(get_points[i], MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
        assert_code(get_u64(q, &v, 0), -EIO);
        void *p;
        size_t len;
        assert_ok(
            mproc_fault_set(get_points[i], MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
        assert_code(mproc_queue_get(q, &p, &len, 0), -EIO);
        assert_int_equal(mproc_queue_qsize(q), 2);
    }
    /* the allocation of mproc_queue_get fails: -ENOMEM, the message stays */
    assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, NULL));
    void *p = NULL;
    size_t len = 0;
    assert_code(mproc_queue_get(q, &p, &len, 0), -ENOMEM);
    assert_null(p);
    assert_int_equal(mproc_queue_qsize(q), 2);
    assert_ok(mproc_queue_get(q, &p, &len, 0));
    assert_int_equal(len, 8);
    memcpy(&v, p, 8);
    free(p);
    assert_int_equal(v, 1);
    assert_ok(get_u64(q, &v, 0));
    assert_int_equal(v, 2);
    assert_ok(mproc_fault_clear());
    mproc_queue_free(q);
}
#endif

/* ---- the side locks (src/owner_lock.c): robust without the kernel's help ------------ */

static int64_t deadline_in(double seconds)
{
    return mproc__sys_now_ns() + (int64_t)(seconds * 1e9);
}

static void test_owner_lock_basics(void **state)
{
    (void)state;
    mproc__owner_lock *l = shared_block(sizeof *l);
    uint64_t self = mproc__owner_self_id();
    assert_int_equal((pid_t)(self & MPROC__OWNER_PID_MASK), getpid());
    assert_true(self >> 32 != 0); /* a start-time stamp (this machine has /proc) */
    assert_int_equal(mproc__owner_gone(self), 0);
    assert_true(mproc__owner_trylock(l, self));
    assert_false(mproc__owner_trylock(l, self)); /* not recursive */
    /* held by a live process (us): a wait times out, the lock stays ours */
    double t0 = mproc_test_now();
    assert_code(mproc__owner_lock_wait(l, self, deadline_in(0.1), true), -ETIMEDOUT);
    assert_true(mproc_test_now() - t0 >= 0.09);
    assert_int_equal(atomic_load(&l->word) & MPROC__OWNER_PID_MASK, (uint64_t)getpid());
    uint64_t gen = atomic_load(&l->word) & MPROC__OWNER_GEN_MASK;
    mproc__owner_unlock(l);
    assert_int_equal(atomic_load(&l->word), gen); /* free: the generation stays */
    assert_ok(mproc__owner_lock_wait(l, self, deadline_in(1), false));
    assert_int_equal(atomic_load(&l->word) & MPROC__OWNER_GEN_MASK,
                     (gen + MPROC__OWNER_GEN_ONE) & MPROC__OWNER_GEN_MASK);
    mproc__owner_unlock(l);
    assert_int_equal(mproc__owner_gone(0), 1);
    munmap(l, sizeof *l);
}

/* A child's owner id is its own, however it was forked (the id page is wiped on fork). */
static int report_id(void *arg)
{
    uint64_t *out = arg;
    *out = mproc__owner_self_id();
    return (pid_t)(*out & MPROC__OWNER_PID_MASK) == getpid() ? 0 : 1;
}

static void test_owner_id_in_children(void **state)
{
    (void)state;
    uint64_t parent = mproc__owner_self_id();
    uint64_t *ids = shared_block(2 * sizeof *ids);
    pid_t pid = mproc_test_fork(report_id, &ids[0]);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_true(ids[0] != parent && (pid_t)(ids[0] & MPROC__OWNER_PID_MASK) == pid);
    /* a raw clone() runs no atfork handler: the child must not inherit our id either */
    long raw = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, NULL);
    if (raw == 0)
        _exit(report_id(&ids[1]));
    assert_true(raw > 0);
    int status = 0;
    assert_int_equal(waitpid((pid_t)raw, &status, 0), (pid_t)raw);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true((pid_t)(ids[1] & MPROC__OWNER_PID_MASK) == (pid_t)raw);
    assert_int_equal(mproc__owner_self_id(), parent); /* ours is unchanged */
    munmap(ids, 2 * sizeof *ids);
}

struct holder {
    mproc__owner_lock *l;
    _Atomic int *flag; /* set to 1 once the child holds the lock */
    int exit_holding;
};

/* Take the lock, say so, then exit holding it, or wait to be killed. */
static int hold_lock(void *arg)
{
    struct holder *h = arg;
    if (mproc__owner_lock_wait(h->l, mproc__owner_self_id(), MPROC__NO_DEADLINE, false) != 0)
        return 1;
    atomic_store(h->flag, 1);
    if (h->exit_holding)
        return 0;
    for (;;)
        mproc_test_sleep(1);
}

static void wait_flag(_Atomic int *flag)
{
    double t0 = mproc_test_now();
    while (!atomic_load(flag) && mproc_test_now() - t0 < 10)
        mproc_test_sleep(0.001);
    assert_int_equal(atomic_load(flag), 1);
}

static void test_owner_lock_dead_owner(void **state)
{
    (void)state;
    mproc__owner_lock *l = shared_block(sizeof *l);
    _Atomic int *flag = shared_block(sizeof *flag);
    uint64_t self = mproc__owner_self_id();
    for (int reaped = 0; reaped < 2; reaped++) {
        /* the owner exits holding the lock: a zombie first (not reaped yet), then gone */
        atomic_store(flag, 0);
        struct holder h = {l, flag, 1};
        pid_t pid = mproc_test_fork(hold_lock, &h);
        wait_flag(flag);
        if (reaped)
            assert_int_equal(mproc_test_exitcode(pid, 10), 0);
        else
            while (mproc_test_pid_alive(pid))
                mproc_test_sleep(0.001);
        double t0 = mproc_test_now();
        assert_int_equal(mproc__owner_lock_wait(l, self, deadline_in(10), true), MPROC_OWNER_DIED);
        assert_true(mproc_test_now() - t0 < 2.0); /* a slice or two, not the deadline */
        mproc__owner_unlock(l);
        if (!reaped)
            assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    }
    munmap((void *)flag, sizeof *flag);
    munmap(l, sizeof *l);
}

static void test_owner_lock_stopped_and_reused(void **state)
{
    (void)state;
    mproc__owner_lock *l = shared_block(sizeof *l);
    _Atomic int *flag = shared_block(sizeof *flag);
    uint64_t self = mproc__owner_self_id();
    struct holder h = {l, flag, 0};
    pid_t pid = mproc_test_fork(hold_lock, &h);
    wait_flag(flag);
    uint64_t v = atomic_load(&l->word);
    assert_int_equal((pid_t)(v & MPROC__OWNER_PID_MASK), pid);
    /* a live owner, even a stopped one, keeps the lock: waits time out */
    assert_int_equal(mproc__owner_gone(v), 0);
    kill(pid, SIGSTOP);
    assert_code(mproc__owner_lock_wait(l, self, deadline_in(0.2), true), -ETIMEDOUT);
    kill(pid, SIGCONT);
    /* the same pid with another start time is another process: the owner is gone */
    uint64_t reused = (v & UINT64_C(0xffffffff)) | (((v >> 32) ^ 1) << 32);
    assert_int_equal(mproc__owner_gone(reused), 1);
    atomic_store(&l->word, reused);
    assert_int_equal(mproc__owner_lock_wait(l, self, deadline_in(10), true), MPROC_OWNER_DIED);
    mproc__owner_unlock(l);
    /* the real owner killed outright: taken over too */
    assert_true(mproc__owner_trylock(l, self));
    atomic_store(&l->word, v);
    kill(pid, SIGKILL);
    assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
    assert_int_equal(mproc__owner_gone(v), 1);
    assert_int_equal(mproc__owner_lock_wait(l, self, deadline_in(10), false), MPROC_OWNER_DIED);
    mproc__owner_unlock(l);
    munmap((void *)flag, sizeof *flag);
    munmap(l, sizeof *l);
}

/* Mutual exclusion under contention, sleepers and wakes included: a plain counter. */
enum { EXCL_PROCS = 3, EXCL_EACH = 20000 };

struct excl {
    mproc__owner_lock lock;
    uint64_t counter; /* not atomic: only the lock protects it */
    _Atomic int slept;
};

static int excl_worker(void *arg)
{
    struct excl *e = arg;
    uint64_t self = mproc__owner_self_id();
    for (int i = 0; i < EXCL_EACH; i++) {
        if (!mproc__owner_trylock(&e->lock, self)) {
            if (mproc__owner_lock_wait(&e->lock, self, deadline_in(20), i % 2 == 0) != 0)
                return 1;
            atomic_fetch_add(&e->slept, 1);
        }
        uint64_t c = e->counter;
        if (i % 64 == 0)
            sched_yield(); /* hold it a while now and then: others must wait */
        e->counter = c + 1;
        mproc__owner_unlock(&e->lock);
    }
    return 0;
}

static void test_owner_lock_exclusion(void **state)
{
    (void)state;
    struct excl *e = shared_block(sizeof *e);
    pid_t pids[EXCL_PROCS];
    for (int i = 0; i < EXCL_PROCS; i++)
        pids[i] = mproc_test_fork(excl_worker, e);
    for (int i = 0; i < EXCL_PROCS; i++)
        assert_int_equal(mproc_test_exitcode(pids[i], 30), 0);
    assert_int_equal(e->counter, (uint64_t)EXCL_PROCS * EXCL_EACH);
    assert_int_equal(atomic_load(&e->lock.word) & MPROC__OWNER_PID_MASK, 0);
    printf("contended acquisitions: %d\n", atomic_load(&e->slept));
    munmap(e, sizeof *e);
}

/* ---- kill storm: a producer and a consumer SIGKILLed from outside at random times ------------ */

enum { STORM_EACH = 30000, STORM_ROUNDS = 10 };

struct storm {
    mproc_queue *q;
    int who;
    uint8_t *acked;        /* acked[id] = 1 once put(id) returned 0 */
    _Atomic uint8_t *recv; /* times id was received */
};

static int storm_producer(void *arg)
{
    struct storm *s = arg;
    for (uint64_t i = 0; i < STORM_EACH; i++) {
        uint64_t id = (uint64_t)s->who * STORM_EACH + i;
        unsigned char msg[200];
        size_t len = 8 + (size_t)(id * 7 % 190);
        memset(msg, (int)(id & 0xff), len);
        memcpy(msg, &id, 8);
        int rc = mproc_queue_put(s->q, msg, len, 10);
        if (rc < 0) {
            fprintf(stderr, "storm producer %d: put %" PRIu64 ": %s\n", s->who, i,
                    mproc_strerror(rc));
            return 1;
        }
        s->acked[id] = 1;
    }
    return 0;
}

static int storm_consumer(void *arg)
{
    struct storm *s = arg;
    for (;;) {
        unsigned char msg[200];
        size_t len;
        int rc = mproc_queue_get_into(s->q, msg, sizeof msg, &len, 10);
        if (rc == -MPROC_ECLOSED)
            return 0;
        if (rc < 0) {
            fprintf(stderr, "storm consumer: get: %s\n", mproc_strerror(rc));
            return 1;
        }
        uint64_t id;
        memcpy(&id, msg, 8);
        if (id >= 2 * STORM_EACH || len != 8 + id * 7 % 190 ||
            (len > 8 && msg[len - 1] != (unsigned char)(id & 0xff))) {
            fprintf(stderr, "storm consumer: message %" PRIu64 " garbled\n", id);
            return 2;
        }
        atomic_fetch_add(&s->recv[id], 1);
    }
}

static void test_kill_storm(void **state)
{
    (void)state;
    const char *env = getenv("MPROC_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)(mproc_test_now() * 1e6);
    seed |= 1;
    printf("kill storm seed %" PRIu64 " (MPROC_TEST_SEED to replay)\n", seed);
    const size_t n = 2 * STORM_EACH;
    uint8_t *acked = shared_block(n);
    _Atomic uint8_t *recv = shared_block(n);
    for (int round = 0; round < STORM_ROUNDS; round++) {
        memset(acked, 0, n);
        memset((void *)recv, 0, n);
        mproc_queue *q = new_queue(2048, 0, 0);
        struct storm a[4] = {
            {q, 0, acked, recv}, {q, 1, acked, recv}, {q, 0, acked, recv}, {q, 1, acked, recv}};
        pid_t p0 = mproc_test_fork(storm_producer, &a[0]);
        pid_t p1 = mproc_test_fork(storm_producer, &a[1]);
        pid_t c0 = mproc_test_fork(storm_consumer, &a[2]);
        pid_t c1 = mproc_test_fork(storm_consumer, &a[3]);
        /* kill producer 1 and consumer 1, in a random order, at random times */
        pid_t first = xorshift(&seed) & 1 ? p1 : c1, second = first == p1 ? c1 : p1;
        mproc_test_sleep((double)(xorshift(&seed) % 12000) / 1e6);
        kill(first, SIGKILL);
        mproc_test_sleep((double)(xorshift(&seed) % 12000) / 1e6);
        kill(second, SIGKILL);
        assert_int_equal(mproc_test_exitcode(p0, 20), 0); /* survivors never hang */
        int killed_p1 = mproc_test_exitcode(p1, 20);
        assert_true(killed_p1 == -SIGKILL || killed_p1 == 0);
        assert_ok(mproc_queue_close(q));
        assert_int_equal(mproc_test_exitcode(c0, 20), 0);
        int killed_c1 = mproc_test_exitcode(c1, 20);
        assert_true(killed_c1 == -SIGKILL || killed_c1 == 0);
        size_t lost = 0, delivered = 0;
        for (size_t id = 0; id < n; id++) {
            if (recv[id] > 1)
                fail_msg("round %d: message %zu delivered %d times", round, id, (int)recv[id]);
            delivered += recv[id];
            if (acked[id] && !recv[id])
                lost++;
        }
        /* only the message the killed consumer had taken but not yet recorded may be
         * unseen by the test */
        if (lost > 1)
            fail_msg("round %d: %zu acknowledged messages never delivered", round, lost);
        for (size_t id = 0; id < STORM_EACH; id++)
            assert_true(acked[id]); /* the surviving producer finished */
        printf("round %d: %zu delivered, %zu unseen\n", round, delivered, lost);
        mproc_queue_free(q);
    }
    munmap(acked, n);
    munmap((void *)recv, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_seed_squares),
        MPROC_TEST(test_fifo_varying_sizes),
        MPROC_TEST(test_mpmc_exactly_once),
        MPROC_TEST(test_wraparound),
        MPROC_TEST(test_full_queue),
        MPROC_TEST(test_full_then_room),
        MPROC_TEST(test_empty_queue),
        MPROC_TEST(test_message_too_large),
        MPROC_TEST(test_get_into_too_small),
        MPROC_TEST(test_close_across_processes),
        MPROC_TEST(test_simplequeue),

        MPROC_TEST(test_joinable),
        MPROC_TEST(test_bad_input),
        MPROC_TEST(test_qsize_empty_full),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_producer_killed_in_put),
        MPROC_TEST(test_close_after_holder_died),
        MPROC_TEST(test_consumer_killed_in_get),
        MPROC_TEST(test_failures_change_nothing),
#endif
        MPROC_TEST(test_owner_lock_basics),
        MPROC_TEST(test_owner_id_in_children),
        MPROC_TEST(test_owner_lock_dead_owner),
        MPROC_TEST(test_owner_lock_stopped_and_reused),
        MPROC_TEST(test_owner_lock_exclusion),
        MPROC_TEST(test_kill_storm),
    };
    return mproc_test_run(tests);
}
