/* tests/test_error.c - error codes, messages, names; the fault point table. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <string.h>

static void test_every_code_has_a_message(void **state)
{
    (void)state;
    for (int c = MPROC_EBASE + 1; c < MPROC_ELAST; c++) {
        const char *m = mproc_strerror(-c);
        assert_non_null(m);
        assert_true(strlen(m) > 5);
        assert_null(strstr(m, "unknown"));
        assert_string_equal(m, mproc_strerror(c)); /* sign does not matter */
        assert_true(strncmp(mproc_errname(-c), "MPROC_E", 7) == 0);
    }
}

static void test_errno_codes(void **state)
{
    (void)state;
    assert_string_equal(mproc_strerror(-ETIMEDOUT), strerror(ETIMEDOUT));
    assert_string_equal(mproc_errname(-ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(mproc_errname(-EINVAL), "EINVAL");
    assert_string_equal(mproc_strerror(0), "success");
}

static void test_unknown_codes_never_crash(void **state)
{
    (void)state;
    int odd[] = {INT32_MIN, INT32_MAX, -MPROC_EBASE, -MPROC_ELAST, 4095, -99999, 12345};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        assert_non_null(mproc_strerror(odd[i]));
        assert_non_null(mproc_errname(odd[i]));
    }
    assert_non_null(strstr(mproc_strerror(-99999), "99999"));
}

static void test_deadline_rejects_bad_timeouts(void **state)
{
    (void)state;
    int64_t d;
    assert_code(mproc__deadline(-1.0, &d), -EINVAL);
    assert_code(mproc__deadline(-0.001, &d), -EINVAL);
    assert_code(mproc__deadline(__builtin_nan(""), &d), -EINVAL);
    assert_ok(mproc__deadline(MPROC_FOREVER, &d));
    assert_true(d == MPROC__NO_DEADLINE);
    assert_ok(mproc__deadline(0, &d));
    assert_true(mproc__remaining_ns(d) == 0);
    assert_ok(mproc__deadline(10.0, &d));
    assert_true(mproc__remaining_ns(d) > 9000000000);
}

#ifdef MPROC_FAULT_INJECTION
static void test_fault_fail_nth(void **state)
{
    (void)state;
    assert_ok(mproc_fault_set("alloc", MPROC_FAULT_FAIL, &(mproc_fault_opts){.nth = 3}));
    void *a = mproc__malloc(8), *b = mproc__malloc(8), *c = mproc__malloc(8), *d = mproc__malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);     /* the third allocation fails */
    assert_non_null(d); /* once only */
    assert_int_equal(mproc_fault_count("alloc"), 4);
    mproc__free(a);
    mproc__free(b);
    mproc__free(d);
    assert_ok(mproc_fault_set("sys.pipe", MPROC_FAULT_FAIL,
                              &(mproc_fault_opts){.code = -EMFILE, .sticky = 1}));
    int fds[2];
    assert_code(mproc__sys_pipe(fds, 0), -EMFILE);
    assert_code(mproc__sys_pipe(fds, 0), -EMFILE);
    assert_ok(mproc_fault_clear());
    assert_ok(mproc__sys_pipe(fds, 0));
    mproc__sys_close(fds[0]);
    mproc__sys_close(fds[1]);
}

static int die_at_point(void *arg)
{
    (void)arg;
    mproc_fault_set("alloc", MPROC_FAULT_KILL, NULL);
    void *p = mproc__malloc(1); /* never returns */
    free(p);
    return 0;
}

static void test_fault_kill(void **state)
{
    (void)state;
    pid_t pid = mproc_test_fork(die_at_point, NULL);
    assert_int_equal(mproc_test_exitcode(pid, 10), -SIGKILL);
}

static void test_fault_bad_args(void **state)
{
    (void)state;
    assert_code(mproc_fault_set(NULL, MPROC_FAULT_FAIL, NULL), -EINVAL);
    assert_code(mproc_fault_set("", MPROC_FAULT_FAIL, NULL), -EINVAL);
    assert_code(mproc_fault_set("x", (mproc_fault_action)99, NULL), -EINVAL);
    assert_code(mproc_fault_set("x", MPROC_FAULT_FAIL, &(mproc_fault_opts){.code = 5}), -EINVAL);
    assert_code(mproc_fault_count("never-armed"), -ENOENT);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_every_code_has_a_message),
        MPROC_TEST(test_errno_codes),
        MPROC_TEST(test_unknown_codes_never_crash),
        MPROC_TEST(test_deadline_rejects_bad_timeouts),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_fault_fail_nth),
        MPROC_TEST(test_fault_kill),
        MPROC_TEST(test_fault_bad_args),
#endif
    };
    return mproc_test_run(tests);
}
