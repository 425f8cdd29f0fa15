/* src/sys/sys.h - the Linux primitives, behind small mproc__sys_* functions.
 *
 * Only src/sys/ talks to Linux-specific kernel interfaces (futex, pidfd, memfd,
 * prctl, signal masks). Every call here retries on EINTR where that is the right
 * thing to do, returns >= 0 or -errno, and never touches errno for the caller.
 */
#ifndef MPROC_SYS_H
#define MPROC_SYS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- clocks -------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t mproc__sys_now_ns(void);

/* ---- futex --------------------------------------------------------------- */

/* Sleep while *word == expected, until woken or the absolute monotonic deadline
 * (MPROC__NO_DEADLINE for none). shared: the word lives in memory shared between
 * processes (otherwise FUTEX_PRIVATE_FLAG is used).
 * Returns 0 when woken (or spuriously), -EAGAIN when *word != expected,
 * -ETIMEDOUT at the deadline. EINTR is reported as 0 (a spurious wake). */
int mproc__sys_futex_wait(const uint32_t *word, uint32_t expected, int64_t deadline, bool shared);

/* Wake up to n sleepers on word (INT32_MAX for all). Returns the number woken or -errno. */
int mproc__sys_futex_wake(const uint32_t *word, int n, bool shared);

/* ---- file descriptors ---------------------------------------------------- */

/* close() that keeps errno untouched and ignores EINTR (Linux closes the fd anyway). */
void mproc__sys_close(int fd);

/* read()/write() retried on EINTR. Return bytes moved or -errno. */
ssize_t mproc__sys_read(int fd, void *buf, size_t n);
ssize_t mproc__sys_write(int fd, const void *buf, size_t n);

/* Write all n bytes (blocking fd), retrying on EINTR and short writes. 0 or -errno. */
int mproc__sys_write_all(int fd, const void *buf, size_t n);

/* Read exactly n bytes (blocking fd). 0, -MPROC_EEOF at end of file before n, or -errno. */
int mproc__sys_read_all(int fd, void *buf, size_t n);

/* Read a small file (a /proc or /sys entry) into buf, NUL-terminated, at most cap - 1
 * bytes. Returns the length read (>= 0) or -errno (-ENOENT, -EACCES, ...). */
int mproc__sys_read_text(const char *path, char *buf, size_t cap);

/* poll() one fd for events until the deadline. Returns revents (> 0), 0 at the
 * deadline, or -errno. EINTR restarts with the remaining time. */
int mproc__sys_poll1(int fd, short events, int64_t deadline);

/* poll(fds, n) until the absolute monotonic deadline; EINTR restarts with the time left.
 * Returns the number of ready fds (> 0), 0 at the deadline, or -errno. */
struct pollfd;
int mproc__sys_poll(struct pollfd *fds, unsigned n, int64_t deadline);

/* Set or clear O_NONBLOCK. 0 or -errno. */
int mproc__sys_set_nonblock(int fd, bool on);

/* Set FD_CLOEXEC. 0 or -errno. */
int mproc__sys_set_cloexec(int fd);

/* pipe2 with O_CLOEXEC (and extra flags). 0 or -errno. */
int mproc__sys_pipe(int fds[2], int flags);

/* ---- processes ----------------------------------------------------------- */

/* Is fd an open descriptor of this process? */
bool mproc__sys_fd_open(int fd);

/* What a descriptor refers to (device and inode), to tell later whether the number still
 * names the same object: code we do not own (a task) may close it, and the number may
 * then be reused for something else. */
struct mproc__fd_id {
    uint64_t dev, ino;
};
/* 0 and *id, or -errno (-EBADF: not open). */
int mproc__sys_fd_id(int fd, struct mproc__fd_id *id);
/* Does fd still name the object id was taken from? */
bool mproc__sys_fd_same(int fd, const struct mproc__fd_id *id);

/* pidfd_open(pid, 0): a close-on-exec fd that becomes readable when pid exits. fd or -errno. */
int mproc__sys_pidfd_open(pid_t pid);

