/* tests/test_process.c - Process: fork a function, spawn a program, daemons, faults.
 *
 * Every child here is real: it crashes, is killed, outlives or dies with a parent that
 * is SIGKILLed. The leak gate checks after each test that no child, zombie or fd is left.
 */
#include "harness.h"
#include "internal.h"
#include "sys/forkserver.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------- */

static int ret_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int sleeper(void *arg)
{
    (void)arg;
    sleep(30); /* bounded: the leak gate kills what a failed test leaves */
    return 0;
}

static int sleep_then(void *arg)
{
    mproc_test_sleep(0.1);
    return (int)(intptr_t)arg;
}

/* Start fn(arg), join it and return its exit code. */
static int run(mproc_process_fn fn, void *arg, unsigned flags)
{
    mproc_process *p;
    assert_ok(mproc_process_new(&p, fn, arg, &(mproc_process_opts){.flags = flags}));
    assert_ok(mproc_process_start(p));
    assert_ok(mproc_process_join(p, 10));
    int code = -1000;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    mproc_process_free(p);
    return code;
}

/* Spawn argv with opts, join it and return its exit code (or the spawn's error). */
static int spawn_code(char *const argv[], const mproc_spawn_opts *opts)
{
    mproc_process *p;
    int rc = mproc_process_spawn(&p, argv, opts);
    if (rc < 0)
        return rc;
    assert_ok(mproc_process_join(p, 10));
    int code = -1000;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    mproc_process_free(p);
    return code;
}

/* Read fd until end of file (at most 10 s), NUL-terminated. Returns the length. */
static size_t read_to_eof(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    int64_t deadline = mproc__sys_now_ns() + 10 * INT64_C(1000000000);
    while (n + 1 < cap) {
        int ev = mproc__sys_poll1(fd, POLLIN, deadline);
        assert_true(ev > 0);
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        assert_true(got >= 0);
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    return n;
}

/* Read one value of size n from fd within 10 s. */
static void read_within(int fd, void *out, size_t n)
{
    int64_t deadline = mproc__sys_now_ns() + 10 * INT64_C(1000000000);
    assert_true(mproc__sys_poll1(fd, POLLIN, deadline) > 0);
    assert_ok(mproc__sys_read_all(fd, out, n));
}

static void make_pipe(int fds[2])
{
    assert_ok(mproc__sys_pipe(fds, 0));
}

static void close_pipe(int fds[2])
{
    mproc__sys_close(fds[0]);
    mproc__sys_close(fds[1]);
}

/* ---- fork a function ---------------------------------------------------------------- */

static int report_ids(void *arg)
{
    pid_t ids[2] = {getpid(), getppid()};
    return write(*(int *)arg, ids, sizeof ids) == (ssize_t)sizeof ids ? 0 : 1;
}

static void test_child_ids(void **state)
{
    (void)state;
    int fds[2];
    make_pipe(fds);
    mproc_process *p;
    assert_ok(mproc_process_new(&p, report_ids, &fds[1], NULL));
    assert_ok(mproc_process_start(p));
    pid_t ids[2];
    read_within(fds[0], ids, sizeof ids);
    assert_int_equal(ids[0], mproc_process_pid(p));
    assert_int_equal(ids[1], getpid());
    assert_ok(mproc_process_join(p, 10));
    int code = -1;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, 0);
    assert_int_equal(mproc_process_pid(p), ids[0]); /* kept after the end */
    mproc_process_free(p);
    close_pipe(fds);
}

static void no_core(void)
{
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
}

static int exit_7(void *arg)
{
    (void)arg;
    _exit(7);
}

static int do_abort(void *arg)
{
    (void)arg;
    no_core();
    signal(SIGABRT, SIG_DFL);
    abort();
}

/* A real invalid write, with the test framework's and the sanitizers' handlers out of
 * the way so the kernel's SIGSEGV ends the child. */
__attribute__((no_sanitize("undefined"))) static int do_segv(void *arg)
{
    (void)arg;
    no_core();
    signal(SIGSEGV, SIG_DFL);
    /* The address comes through a volatile so the compiler cannot see it is invalid. */
    static volatile uintptr_t bad = 16;
    *(volatile char *)bad = 1;
    return 0;
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(run(ret_arg, (void *)3, 0), 3);
    assert_int_equal(run(ret_arg, (void *)0, 0), 0);
    assert_int_equal(run(ret_arg, (void *)(256 + 5), 0), 5); /* & 255 */
    assert_int_equal(run(ret_arg, (void *)-1, 0), 255);
    assert_int_equal(run(exit_7, NULL, 0), 7);
    assert_int_equal(run(do_abort, NULL, 0), -SIGABRT);
    assert_int_equal(run(do_segv, NULL, 0), -SIGSEGV);
}

static void test_kill_terminate_signal(void **state)
{
    (void)state;
    int sigs[] = {SIGKILL, SIGTERM, SIGUSR1};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(sigs); i++) {
        mproc_process *p;
        assert_ok(mproc_process_new(&p, sleeper, NULL, NULL));
        assert_ok(mproc_process_start(p));
        if (sigs[i] == SIGKILL)
            assert_ok(mproc_process_kill(p));
        else if (sigs[i] == SIGTERM)
            assert_ok(mproc_process_terminate(p));
        else
            assert_ok(mproc_process_signal(p, sigs[i]));
        assert_ok(mproc_process_join(p, 10));
        int code = 0;
        assert_int_equal(mproc_process_exitcode(p, &code), 1);
        assert_int_equal(code, -sigs[i]);
        /* signalling an ended (reaped) child is harmless */
        assert_ok(mproc_process_kill(p));
        assert_ok(mproc_process_signal(p, 0));
        mproc_process_free(p);
    }
}

static void test_signal_ended_unreaped(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, ret_arg, (void *)2, NULL));
    assert_ok(mproc_process_start(p));
    struct pollfd pfd = {.fd = mproc_process_fd(p), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1); /* ended, a zombie, not reaped yet */
    assert_ok(mproc_process_terminate(p));
    int code = 0;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, 2);
    mproc_process_free(p);
}

static void test_join_timeout(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, sleeper, NULL, NULL));
    assert_int_equal(mproc_process_is_alive(p), 0); /* not started */
    assert_ok(mproc_process_start(p));
    assert_int_equal(mproc_process_is_alive(p), 1);
    double t0 = mproc_test_now();
    assert_code(mproc_process_join(p, 0.2), -ETIMEDOUT);
    double waited = mproc_test_now() - t0;
    assert_true(waited >= 0.19 && waited < 2.0);
    assert_code(mproc_process_join(p, 0), -ETIMEDOUT);
    int code = 12345;
    assert_int_equal(mproc_process_exitcode(p, &code), 0);
    assert_int_equal(code, 12345); /* untouched while it runs */
    assert_int_equal(mproc_process_is_alive(p), 1);
    assert_ok(mproc_process_kill(p));
    assert_ok(mproc_process_join(p, MPROC_FOREVER));
    assert_int_equal(mproc_process_is_alive(p), 0);
    assert_ok(mproc_process_join(p, 0)); /* again, after the end */
    assert_ok(mproc_process_join(p, MPROC_FOREVER));
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, -SIGKILL);
    mproc_process_free(p);
}

