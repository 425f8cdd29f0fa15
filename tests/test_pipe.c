/* tests/test_pipe.c - Pipe and Connection: whole messages across processes, EOF, timeouts,
 * wrong use, faults. Children report through their exit code (0 = all checks passed). */
#include "harness.h"
#include "internal.h"
#include "sys/cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG (16u << 20)

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)(i * 131u + seed * 7u + (i >> 9));
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pat(i, seed);
}

static int same(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(i, seed))
            return 0;
    return 1;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    assert_non_null(p);
    return p;
}

/* Write raw bytes to a send-only end, as a writer speaking the wire format would. */
static void raw_write(mproc_conn *tx, const void *p, size_t n)
{
    assert_int_equal(write(mproc_conn_fd(tx), p, n), (ssize_t)n);
}

static void raw_header(mproc_conn *tx, uint64_t len)
{
    raw_write(tx, &len, sizeof len);
}

/* ---- ping-pong ------------------------------------------------------------------ */

static int echo_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    mproc_conn *c = ends[1];
    for (int i = 0;; i++) {
        void *buf;
        size_t len;
        int rc = mproc_conn_recv(c, &buf, &len, 10);
        if (rc == -MPROC_EEOF)
            return i == 1000 ? 0 : 10;
        if (rc < 0)
            return 11;
        if (len != (size_t)(i % 300) || !same(buf, len, (unsigned)i))
            return 12;
        fill(buf, len, (unsigned)i + 1);
        rc = mproc_conn_send(c, buf, len, 10);
        free(buf);
        if (rc < 0)
            return 13;
    }
}

static void test_pingpong_1000(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(echo_child, ends);
    mproc_conn_free(ends[1]);
    mproc_conn *c = ends[0];
    unsigned char buf[300], back[300];
    for (int i = 0; i < 1000; i++) {
        size_t len = (size_t)(i % 300), got = 999;
        fill(buf, len, (unsigned)i);
        assert_ok(mproc_conn_send(c, buf, len, MPROC_FOREVER));
        assert_ok(mproc_conn_recv_into(c, back, sizeof back, &got, MPROC_FOREVER));
        assert_int_equal(got, len);
        assert_true(same(back, len, (unsigned)i + 1));
    }
    mproc_conn_free(c); /* the child sees EOF after the last message */
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
}

/* ---- sizes, both directions, with a concurrent reader ---------------------------- */

static const size_t sizes[] = {0, 1, 7, 4096, 65536 + 3, BIG};

static int size_echo_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    for (size_t k = 0; k < MPROC__ARRAY_LEN(sizes); k++) {
        void *buf;
        size_t len;
        if (mproc_conn_recv(ends[1], &buf, &len, 20) < 0)
            return 20;
        if (len != sizes[k] || !same(buf, len, (unsigned)k))
            return 21;
        fill(buf, len, (unsigned)k + 100);
        int rc = mproc_conn_send(ends[1], buf, len, 20);
        free(buf);
        if (rc < 0)
            return 22;
    }
    return 0;
}

static void test_sizes_across_fork(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(size_echo_child, ends);
    mproc_conn_free(ends[1]);
    unsigned char *buf = xmalloc(BIG);
    for (size_t k = 0; k < MPROC__ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k], got = 1;
        fill(buf, n, (unsigned)k);
        assert_ok(mproc_conn_send(ends[0], buf, n, 20));
        memset(buf, 0, n);
        if (k % 2 == 0) {
            assert_ok(mproc_conn_recv_into(ends[0], buf, n, &got, 20)); /* exactly the size */
            assert_int_equal(got, n);
            assert_true(same(buf, n, (unsigned)k + 100));
        } else {
            void *p = NULL;
            assert_ok(mproc_conn_recv(ends[0], &p, &got, 20));
            assert_int_equal(got, n);
            assert_true(same(p, n, (unsigned)k + 100));
            free(p);
        }
    }
    free(buf);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
    assert_code(mproc_conn_recv_into(ends[0], NULL, 0, &(size_t){0}, 5), -MPROC_EEOF);
    mproc_conn_free(ends[0]);
}

/* ---- ordering of many messages of mixed sizes (crossing the read-ahead buffer) ---- */

enum { MANY = 20000 };

static size_t many_len(unsigned i, unsigned seed)
{
    unsigned x = (i + 1) * 2654435761u ^ seed;
    switch (x % 4) {
    case 0:
        return x % 16;
    case 1:
        return 4080 + x % 40; /* around the read-ahead size */
    default:
        return x % 9000;
    }
}

static unsigned many_seed;

static int many_sender(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    unsigned char *buf = malloc(9000 + sizeof(unsigned));
    if (buf == NULL)
        return 30;
    for (unsigned i = 0; i < MANY; i++) {
        size_t len = many_len(i, many_seed);
        fill(buf, len, i);
        if (len >= sizeof i)
            memcpy(buf, &i, sizeof i);
        if (mproc_conn_send(ends[1], buf, len, 20) < 0)
            return 31;
    }
    free(buf);
    mproc_conn_free(ends[1]);
    return 0;
}

static void test_ordering_many(void **state)
{
    (void)state;
    many_seed = (unsigned)time(NULL);
    printf("ordering seed %u\n", many_seed);
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], MPROC_PIPE_SIMPLEX));
    pid_t pid = mproc_test_fork(many_sender, ends);
    mproc_conn_free(ends[1]);
    unsigned char *buf = xmalloc(9000);
    for (unsigned i = 0; i < MANY; i++) {
        size_t want = many_len(i, many_seed), len = 0;
        void *p = buf;
        if (i % 3 == 0) {
            assert_ok(mproc_conn_recv(ends[0], &p, &len, 20));
        } else {
            assert_ok(mproc_conn_recv_into(ends[0], buf, 9000, &len, 20));
        }
        assert_int_equal(len, want);
        unsigned seq = i;
        if (len >= sizeof seq) {
            memcpy(&seq, p, sizeof seq);
            fill(p, sizeof seq, i);
        }
        if (seq != i || !same(p, len, i))
            fail_msg("message %u: got seq %u, content %s", i, seq, same(p, len, i) ? "ok" : "bad");
        if (p != buf)
            free(p);
    }
    free(buf);
    assert_code(mproc_conn_recv(ends[0], &(void *){NULL}, &(size_t){0}, 20), -MPROC_EEOF);
    mproc_conn_free(ends[0]);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
}

