/* src/sys/cpu.h - CPU affinity, behind mproc__sys_* calls. */
#ifndef MPROC_SYS_CPU_H
#define MPROC_SYS_CPU_H

#include <sys/types.h>

/* Number of CPUs in pid's affinity mask (0: the calling thread), with a cpu_set sized
 * dynamically so machines with more than 1024 CPUs are counted right. >= 1 or -errno.
 * Fault point "sys.affinity". */
int mproc__sys_affinity_count(pid_t pid);

/* Pin the calling thread (a freshly forked worker: its only thread) to the n-th CPU, round
 * robin, of its current affinity mask. 0 or -errno. Fault point "sys.pin". */
int mproc__sys_pin_nth(unsigned n);

#endif
