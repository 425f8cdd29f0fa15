/* src/sys/cpu.c - CPU affinity: sched_getaffinity and _setaffinity with a mask that
 * grows until the kernel's fits.
 *
 * The kernel answers EINVAL when the caller's mask is smaller than its own cpumask
 * (nr_cpu_ids bits); we double the mask and ask again, up to a limit far beyond any
 * real machine. The mask lives on the heap (CPU_ALLOC), never in a fixed cpu_set_t.
 */
#include "internal.h"

#include "sys/cpu.h"

#include <sched.h>

#define MAX_CPUS ((size_t)1 << 22)

int mproc__sys_affinity_count(pid_t pid)
{
    int rc = MPROC__FAULT("sys.affinity");
    if (rc < 0)
        return rc;
    for (size_t ncpu = 1024; ncpu <= MAX_CPUS; ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (set == NULL)
            return -ENOMEM;
        size_t bytes = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(bytes, set);
        if (sched_getaffinity(pid, bytes, set) == 0) {
            int n = CPU_COUNT_S(bytes, set);
            CPU_FREE(set);
            return n > 0 ? n : -EINVAL;
        }
        int err = errno;
        CPU_FREE(set);
        if (err != EINVAL)
            return -err;
    }
    return -EINVAL;
}

int mproc__sys_pin_nth(unsigned n)
{
    int rc = MPROC__FAULT("sys.pin");
    if (rc < 0)
        return rc;
    for (size_t ncpu = 1024; ncpu <= ((size_t)1 << 22); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (set == NULL)
            return -ENOMEM;
        size_t bytes = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(bytes, set);
        if (sched_getaffinity(0, bytes, set) < 0) {
            int err = errno;
            CPU_FREE(set);
            if (err == EINVAL)
                continue; /* the kernel's mask is larger: grow ours */
            return -err;
        }
        int count = CPU_COUNT_S(bytes, set);
        if (count <= 0) {
            CPU_FREE(set);
            return -EINVAL;
        }
        unsigned want = n % (unsigned)count, seen = 0;
        size_t cpu = 0;
        for (; cpu < ncpu; cpu++)
            if (CPU_ISSET_S(cpu, bytes, set) && seen++ == want)
                break;
        CPU_ZERO_S(bytes, set);
        CPU_SET_S(cpu, bytes, set);
        rc = sched_setaffinity(0, bytes, set) < 0 ? -errno : 0;
        CPU_FREE(set);
        return rc;
    }
    return -EINVAL;
}