/* ---- 0-byte messages and end-of-file -------------------------------------------- */

static void test_zero_byte_vs_eof(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    assert_ok(mproc_conn_send(b, NULL, 0, 0));
    assert_ok(mproc_conn_send(b, "x", 0, 0));
    assert_ok(mproc_conn_send(b, "y", 1, 0));
    mproc_conn_free(b);
    void *p = NULL;
    size_t len = 99;
    assert_ok(mproc_conn_recv(a, &p, &len, 0));
    assert_non_null(p);
    assert_int_equal(len, 0);
    free(p);
    len = 99;
    assert_ok(mproc_conn_recv_into(a, NULL, 0, &len, 0));
    assert_int_equal(len, 0);
    char c = 0;
    assert_ok(mproc_conn_recv_into(a, &c, 1, &len, 0));
    assert_true(len == 1 && c == 'y');
    assert_int_equal(mproc_conn_poll(a, 0), 1); /* EOF is ready */
    assert_code(mproc_conn_recv(a, &p, &len, 0), -MPROC_EEOF);
    assert_code(mproc_conn_recv(a, &p, &len, MPROC_FOREVER), -MPROC_EEOF);
    assert_code(mproc_conn_recv_into(a, &c, 1, &len, 1), -MPROC_EEOF);
    assert_code(mproc_conn_send(a, "z", 1, 0), -MPROC_EEOF);
    mproc_conn_free(a);
}

/* ---- recv_into with a buffer too small ------------------------------------------ */

static int send_big_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    unsigned char *buf = malloc(BIG);
    if (buf == NULL)
        return 40;
    fill(buf, BIG, 7);
    int rc = mproc_conn_send(ends[1], buf, BIG, 20);
    if (rc == 0)
        rc = mproc_conn_send(ends[1], "tail", 4, 20);
    free(buf);
    mproc_conn_free(ends[1]);
    return rc == 0 ? 0 : 41;
}

