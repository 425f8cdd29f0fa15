/* src/sys/clock.c - the monotonic clock and timeout arithmetic.
 *
 * Public timeouts are seconds as a double (Python's convention): 0 means "try
 * once", MPROC_FOREVER (infinity) means "no deadline", negative or NaN is -EINVAL.
 * Internally every wait works on an absolute deadline in monotonic nanoseconds, so
 * a wait that is interrupted and restarted never extends its total time.
 */
#include "internal.h"

#include <math.h>
#include <time.h>

int64_t mproc__sys_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mproc__deadline(double timeout, int64_t *out)
{
    if (out == NULL || isnan(timeout) || timeout < 0)
        return -EINVAL;
    if (isinf(timeout) || timeout > 1e9) { /* ~31 years: no deadline worth computing */
        *out = MPROC__NO_DEADLINE;
        return 0;
    }
    *out = mproc__sys_now_ns() + (int64_t)(timeout * 1e9);
    return 0;
}

int64_t mproc__remaining_ns(int64_t deadline)
{
    if (deadline == MPROC__NO_DEADLINE)
        return INT64_MAX;
    int64_t left = deadline - mproc__sys_now_ns();
    return left > 0 ? left : 0;
}

int mproc__remaining_ms(int64_t deadline)
{
    if (deadline == MPROC__NO_DEADLINE)
        return -1;
    int64_t ns = mproc__remaining_ns(deadline);
    int64_t ms = (ns + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}
