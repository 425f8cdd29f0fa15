/* mproc/fault.h - named fault points, for tests.
 *
 * A library built with -DMPROC_FAULT_INJECTION=ON (as `make check` builds it) has
 * named points on its error and crash paths: inside a queue's critical section,
 * between writing a message and publishing it, at every allocation ("alloc") and at
 * the system calls that can fail for lack of resources ("sys.*"). A test arms a point
 * so the Nth time the process passes it, the library fails, stops or dies right there.
 * Then the test checks that everything the promise says still holds.
 *
 * Settings are per process and inherited by fork: a test arms a point in a child
 * before the child calls the library. A pool worker started by spawn or the fork server
 * gets the points armed in its pool's process when it starts, as a fork would. Any
 * process of the program started afresh also starts with the point named in its
 * environment variable MPROC_FAULT armed to fail once. In a build without fault injection every
 * call here returns -MPROC_ENOTSUP and the points cost nothing.
 */
#ifndef MPROC_FAULT_H
#define MPROC_FAULT_H

#include "mproc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mproc_fault_action {
    MPROC_FAULT_FAIL = 1, /* the call fails with the armed code (default -MPROC_EFAULT) */
    MPROC_FAULT_KILL,     /* the process SIGKILLs itself at the point */
    MPROC_FAULT_STOP,     /* the process SIGSTOPs itself at the point (a test then kills it) */
    MPROC_FAULT_SEGV,     /* the process dies of SIGSEGV at the point */
} mproc_fault_action;

typedef struct mproc_fault_opts {
    int code;     /* for MPROC_FAULT_FAIL: the negative code to return; 0 means -MPROC_EFAULT */
    unsigned nth; /* trigger on the nth pass (1 = the next one); 0 means 1 */
    int sticky;   /* nonzero: trigger on every pass from the nth on, not just once */
} mproc_fault_opts;

/* Arm the named point (e.g. "queue.put.locked", "alloc"). Re-arming a point replaces
 * its setting. Errors: -EINVAL (NULL or unknown-length name, bad action), -ENOSPC (too
 * many armed points), -MPROC_ENOTSUP (built without fault injection).
 * Not thread-safe against library calls running concurrently in other threads. */
MPROC_API int mproc_fault_set(const char *point, mproc_fault_action action,
                              const mproc_fault_opts *opts);

/* Disarm every point and zero the counters. 0, or -MPROC_ENOTSUP. */
MPROC_API int mproc_fault_clear(void);

/* How many times the armed point was passed since it was armed (arm it with a huge nth
 * to count passes without triggering). >= 0, -ENOENT when the point is not armed,
 * -EINVAL for NULL, or -MPROC_ENOTSUP. */
MPROC_API int mproc_fault_count(const char *point);

#ifdef __cplusplus
}
#endif

#endif