static void test_recv_into_too_small(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    unsigned char msg[3000], buf[3000];
    fill(msg, sizeof msg, 3);
    assert_ok(mproc_conn_send(b, msg, 100, 0));
    assert_ok(mproc_conn_send(b, msg, 3000, 0));
    size_t len = 0;
    assert_code(mproc_conn_recv_into(a, buf, 10, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(len, 100);
    assert_code(mproc_conn_recv_into(a, NULL, 0, &len, 0), -MPROC_ETOOSMALL);
    assert_code(mproc_conn_recv_into(a, buf, 99, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(mproc_conn_poll(a, 0), 1);
    assert_ok(mproc_conn_recv_into(a, buf, 100, &len, 0));
    assert_int_equal(len, 100);
    assert_memory_equal(buf, msg, 100);
    /* The second message, refused once, then taken by recv. */
    assert_code(mproc_conn_recv_into(a, buf, 2999, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(len, 3000);
    void *p = NULL;
    assert_ok(mproc_conn_recv(a, &p, &len, 0));
    assert_int_equal(len, 3000);
    assert_memory_equal(p, msg, 3000);
    free(p);
    mproc_conn_free(b);
    mproc_conn_free(a);

    /* A 16 MiB message still mostly in the pipe when it is refused. */
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(send_big_child, ends);
    mproc_conn_free(ends[1]);
    unsigned char *big = xmalloc(BIG);
    assert_code(mproc_conn_recv_into(ends[0], big, 1000, &len, 20), -MPROC_ETOOSMALL);
    assert_int_equal(len, BIG);
    assert_code(mproc_conn_recv_into(ends[0], big, BIG - 1, &len, 20), -MPROC_ETOOSMALL);
    assert_ok(mproc_conn_recv_into(ends[0], big, BIG, &len, 20));
    assert_int_equal(len, BIG);
    assert_true(same(big, BIG, 7));
    assert_ok(mproc_conn_recv_into(ends[0], big, BIG, &len, 20));
    assert_true(len == 4 && memcmp(big, "tail", 4) == 0);
    free(big);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
    mproc_conn_free(ends[0]);
}

/* ---- timeouts ------------------------------------------------------------------- */

static void test_recv_timeout_empty(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    void *p = NULL;
    size_t len;
    double t = mproc_test_now();
    assert_code(mproc_conn_recv(a, &p, &len, 0.2), -ETIMEDOUT);
    t = mproc_test_now() - t;
    assert_true(t >= 0.19 && t < 3.0);
    t = mproc_test_now();
    assert_code(mproc_conn_recv_into(a, NULL, 0, &len, 0), -ETIMEDOUT);
    assert_code(mproc_conn_recv(b, &p, &len, 0), -ETIMEDOUT);
    assert_true(mproc_test_now() - t < 1.0);
    assert_null(p);
    /* Still usable afterwards. */
    assert_ok(mproc_conn_send(b, "ok", 2, 0));
    assert_ok(mproc_conn_recv(a, &p, &len, 0.2));
    assert_true(len == 2 && memcmp(p, "ok", 2) == 0);
    free(p);
    mproc_conn_free(a);
    mproc_conn_free(b);
}

static void test_send_timeout_when_full(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    unsigned char msg[1000];
    int sent = 0, rc = 0;
    while (sent < 100000) {
        fill(msg, sizeof msg, (unsigned)sent);
        if ((rc = mproc_conn_send(b, msg, sizeof msg, 0)) < 0)
            break;
        sent++;
    }
    assert_code(rc, -ETIMEDOUT);
    assert_true(sent > 10);
    double t = mproc_test_now();
    assert_code(mproc_conn_send(b, msg, sizeof msg, 0.2), -ETIMEDOUT);
    t = mproc_test_now() - t;
    assert_true(t >= 0.19 && t < 3.0);
    unsigned char *big = xmalloc(100000);
    assert_code(mproc_conn_send(b, big, 100000, 0.01), -ETIMEDOUT); /* nothing of it went */
    /* Everything that was accepted arrives whole, and nothing else. */
    for (int i = 0; i < sent; i++) {
        size_t len = 0;
        assert_ok(mproc_conn_recv_into(a, msg, sizeof msg, &len, 0));
        assert_int_equal(len, sizeof msg);
        assert_true(same(msg, len, (unsigned)i));
    }
    size_t len;
    assert_code(mproc_conn_recv_into(a, msg, sizeof msg, &len, 0), -ETIMEDOUT);
    assert_ok(mproc_conn_send(b, "again", 5, 0));
    assert_ok(mproc_conn_recv_into(a, msg, sizeof msg, &len, 0));
    assert_int_equal(len, 5);
    free(big);
    mproc_conn_free(a);
    mproc_conn_free(b);
}

/* Once a message has started, it is finished even past the deadline. */
static int started_send_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    size_t n = 1u << 20;
    unsigned char *buf = malloc(n);
    if (buf == NULL)
        return 50;
    fill(buf, n, 5);
    double t = mproc_test_now();
    int rc = mproc_conn_send(ends[1], buf, n, 0.05);
    t = mproc_test_now() - t;
    free(buf);
    mproc_conn_free(ends[1]);
    if (rc != 0)
        return 51;
    return t > 0.1 ? 0 : 52; /* the reader only starts after 0.3 s */
}

static void test_send_started_completes(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(started_send_child, ends);
    mproc_conn_free(ends[1]);
    mproc_test_sleep(0.3);
    void *p = NULL;
    size_t len;
    assert_ok(mproc_conn_recv(ends[0], &p, &len, 20));
    assert_int_equal(len, 1u << 20);
    assert_true(same(p, len, 5));
    free(p);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
    mproc_conn_free(ends[0]);
}

/* A message whose payload is late: a timeout keeps the partial state, the next receive
 * continues, whether by recv or recv_into. The writer writes the wire format by hand. */
static void test_partial_message_timeout_resumes(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, MPROC_PIPE_SIMPLEX));
    unsigned char *m1 = xmalloc(40000), *m2 = xmalloc(30000), *buf = xmalloc(40000);
    fill(m1, 40000, 11);
    fill(m2, 30000, 12);
    void *p = NULL;
    size_t len = 0;

    raw_header(b, 40000);
    raw_write(b, m1, 10000);
    assert_code(mproc_conn_recv(a, &p, &len, 0.05), -ETIMEDOUT);
    assert_int_equal(mproc_conn_poll(a, 0), 1); /* the header is in */
    raw_write(b, m1 + 10000, 10000);
    assert_code(mproc_conn_recv_into(a, buf, 40000, &len, 0.05), -ETIMEDOUT);
    assert_code(mproc_conn_recv_into(a, buf, 39999, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(len, 40000);
    raw_write(b, m1 + 20000, 20000);
    raw_header(b, 30000);
    raw_write(b, m2, 5000);
    memset(buf, 0, 40000);
    assert_ok(mproc_conn_recv_into(a, buf, 40000, &len, 0.05));
    assert_int_equal(len, 40000);
    assert_memory_equal(buf, m1, 40000);

    /* m2: part of it lands in the caller's buffer, then the wait times out. */
    memset(buf, 0, 40000);
    assert_code(mproc_conn_recv_into(a, buf, 40000, &len, 0.05), -ETIMEDOUT);
    memset(buf, 0xAA, 40000); /* the caller may reuse its buffer meanwhile */
    raw_write(b, m2 + 5000, 25000);
    assert_ok(mproc_conn_recv(a, &p, &len, 0.05));
    assert_int_equal(len, 30000);
    assert_memory_equal(p, m2, 30000);
    free(p);

    /* A message cut short by the writer's end: dropped, EOF. */
    raw_header(b, 1000);
    raw_write(b, m1, 10);
    mproc_conn_free(b);
    assert_code(mproc_conn_recv(a, &p, &len, 1), -MPROC_EEOF);
    assert_code(mproc_conn_recv(a, &p, &len, 1), -MPROC_EEOF);
    mproc_conn_free(a);
    free(m1);
    free(m2);
    free(buf);
}

static void test_bad_length_header(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, MPROC_PIPE_SIMPLEX));
    raw_header(b, UINT64_MAX); /* not something our writer sends */
    void *p = NULL;
    size_t len;
    assert_code(mproc_conn_recv(a, &p, &len, 1), -EPROTO);
    assert_code(mproc_conn_recv_into(a, NULL, 0, &len, 1), -EPROTO);
    assert_null(p);
    mproc_conn_free(a);
    mproc_conn_free(b);
}

/* ---- peer gone: EOF, and never SIGPIPE --------------------------------------------- */

static int sigpipe_state(void)
{
    sigset_t mask, pend;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    sigpending(&pend);
    return (sigismember(&mask, SIGPIPE) ? 1 : 0) | (sigismember(&pend, SIGPIPE) ? 2 : 0);
}

/* In a child with SIGPIPE at its default action (death): send to a closed peer. */
static int closed_peer_child(void *arg)
{
    unsigned flags = *(unsigned *)arg;
    signal(SIGPIPE, SIG_DFL);
    mproc_conn *a, *b;
    if (mproc_pipe_new(&a, &b, flags) < 0)
        return 60;
    if (mproc_conn_send(b, "one", 3, 0) < 0)
        return 61;
    mproc_conn_free(a); /* the receiver goes away with a message unread */
    for (int i = 0; i < 3; i++)
        if (mproc_conn_send(b, "two", 3, 0) != -MPROC_EEOF ||
            mproc_conn_send(b, "two", 3, MPROC_FOREVER) != -MPROC_EEOF)
            return 62;
    if (sigpipe_state() != 0)
        return 63; /* mask restored, nothing left pending */

    /* The caller has SIGPIPE blocked and one of its own pending: we must not eat it. */
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    mproc_conn *c, *d;
    if (mproc_pipe_new(&c, &d, flags) < 0)
        return 64;
    mproc_conn_free(c);
    if (mproc_conn_send(d, "x", 1, 0) != -MPROC_EEOF || sigpipe_state() != 1)
        return 65; /* blocked, and the SIGPIPE our write raised was consumed */
    mproc_conn_free(d);
    raise(SIGPIPE);
    if (mproc_pipe_new(&c, &d, flags) < 0)
        return 66;
    mproc_conn_free(c);
    if (mproc_conn_send(d, "x", 1, 0) != -MPROC_EEOF || sigpipe_state() != 3)
        return 67; /* the caller's own SIGPIPE is still pending */
    mproc_conn_free(d);
    const struct timespec zero = {0, 0};
    if (sigtimedwait(&pipe_only, NULL, &zero) != SIGPIPE)
        return 68;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    mproc_conn_free(b);
    return 0;
}

static void test_peer_closed_no_sigpipe(void **state)
{
    (void)state;
    unsigned flags[] = {0, MPROC_PIPE_SIMPLEX};
    for (int i = 0; i < 2; i++) {
        pid_t pid = mproc_test_fork(closed_peer_child, &flags[i]);
        assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    }
    /* Messages sent before the close are all read first; then EOF on both calls. */
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_conn_send(b, &i, sizeof i, 0));
    mproc_conn_free(b);
    for (int i = 0; i < 3; i++) {
        int v = -1;
        size_t len;
        assert_ok(mproc_conn_recv_into(a, &v, sizeof v, &len, 0));
        assert_int_equal(v, i);
    }
    size_t len;
    assert_code(mproc_conn_recv_into(a, NULL, 0, &len, 0), -MPROC_EEOF);
    assert_code(mproc_conn_send(a, "x", 1, 0), -MPROC_EEOF);
    assert_code(mproc_conn_send(a, "x", 1, MPROC_FOREVER), -MPROC_EEOF);
    mproc_conn_free(a);
}

/* A connection over a socketpair (what a Listener gives): the same messages both ways,
 * and a peer gone is EOF, never SIGPIPE, even with a message unread. */
static int socket_peer_child(void *arg)
{
    (void)arg;
    signal(SIGPIPE, SIG_DFL);
    int sv[2];
    mproc_conn *a, *b;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 80;
    if (mproc_conn_from_socket(&a, sv[0]) < 0 || mproc_conn_from_socket(&b, sv[1]) < 0)
        return 81;
    static char big[100000];
    memset(big, 'b', sizeof big);
    void *got;
    size_t len;
    if (mproc_conn_send(a, NULL, 0, 1) < 0 || mproc_conn_send(a, big, sizeof big, 1) < 0 ||
        mproc_conn_recv(b, &got, &len, 1) < 0 || len != 0)
        return 82;
    free(got);
    if (mproc_conn_recv(b, &got, &len, 1) < 0 || len != sizeof big || memcmp(got, big, len) != 0)
        return 83;
    free(got);
    if (mproc_conn_send(b, "back", 4, 1) < 0 || mproc_conn_recv(a, &got, &len, 1) < 0 || len != 4)
        return 84;
    free(got);
    if (mproc_conn_send(b, "unread", 6, 1) < 0)
        return 85;
    mproc_conn_free(a); /* gone with a message unread: the kernel resets the connection */
    for (int i = 0; i < 3; i++)
        if (mproc_conn_send(b, "x", 1, 0) != -MPROC_EEOF)
            return 86;
    if (mproc_conn_recv(b, &got, &len, 0) != -MPROC_EEOF)
        return 87;
    mproc_conn_free(b);
    return 0;
}

static void test_socket_conn(void **state)
{
    (void)state;
    pid_t pid = mproc_test_fork(socket_peer_child, NULL);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
}

static int stuck_sender_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    for (int i = 0; i < 3; i++)
        if (mproc_conn_send(ends[1], &i, sizeof i, 10) < 0)
            return 70;
    unsigned char *buf = malloc(BIG);
    if (buf == NULL)
        return 71;
    fill(buf, BIG, 1);
    mproc_conn_send(ends[1], buf, BIG, MPROC_FOREVER); /* blocks: nobody reads; killed here */
    return 72;
}

static int die_soon_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    mproc_test_sleep(0.1);
    raise(SIGKILL);
    return 80;
}

