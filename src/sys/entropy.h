/* src/sys/entropy.h - random bytes from the kernel (getrandom), for names nobody can
 * guess or repeat (shared memory blocks) and for challenges. */
#ifndef MPROC_SYS_ENTROPY_H
#define MPROC_SYS_ENTROPY_H

#include <stddef.h>

/* Fill buf with n random bytes. 0 or -errno. Fault point "sys.random". */
int mproc__sys_random(void *buf, size_t n);

#endif
