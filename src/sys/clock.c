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

int64_t mproc__seconds_ns(double seconds)
{
    if (!(seconds > 0)) /* NaN too */
        return 0;
    /* 9.2e9 s is just below INT64_MAX ns; the double product must not be converted once
       it is out of int64_t's range (undefined behaviour, caught by UBSan) */
    if (seconds >= 9.2e9)
        return INT64_MAX;
    return (int64_t)(seconds * 1e9);
}

int64_t mproc__deadline_after(int64_t t0, double seconds)
{
    int64_t ns = mproc__seconds_ns(seconds);
    if (t0 > 0 && ns > MPROC__NO_DEADLINE - t0)
        return MPROC__NO_DEADLINE;
    return t0 + ns;
}

int mproc__deadline(double timeout, int64_t *out)
{
    if (out == NULL || isnan(timeout) || timeout < 0)
        return -EINVAL;
    *out = mproc__deadline_after(mproc__sys_now_ns(), timeout);
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