static void test_peer_killed_midstream(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(stuck_sender_child, ends);
    mproc_conn_free(ends[1]);
    for (int i = 0; i < 3; i++) {
        int v = -1;
        size_t len;
        assert_ok(mproc_conn_recv_into(ends[0], &v, sizeof v, &len, 10));
        assert_int_equal(v, i);
    }
    /* Wait until the big message fills the pipe (the child is blocked in it), kill it. */
    int queued = 0;
    for (double end = mproc_test_now() + 10; queued < 60000 && mproc_test_now() < end;) {
        assert_int_equal(ioctl(mproc_conn_fd(ends[0]), FIONREAD, &queued), 0);
        mproc_test_sleep(0.005);
    }
    assert_true(queued >= 60000); /* the 16 MiB message has started */
    kill(pid, SIGKILL);
    assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
    void *p = NULL;
    size_t len;
    assert_code(mproc_conn_recv(ends[0], &p, &len, 10), -MPROC_EEOF); /* cut short: dropped */
    assert_code(mproc_conn_recv(ends[0], &p, &len, 10), -MPROC_EEOF);
    assert_code(mproc_conn_send(ends[0], "x", 1, 10), -MPROC_EEOF);
    mproc_conn_free(ends[0]);

    /* A receiver blocked for ever wakes with EOF when the peer is killed. */
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid = mproc_test_fork(die_soon_child, ends);
    mproc_conn_free(ends[1]);
    assert_code(mproc_conn_recv(ends[0], &p, &len, MPROC_FOREVER), -MPROC_EEOF);
    assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
    mproc_conn_free(ends[0]);
}

