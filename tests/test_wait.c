/* tests/test_wait.c - waiting on many things at once (mproc_wait), Python's
 * multiprocessing.connection.wait and concurrent.futures.wait: connections, processes,
 * pool results and plain descriptors, together; and the descriptors that let another
 * event loop wait on them (mproc_result_fd). */
#include "harness.h"
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

static int nap_ms(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)out;
    int64_t ms;
    if (in_len != sizeof ms)
        return -EINVAL;
    memcpy(&ms, in, sizeof ms);
    mproc_test_sleep((double)ms / 1000);
    *out_len = 0;
    return 0;
}

static int sleep_then_exit(void *arg)
{
    mproc_test_sleep(*(double *)arg);
    return 3;
}

static int count_ready(const mproc_waitable *w, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += w[i].ready;
    return k;
}

static void test_wait_mixed(void **state)
{
    (void)state;
    mproc_conn *a, *b;
    assert_ok(mproc_pipe_new(&a, &b, 0));
    double secs = 0.3;
    mproc_process *child;
    assert_ok(mproc_process_new(&child, sleep_then_exit, &secs, NULL));
    assert_ok(mproc_process_start(child));
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    int64_t ms = 150;
    mproc_result *r;
    assert_ok(mproc_pool_apply_async(p, nap_ms, &ms, sizeof ms, NULL, &r));
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);

    mproc_waitable w[4] = {
        {.kind = MPROC_WAIT_CONN, .obj = b},
        {.kind = MPROC_WAIT_PROCESS, .obj = child},
        {.kind = MPROC_WAIT_RESULT, .obj = r},
        {.kind = MPROC_WAIT_FD, .fd = fds[0]},
    };
    /* nothing yet: a try-once call says so at once */
    assert_code(mproc_wait(w, 4, 0), -ETIMEDOUT);
    assert_int_equal(count_ready(w, 4), 0);

    /* the result first (150 ms), then the process (300 ms) */
    assert_int_equal(mproc_wait(w, 4, 10), 1);
    assert_true(w[2].ready);
    assert_int_equal(mproc_result_ready(r), 1);
    w[2].kind = MPROC_WAIT_FD; /* stop watching it: a plain fd nobody writes */
    w[2].fd = fds[0];
    assert_int_equal(mproc_wait(w, 4, 10), 1);
    assert_true(w[1].ready);
    int code;
    assert_int_equal(mproc_process_exitcode(child, &code), 1);
    assert_int_equal(code, 3);

    /* a message on the connection and a byte on the pipe: both, in one call */
    w[1].kind = MPROC_WAIT_FD;
    w[1].fd = fds[0];
    assert_ok(mproc_conn_send(a, "hi", 2, 1));
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_int_equal(mproc_wait(w, 4, 10), 4); /* the conn and the same fd three times */
    void *buf;
    size_t len;
    assert_ok(mproc_conn_recv(b, &buf, &len, 1));
    free(buf);

    /* a closed peer counts as ready (end of file), as in Python */
    mproc_conn_free(a);
    w[3].kind = w[1].kind = w[2].kind = MPROC_WAIT_CONN;
    w[3].obj = w[1].obj = w[2].obj = b;
    assert_int_equal(mproc_wait(w, 1, 10), 1);

    /* bad input */
    assert_code(mproc_wait(NULL, 1, 1), -EINVAL);
    assert_code(mproc_wait(w, 0, 1), -EINVAL);
    mproc_waitable bad = {.kind = 99, .obj = b};
    assert_code(mproc_wait(&bad, 1, 1), -EINVAL);
    mproc_waitable none = {.kind = MPROC_WAIT_CONN, .obj = NULL};
    assert_code(mproc_wait(&none, 1, 1), -EINVAL);
    assert_code(mproc_wait(w, 1, -1), -EINVAL);

    mproc_conn_free(b);
    close(fds[0]);
    close(fds[1]);
    mproc_process_free(child);
    mproc_result_free(r);
    mproc_pool_free(p);
}

/* A result's descriptor: readable once the result is ready, for another loop's poll;
 * asked for before or after it is ready alike, and the same descriptor each time. */
static void test_result_fd(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_ok(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 1}));
    int64_t ms = 100;
    mproc_result *r1, *r2;
    assert_ok(mproc_pool_apply_async(p, nap_ms, &ms, sizeof ms, NULL, &r1));
    int fd = mproc_result_fd(r1);
    assert_true(fd >= 0);
    assert_int_equal(mproc_result_fd(r1), fd);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 0), 0); /* not ready yet */
    assert_int_equal(poll(&pf, 1, 10000), 1);
    assert_int_equal(mproc_result_ready(r1), 1);
    assert_int_equal(poll(&pf, 1, 0), 1); /* and it stays readable */

    ms = 0;
    assert_ok(mproc_pool_apply_async(p, nap_ms, &ms, sizeof ms, NULL, &r2));
    assert_ok(mproc_result_wait(r2, 10));
    pf.fd = mproc_result_fd(r2); /* after it was ready: readable at once */
    assert_true(pf.fd >= 0);
    assert_int_equal(poll(&pf, 1, 0), 1);
    assert_code(mproc_result_fd(NULL), -EINVAL);
    mproc_result_free(r1);
    mproc_result_free(r2);
    mproc_pool_free(p);
}

