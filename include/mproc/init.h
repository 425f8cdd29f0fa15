/* mproc/init.h - mproc_init and the start methods: how a pool's workers come to be.
 *
 * Python's multiprocessing offers three ways to start a worker, and so does mproc:
 *
 *   MPROC_START_FORK        the worker is a fork of the caller (the default on Linux, as
 *                           in Python up to 3.13): it starts in microseconds and sees the
 *                           caller's memory as it was, but it also gets a copy of every
 *                           lock another of the caller's threads held at that moment. In
 *                           a program with threads, a task that takes such a lock (inside
 *                           malloc, stdio, or the program's own mutexes) can hang forever.
 *   MPROC_START_FORKSERVER  the worker is a fork of a helper process, the fork server:
 *                           this program started afresh (exec of /proc/self/exe) at
 *                           mproc_init when forkserver is the method then, else at the
 *                           first pool or process that asks; single-threaded, holding
 *                           nothing. Workers
 *                           start nearly as fast as forks, and none of the caller's threads,
 *                           locks or heap is ever in one.
 *   MPROC_START_SPAWN       the worker is this program executed afresh for each worker.
 *                           Slowest to start (the program loads again), the cleanest.
 *
 * With forkserver and spawn the worker does not share the caller's memory: the task and
 * initializer functions are sent by reference (module and offset, checked against the
 * build), inputs and outputs are copied, an initializer's argument travels as
 * initarg_size bytes, and shared memory the tasks use must be attached by name
 * (mproc_shm, mproc_dict) as with Python's spawn. Everything else about a pool is the same.
 *
 * Such a program must call mproc_init(&argc, &argv) at the top of main(), before it does
 * anything a worker must not do again (print, open files, parse its arguments): a process
 * started as a worker (or as the fork server) runs main() from the start and becomes what
 * it was started to be inside that call, which then never returns. In the program itself
 * mproc_init returns at once. A worker whose program never calls it fails the pool's start
 * with -MPROC_ENOINIT (and a message naming the call) instead of running the program's
 * main() a second time to its end; one that does not reach it within 10 s is killed and
 * fails the same way.
 */
#ifndef MPROC_INIT_H
#define MPROC_INIT_H

#include "mproc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mproc_start_method {
    MPROC_START_DEFAULT = 0, /* in pool options: the process-wide default (fork unless set) */
    MPROC_START_FORK,
    MPROC_START_FORKSERVER,
    MPROC_START_SPAWN,
    MPROC_START_MPI /* pools only: one worker on each other rank of an MPI job (link with
                       libmproc-mpi; see mproc/mpi.h). As a process-wide default, process
                       objects still fork. */
} mproc_start_method;

/* At the top of main(). Removes mproc's own arguments from argv (and *argc), which are:
 *   --mproc-start=fork|forkserver|spawn|mpi   the process-wide start method (as
 *                                         mproc_set_start_method); a test runner passes it
 *                                         to run a program's pools under each method.
 * In a process started as a worker or a fork server it does not return. argc and argv may
 * be NULL (nothing is removed). 0, or -EINVAL for an unknown start method named in argv
 * (argv is left as it was). Call it once, from the main thread. */
MPROC_API int mproc_init(int *argc, char ***argv);

/* The process-wide start method of pools whose options leave .start at 0. 0, or -EINVAL
 * for an unknown method (MPROC_START_DEFAULT sets fork). Python's set_start_method. */
MPROC_API int mproc_set_start_method(mproc_start_method m);

/* The process-wide start method (never MPROC_START_DEFAULT). */
MPROC_API mproc_start_method mproc_get_start_method(void);

/* The method's name ("fork", "forkserver", "spawn", "mpi"), or NULL for an unknown one. */
MPROC_API const char *mproc_start_method_name(mproc_start_method m);

#ifdef __cplusplus
}
#endif

#endif