/* ---- wrong direction, bad input, fds ------------------------------------------------ */

static void test_simplex_direction(void **state)
{
    (void)state;
    mproc_conn *rx, *tx;
    assert_ok(mproc_pipe_new(&rx, &tx, MPROC_PIPE_SIMPLEX));
    void *p = NULL;
    size_t len;
    char c;
    assert_code(mproc_conn_send(rx, "x", 1, 0), -EBADF);
    assert_code(mproc_conn_recv(tx, &p, &len, 0), -EBADF);
    assert_code(mproc_conn_recv_into(tx, &c, 1, &len, 0), -EBADF);
    assert_code(mproc_conn_poll(tx, 0), -EBADF);
    assert_true(mproc_conn_fd(rx) >= 0 && mproc_conn_fd(tx) >= 0);
    assert_true(mproc_conn_fd(rx) != mproc_conn_fd(tx));
    assert_ok(mproc_conn_send(tx, "x", 1, 0));
    assert_ok(mproc_conn_recv_into(rx, &c, 1, &len, 0));
    assert_true(len == 1 && c == 'x');
    mproc_conn_free(rx);
    mproc_conn_free(tx);
}

static void test_bad_input(void **state)
{
    (void)state;
    mproc_conn *a = (mproc_conn *)&a, *b = NULL;
    assert_code(mproc_pipe_new(NULL, &b, 0), -EINVAL);
    assert_code(mproc_pipe_new(&b, NULL, 0), -EINVAL);
    assert_code(mproc_pipe_new(&b, &b, 0), -EINVAL);
    assert_code(mproc_pipe_new(&a, &b, 2), -EINVAL);
    assert_code(mproc_pipe_new(&a, &b, ~0u), -EINVAL);
    assert_true(a == (mproc_conn *)&a && b == NULL); /* a failed call changes nothing */
    assert_ok(mproc_pipe_new(&a, &b, 0));
    void *p = NULL;
    size_t len;
    char buf[4];
    const double nan = __builtin_nan("");
    assert_code(mproc_conn_send(NULL, "x", 1, 0), -EINVAL);
    assert_code(mproc_conn_send(a, NULL, 1, 0), -EINVAL);
    assert_code(mproc_conn_send(a, "x", 1, -1), -EINVAL);
    assert_code(mproc_conn_send(a, "x", 1, nan), -EINVAL);
    assert_code(mproc_conn_send(a, "x", SIZE_MAX, 0), -EINVAL);
    assert_code(mproc_conn_recv(NULL, &p, &len, 0), -EINVAL);
    assert_code(mproc_conn_recv(a, NULL, &len, 0), -EINVAL);
    assert_code(mproc_conn_recv(a, &p, NULL, 0), -EINVAL);
    assert_code(mproc_conn_recv(a, &p, &len, -0.5), -EINVAL);
    assert_code(mproc_conn_recv(a, &p, &len, nan), -EINVAL);
    assert_code(mproc_conn_recv_into(NULL, buf, 4, &len, 0), -EINVAL);
    assert_code(mproc_conn_recv_into(a, NULL, 4, &len, 0), -EINVAL);
    assert_code(mproc_conn_recv_into(a, buf, 4, NULL, 0), -EINVAL);
    assert_code(mproc_conn_recv_into(a, buf, 4, &len, -INFINITY), -EINVAL);
    assert_code(mproc_conn_poll(NULL, 0), -EINVAL);
    assert_code(mproc_conn_poll(a, -1), -EINVAL);
    assert_code(mproc_conn_poll(a, nan), -EINVAL);
    assert_code(mproc_conn_fd(NULL), -EINVAL);
    mproc_conn_free(NULL);
    /* None of that disturbed the pair. */
    assert_ok(mproc_conn_send(b, "abc", 3, 0));
    assert_ok(mproc_conn_recv_into(a, buf, 4, &len, 0));
    assert_true(len == 3 && memcmp(buf, "abc", 3) == 0);
    mproc_conn_free(a);
    mproc_conn_free(b);
}

static void test_fds_cloexec(void **state)
{
    (void)state;
    unsigned flags[] = {0, MPROC_PIPE_SIMPLEX};
    for (int k = 0; k < 2; k++) {
        static unsigned char was_open[1024];
        for (int fd = 0; fd < 1024; fd++)
            was_open[fd] = fcntl(fd, F_GETFD) >= 0;
        mproc_conn *a, *b;
        assert_ok(mproc_pipe_new(&a, &b, flags[k]));
        int fresh = 0;
        for (int fd = 0; fd < 1024; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl < 0 || was_open[fd])
                continue;
            fresh++;
            if ((fl & FD_CLOEXEC) == 0)
                fail_msg("fd %d is not close-on-exec", fd);
        }
        assert_int_equal(fresh, k == 0 ? 4 : 2); /* duplex: a pipe each way */
        assert_true(fcntl(mproc_conn_fd(a), F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(mproc_conn_fd(b), F_GETFD) & FD_CLOEXEC);
        mproc_conn_free(a);
        mproc_conn_free(b);
    }
}

