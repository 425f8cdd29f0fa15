/* src/sys/procmem.h - process memory: this process's shared mappings, another process's
 * memory read and written by the kernel, and pages mapped in ahead of use. */
#ifndef MPROC_SYS_PROCMEM_H
#define MPROC_SYS_PROCMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A shared mapping of this process (MAP_SHARED: the 's' of /proc/self/maps). */
struct mproc__shared_range {
    uintptr_t start, end;
    uint64_t offset, inode;
};

/* The process's shared writable mappings now, read from /proc/self/maps: a malloc'd
 * array (free with mproc__free) and its length. 0 or -errno (-ENOMEM). */
int mproc__sys_shared_ranges(struct mproc__shared_range **out, size_t *n);
/* Another process's memory, copied by the kernel (no shared mapping needed). Allowed by
 * the kernel's ptrace rules only: a parent's child may be refused by Yama, a process that
 * is not dumpable, or a seccomp filter (-EPERM, -EACCES, -ENOSYS).
 *
 * Reading goes through /proc/<pid>/mem, opened once (fd or -errno): unlike
 * process_vm_readv, it does not pin the pages, and pinning a page still shared with a
 * forked child since the fork makes the kernel copy it first (measured: 80 MB read 250 ms
 * the first time, 11 ms after; through the file, 15 ms every time). Writing uses
 * process_vm_writev, which respects the pages' protection (a write through the file
 * would not). Both return 0 or -errno (-EIO, -EFAULT: an address not mapped; part may
 * have been copied). Fault point "sys.vm" (all three). */
int mproc__sys_vm_open(pid_t pid);
int mproc__sys_vm_read(int fd, void *local, uint64_t remote, size_t len);
int mproc__sys_vm_write(pid_t pid, uint64_t remote, const void *local, size_t len);

/* Map in the pages of [addr, addr + len) now, writable if write (MADV_POPULATE_READ or
 * _WRITE, Linux 5.14): one system call instead of a page fault per page. Contents are not
 * changed. Best effort: older kernels and odd mappings are left to fault as usual. */
void mproc__sys_prefault(const void *addr, size_t len, bool write);

#endif
