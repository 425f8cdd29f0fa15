/* src/sys/pool.h - the kernel primitives the pool's supervisor needs: an eventfd
 * doorbell and a poll over many fds with a deadline. */
#ifndef MPROC_SYS_POOL_H
#define MPROC_SYS_POOL_H

#include <poll.h>
#include <stdint.h>

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). fd or -errno. Fault point "sys.eventfd". */
int mproc__sys_eventfd(void);

/* Add 1 to an eventfd (never blocks: a saturated counter is already readable). */
void mproc__sys_eventfd_ring(int fd);

/* Reset an eventfd to 0 (non-blocking read; nothing to read is fine). */
void mproc__sys_eventfd_drain(int fd);

/* poll(fds, n) until the absolute monotonic deadline; EINTR restarts with the time left.
 * Returns the number of ready fds (> 0), 0 at the deadline, or -errno. */
int mproc__sys_poll(struct pollfd *fds, unsigned n, int64_t deadline);


/* A shared mapping of this process (MAP_SHARED: the 's' of /proc/self/maps). */
struct mproc__shared_range {
    uintptr_t start, end;
    uint64_t offset, inode;
};

/* The process's shared writable mappings now, read from /proc/self/maps: a malloc'd
 * array (free with mproc__free) and its length. 0 or -errno (-ENOMEM). */
int mproc__sys_shared_ranges(struct mproc__shared_range **out, size_t *n);
/* Pin the calling thread (a freshly forked worker: its only thread) to the n-th CPU, round
 * robin, of its current affinity mask. 0 or -errno. Fault point "sys.pin". */
int mproc__sys_pin_nth(unsigned n);

#endif