/* ---- poll ------------------------------------------------------------------------ */

static int send_late_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    mproc_test_sleep(0.1);
    return mproc_conn_send(ends[1], "late", 4, 10) == 0 ? 0 : 90;
}

static void test_poll_semantics(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    assert_int_equal(mproc_conn_poll(a, 0), 0);
    double t = mproc_test_now();
    assert_int_equal(mproc_conn_poll(a, 0.1), 0);
    t = mproc_test_now() - t;
    assert_true(t >= 0.09 && t < 3.0);
    assert_ok(mproc_conn_send(b, "hello", 5, 0));
    assert_int_equal(mproc_conn_poll(a, 0), 1);
    assert_int_equal(mproc_conn_poll(a, 0), 1); /* polling consumes nothing */
    assert_int_equal(mproc_conn_poll(b, 0), 0); /* the other direction is empty */
    size_t len;
    char buf[8];
    assert_code(mproc_conn_recv_into(a, buf, 2, &len, 0), -MPROC_ETOOSMALL);
    assert_int_equal(mproc_conn_poll(a, 0), 1); /* a pending header counts */
    assert_ok(mproc_conn_recv_into(a, buf, 8, &len, 0));
    assert_int_equal(mproc_conn_poll(a, 0), 0);
    /* Two messages in one read: the second one is ready from the read-ahead buffer. */
    assert_ok(mproc_conn_send(b, "1", 1, 0));
    assert_ok(mproc_conn_send(b, "2", 1, 0));
    assert_ok(mproc_conn_recv_into(a, buf, 8, &len, 0));
    assert_int_equal(mproc_conn_poll(a, 0), 1);
    assert_ok(mproc_conn_recv_into(a, buf, 8, &len, 0));
    assert_true(len == 1 && buf[0] == '2');
    assert_int_equal(mproc_conn_poll(a, 0), 0);
    mproc_conn_free(b);
    assert_int_equal(mproc_conn_poll(a, 0), 1); /* EOF is ready */
    mproc_conn_free(a);

    /* poll wakes when a message arrives from another process. */
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(send_late_child, ends);
    mproc_conn_free(ends[1]);
    t = mproc_test_now();
    assert_int_equal(mproc_conn_poll(ends[0], 10), 1);
    assert_true(mproc_test_now() - t < 9);
    assert_ok(mproc_conn_recv_into(ends[0], buf, 8, &len, 0));
    assert_true(len == 4 && memcmp(buf, "late", 4) == 0);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    mproc_conn_free(ends[0]);
}

/* ---- spinning: brief, and never for an idle receiver ------------------------------ */

/* CPU time of this process so far, in seconds. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1e9;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Waits without deadline for two messages that each come 0.25 s later; reports the CPU
 * time it spent waiting, in ms, through its exit code (capped at 250). */
static int idle_receiver_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[1]);
    double t0 = cpu_seconds();
    char c = 0;
    size_t len = 0;
    for (int i = 0; i < 2; i++) /* the second wait is one the backoff lets sleep at once */
        if (mproc_conn_recv_into(ends[0], &c, 1, &len, MPROC_FOREVER) < 0 || len != 1)
            return 255;
    double ms = (cpu_seconds() - t0) * 1e3;
    mproc_conn_free(ends[0]);
    return ms > 250 ? 250 : ms < 0 ? 254 : (int)ms;
}

static void test_idle_receiver_costs_no_cpu(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], MPROC_PIPE_SIMPLEX));
    pid_t pid = mproc_test_fork(idle_receiver_child, ends);
    mproc_conn_free(ends[0]);
    for (int i = 0; i < 2; i++) {
        mproc_test_sleep(0.25);
        assert_ok(mproc_conn_send(ends[1], "x", 1, MPROC_FOREVER));
    }
    int ms = mproc_test_exitcode(pid, 20);
    assert_true(ms >= 0 && ms < 50); /* a spin for the whole wait would take ~500 ms */
    mproc_conn_free(ends[1]);
}

/* ---- faults ---------------------------------------------------------------------- */

#ifdef MPROC_FAULT_INJECTION
static void test_fault_alloc_on_big_recv(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(send_big_child, ends);
    mproc_conn_free(ends[1]);
    void *p = NULL;
    size_t len = 0;
    assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = 1}));
    assert_code(mproc_conn_recv(ends[0], &p, &len, 20), -ENOMEM);
    assert_null(p);
    assert_int_equal(mproc_conn_poll(ends[0], 0), 1);
    assert_ok(mproc_conn_recv(ends[0], &p, &len, 20)); /* the same message, whole */
    assert_int_equal(len, BIG);
    assert_true(same(p, len, 7));
    free(p);
    assert_ok(mproc_conn_recv(ends[0], &p, &len, 20));
    assert_true(len == 4 && memcmp(p, "tail", 4) == 0);
    free(p);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
    mproc_conn_free(ends[0]);
}

static void test_fault_create_leaves_nothing(void **state)
{
    (void)state;
    mproc_conn *a = NULL, *b = NULL;
    for (unsigned nth = 1; nth <= 2; nth++) {
        assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = nth}));
        for (unsigned flags = 0; flags <= 1; flags++) {
            assert_code(mproc_pipe_new(&a, &b, flags), -ENOMEM);
            assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = nth}));
        }
        assert_ok(mproc_fault_set("sys.pipe", MPROC_FAULT_FAIL,
                                  &(mproc_fault_opts){.nth = nth, .code = -EMFILE}));
        assert_code(mproc_pipe_new(&a, &b, 0), -EMFILE);
    }
    assert_null(a);
    assert_null(b);
    assert_ok(mproc_fault_clear());
    assert_ok(mproc_pipe_new(&a, &b, 0)); /* the leak gate checks the failed calls' fds */
    mproc_conn_free(a);
    mproc_conn_free(b);
}

