/* src/shm_internal.h - what src/shm.c offers the rest of the library beyond mproc/shm.h. */
#ifndef MPROC_SHM_INTERNAL_H
#define MPROC_SHM_INTERNAL_H

#include "mproc/shm.h"

/* mproc_shm_new, except that nothing is reserved: the file gets its size (sparse) and
 * the caller populates what it uses (mproc__sys_populate) before touching it. For the
 * shared containers (src/shared/heap.c), which reserve address space up front and take
 * memory as they grow. */
int mproc__shm_new_sparse(mproc_shm **out, const char *name, size_t size, unsigned flags);

#endif