static void test_join_returns_when_child_ends(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, sleep_then, (void *)4, NULL));
    assert_ok(mproc_process_start(p));
    double t0 = mproc_test_now();
    assert_ok(mproc_process_join(p, 10));
    assert_true(mproc_test_now() - t0 < 5.0);
    int code = 0;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, 4);
    mproc_process_free(p);
}

static void test_is_alive_reaps(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, sleep_then, (void *)9, NULL));
    assert_ok(mproc_process_start(p));
    for (double end = mproc_test_now() + 10; mproc_process_is_alive(p) == 1;) {
        assert_true(mproc_test_now() < end);
        mproc_test_sleep(0.001);
    }
    assert_int_equal(mproc_test_count_children(), 0); /* is_alive reaped it */
    int code = 0;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, 9);
    mproc_process_free(p);
}

static void test_pidfd_becomes_readable(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, sleep_then, (void *)0, NULL));
    assert_code(mproc_process_fd(p), -MPROC_ESTATE);
    assert_ok(mproc_process_start(p));
    int fd = mproc_process_fd(p);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_int_equal(mproc_process_is_alive(p), 0);
    assert_int_equal(mproc_process_fd(p), fd); /* still ours after the reap */
    mproc_process_free(p);
}

/* Someone else takes the exit status: the program reaps with waitpid, or ignores SIGCHLD
 * so the kernel discards it. The child then counts as ended, with exit code 255. */
static void test_reaped_behind_our_back(void **state)
{
    (void)state;
    for (int ignore = 0; ignore < 2; ignore++) {
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        if (ignore)
            sigaction(SIGCHLD, &ign, &old);
        mproc_process *p;
        assert_ok(mproc_process_new(&p, ret_arg, (void *)4, NULL));
        assert_ok(mproc_process_start(p));
        if (!ignore)
            assert_int_equal(mproc_test_exitcode(mproc_process_pid(p), 10), 4);
        int rc = mproc_process_join(p, 10);
        if (ignore)
            sigaction(SIGCHLD, &old, NULL);
        assert_code(rc, -ECHILD);
        assert_ok(mproc_process_join(p, 10)); /* it has ended, for good */
        assert_int_equal(mproc_process_is_alive(p), 0);
        int code = 0;
        assert_int_equal(mproc_process_exitcode(p, &code), 1);
        assert_int_equal(code, 255);
        mproc_process_free(p);
    }
}

static void test_state_errors(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, ret_arg, (void *)1, NULL));
    assert_code(mproc_process_join(p, 1), -MPROC_ESTATE);
    assert_code(mproc_process_join(p, MPROC_FOREVER), -MPROC_ESTATE);
    assert_code(mproc_process_pid(p), -MPROC_ESTATE);
    assert_code(mproc_process_fd(p), -MPROC_ESTATE);
    assert_code(mproc_process_kill(p), -MPROC_ESTATE);
    assert_code(mproc_process_terminate(p), -MPROC_ESTATE);
    assert_code(mproc_process_signal(p, SIGUSR1), -MPROC_ESTATE);
    int code = 77;
    assert_int_equal(mproc_process_exitcode(p, &code), 0);
    assert_int_equal(code, 77);
    assert_ok(mproc_process_start(p));
    assert_code(mproc_process_start(p), -MPROC_ESTATE);
    assert_ok(mproc_process_join(p, 10));
    assert_code(mproc_process_start(p), -MPROC_ESTATE); /* no restart after the end */
    mproc_process_free(p);

    /* A spawned process is started already. */
    char *argv[] = {"/bin/true", NULL};
    assert_ok(mproc_process_spawn(&p, argv, NULL));
    assert_code(mproc_process_start(p), -MPROC_ESTATE);
    assert_ok(mproc_process_join(p, 10));
    mproc_process_free(p);
    mproc_process_free(NULL);
}

static void test_bad_input(void **state)
{
    (void)state;
    mproc_process *p = NULL;
    int code;
    assert_code(mproc_process_new(NULL, ret_arg, NULL, NULL), -EINVAL);
    assert_code(mproc_process_new(&p, NULL, NULL, NULL), -EINVAL);
    assert_code(mproc_process_new(&p, ret_arg, NULL, &(mproc_process_opts){.flags = 1u << 9}),
                -EINVAL);
    assert_null(p);
    assert_code(mproc_process_start(NULL), -EINVAL);
    assert_code(mproc_process_join(NULL, 1), -EINVAL);
    assert_code(mproc_process_is_alive(NULL), -EINVAL);
    assert_code(mproc_process_exitcode(NULL, &code), -EINVAL);
    assert_code(mproc_process_pid(NULL), -EINVAL);
    assert_null(mproc_process_name(NULL));
    assert_code(mproc_process_fd(NULL), -EINVAL);
    assert_code(mproc_process_terminate(NULL), -EINVAL);
    assert_code(mproc_process_kill(NULL), -EINVAL);
    assert_code(mproc_process_signal(NULL, SIGTERM), -EINVAL);

    assert_ok(mproc_process_new(&p, sleeper, NULL, NULL));
    assert_code(mproc_process_exitcode(p, NULL), -EINVAL);
    assert_code(mproc_process_join(p, -1), -EINVAL); /* bad input first, then state */
    assert_ok(mproc_process_start(p));
    assert_code(mproc_process_join(p, -1), -EINVAL);
    assert_code(mproc_process_join(p, -0.001), -EINVAL);
    assert_code(mproc_process_join(p, NAN), -EINVAL);
    assert_code(mproc_process_join(p, -INFINITY), -EINVAL);
    assert_code(mproc_process_signal(p, -1), -EINVAL);
    assert_code(mproc_process_signal(p, 65), -EINVAL);
    assert_code(mproc_process_signal(p, INT_MAX), -EINVAL);
    assert_code(mproc_process_signal(p, INT_MIN), -EINVAL);
    assert_int_equal(mproc_process_is_alive(p), 1); /* none of that touched it */
    mproc_process_free(p);                          /* kills and reaps the sleeper */

    char *empty[] = {NULL};
    char *blank[] = {"", NULL};
    char *truth[] = {"/bin/true", NULL};
    p = NULL;
    assert_code(mproc_process_spawn(NULL, truth, NULL), -EINVAL);
    assert_code(mproc_process_spawn(&p, NULL, NULL), -EINVAL);
    assert_code(mproc_process_spawn(&p, empty, NULL), -EINVAL);
    assert_code(mproc_process_spawn(&p, blank, NULL), -EINVAL);
    assert_code(mproc_process_spawn(&p, truth, &(mproc_spawn_opts){.flags = 1u << 8}), -EINVAL);
    assert_code(mproc_process_spawn(&p, truth, &(mproc_spawn_opts){.stdout_fd = 1000}), -EINVAL);
    assert_code(mproc_process_spawn(&p, truth, &(mproc_spawn_opts){.stdin_fd = INT_MAX}), -EINVAL);
    assert_null(p);
    assert_int_equal(mproc_test_count_children(), 0);
}