static void test_fault_write_errors(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    /* Failing before the first byte: nothing sent, the connection still works. */
    assert_ok(mproc_fault_set("sys.write", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
    assert_code(mproc_conn_send(b, "x", 1, 0), -EIO);
    assert_ok(mproc_conn_send(b, "y", 1, 0));
    size_t len;
    char c;
    assert_ok(mproc_conn_recv_into(a, &c, 1, &len, 0));
    assert_true(len == 1 && c == 'y');
    /* Failing in the middle of a message (it filled the pipe): every later send fails,
     * the receiver drops the cut message and sees EOF once the sender is gone. */
    unsigned char *big = xmalloc(200000);
    assert_ok(mproc_fault_set("sys.write", MPROC_FAULT_FAIL,
                              &(mproc_fault_opts){.code = -EIO, .nth = 2}));
    assert_code(mproc_conn_send(b, big, 200000, 0), -EIO);
    assert_code(mproc_conn_send(b, "z", 1, 0), -EIO);
    mproc_conn_free(b);
    void *p = NULL;
    assert_code(mproc_conn_recv(a, &p, &len, 1), -MPROC_EEOF);
    mproc_conn_free(a);
    free(big);
}

/* Counts the non-waiting reads of each receive (fault point "sys.pipe_nowait" armed so
 * that it never fires) on an empty pipe with a 50 ms timeout: every receive tries once;
 * one that spins tries again and again, for a bounded time. */
static int nowait_tries(mproc_conn *rx, double timeout)
{
    int before = mproc_fault_count("sys.pipe_nowait");
    size_t len;
    assert_code(mproc_conn_recv_into(rx, NULL, 0, &len, timeout), -ETIMEDOUT);
    int n = mproc_fault_count("sys.pipe_nowait") - before;
    assert_true(n >= 1);
    assert_true(n < 5000); /* 20 us of tries; a spin for all 50 ms would be ~10^5 */
    return n;
}

static int spin_policy_child(void *arg)
{
    (void)arg;
    mproc_conn *a, *b;
    if (mproc_pipe_new(&a, &b, 0) < 0)
        return 1;
    mproc_fault_opts never = {.nth = 1u << 30}; /* armed only to count the passes */
    if (mproc_fault_set("sys.pipe_nowait", MPROC_FAULT_FAIL, &never) < 0)
        return 2;
    bool multi = mproc__sys_affinity_count(0) > 1;
    /* Fruitless spins: wait 0 spins, then 1 wait sleeps at once, wait 2 spins, 2 sleep,
     * wait 5 spins, 4 sleep, wait 10 spins. */
    static const bool spins[] = {1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(spins); i++) {
        int n = nowait_tries(a, 0.05);
        if ((n > 1) != (spins[i] && multi))
            return 10 + (int)i;
    }
    /* Timeouts shorter than the spin window never spin; 0 is one try. */
    if (nowait_tries(a, 0) != 1 || nowait_tries(a, 1e-5) != 1)
        return 30;
    /* A message that arrives is taken by the first try. */
    if (mproc_conn_send(b, "m", 1, 0) < 0)
        return 31;
    char c = 0;
    size_t len = 0;
    int before = mproc_fault_count("sys.pipe_nowait");
    if (mproc_conn_recv_into(a, &c, 1, &len, 0) < 0 || c != 'm' ||
        mproc_fault_count("sys.pipe_nowait") - before != 1)
        return 32;
    mproc_conn_free(a);
    mproc_conn_free(b);

    /* Pinned to one CPU: never spins, however often it waits. */
    cpu_set_t one;
    CPU_ZERO(&one);
    int cpu = sched_getcpu();
    CPU_SET((size_t)(cpu >= 0 ? cpu : 0), &one);
    if (sched_setaffinity(0, sizeof one, &one) < 0)
        return 40;
    if (mproc_pipe_new(&a, &b, 0) < 0)
        return 41;
    for (int i = 0; i < 4; i++)
        if (nowait_tries(a, 0.05) != 1)
            return 42 + i;
    mproc_conn_free(a);
    mproc_conn_free(b);
    return 0;
}

static void test_fault_spin_policy(void **state)
{
    (void)state;
    pid_t pid = mproc_test_fork(spin_policy_child, NULL); /* it pins itself to one CPU */
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
}

/* Kernels without RWF_NOWAIT for pipes: the poll path gives the same answers. */
static void test_fault_nowait_fallback(void **state)
{
    (void)state;
    assert_ok(mproc_fault_set("sys.pipe_nowait", MPROC_FAULT_FAIL,
                              &(mproc_fault_opts){.code = -EOPNOTSUPP, .sticky = 1}));
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    size_t len;
    int v = -1;
    assert_code(mproc_conn_recv_into(ends[0], &v, sizeof v, &len, 0), -ETIMEDOUT);
    assert_code(mproc_conn_recv_into(ends[0], &v, sizeof v, &len, 0.05), -ETIMEDOUT);
    for (int i = 0; i < 3; i++)
        assert_ok(mproc_conn_send(ends[1], &i, sizeof i, 0));
    mproc_conn_free(ends[1]);
    for (int i = 0; i < 3; i++) {
        assert_ok(mproc_conn_recv_into(ends[0], &v, sizeof v, &len, i == 0 ? 0 : 1));
        assert_int_equal(v, i);
    }
    assert_code(mproc_conn_recv_into(ends[0], &v, sizeof v, &len, 0), -MPROC_EEOF);
    assert_code(mproc_conn_recv_into(ends[0], &v, sizeof v, &len, MPROC_FOREVER), -MPROC_EEOF);
    mproc_conn_free(ends[0]);

    /* A ping-pong across fork, both ends spinning on the poll path. */
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], 0));
    pid_t pid = mproc_test_fork(echo_child, ends);
    mproc_conn_free(ends[1]);
    unsigned char buf[300], back[300];
    for (int i = 0; i < 1000; i++) {
        size_t n = (size_t)(i % 300), got = 999;
        fill(buf, n, (unsigned)i);
        assert_ok(mproc_conn_send(ends[0], buf, n, MPROC_FOREVER));
        assert_ok(mproc_conn_recv_into(ends[0], back, sizeof back, &got, MPROC_FOREVER));
        assert_int_equal(got, n);
        assert_true(same(back, n, (unsigned)i + 1));
    }
    mproc_conn_free(ends[0]);
    assert_int_equal(mproc_test_exitcode(pid, 20), 0);
    assert_true(mproc_fault_count("sys.pipe_nowait") >= 3); /* the poll path was taken */
}

