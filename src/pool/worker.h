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
#include "sys/sys.h"

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
    const struct worker_arg *origin; /* where this block is in the pool's process (a
                                        worker that did not fork has a copy elsewhere) */
};

/* Phase times (.phase_times): a clock read at a phase's start, and its length added to
 * one of the worker's slot counters at its end (only that worker writes them). */
static inline int64_t mproc__phase_start(bool timing)
{
    return timing ? mproc__sys_now_ns() : 0;
}

static inline void mproc__phase_end(bool timing, _Atomic uint64_t *acc, int64_t t0)
{
    if (timing)
        atomic_store_explicit(acc,
                              atomic_load_explicit(acc, memory_order_relaxed) +
                                  (uint64_t)(mproc__sys_now_ns() - t0),
                              memory_order_relaxed);
}

/* The worker's end of the transport (src/pool/transport.c): what it keeps to read a
 * chunk's inputs and write its outputs wherever the supervisor's plan put them. */
#define CARRY_MAPPED 16

struct carry {
    const struct worker_arg *a;
    struct pool_slot *slot;
    bool timing;
    int home_mem;                /* the pool process's memory (reach), or -1 */
    struct mproc__fd_id home_id; /* what home_mem named (a task may close it) */
    bool home_tried;             /* the first reach chunk asked whether it works */
    struct {
        uintptr_t start, end;
        bool write;
    } mapped[CARRY_MAPPED]; /* shared ranges already mapped in */
    int nmapped;
};

void mproc__carry_init(struct carry *cr, const struct worker_arg *a);
/* Where chunk c's inputs are: *src is its first task's input (in place, or in items, read
 * there from the caller's memory when the chunk says so). 0, or < 0: they could not be
 * read (the chunk goes back unbegun: REC_BOUNCE). */
int mproc__carry_in(struct carry *cr, const struct pool_chunk *c, unsigned char *items,
                    const unsigned char **src);
/* Where chunk c's first output goes in place (NULL: in the result record); *back: where
 * a batch's outputs are to be written in the caller's memory (item 0's address), or 0. */
unsigned char *mproc__carry_out(struct carry *cr, const struct pool_chunk *c, uint64_t *back);
/* Write len bytes of outputs at addr in the caller's memory. false: they go in the record
 * (the supervisor copies them). */
bool mproc__carry_write(struct carry *cr, uint64_t addr, const void *buf, size_t len);

/* A caller's own task (CHUNK_DIRECT): where its output goes; then its outcome, told to
 * the caller waiting for it. */
unsigned char *mproc__carry_direct_begin(struct carry *cr);
void mproc__carry_direct_answer(struct carry *cr, int code, const char *msg, size_t out_len);

/* The worker process's main function (arg: struct worker_arg *): returns its exit status. */
int mproc__pool_worker_main(void *arg);

#endif