static void test_names(void **state)
{
    (void)state;
    mproc_process *a, *b, *c;
    assert_ok(mproc_process_new(&a, ret_arg, NULL, NULL));
    assert_ok(mproc_process_new(&b, ret_arg, NULL, &(mproc_process_opts){0}));
    unsigned na = 0, nb = 0;
    assert_int_equal(sscanf(mproc_process_name(a), "Process-%u", &na), 1);
    assert_int_equal(sscanf(mproc_process_name(b), "Process-%u", &nb), 1);
    assert_true(na >= 1 && nb == na + 1);
    char name[] = "worker";
    assert_ok(mproc_process_new(&c, ret_arg, NULL, &(mproc_process_opts){.name = name}));
    name[0] = 'W'; /* copied */
    assert_string_equal(mproc_process_name(c), "worker");
    mproc_process_free(a);
    mproc_process_free(b);
    mproc_process_free(c);

    char *argv[] = {"/bin/true", NULL};
    assert_ok(mproc_process_spawn(&a, argv, NULL));
    assert_string_equal(mproc_process_name(a), "/bin/true");
    assert_ok(mproc_process_spawn(&b, argv, &(mproc_spawn_opts){.name = "truth"}));
    assert_string_equal(mproc_process_name(b), "truth");
    assert_ok(mproc_process_join(a, 10));
    assert_ok(mproc_process_join(b, 10));
    mproc_process_free(a);
    mproc_process_free(b);
}

/* ---- current_process(), parent_process(), active_children() -------------------------- */

/* In a child: its own name and pid, its parent's pid and name, the parent alive.
 * Exit 0 when all hold (each failed check its own code). */
static int check_self(void *arg)
{
    const pid_t *parent = arg;
    mproc_self me;
    if (mproc_current_process(&me) != 0)
        return 1;
    if (strcmp(me.name, "worker-7") != 0)
        return 2;
    if (me.pid != getpid() || !me.daemon)
        return 3;
    if (me.parent_pid != *parent || me.parent_name == NULL ||
        strcmp(me.parent_name, "MainProcess") != 0)
        return 4;
    if (mproc_parent_alive() != 1)
        return 5;
    /* the parent's children are not this process's */
    mproc_process *kids[4];
    if (mproc_active_children(kids, 4) != 0)
        return 6;
    return 0;
}

/* The grandchild: its parent is "middle"; once the middle child has exited (it exits
 * right after starting this one), mproc_parent_alive() says so. Writes its verdict (0:
 * all held) on the status pipe. */
static int grandchild_checks(void *arg)
{
    int fd = *(int *)arg;
    mproc_self me;
    char verdict = 0;
    if (mproc_current_process(&me) != 0 || me.parent_name == NULL ||
        strcmp(me.parent_name, "middle") != 0)
        verdict = 1;
    for (int i = 0; i < 1000 && mproc_parent_alive() == 1; i++)
        mproc_test_sleep(0.01);
    if (verdict == 0 && mproc_parent_alive() != 0)
        verdict = 2;
    return write(fd, &verdict, 1) == 1 ? 0 : 1;
}

static int middle_child(void *arg)
{
    int fd = *(int *)arg;
    mproc_process *g;
    if (mproc_process_new(&g, grandchild_checks, arg, &(mproc_process_opts){.name = "g"}) < 0 ||
        mproc_process_start(g) < 0)
        return 1;
    mproc_process *kids[2];
    if (mproc_active_children(kids, 2) != 1 || kids[0] != g)
        return 2;
    pid_t pid = mproc_process_pid(g);
    if (write(fd, &pid, sizeof pid) != (ssize_t)sizeof pid)
        return 3;
    _exit(0); /* without freeing g: the grandchild outlives this process */
}

static void test_current_and_parent(void **state)
{
    (void)state;
    mproc_self me;
    assert_ok(mproc_current_process(&me));
    assert_string_equal(me.name, "MainProcess");
    assert_int_equal(me.pid, getpid());
    assert_int_equal(me.parent_pid, 0); /* Python's parent_process() is None */
    assert_null(me.parent_name);
    assert_int_equal(me.daemon, 0);
    assert_code(mproc_parent_alive(), -MPROC_ESTATE);
    assert_code(mproc_current_process(NULL), -EINVAL);

    pid_t self = getpid();
    mproc_process *p;
    assert_ok(mproc_process_new(
        &p, check_self, &self,
        &(mproc_process_opts){.name = "worker-7", .flags = MPROC_PROCESS_DAEMON}));
    assert_ok(mproc_process_start(p));
    assert_ok(mproc_process_join(p, 10));
    int code = -1;
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, 0);
    mproc_process_free(p);

    /* a grandchild sees its parent end (it is reparented) */
    int st[2];
    assert_int_equal(pipe2(st, O_CLOEXEC), 0);
    assert_ok(mproc_process_new(&p, middle_child, &st[1], &(mproc_process_opts){.name = "middle"}));
    assert_ok(mproc_process_start(p));
    close(st[1]);
    pid_t g;
    assert_int_equal(read(st[0], &g, sizeof g), (ssize_t)sizeof g);
    assert_ok(mproc_process_join(p, 10));
    assert_int_equal(mproc_process_exitcode(p, &code), 1);
    assert_int_equal(code, 0);
    mproc_process_free(p);
    char verdict = 9;
    assert_int_equal(read(st[0], &verdict, 1), 1); /* EOF (0) if it died without a word */
    assert_int_equal(verdict, 0);
    close(st[0]);
    /* the harness makes this process a subreaper: the orphan is ours to reap, if so */
    (void)waitpid(g, NULL, 0);
}

static int block_on_fd(void *arg)
{
    int *fds = arg; /* runs until the pipe's last writer is gone */
    close(fds[1]);
    char c;
    return read(fds[0], &c, 1) == 0 ? 0 : 1;
}