static int put_later(void *arg)
{
    mproc_test_sleep(0.2);
    return mproc_queue_put(arg, "m", 1, 5) == 0 ? 0 : 1;
}

/* A child that closed the queue's descriptor (as a pool worker does) still puts: the
 * number may name something else in it, so it must not be written. */
static int put_without_fd(void *arg)
{
    mproc_queue *q = arg;
    int fd = mproc_queue_fd(q);
    int pfd[2];
    if (fd < 0 || pipe(pfd) < 0)
        return 1;
    if (dup2(pfd[1], fd) != fd) /* the number now names a pipe's write end */
        return 2;
    if (mproc_queue_fd(q) != -EBADF)
        return 3;
    if (mproc_queue_put(q, "n", 1, 5) != 0)
        return 4;
    struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
    return poll(&pf, 1, 0) == 0 ? 0 : 5; /* nothing was written into that pipe */
}

/* A reader without the fd, on an empty queue: mproc_queue_ready must not reset (read)
 * whatever has the number in it. */
static int ready_without_fd(void *arg)
{
    mproc_queue *q = arg;
    int fd = mproc_queue_fd(q);
    int pfd[2];
    if (fd < 0 || pipe(pfd) < 0)
        return 1;
    if (dup2(pfd[0], fd) != fd) /* the number now names a pipe's read end */
        return 2;
    uint64_t one = 1;
    if (write(pfd[1], &one, sizeof one) != (ssize_t)sizeof one)
        return 3;
    if (mproc_queue_ready(q) != 0)
        return 4;
    struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
    return poll(&pf, 1, 0) == 1 ? 0 : 5; /* what was in that pipe is still there */
}

static void test_wait_queue(void **state)
{
    (void)state;
    mproc_queue *q;
    assert_ok(mproc_queue_new(&q, NULL));
    mproc_waitable w = {.kind = MPROC_WAIT_QUEUE, .obj = q};
    assert_code(mproc_wait(&w, 1, 0), -ETIMEDOUT);
    /* a put in another process, while we wait */
    pid_t pid = mproc_test_fork(put_later, q);
    assert_int_equal(mproc_wait(&w, 1, 10), 1);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_int_equal(mproc_wait(&w, 1, 0), 1); /* still there: nothing taken */
    void *buf;
    size_t len;
    assert_ok(mproc_queue_get(q, &buf, &len, 0));
    free(buf);
    assert_code(mproc_wait(&w, 1, 0), -ETIMEDOUT); /* empty again: the fd was reset */

    /* the fd for another loop: readable after a put */
    struct pollfd pf = {.fd = mproc_queue_fd(q), .events = POLLIN};
    assert_true(pf.fd >= 0);
    assert_int_equal(poll(&pf, 1, 0), 0);
    assert_ok(mproc_queue_put(q, "x", 1, 0));
    assert_int_equal(poll(&pf, 1, 0), 1);
    assert_int_equal(mproc_queue_ready(q), 1);
    assert_int_equal(poll(&pf, 1, 0), 1); /* ready: left as it is */
    assert_ok(mproc_queue_get(q, &buf, &len, 0));
    free(buf);
    assert_int_equal(mproc_queue_ready(q), 0); /* empty: the fd is reset */
    assert_int_equal(poll(&pf, 1, 0), 0);
    assert_code(mproc_queue_ready(NULL), -EINVAL);

    /* a putter without the fd writes nothing to whatever has its number */
    pid = mproc_test_fork(put_without_fd, q);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_int_equal(mproc_wait(&w, 1, 0), 1); /* its message is there all the same */
    assert_ok(mproc_queue_get(q, &buf, &len, 0));
    free(buf);
    pid = mproc_test_fork(ready_without_fd, q);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);

    /* closed counts as ready: a get answers at once */
    assert_ok(mproc_queue_close(q));
    assert_int_equal(mproc_wait(&w, 1, 10), 1);
    mproc_queue_free(q);
}

#ifdef MPROC_FAULT_INJECTION
/* A queue made when no eventfd can be had (the fd limit) still works; only its fd, and
 * so mproc_wait on it, answer the error met. */
static void test_queue_without_eventfd(void **state)
{
    (void)state;
    mproc_fault_set("sys.eventfd", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EMFILE});
    mproc_queue *q;
    int rc = mproc_queue_new(&q, NULL);
    mproc_fault_clear();
    assert_ok(rc);
    assert_code(mproc_queue_fd(q), -EMFILE);
    mproc_waitable w = {.kind = MPROC_WAIT_QUEUE, .obj = q};
    assert_code(mproc_wait(&w, 1, 0), -EMFILE);
    assert_ok(mproc_queue_put(q, "x", 1, 0));
    assert_int_equal(mproc_queue_ready(q), 1);
    void *buf;
    size_t len;
    assert_ok(mproc_queue_get(q, &buf, &len, 0));
    free(buf);
    assert_int_equal(mproc_queue_ready(q), 0);
    assert_ok(mproc_queue_close(q));
    mproc_queue_free(q);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_wait_mixed),
        MPROC_TEST(test_result_fd),
        MPROC_TEST(test_wait_queue),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_queue_without_eventfd),
#endif

    };
    return mproc_test_run(tests);
}
