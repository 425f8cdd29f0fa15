/* src/internal.h - included first by every .c of the library.
 *
 * Feature macros, the public headers, and the helpers shared between files
 * (prefix mproc__). Nothing here is part of the public API.
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "sys/sys.h"

#define MPROC__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MPROC__UNUSED(x) ((void)(x))

/* Convert a public timeout in seconds to a deadline on the monotonic clock.
 * Returns 0 and fills *out, or -EINVAL for negative or NaN timeouts.
 * MPROC_FOREVER (infinity) gives the deadline MPROC__NO_DEADLINE. */
#define MPROC__NO_DEADLINE INT64_MAX
int mproc__deadline(double timeout, int64_t *out);

/* The one conversion of seconds (a double) to nanoseconds in the library, saturating:
 * 0 for NaN, negative or zero; INT64_MAX for infinity and for anything at or past
 * INT64_MAX ns (about 292 years). */
int64_t mproc__seconds_ns(double seconds);

/* t0 (monotonic ns) plus `seconds`, as a deadline: MPROC__NO_DEADLINE where the sum
 * would pass INT64_MAX, so a huge limit is no limit rather than an overflow. */
int64_t mproc__deadline_after(int64_t t0, double seconds);

/* Nanoseconds left until a deadline (0 when it has passed); INT64_MAX for none. */
int64_t mproc__remaining_ns(int64_t deadline);

/* Milliseconds left, rounded up, as poll() wants them (-1 for no deadline). */
int mproc__remaining_ms(int64_t deadline);

/* Allocation through one door, so tests can fail the Nth allocation. */
void *mproc__malloc(size_t n);
void *mproc__calloc(size_t n, size_t size);
void *mproc__realloc(void *p, size_t n);
char *mproc__strdup(const char *s);
void mproc__free(void *p);

/* Acquire a lock until an absolute monotonic deadline (for other blocks built on
 * locks: queue, condition). Same results as mproc_lock_acquire. */
int mproc__lock_acquire_until(mproc_lock *l, int64_t deadline);

/* A queue whose shared mapping is a memfd (*memfd, close-on-exec, the caller's to close
 * once it is not needed), so a process that did not fork from this one can map it too:
 * a pool worker started by spawn or the forkserver (src/pool/boot.c). */
int mproc__queue_new_memfd(mproc_queue **out, const mproc_queue_opts *opts, int *memfd);
/* The bytes of a queue's mapping (it starts at the queue's own address). */
size_t mproc__queue_map_size(const mproc_queue *q);

/* Started as a pool worker or fork server, and mproc_init not reached yet (src/start/init.c):
 * such a process must not start pools of its own. */
bool mproc__boot_pending(void);

/* A process object's boot (src/process.c): the magic word that opens its message, and
 * the new process's side, which runs the target and returns its exit status. */
#define MPROC__PROCESS_BOOT_MAGIC 0x3152504du /* "MPR1" */
int mproc__process_boot_run(int boot);

/* In a child mproc started (src/process.c): who it is, for mproc_current_process. name
 * must live as long as the process; parent: the pid of the process that started it. */
void mproc__self_enter(const char *name, bool daemon, pid_t parent);

#endif