static void test_active_children(void **state)
{
    (void)state;
    mproc_process *kids[8];
    assert_int_equal(mproc_active_children(kids, 8), 0);
    assert_int_equal(mproc_active_children(NULL, 0), 0);
    assert_code(mproc_active_children(NULL, 1), -EINVAL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    mproc_process *p[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(mproc_process_new(&p[i], block_on_fd, fds, NULL));
        assert_ok(mproc_process_start(p[i]));
    }
    mproc_process *idle;
    assert_ok(mproc_process_new(&idle, ret_arg, NULL, NULL)); /* never started */
    assert_int_equal(mproc_active_children(kids, 8), 3);
    for (int i = 0; i < 3; i++) {
        bool found = false;
        for (int k = 0; k < 3; k++)
            found |= kids[k] == p[i];
        assert_true(found);
    }
    assert_int_equal(mproc_active_children(kids, 1), 3); /* the count, past cap */

    /* a child that ended (not yet joined) is not active; one freed is gone */
    assert_ok(mproc_process_kill(p[0]));
    for (int i = 0; i < 1000 && mproc_active_children(NULL, 0) != 2; i++)
        mproc_test_sleep(0.01);
    assert_int_equal(mproc_active_children(kids, 8), 2);
    mproc_process_free(p[1]);
    assert_int_equal(mproc_active_children(kids, 8), 1);
    assert_ptr_equal(kids[0], p[2]);

    /* spawned programs count too */
    char *argv[] = {"/bin/sleep", "30", NULL};
    mproc_process *s;
    assert_ok(mproc_process_spawn(&s, argv, NULL));
    assert_int_equal(mproc_active_children(kids, 8), 2);
    mproc_process_free(s);
    assert_int_equal(mproc_active_children(kids, 8), 1);

    close(fds[1]);
    assert_ok(mproc_process_join(p[2], 10));
    assert_int_equal(mproc_active_children(kids, 8), 0);
    mproc_process_free(p[0]);
    mproc_process_free(p[2]);
    mproc_process_free(idle);
    close(fds[0]);
}

static void test_free_running_child_reaps_it(void **state)
{
    (void)state;
    for (int stopped = 0; stopped < 2; stopped++) {
        mproc_process *p;
        assert_ok(mproc_process_new(&p, sleeper, NULL, NULL));
        assert_ok(mproc_process_start(p));
        pid_t pid = mproc_process_pid(p);
        if (stopped)
            assert_ok(mproc_process_signal(p, SIGSTOP));
        mproc_process_free(p);
        assert_int_equal(kill(pid, 0), -1); /* gone and reaped: no zombie either */
        assert_int_equal(mproc_test_count_children(), 0);
    }
}

static void test_many_children(void **state)
{
    (void)state;
    enum { N = 50 };
    mproc_process *p[N];
    for (int i = 0; i < N; i++) {
        assert_ok(mproc_process_new(&p[i], ret_arg, (void *)(intptr_t)(i * 5), NULL));
        assert_ok(mproc_process_start(p[i]));
    }
    for (int i = N - 1; i >= 0; i--) { /* join in the other order */
        assert_ok(mproc_process_join(p[i], 10));
        int code = -1;
        assert_int_equal(mproc_process_exitcode(p[i], &code), 1);
        assert_int_equal(code, (i * 5) & 255);
        mproc_process_free(p[i]);
    }
}

static int check_sid(void *arg)
{
    (void)arg;
    return getsid(0) == getpid() && getpgid(0) == getpid() ? 0 : 1;
}

static int check_pgid(void *arg)
{
    (void)arg;
    return getpgid(0) == getpid() && getsid(0) != getpid() ? 0 : 1;
}

static void test_setsid_setpgid(void **state)
{
    (void)state;
    assert_int_equal(run(check_sid, NULL, 0), 1);
    assert_int_equal(run(check_sid, NULL, MPROC_PROCESS_SETSID), 0);
    assert_int_equal(run(check_pgid, NULL, 0), 1);
    assert_int_equal(run(check_pgid, NULL, MPROC_PROCESS_SETPGID), 0);
}

/* Buffered output of the parent is written once, the child's output is flushed at its end. */
static int say_child(void *arg)
{
    (void)arg;
    fputs("child", stdout); /* no newline: stays buffered until the flush at the end */
    return 0;
}

static int stdio_middle(void *arg)
{
    if (dup2(*(int *)arg, 1) < 0)
        return 1;
    fputs("parent-", stdout);
    if (run(say_child, NULL, 0) != 0)
        return 2;
    fputs("-end", stdout);
    fflush(stdout);
    return 0;
}

static void test_stdio_flushed_once(void **state)
{
    (void)state;
    int fds[2];
    make_pipe(fds);
    pid_t mid = mproc_test_fork(stdio_middle, &fds[1]);
    mproc__sys_close(fds[1]);
    char buf[256];
    read_to_eof(fds[0], buf, sizeof buf);
    assert_int_equal(mproc_test_exitcode(mid, 10), 0);
    assert_string_equal(buf, "parent-child-end");
    mproc__sys_close(fds[0]);
}

/* ---- spawn a program ---------------------------------------------------------------- */

static void test_spawn_exit_codes(void **state)
{
    (void)state;
    char *truth[] = {"/bin/true", NULL};
    char *falsity[] = {"/bin/false", NULL};
    char *five[] = {"/bin/sh", "-c", "exit 5", NULL};
    char *killed[] = {"/bin/sh", "-c", "kill -KILL $$", NULL};
    assert_int_equal(spawn_code(truth, NULL), 0);
    assert_int_equal(spawn_code(falsity, NULL), 1);
    assert_int_equal(spawn_code(five, NULL), 5);
    assert_int_equal(spawn_code(killed, NULL), -SIGKILL);
}

/* Threads spawning at once, each on the exec stack it keeps, then exiting (which unmaps
 * it): every child runs and reports its own code. */
static void *spawn_many(void *arg)
{
    long code = (long)(intptr_t)arg;
    char prog[32];
    snprintf(prog, sizeof prog, "exit %ld", code);
    char *argv[] = {"/bin/sh", "-c", prog, NULL};
    for (int i = 0; i < 20; i++)
        if (spawn_code(argv, NULL) != code)
            return (void *)1;
    return NULL;
}

static void test_spawn_from_threads(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) { /* new threads: new stacks */
        pthread_t t[4];
        for (long k = 0; k < 4; k++)
            assert_int_equal(pthread_create(&t[k], NULL, spawn_many, (void *)(intptr_t)(k + 3)), 0);
        for (int k = 0; k < 4; k++) {
            void *r;
            assert_int_equal(pthread_join(t[k], &r), 0);
            assert_null(r);
        }
    }
}

static void test_spawn_missing_program(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/program", NULL};
    mproc_process *p = (mproc_process *)&p; /* a sentinel: must stay untouched */
    assert_code(mproc_process_spawn(&p, argv, NULL), -ENOENT);
    assert_ptr_equal(p, (mproc_process *)&p);
    assert_int_equal(mproc_test_count_children(), 0); /* reaped before returning */
    char *in_dir[] = {"/bin/true/x", NULL};
    assert_code(mproc_process_spawn(&p, in_dir, NULL), -ENOTDIR);
    assert_int_equal(mproc_test_count_children(), 0);
}

/* A scratch file with the given mode and content, for exec errors. */
static void scratch_file(char *path, mode_t mode, const char *content)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_ok(mproc__sys_write_all(fd, content, strlen(content)));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_spawn_not_executable(void **state)
{
    (void)state;
    char path[] = "/tmp/mproc-test-XXXXXX";
    scratch_file(path, 0644, "#!/bin/sh\nexit 0\n");
    char *argv[] = {path, NULL};
    mproc_process *p = NULL;
    assert_code(mproc_process_spawn(&p, argv, NULL), -EACCES); /* even for root: no x bit */
    assert_null(p);
    char *dir[] = {"/tmp", NULL};
    assert_code(mproc_process_spawn(&p, dir, NULL), -EACCES);
    unlink(path);

    char junk[] = "/tmp/mproc-test-XXXXXX"; /* executable, but no #! and no ELF header */
    scratch_file(junk, 0755, "this is not a program\n");
    char *jargv[] = {junk, NULL};
    assert_code(mproc_process_spawn(&p, jargv, NULL), -ENOEXEC);
    unlink(junk);
    assert_null(p);
    assert_int_equal(mproc_test_count_children(), 0);
}