/* pidfd_send_signal(pidfd, sig). 0 or -errno. */
int mproc__sys_pidfd_kill(int pidfd, int sig);

/* Ask the kernel to send sig to the calling thread's process when its parent
 * (thread) dies. 0 or -errno. */
int mproc__sys_set_pdeathsig(int sig);

/* Block every signal in the calling thread, saving the old mask in *old. */
void mproc__sys_block_all(sigset_t *old);

/* Restore a mask saved by mproc__sys_block_all. */
void mproc__sys_restore_mask(const sigset_t *old);

/* ---- glibc's mutex (src/sys/mutex.c) ------------------------------------ */

/* The thread id that holds a robust mutex (0 when free, or after its owner died). */
pid_t mproc__sys_mutex_owner(const pthread_mutex_t *m);

/* A recursive mutex's depth beyond the first hold, as glibc counts it; only its holder
 * may ask (nobody else writes it then). */
unsigned mproc__sys_mutex_depth(const pthread_mutex_t *m);

/* ---- memory -------------------------------------------------------------- */

/* memfd_create(name, MFD_CLOEXEC). fd or -errno. */
int mproc__sys_memfd(const char *name);

/* Reserve size bytes of backing store for fd (posix_fallocate), so a full tmpfs is
 * ENOSPC now rather than SIGBUS on first touch. Asks first whether they can be had:
 * -ENOSPC beyond the file system's free space, -ENOMEM beyond mproc__sys_mem_fits.
 * 0 or -errno. */
int mproc__sys_reserve(int fd, size_t size);

/* Can this process add size bytes of memory without inviting the OOM killer? 0, or
 * -ENOMEM when size exceeds the least of the system's MemAvailable + SwapFree and, for
 * its memory cgroup and every ancestor (v1 or v2), the limit minus the usage. A
 * reading that cannot be made (no /proc, no cgroup mount) does not limit. */
int mproc__sys_mem_fits(size_t size);

/* ftruncate(fd, size): a sparse file of that size, nothing reserved. 0 or -errno. */
int mproc__sys_set_size(int fd, size_t size);

/* Populate [addr, addr + len) of a shared mapping now (MADV_POPULATE_WRITE), after
 * asking mproc__sys_mem_fits: a full tmpfs is -ENOSPC and a memory limit -ENOMEM here,
 * never a SIGBUS or the OOM killer at first touch. Fault point "sys.populate". */
int mproc__sys_populate(void *addr, size_t len);

/* mmap(NULL, size, RW, MAP_SHARED, fd, 0), fd -1 for anonymous shared memory.
 * Returns 0 and *out, or -errno. */
int mproc__sys_map_shared(int fd, size_t size, void **out);

/* munmap, ignoring errors on a valid mapping. */
void mproc__sys_unmap(void *addr, size_t size);

/* ---- fault injection ------------------------------------------------------ */

/* The named fault points. In a build with MPROC_FAULT_INJECTION, every
 * MPROC__FAULT("name") consults the table set by mproc_fault_set() (mproc/fault.h):
 * it may return a negative code (the caller fails as if the operation had), or
 * stop or kill the calling process right there. In other builds it is 0. */
/* The armed points as bytes (their settings and passes so far), for a process that does
 * not fork from this one but should start as a fork would (a pool worker started by
 * spawn or the fork server): written to buf (cap bytes), their length returned (0 in a
 * build without fault injection, or when buf is too small: nothing is carried then).
 * mproc__fault_import arms them in the new process (a no-op without fault injection). */
size_t mproc__fault_export(void *buf, size_t cap);
void mproc__fault_import(const void *buf, size_t len);

#ifdef MPROC_FAULT_INJECTION
int mproc__fault_hit(const char *point);
#define MPROC__FAULT(point) mproc__fault_hit(point)
#else
#define MPROC__FAULT(point) 0
#endif

#endif
