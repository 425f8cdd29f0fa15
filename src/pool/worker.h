/* src/pool/worker.h - a worker process: what it is given at its fork, and its main
 * function (src/pool/worker.c). */
#ifndef MPROC_POOL_WORKER_H
#define MPROC_POOL_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc/pool.h"
#include "mproc/queue.h"
#include "pool/wire.h"

/* What a forked worker needs (prepared before the fork; the child uses its copy). */
struct worker_arg {
    struct pool_shm *shm;
    int slot;
    mproc_queue *in;
    size_t msg_max;
    unsigned maxtasks;
    int pin;
    mproc_pool_init_fn init;
    void *initarg;
    pid_t home;    /* the pool's process (the worker's parent) */
    bool announce; /* report REC_READY after starting (an initializer or pinning can fail
                      there; otherwise the worker counts as ready from its fork) */
    sigset_t mask; /* the caller's signal mask */
    bool timing;   /* measure the phase times into the slot */
};

/* The worker process's main function (arg: struct worker_arg *): returns its exit status. */
int mproc__pool_worker_main(void *arg);

#endif
