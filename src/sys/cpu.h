/* src/sys/cpu.h - CPU affinity, behind an mproc__sys_* call. */
#ifndef MPROC_SYS_CPU_H
#define MPROC_SYS_CPU_H

#include <sys/types.h>

/* Number of CPUs in pid's affinity mask (0: the calling thread), with a cpu_set sized
 * dynamically so machines with more than 1024 CPUs are counted right. >= 1 or -errno.
 * Fault point "sys.affinity". */
int mproc__sys_affinity_count(pid_t pid);

#endif
