/* src/sys/liveness.h - who am I, and is that process still alive (for sync objects).
 *
 * Private to the library, used by the Lock (owner checks) and the Barrier (noticing
 * that a waiting party died).
 */
#ifndef MPROC_SYS_LIVENESS_H
#define MPROC_SYS_LIVENESS_H

#include <sys/types.h>

/* The kernel thread id of the calling thread (gettid). Never fails. A system call:
 * keep it off hot paths. */
pid_t mproc__sys_gettid(void);

/* Is pid a live process? 1 alive (running, sleeping, stopped; also when we may not
 * signal it), 0 dead (no such process, or a zombie that waits to be reaped), or a
 * negative code (-EINVAL for pid <= 0). A recycled pid reads as alive: callers must
 * accept that rare false "alive". */
int mproc__sys_pid_alive(pid_t pid);

/* The state letter and start time (clock ticks since boot) of pid (0: this process), from
 * /proc/<pid>/stat. 0, -ENOENT (no such process, or going away), or another negative code (cannot
 * tell: no /proc, -EPROTO for an unreadable line). */
int mproc__sys_proc_stat(pid_t pid, char *state, unsigned long long *start);

#endif
