/* src/sys/cpu.c - sched_getaffinity with a mask that grows until the kernel's fits.
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
