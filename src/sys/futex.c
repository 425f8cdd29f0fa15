/* src/sys/futex.c - futex wait and wake.
 *
 * Waits take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET without
 * FUTEX_CLOCK_REALTIME measures absolute time on the monotonic clock), so a caller
 * that loops after a spurious wake never stretches its timeout.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int mproc__sys_futex_wait(const uint32_t *word, uint32_t expected, int64_t deadline, bool shared)
{
    struct timespec ts, *tsp = NULL;
    if (deadline != MPROC__NO_DEADLINE) {
        if (deadline <= mproc__sys_now_ns())
            return -ETIMEDOUT;
        ts.tv_sec = (time_t)(deadline / 1000000000);
        ts.tv_nsec = (long)(deadline % 1000000000);
        tsp = &ts;
    }
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long rc = syscall(SYS_futex, word, op, expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc == 0)
        return 0;
    int err = errno;
    if (err == EINTR)
        return 0;
    return -err; /* EAGAIN: the word changed; ETIMEDOUT */
}

int mproc__sys_futex_wake(const uint32_t *word, int n, bool shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long rc = syscall(SYS_futex, word, op, n, NULL, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}
