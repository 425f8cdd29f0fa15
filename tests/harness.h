/* tests/harness.h - the shared fixture of every cmocka test binary.
 *
 * Each test runs between mproc_test_setup() and mproc_test_teardown(). Setup records
 * the open fds, the /dev/shm names and the thread count, and makes the test process a
 * child subreaper, so any process the test (or the library) leaves behind, orphaned
 * grandchildren included, is still seen. Teardown fails the test if, after a grace
 * period of 2 s, any child process (running or zombie), extra fd, thread or /dev/shm
 * entry is left; it then cleans up so the next test starts clean.
 *
 * Tests that crash or kill do it in a child: mproc_test_fork() runs a function in a
 * child that _exits with its return value, and mproc_test_wait() reaps it with a bound.
 */
#ifndef MPROC_TEST_HARNESS_H
#define MPROC_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/types.h>

#include "mproc.h"

int mproc_test_setup(void **state);
int mproc_test_teardown(void **state);

#define MPROC_TEST(f) cmocka_unit_test_setup_teardown(f, mproc_test_setup, mproc_test_teardown)

/* Run the group; prints cmocka's summary. Returns the number of failures. */
#define mproc_test_run(tests) mproc_test_run_(#tests, tests, sizeof(tests) / sizeof((tests)[0]))
int mproc_test_run_(const char *name, const struct CMUnitTest *tests, size_t n);

/* Fork a child that runs fn(arg) and _exits with its return value (& 255).
 * Returns the pid; fails the test if fork fails. */
pid_t mproc_test_fork(int (*fn)(void *), void *arg);

/* Wait for pid at most timeout seconds. Returns its wait status (as waitpid), or -1 if it
 * did not end in time (it is then SIGKILLed and reaped, and the test should fail). */
int mproc_test_wait(pid_t pid, double timeout);

/* Exit status of a child that exited normally, or -signal if it was killed; -1000 if
 * it did not end within timeout seconds. */
int mproc_test_exitcode(pid_t pid, double timeout);

/* Wait up to timeout seconds for every child of this process (orphans reparented to it
 * included) to end, reaping them. Returns the number still running (then killed). */
int mproc_test_reap_all(double timeout);

/* The children this process has now belong to the whole program (the daemon MPI starts
 * for a process on its own): the leak gate passes over them. */
void mproc_test_keep_children(void);

/* Memory shared by every process of this test program at one fixed address: the test
 * process, its forks, and pool workers started by spawn or by the fork server (which are
 * this program executed afresh: the harness maps it in each before main(), from a memfd
 * whose number travels in the environment). MPROC_TEST_SHARED_BYTES, zero at the start;
 * tests give its parts fixed roles (a pointer set by a test in its own memory would not
 * reach a spawned worker). NULL where it could not be mapped. */
#define MPROC_TEST_SHARED_BYTES ((size_t)1 << 20)
void *mproc_test_shared(void);

/* Skip the test unless the pool's start method is fork: for tests about what only a
 * forked worker has (the caller's mappings: in-place arrays). */
#define MPROC_TEST_FORK_ONLY()                                                                     \
    do {                                                                                           \
        if (mproc_get_start_method() != MPROC_START_FORK)                                          \
            skip();                                                                                \
    } while (0)

/* Number of children of this process (alive or zombie). */
int mproc_test_count_children(void);

/* Is pid still a live (non-zombie) process? */
int mproc_test_pid_alive(pid_t pid);

/* Make a memory cgroup of our own (v1 or v2) with a limit of `limit` bytes, as a child
 * of this process's group: its directory goes to dir, the path of its cgroup.procs file
 * (write a pid there to move that process in) to procs. 0, or -1 where none can be made
 * (needs root and a writable cgroup mount): the caller then skips. The caller removes it
 * with rmdir once its processes are gone. Tests that run into a memory limit do it only
 * in such a group: the machine's OOM killer would take unrelated processes. */
int mproc_test_memory_cgroup(char *dir, size_t dir_size, long long limit, char *procs,
                             size_t procs_size);

/* Sleep for seconds (a double). */
void mproc_test_sleep(double seconds);

/* Monotonic time in seconds. */
double mproc_test_now(void);

/* Assert a call returned the expected code, printing both codes' names if not. */
#define assert_code(expr, want)                                                                    \
    do {                                                                                           \
        long got_ = (long)(expr);                                                                  \
        long want_ = (long)(want);                                                                 \
        if (got_ != want_)                                                                         \
            fail_msg("%s = %ld (%s), expected %ld (%s)", #expr, got_, mproc_errname((int)got_),    \
                     want_, mproc_errname((int)want_));                                            \
    } while (0)

#define assert_ok(expr) assert_code(expr, 0)

#endif
