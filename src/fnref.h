/* src/fnref.h - function references that survive fork, exec and MPI (src/fnref.c). */
#ifndef MPROC_FNREF_H
#define MPROC_FNREF_H

#include <stddef.h>
#include <stdint.h>

#include "mproc/pool.h"

#define MPROC__FNREF_MAX 512 /* bytes of an encoded reference we accept in the pool */

/* Encode fn as (module, offset). 0 and *len, or -EINVAL, -ENOENT (fn is in no loaded
 * module), -MPROC_ETOOSMALL (*len says how much is needed), -ENAMETOOLONG. */
int mproc__fnref_encode(void (*fn)(void), void *buf, size_t cap, size_t *len);

/* Decode a reference made by mproc__fnref_encode, in this process or another one running
 * the same program (fork, exec, MPI). 0 and *fn, or -EINVAL (malformed), -ENOENT (no
 * such module loaded), -ESTALE (the module is another build), -EFAULT (the offset is not
 * in executable code of the module), -ENAMETOOLONG. */
int mproc__fnref_decode(const void *buf, size_t len, void (**fn)(void));

/* mproc__fnref_encode of a task function through a per-thread cache of the last one
 * (checked against the loader's generation). 0 and *len, or -ENAMETOOLONG (more than
 * cap bytes) and the codes of mproc__fnref_encode. */
int mproc__fnref_cached(mproc_task_fn fn, unsigned char *buf, size_t cap, uint32_t *len);

/* The main program's GNU build-id into id (at most cap bytes): its length, or 0 when it
 * has none (or it does not fit). Two processes with the same id run the same build. */
size_t mproc__fnref_main_build(unsigned char *id, size_t cap);

#endif