/* A failed non-waiting read is reported, and the message is still there afterwards. */
static void test_fault_read_error(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, MPROC_PIPE_SIMPLEX));
    assert_ok(mproc_conn_send(b, "hi", 2, 0));
    assert_ok(mproc_fault_set("sys.read", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
    char buf[2];
    size_t len;
    assert_code(mproc_conn_recv_into(a, buf, sizeof buf, &len, 0), -EIO);
    assert_ok(mproc_conn_recv_into(a, buf, sizeof buf, &len, 0));
    assert_true(len == 2 && memcmp(buf, "hi", 2) == 0);
    mproc_conn_free(a);
    mproc_conn_free(b);
}

/* Kernels without RWF_NOSIGNAL: the signal-mask path keeps every promise of the
 * closed-peer test (no SIGPIPE, mask restored, the caller's own SIGPIPE left pending). */
static int closed_peer_masked_child(void *arg)
{
    if (mproc_fault_set("sys.pipe_nosignal", MPROC_FAULT_FAIL,
                        &(mproc_fault_opts){.code = -EOPNOTSUPP, .sticky = 1}) < 0)
        return 90;
    int rc = closed_peer_child(arg);
    if (rc == 0 && mproc_fault_count("sys.pipe_nosignal") < 4)
        return 91; /* the writes (4: later sends fail on the sticky error) took that path */
    return rc;
}

static void test_fault_nosignal_fallback(void **state)
{
    (void)state;
    unsigned flags[] = {0, MPROC_PIPE_SIMPLEX};
    for (int i = 0; i < 2; i++) {
        pid_t pid = mproc_test_fork(closed_peer_masked_child, &flags[i]);
        assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    }
}

/* recv_into timed out with part of a message in the caller's buffer and no memory to
 * keep it: it waits for the rest rather than corrupt the stream. */
static int finish_later_child(void *arg)
{
    mproc_conn **ends = arg;
    mproc_conn_free(ends[0]);
    mproc_test_sleep(0.3);
    static unsigned char rest[30000];
    fill(rest, sizeof rest, 9);
    ssize_t n = write(mproc_conn_fd(ends[1]), rest + 10000, 20000);
    return n == 20000 ? 0 : 100;
}

static void test_fault_alloc_partial_recv_into(void **state)
{
    (void)state;
    mproc_conn *ends[2];
    assert_ok(mproc_pipe_new(&ends[0], &ends[1], MPROC_PIPE_SIMPLEX));
    unsigned char *m = xmalloc(30000), *buf = xmalloc(30000);
    fill(m, 30000, 9);
    raw_header(ends[1], 30000);
    raw_write(ends[1], m, 10000);
    pid_t pid = mproc_test_fork(finish_later_child, ends);
    mproc_conn_free(ends[1]);
    assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.sticky = 1}));
    size_t len = 0;
    double t = mproc_test_now();
    assert_ok(mproc_conn_recv_into(ends[0], buf, 30000, &len, 0.05));
    t = mproc_test_now() - t;
    assert_true(t > 0.1); /* waited past the deadline for the rest */
    assert_int_equal(len, 30000);
    assert_memory_equal(buf, m, 30000);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_code(mproc_conn_recv_into(ends[0], buf, 30000, &len, 1), -MPROC_EEOF);
    mproc_conn_free(ends[0]);
    free(m);
    free(buf);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_pingpong_1000),
        MPROC_TEST(test_sizes_across_fork),
        MPROC_TEST(test_ordering_many),
        MPROC_TEST(test_zero_byte_vs_eof),
        MPROC_TEST(test_recv_into_too_small),
        MPROC_TEST(test_recv_timeout_empty),
        MPROC_TEST(test_send_timeout_when_full),
        MPROC_TEST(test_send_started_completes),
        MPROC_TEST(test_partial_message_timeout_resumes),
        MPROC_TEST(test_bad_length_header),
        MPROC_TEST(test_peer_closed_no_sigpipe),
        MPROC_TEST(test_peer_killed_midstream),
        MPROC_TEST(test_simplex_direction),
        MPROC_TEST(test_bad_input),
        MPROC_TEST(test_fds_cloexec),
        MPROC_TEST(test_poll_semantics),
        MPROC_TEST(test_idle_receiver_costs_no_cpu),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_fault_alloc_on_big_recv),
        MPROC_TEST(test_fault_create_leaves_nothing),
        MPROC_TEST(test_fault_write_errors),
        MPROC_TEST(test_fault_alloc_partial_recv_into),
        MPROC_TEST(test_fault_spin_policy),
        MPROC_TEST(test_fault_nowait_fallback),
        MPROC_TEST(test_fault_read_error),
        MPROC_TEST(test_fault_nosignal_fallback),
#endif
        MPROC_TEST(test_socket_conn),
    };
    return mproc_test_run(tests);
}