static void test_spawn_redirects_stdio(void **state)
{
    (void)state;
    int in[2], out[2], err[2];
    make_pipe(in);
    make_pipe(out);
    make_pipe(err);
    char *argv[] = {"/bin/sh", "-c", "read line; echo \"out:$line\"; echo \"err:$line\" >&2", NULL};
    mproc_process *p;
    assert_ok(mproc_process_spawn(
        &p, argv,
        &(mproc_spawn_opts){.stdin_fd = in[0], .stdout_fd = out[1], .stderr_fd = err[1]}));
    mproc__sys_close(in[0]);
    mproc__sys_close(out[1]);
    mproc__sys_close(err[1]);
    assert_ok(mproc__sys_write_all(in[1], "hello\n", 6));
    mproc__sys_close(in[1]);
    char buf[256];
    read_to_eof(out[0], buf, sizeof buf);
    assert_string_equal(buf, "out:hello\n");
    read_to_eof(err[0], buf, sizeof buf);
    assert_string_equal(buf, "err:hello\n");
    assert_ok(mproc_process_join(p, 10));
    mproc_process_free(p);
    mproc__sys_close(out[0]);
    mproc__sys_close(err[0]);
}

/* In a middle process whose 1 and 2 are pipes A and B: a child spawned with stdout and
 * stderr swapped writes "out" into B and "err" into A; one spawned with stdout_fd = 1 (a
 * close-on-exec 1) still has it. */
struct swap {
    int a, b;
};

static int swap_middle(void *arg)
{
    struct swap *s = arg;
    if (dup2(s->a, 1) < 0 || dup2(s->b, 2) < 0)
        return 1;
    char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
    if (spawn_code(argv, &(mproc_spawn_opts){.stdout_fd = 2, .stderr_fd = 1}) != 0)
        return 2;
    if (fcntl(1, F_SETFD, FD_CLOEXEC) < 0)
        return 3;
    char *again[] = {"/bin/sh", "-c", "echo again", NULL};
    if (spawn_code(again, &(mproc_spawn_opts){.stdout_fd = 1}) != 0)
        return 4;
    return 0;
}

static void test_spawn_swapped_stdio(void **state)
{
    (void)state;
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    pid_t mid = mproc_test_fork(swap_middle, &(struct swap){.a = a[1], .b = b[1]});
    mproc__sys_close(a[1]);
    mproc__sys_close(b[1]);
    char buf[256];
    read_to_eof(a[0], buf, sizeof buf);
    assert_string_equal(buf, "err\nagain\n");
    read_to_eof(b[0], buf, sizeof buf);
    assert_string_equal(buf, "out\n");
    assert_int_equal(mproc_test_exitcode(mid, 10), 0);
    mproc__sys_close(a[0]);
    mproc__sys_close(b[0]);
}

/* A parent with 0, 1 and 2 closed (a daemon): the library's pipes land there, where the
 * child's redirections go; exec errors must still come back and output still go out. */
static int closed_stdio_middle(void *arg)
{
    int out = *(int *)arg;
    close(0);
    close(1);
    close(2);
    char *missing[] = {"/nonexistent/program", NULL};
    mproc_process *p;
    if (mproc_process_spawn(&p, missing, &(mproc_spawn_opts){.stdout_fd = out}) != -ENOENT)
        return 1;
    char *argv[] = {"/bin/sh", "-c", "echo hi", NULL};
    if (mproc_process_spawn(&p, argv, &(mproc_spawn_opts){.stdout_fd = out}) != 0)
        return 2;
    int code = -1;
    if (mproc_process_join(p, 10) != 0 || mproc_process_exitcode(p, &code) != 1 || code != 0)
        return 3;
    mproc_process_free(p);
    return 0;
}

static void test_spawn_with_stdio_closed(void **state)
{
    (void)state;
    int out[2];
    make_pipe(out);
    pid_t mid = mproc_test_fork(closed_stdio_middle, &out[1]);
    mproc__sys_close(out[1]);
    char buf[64];
    read_to_eof(out[0], buf, sizeof buf);
    mproc__sys_close(out[0]);
    assert_int_equal(mproc_test_exitcode(mid, 10), 0);
    assert_string_equal(buf, "hi\n");
}

static void test_spawn_cwd_and_env(void **state)
{
    (void)state;
    char dir[] = "/tmp/mproc-cwd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    int out[2];
    make_pipe(out);
    char *argv[] = {"/bin/sh", "-c", "printf '%s|%s|%s' \"$FOO\" \"$HOME\" \"$(pwd -P)\"", NULL};
    char *envp[] = {"FOO=bar baz", NULL};
    assert_int_equal(
        spawn_code(argv, &(mproc_spawn_opts){.cwd = dir, .envp = envp, .stdout_fd = out[1]}), 0);
    mproc__sys_close(out[1]);
    char buf[PATH_MAX + 64], want[PATH_MAX + 64];
    read_to_eof(out[0], buf, sizeof buf);
    snprintf(want, sizeof want, "bar baz||%s", real); /* HOME is not inherited */
    assert_string_equal(buf, want);
    mproc__sys_close(out[0]);

    /* A relative program path is found from cwd. */
    char *rel[] = {"./true", NULL};
    assert_int_equal(spawn_code(rel, &(mproc_spawn_opts){.cwd = "/bin"}), 0);

    /* A working directory that does not exist is the spawn's error, with no child. */
    char gone[PATH_MAX + 16];
    snprintf(gone, sizeof gone, "%s/missing", dir);
    mproc_process *p = NULL;
    assert_code(mproc_process_spawn(&p, argv, &(mproc_spawn_opts){.cwd = gone}), -ENOENT);
    assert_null(p);
    assert_int_equal(mproc_test_count_children(), 0);
    rmdir(dir);
}

