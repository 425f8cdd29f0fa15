/* src/sys/evfd.h - the eventfd, behind mproc__sys_* calls. */
#ifndef MPROC_SYS_EVFD_H
#define MPROC_SYS_EVFD_H

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). fd or -errno. Fault point "sys.eventfd". */
int mproc__sys_eventfd(void);

/* Add 1 to an eventfd (never blocks: a saturated counter is already readable). */
void mproc__sys_eventfd_ring(int fd);

/* Reset an eventfd to 0 (non-blocking read; nothing to read is fine). */
void mproc__sys_eventfd_drain(int fd);

#endif
