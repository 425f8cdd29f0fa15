/* src/sys/shm.h - POSIX named shared memory (/dev/shm), behind mproc__sys_* calls.
 *
 * Each call returns >= 0 or -errno and carries a fault point, so tests can make
 * shm_open fail with -EMFILE, -ENOSPC, ... and check the caller's cleanup.
 */
#ifndef MPROC_SYS_SHM_H
#define MPROC_SYS_SHM_H

#include <stdbool.h>
#include <stddef.h>

/* shm_open(name, O_RDWR | O_CLOEXEC [| O_CREAT | O_EXCL], 0600). name is "/x".
 * fd or -errno (-EEXIST when create and the name exists, -ENOENT when not create
 * and it does not). Fault point "sys.shm_open". */
int mproc__sys_shm_open(const char *name, bool create);

/* shm_unlink(name). 0 or -errno. Fault point "sys.shm_unlink". */
int mproc__sys_shm_unlink(const char *name);

/* Does name still name the block open on fd (the same device and inode)? 1 yes, 0 no
 * (another block took the name), -ENOENT (no block has it), or -errno. */
int mproc__sys_shm_same(const char *name, int fd);

/* The size of the file behind fd (fstat st_size). 0 and *out, or -errno. */
int mproc__sys_fd_size(int fd, size_t *out);

#endif