static void test_spawn_path_search(void **state)
{
    (void)state;
    char *sh[] = {"sh", "-c", "exit 4", NULL};
    assert_int_equal(spawn_code(sh, &(mproc_spawn_opts){.search_path = 1}), 4);
    assert_int_equal(spawn_code(sh, NULL), -ENOENT); /* no search: "sh" in the cwd */

    /* execvp's rules: a directory without it and one where it cannot run are passed
     * over; if nothing runs, a file that could not be run wins over "not found". */
    char dir[] = "/tmp/mproc-path-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fake[PATH_MAX];
    snprintf(fake, sizeof fake, "%s/sh", dir);
    int fd = open(fake, O_CREAT | O_WRONLY | O_CLOEXEC, 0644); /* not executable */
    assert_true(fd >= 0);
    close(fd);
    const char *saved = getenv("PATH");
    char *old = saved != NULL ? strdup(saved) : NULL;
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "/nonexistent:%s:/bin:/usr/bin", dir);
    setenv("PATH", path, 1);
    int found = spawn_code(sh, &(mproc_spawn_opts){.search_path = 1});
    snprintf(path, sizeof path, "/nonexistent:%s", dir);
    setenv("PATH", path, 1);
    mproc_process *p = NULL;
    int denied = mproc_process_spawn(&p, sh, &(mproc_spawn_opts){.search_path = 1});
    setenv("PATH", "/nonexistent", 1);
    int missing = mproc_process_spawn(&p, sh, &(mproc_spawn_opts){.search_path = 1});
    if (old != NULL)
        setenv("PATH", old, 1);
    else
        unsetenv("PATH");
    free(old);
    unlink(fake);
    rmdir(dir);
    assert_int_equal(found, 4);
    assert_code(denied, -EACCES);
    assert_code(missing, -ENOENT);
    assert_null(p);

    /* A name with a slash is not searched. */
    char *abs[] = {"/bin/sh", "-c", "exit 6", NULL};
    assert_int_equal(spawn_code(abs, &(mproc_spawn_opts){.search_path = 1}), 6);
}

/* The fds the child of a spawn sees: 0, 1, 2, and whatever the caller left inheritable;
 * none of the library's (pidfds, pipes), all close-on-exec. */
static void test_spawn_sees_no_library_fds(void **state)
{
    (void)state;
    mproc_process *other; /* holds a pidfd */
    assert_ok(mproc_process_new(&other, sleeper, NULL, NULL));
    assert_ok(mproc_process_start(other));
    int lib[2];
    make_pipe(lib);
    int out[2];
    make_pipe(out);

    bool want[1024] = {false};
    want[0] = want[1] = want[2] = true;
    int n_want = 3;
    for (int fd = 3; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) { /* inherited by the test, not ours */
            want[fd] = true;
            n_want++;
        }
    }
    assert_false(want[mproc_process_fd(other)] || want[lib[0]] || want[lib[1]]);

    char *argv[] = {MPROC_TEST_HELPERS_DIR "/proc_fds", NULL};
    mproc_process *p;
    assert_ok(mproc_process_spawn(&p, argv, &(mproc_spawn_opts){.stdout_fd = out[1]}));
    mproc__sys_close(out[1]);
    char buf[4096];
    read_to_eof(out[0], buf, sizeof buf);
    assert_ok(mproc_process_join(p, 10));
    int count = -1;
    assert_int_equal(mproc_process_exitcode(p, &count), 1);
    int seen = 0;
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int fd = atoi(line);
        if (fd < 0 || fd >= 1024 || !want[fd])
            fail_msg("the spawned child has fd %d it should not have", fd);
        seen++;
    }
    assert_int_equal(seen, count);
    assert_int_equal(count, n_want);
    mproc_process_free(p);
    mproc_process_free(other);
    close_pipe(lib);
    mproc__sys_close(out[0]);
}

/* Signals of an executed program: the caller's mask, its ignored signals except SIGPIPE,
 * and no caught signal (read back from the child's /proc/self/status). */
static unsigned long long status_mask(const char *status, const char *field)
{
    const char *at = strstr(status, field);
    assert_non_null(at);
    return strtoull(at + strlen(field), NULL, 16);
}

static void on_usr1(int sig)
{
    (void)sig;
}

static void test_spawn_signal_state(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, catch = {.sa_handler = on_usr1};
    struct sigaction old_pipe, old_int, old_usr1;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGUSR1, &catch, &old_usr1);
    sigset_t usr2, old_mask;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, &old_mask);

    int out[2];
    make_pipe(out);
    char *argv[] = {"/bin/cat", "/proc/self/status", NULL};
    int code = spawn_code(argv, &(mproc_spawn_opts){.stdout_fd = out[1]});
    mproc__sys_close(out[1]);
    char buf[8192];
    read_to_eof(out[0], buf, sizeof buf);
    mproc__sys_close(out[0]);

    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);

    assert_int_equal(code, 0);
    unsigned long long bit_pipe = 1ull << (SIGPIPE - 1), bit_int = 1ull << (SIGINT - 1),
                       bit_usr1 = 1ull << (SIGUSR1 - 1), bit_usr2 = 1ull << (SIGUSR2 - 1);
    unsigned long long blk = status_mask(buf, "SigBlk:"), ign_set = status_mask(buf, "SigIgn:"),
                       cgt = status_mask(buf, "SigCgt:");
    assert_true(blk & bit_usr2);              /* the mask is inherited */
    assert_true(ign_set & bit_int);           /* ignored signals stay ignored ... */
    assert_false(ign_set & bit_pipe);         /* ... except SIGPIPE */
    assert_false((ign_set | cgt) & bit_usr1); /* a caught signal starts at its default */
}

/* ---- daemons and a dying parent ----------------------------------------------------- */

struct middle {
    int fd;         /* where to report the child's pid */
    unsigned flags; /* of the child */
    bool spawn;     /* execute sleep(1) rather than fork a function */
};

static int start_child(const struct middle *m, mproc_process **p)
{
    if (m->spawn) {
        char *argv[] = {"/bin/sleep", "30", NULL};
        return mproc_process_spawn(p, argv, &(mproc_spawn_opts){.flags = m->flags});
    }
    int rc = mproc_process_new(p, sleeper, NULL, &(mproc_process_opts){.flags = m->flags});
    return rc < 0 ? rc : mproc_process_start(*p);
}

static int middle_waits(void *arg)
{
    const struct middle *m = arg;
    mproc_process *p;
    if (start_child(m, &p) < 0)
        return 1;
    pid_t pid = mproc_process_pid(p);
    if (write(m->fd, &pid, sizeof pid) != (ssize_t)sizeof pid)
        return 2;
    for (;;)
        pause(); /* until the test SIGKILLs us */
}

/* Start a middle process that starts a child, SIGKILL the middle; the child's pid. */
static pid_t orphan_child(unsigned flags, bool spawn)
{
    int fds[2];
    make_pipe(fds);
    pid_t mid = mproc_test_fork(middle_waits, &(struct middle){fds[1], flags, spawn});
    pid_t child;
    read_within(fds[0], &child, sizeof child);
    close_pipe(fds);
    assert_int_equal(kill(mid, SIGKILL), 0);
    assert_int_equal(mproc_test_exitcode(mid, 10), -SIGKILL);
    return child;
}

static bool gone_within(pid_t pid, double seconds)
{
    for (double end = mproc_test_now() + seconds; mproc_test_pid_alive(pid);) {
        if (mproc_test_now() >= end)
            return false;
        mproc_test_sleep(0.005);
    }
    return true;
}

