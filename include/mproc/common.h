/* mproc/common.h - what every mproc header shares: export macro and timeouts.
 *
 * Timeouts are seconds as a double, as in Python: 0 means "try once, do not
 * wait", MPROC_FOREVER means "no deadline". A negative or NaN timeout is -EINVAL.
 * A wait that reaches its deadline returns -ETIMEDOUT.
 */
#ifndef MPROC_COMMON_H
#define MPROC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

/* The timeout that never expires. */
#define MPROC_FOREVER (__builtin_inf())

#endif
