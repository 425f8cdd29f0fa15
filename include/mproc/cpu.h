/* mproc/cpu.h - how many CPUs there are, and how many this process may use.
 *
 * "Usable" is what a worker count should default to: the CPUs in this process's
 * affinity mask (taskset, cpusets), further limited by a cgroup CPU quota
 * (cgroup v2 cpu.max, or v1 cfs_quota_us / cfs_period_us), rounded up. Python's
 * os.cpu_count() reports the machine's total; os.process_cpu_count() (3.13) the
 * affinity part only.
 */
#ifndef MPROC_CPU_H
#define MPROC_CPU_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_cpu_counts {
    int logical;  /* online logical CPUs (hardware threads) */
    int physical; /* distinct physical cores (sysfs topology); logical if unknown */
    int usable;   /* CPUs this process may use: affinity mask and cgroup quota */
} mproc_cpu_counts;

/* Fill *out with all three counts. 0, or -EINVAL for NULL. Each count is >= 1.
 * Thread-safe; reads /proc and /sys each call (no caching: affinity can change). */
MPROC_API int mproc_cpu_counts_get(mproc_cpu_counts *out);

/* Online logical CPUs, >= 1. */
MPROC_API int mproc_cpu_count(void);

/* Physical cores, >= 1. */
MPROC_API int mproc_cpu_physical(void);

/* CPUs this process may use (the default worker count everywhere in mproc), >= 1:
 * min(affinity mask count, ceil(tightest cgroup CPU quota over the process's cgroup
 * and its ancestors), logical). Unreadable or malformed cgroup files count as "no
 * quota"; an unreadable affinity mask counts as all logical CPUs. */
MPROC_API int mproc_cpu_usable(void);

#ifdef __cplusplus
}
#endif

#endif