static void test_daemon_dies_with_killed_parent(void **state)
{
    (void)state;
    for (int spawn = 0; spawn < 2; spawn++) {
        pid_t child = orphan_child(MPROC_PROCESS_DAEMON, spawn);
        assert_true(gone_within(child, 1.0));
        assert_int_equal(mproc_test_reap_all(1.0), 0);
    }
}

static void test_non_daemon_outlives_killed_parent(void **state)
{
    (void)state;
    for (int spawn = 0; spawn < 2; spawn++) {
        pid_t child = orphan_child(0, spawn);
        mproc_test_sleep(0.3);
        assert_true(mproc_test_pid_alive(child)); /* an orphan, adopted by us (subreaper) */
        kill(child, SIGKILL);
        assert_int_equal(mproc_test_reap_all(5.0), 0);
    }
}

static int middle_exits(void *arg)
{
    const struct middle *m = arg;
    mproc_process *p;
    return start_child(m, &p) < 0 ? 1 : 0; /* and die at once, before anything else */
}

/* The parent dies right after start, maybe before the child has set its death signal:
 * the child must see it and die anyway. */
static void test_daemon_parent_dies_at_once(void **state)
{
    (void)state;
    for (int i = 0; i < 40; i++) {
        pid_t mid =
            mproc_test_fork(middle_exits, &(struct middle){-1, MPROC_PROCESS_DAEMON, i % 2 == 1});
        assert_int_equal(mproc_test_exitcode(mid, 10), 0);
        assert_int_equal(mproc_test_reap_all(1.0), 0); /* the orphan died within 1 s */
    }
}

/* A daemon child that says it runs (its setup, death signal included, is done). */
static int ready_sleeper(void *arg)
{
    char byte = 1;
    if (write(*(int *)arg, &byte, 1) != 1)
        return 1;
    return sleeper(NULL);
}

struct in_thread {
    mproc_process *p;
    int ready[2];
};

static void *start_daemon_in_thread(void *arg)
{
    struct in_thread *t = arg;
    if (mproc_process_new(&t->p, ready_sleeper, &t->ready[1],
                          &(mproc_process_opts){.flags = MPROC_PROCESS_DAEMON}) < 0)
        return NULL;
    if (mproc_process_start(t->p) < 0) {
        mproc_process_free(t->p);
        t->p = NULL;
        return NULL;
    }
    char byte;
    read_within(t->ready[0], &byte, 1); /* the child is set up: now this thread ends */
    return NULL;
}

/* PR_SET_PDEATHSIG follows the thread that created the child (process.h rule 4): the
 * child dies when that thread ends, though the process lives on. */
static void test_daemon_dies_with_its_thread(void **state)
{
    (void)state;
    struct in_thread t = {NULL, {-1, -1}};
    make_pipe(t.ready);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, start_daemon_in_thread, &t), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    close_pipe(t.ready);
    assert_non_null(t.p);
    assert_ok(mproc_process_join(t.p, 10));
    int code = 0;
    assert_int_equal(mproc_process_exitcode(t.p, &code), 1);
    assert_int_equal(code, -SIGKILL);
    mproc_process_free(t.p);
}

/* ---- faults ------------------------------------------------------------------------- */

#ifdef MPROC_FAULT_INJECTION
/* A process that ignores SIGCHLD (the kernel reaps its children at once) starts a child
 * that returns at once, and is held up between the fork and taking the child's pidfd: the
 * child must not end (and be reaped) before the start holds it. Before the fix, the child
 * was gone and start failed with -ESRCH. */
static int start_while_ignoring(void *arg)
{
    (void)arg;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGCHLD, &ign, NULL);
    mproc_fault_set("sys.spawn.forked", MPROC_FAULT_STOP, NULL); /* the test resumes us */
    mproc_process *p;
    if (mproc_process_new(&p, ret_arg, (void *)4, NULL) != 0)
        return 10;
    int rc = mproc_process_start(p);
    mproc_fault_clear();
    if (rc != 0)
        return 11;                  /* -ESRCH: the child ended before it was held */
    rc = mproc_process_join(p, 10); /* its status is the kernel's: -ECHILD, then ended */
    mproc_process_free(p);
    return rc == 0 || rc == -ECHILD ? 0 : 12;
}

static void test_start_holds_child_when_sigchld_ignored(void **state)
{
    (void)state;
    pid_t a = mproc_test_fork(start_while_ignoring, NULL);
    int st;
    assert_int_equal(waitpid(a, &st, WUNTRACED), a); /* stopped right after the fork */
    assert_true(WIFSTOPPED(st));
    /* let the child have all the time it wants to end: until it is gone, or asleep (held) */
    char path[64], kids[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)a, (int)a);
    for (double end = mproc_test_now() + 10; mproc_test_now() < end;) {
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(kids, 1, sizeof kids - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        kids[n] = '\0';
        int child = atoi(kids);
        if (child <= 0)
            break; /* it ended (and the kernel reaped it) */
        char stat[64], line[256];
        snprintf(stat, sizeof stat, "/proc/%d/stat", child);
        f = fopen(stat, "r");
        n = f != NULL ? fread(line, 1, sizeof line - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        line[n] = '\0';
        char *rp = strrchr(line, ')');
        if (rp != NULL && rp[1] == ' ' && rp[2] == 'S')
            break; /* asleep: waiting for the start to hold it */
        mproc_test_sleep(0.001);
    }
    kill(a, SIGCONT);
    assert_int_equal(mproc_test_exitcode(a, 10), 0);
}

static void test_fault_start(void **state)
{
    (void)state;
    mproc_process *p;
    assert_ok(mproc_process_new(&p, ret_arg, (void *)3, NULL));
    assert_ok(mproc_fault_set("process.start", MPROC_FAULT_FAIL, NULL));
    assert_code(mproc_process_start(p), -MPROC_EFAULT);
    assert_int_equal(mproc_test_count_children(), 0);
    assert_int_equal(mproc_process_is_alive(p), 0);
    assert_code(mproc_process_join(p, 0), -MPROC_ESTATE); /* still unstarted */
    assert_ok(mproc_process_start(p));                    /* armed once: now it works */
    assert_ok(mproc_process_join(p, 10));
    mproc_process_free(p);

    char *argv[] = {"/bin/true", NULL};
    p = NULL;
    assert_ok(
        mproc_fault_set("process.start", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = -EIO}));
    assert_code(mproc_process_spawn(&p, argv, NULL), -EIO);
    assert_null(p);
    assert_int_equal(mproc_test_count_children(), 0);
}

/* Failures of the spawn core's own steps, before and after the child exists. */
static void test_fault_spawn_core(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sleep", "30", NULL};
    struct {
        const char *point;
        int code;
    } cases[] = {{"sys.fork", -EAGAIN}, {"sys.pipe", -EMFILE}, {"sys.pidfd_open", -EMFILE}};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(cases); i++) {
        for (int spawn = 0; spawn < 2; spawn++) {
            assert_ok(mproc_fault_set(cases[i].point, MPROC_FAULT_FAIL,
                                      &(mproc_fault_opts){.code = cases[i].code}));
            mproc_process *p = NULL;
            int rc;
            if (spawn) {
                rc = mproc_process_spawn(&p, argv, NULL);
            } else {
                assert_ok(mproc_process_new(&p, sleeper, NULL, NULL));
                rc = mproc_process_start(p);
            }
            bool passed = mproc_fault_count(cases[i].point) > 0;
            assert_ok(mproc_fault_clear());
            if (passed) { /* fork children have no pipe */
                assert_code(rc, cases[i].code);
            } else {
                assert_ok(rc);
                assert_true(!spawn && strcmp(cases[i].point, "sys.pipe") == 0);
            }
            mproc_process_free(p); /* kills the child of a start that worked */
            assert_int_equal(mproc_test_count_children(), 0); /* none left, none a zombie */
        }
    }
}

/* Fail the nth allocation, n = 1, 2, ... until the operation completes: every failure is
 * -ENOMEM with nothing left behind, and the last run works. */
static void test_fault_alloc_loop(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    for (int spawn = 0; spawn < 2; spawn++) {
        for (unsigned nth = 1;; nth++) {
            assert_true(nth < 100);
            assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = nth}));
            mproc_process *p = NULL;
            int rc;
            if (spawn) {
                rc = mproc_process_spawn(&p, argv, &(mproc_spawn_opts){.search_path = 1});
            } else {
                rc = mproc_process_new(&p, ret_arg, (void *)3, NULL);
                if (rc == 0)
                    rc = mproc_process_start(p);
            }
            int passes = mproc_fault_count("alloc");
            assert_ok(mproc_fault_clear());
            if (rc == 0) {
                assert_ok(mproc_process_join(p, 10));
                int code = -1;
                assert_int_equal(mproc_process_exitcode(p, &code), 1);
                assert_int_equal(code, 3);
            } else {
                assert_code(rc, -ENOMEM);
            }
            mproc_process_free(p);
            assert_int_equal(mproc_test_count_children(), 0);
            if (passes < (int)nth) { /* the fault did not fire: the operation is complete */
                assert_ok(rc);
                break;
            }
        }
    }
}
#endif

/* ---- start methods: forkserver and spawn (mproc/init.h) ---------------------------------- */

struct facts_arg {
    int64_t value;
    pid_t caller;
    char name[32];
};

/* In the child: 0 when it is who it should be and has its copy of the argument. */
static int facts_child(void *arg)
{
    const struct facts_arg *a = arg;
    mproc_self me;
    if (a == NULL || mproc_current_process(&me) < 0)
        return 10;
    if (strcmp(me.name, a->name) != 0)
        return 11;
    if (me.parent_pid != a->caller || me.pid != getpid() || me.pid == a->caller)
        return 12;
    if (a->value != 4242)
        return 13;
    return 42;
}

static int nap_child(void *arg)
{
    (void)arg;
    sleep(30);
    return 0;
}

static void test_start_methods(void **state)
{
    (void)state;
    const mproc_start_method methods[] = {MPROC_START_FORKSERVER, MPROC_START_SPAWN};
    for (size_t k = 0; k < 2; k++) {
        struct facts_arg a = {.value = 4242, .caller = getpid(), .name = "Checker"};
        mproc_process *p;
        mproc_process_opts o = {.name = "Checker", .start = methods[k]};
        assert_code(mproc_process_new(&p, facts_child, &a, &o), -EINVAL); /* no size */
        o.arg_size = sizeof a;
        assert_code(mproc_process_new(&p, facts_child, NULL, &o), -EINVAL);
        assert_ok(mproc_process_new(&p, facts_child, &a, &o));
        a.value = 1; /* the child boots from a copy made at new() */
        assert_ok(mproc_process_start(p));
        assert_ok(mproc_process_join(p, 20));
        int code;
        assert_int_equal(mproc_process_exitcode(p, &code), 1);
        assert_int_equal(code, 42);
        mproc_process_free(p);

        /* killed: its end and the signal come back as with fork */
        assert_ok(
            mproc_process_new(&p, nap_child, NULL, &(mproc_process_opts){.start = methods[k]}));
        assert_ok(mproc_process_start(p));
        assert_int_equal(mproc_process_is_alive(p), 1);
        assert_ok(mproc_process_kill(p));
        assert_ok(mproc_process_join(p, 20));
        assert_int_equal(mproc_process_exitcode(p, &code), 1);
        assert_int_equal(code, -SIGKILL);
        assert_int_equal(mproc_process_is_alive(p), 0);
        mproc_process_free(p);

        /* freed while it runs: killed and reaped, nothing left */
        assert_ok(
            mproc_process_new(&p, nap_child, NULL, &(mproc_process_opts){.start = methods[k]}));
        assert_ok(mproc_process_start(p));
        mproc_process_free(p);
    }
    mproc__forkserver_stop(); /* this test started the server: leave none behind */
    assert_int_equal(mproc_test_count_children(), 0);
}

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0) /* a spawned child never gets past it */
        return 2;
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_start_methods),
        MPROC_TEST(test_child_ids),
        MPROC_TEST(test_exit_codes),
        MPROC_TEST(test_kill_terminate_signal),
        MPROC_TEST(test_signal_ended_unreaped),
        MPROC_TEST(test_join_timeout),
        MPROC_TEST(test_join_returns_when_child_ends),
        MPROC_TEST(test_is_alive_reaps),
        MPROC_TEST(test_pidfd_becomes_readable),
        MPROC_TEST(test_reaped_behind_our_back),
        MPROC_TEST(test_state_errors),
        MPROC_TEST(test_bad_input),
        MPROC_TEST(test_names),
        MPROC_TEST(test_current_and_parent),
        MPROC_TEST(test_active_children),

        MPROC_TEST(test_free_running_child_reaps_it),
        MPROC_TEST(test_many_children),
        MPROC_TEST(test_setsid_setpgid),
        MPROC_TEST(test_stdio_flushed_once),
        MPROC_TEST(test_spawn_exit_codes),
        MPROC_TEST(test_spawn_from_threads),
        MPROC_TEST(test_spawn_missing_program),
        MPROC_TEST(test_spawn_not_executable),
        MPROC_TEST(test_spawn_redirects_stdio),
        MPROC_TEST(test_spawn_swapped_stdio),
        MPROC_TEST(test_spawn_with_stdio_closed),
        MPROC_TEST(test_spawn_cwd_and_env),
        MPROC_TEST(test_spawn_path_search),
        MPROC_TEST(test_spawn_sees_no_library_fds),
        MPROC_TEST(test_spawn_signal_state),
        MPROC_TEST(test_daemon_dies_with_killed_parent),
        MPROC_TEST(test_non_daemon_outlives_killed_parent),
        MPROC_TEST(test_daemon_parent_dies_at_once),
        MPROC_TEST(test_daemon_dies_with_its_thread),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_start_holds_child_when_sigchld_ignored),
        MPROC_TEST(test_fault_start),
        MPROC_TEST(test_fault_spawn_core),
        MPROC_TEST(test_fault_alloc_loop),
#endif
    };
    return mproc_test_run(tests);
}
