/* src/pool/wire.h - what crosses the process boundary between the pool's supervisor and
 * its workers: the messages on a worker's task channel (chunks), the records on its
 * result ring, and the layout of the shared mapping they both use (slots, rings,
 * mailboxes, staging areas). The worker process includes this header and
 * src/pool/worker.h, nothing else of the pool.
 */
#ifndef MPROC_POOL_WIRE_H
#define MPROC_POOL_WIRE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sys/bell.h"

/* ---- wire formats (worker channels) ----------------------------------------------------- */

#define POOL_MSG_MAX 256 /* bytes of a task's failure message, NUL included */

/* A chunk: header, fnref (padded to 8), then count inputs of in_size bytes each (for an
 * apply: one input of in_size bytes). */
struct pool_chunk {
    uint64_t job_id;
    uint64_t first;   /* index of the first task (map/imap item; 0 for apply) */
    uint32_t count;   /* tasks in this chunk */
    uint32_t in_size; /* bytes per input */
    uint32_t out_cap; /* bytes of output space per task */
    uint32_t fnref_len;
    uint32_t fixed;   /* 1: fixed-size output (map, imap): out_len stays out_cap */
    uint32_t timed;   /* the tasks have a time limit: record when each begins */
    uint32_t inplace; /* CHUNK_IN: inputs are read at in_addr, not carried here;
                         CHUNK_OUT: outputs are written at out_addr, not sent back;
                         CHUNK_RIN, CHUNK_ROUT: the same, in the pool process's memory
                         (the worker copies them with process_vm_readv/writev) */
    uint32_t unit;    /* imap: the caller's chunksize (a message may carry several such
                         chunks): outcomes are published at least every unit tasks, so a
                         long task holds back only those of its own chunk; 0: none */
    uint64_t in_addr; /* item i (absolute index) is at in_addr + i * in_size */
    uint64_t out_addr;
};

/* CHUNK_DIRECT: a blocking apply posted by the caller itself (src/pool/transport.c): the
 * worker takes its slot's mailbox and answers there, not in its result ring. */
/* CHUNK_VAR: inputs of any size (map_var), each an 8-byte length, then its bytes, then
 * zeros to a multiple of 8 (mproc__var_size); in_size is 0. */
enum {
    CHUNK_IN = 1u,
    CHUNK_OUT = 2u,
    CHUNK_DIRECT = 4u,
    CHUNK_RIN = 8u,
    CHUNK_ROUT = 16u,
    CHUNK_VAR = 32u
};

static inline size_t mproc__var_size(size_t len)
{
    return 8 + ((len + 7) & ~(size_t)7);
}

/* Does an input of len bytes fit in a chunk's room, packed? (len first: no overflow) */
static inline bool mproc__var_fits(size_t len, size_t room)
{
    return len <= room && mproc__var_size(len) <= room;
}

/* A slot's `reach`: whether its worker can read and write the pool process's memory. It
 * tries with the first CHUNK_RIN or CHUNK_ROUT chunk it gets (not at its start, which
 * pool.create would pay for, and only in pools that map large arrays); until then the
 * supervisor assumes it can (a chunk it cannot read comes back, REC_BOUNCE). */
enum { REACH_UNTRIED = 0u, REACH_YES = 1u, REACH_NO = 2u };

/* The exit status of a worker whose doorbell (the supervisor's eventfd) a task closed:
 * it can no longer wake the supervisor, so it leaves, and a replacement starts. */
#define WORKER_LOST_FD 125

/* The exit statuses of a worker started by spawn or the fork server that could not begin
 * (src/pool/boot.c, src/start/init.c): the supervisor turns each into the pool's start error. */
#define WORKER_NO_INIT 120    /* main() returned without calling mproc_init */
#define WORKER_BOOT_STALE 121 /* the program is another build than the pool's */
#define WORKER_BOOT_MAP 122   /* the pool's memory could not be mapped at its address */
#define WORKER_BOOT_BAD 123   /* the boot message could not be read */

/* Bytes of a chunk before its inputs: the header and the fnref padded to 8. */
static inline size_t mproc__chunk_head(uint32_t fnref_len)
{
    return sizeof(struct pool_chunk) + ((fnref_len + 7u) & ~(size_t)7);
}

/* REC_RESULT: one task's outcome. REC_BATCH: `count` successful fixed-size tasks of one
 * chunk, in the order they were sent, their outputs back to back (out_len = count *
 * out_cap, or 0 when written in place). A worker holds successful outcomes back to
 * publish them as one batch (src/pool/worker.c); a failure is always its own REC_RESULT,
 * published after the batch before it. */
/* REC_BOUNCE: the worker could not read a CHUNK_RIN chunk's inputs and began none of
 * its tasks (index, count: the chunk); they go to another worker, the usual way. */
enum { REC_READY = 1, REC_RESULT = 2, REC_BATCH = 3, REC_BOUNCE = 4 };

/* A result record: header, then msg_len message bytes, then out_len output bytes. */
struct pool_rec {
    uint32_t kind;
    int32_t code; /* 0 ok, else the task's (or the initializer's) code */
    uint32_t msg_len;
    uint32_t out_len;
    uint64_t job_id;
    uint64_t index;  /* REC_BATCH: the index of its first task */
    uint64_t count;  /* REC_BATCH: tasks in it; else 1 */
    int64_t busy_ns; /* REC_BATCH: from its first task's start to its publication;
                    REC_RESULT: how long its task ran (0: not measured) */
};

/* ---- shared memory ------------------------------------------------------------------- */

/* A worker's result ring (src/pool/ring.c); its bytes live elsewhere in the mapping. */
struct pool_ring {
    _Alignas(128) _Atomic uint64_t tail; /* bytes published (worker) */
    _Alignas(128) _Atomic uint64_t head; /* bytes consumed (supervisor) */
    struct mproc__bell space;            /* the worker sleeps for room */
};

/* A slot's mailbox for direct applies (src/pool/transport.c). `state`:
 * FREE -> POSTED (caller, under the pool mutex) -> RUNNING (worker) -> DONE (worker, or
 * the supervisor after the worker died) -> FREE (caller, after reading it). POSTED ->
 * RETRY (supervisor: the worker died before it began; the caller submits again the usual
 * way). POSTED/RUNNING -> ABANDONED (caller gave up waiting) -> FREE (whoever finishes).
 * The output bytes live elsewhere in the mapping (mproc__direct_data). */
enum { D_FREE = 0, D_POSTED, D_RUNNING, D_DONE, D_RETRY, D_ABANDONED };

struct pool_direct {
    _Alignas(128) _Atomic uint32_t state;
    struct mproc__bell bell; /* the caller sleeps on it; rung when state moves */
    int32_t code;            /* DONE: the outcome */
    uint32_t msg_len;
    uint64_t out_len;
    _Atomic uint64_t done, failed; /* outcomes the workers of this slot gave (stats) */
    char msg[POOL_MSG_MAX];
};

struct pool_slot {
    _Alignas(128) _Atomic uint64_t started; /* tasks begun by this incarnation */
    _Atomic uint64_t ended;                 /* ... of them done with: outcome held in a
                                               batch or published (ended < started: the
                                               started-th is in flight) */
    _Atomic int64_t started_ns;             /* when the last one began */
    _Atomic uint32_t retiring;              /* it ran its maxtasksperchild and exits on
                                           purpose: told here, since a host that
                                           reaps every child may take its status */
    _Atomic uint32_t booted;                /* spawn, forkserver: it reached mproc_init
                                               and mapped this memory */

    _Alignas(64) _Atomic uint32_t reach;    /* REACH_*: the worker can read and write the
                                               pool process's memory (CHUNK_RIN,
                                               CHUNK_ROUT); apart from `started`, written
                                               per task */
    _Alignas(64) _Atomic uint64_t fault_ns; /* phase times (.phase_times), all of this */
    _Atomic uint64_t copy_ns;               /* slot's incarnations: written by its */
    _Atomic uint64_t run_ns;                /* worker only, read for the stats */
    _Atomic uint64_t publish_ns;
    struct pool_ring ring;
    struct pool_direct direct;
};

struct pool_shm {
    _Alignas(128) struct mproc__bell sup_bell; /* the supervisor may be asleep in poll:
                                                  a waker that claims it writes evfd */
    int evfd;                                  /* its doorbell (eventfd) */
    size_t ring_cap;                           /* bytes of each result ring (power of 2) */
    size_t ring_off;                           /* where slot 0's ring bytes start */
    size_t direct_cap;                         /* bytes of each slot's direct output */
    size_t direct_off;                         /* where slot 0's direct output starts */
    size_t stage_cap;                          /* bytes of each staging area */
    size_t stage_off;                          /* where slot 0's first one starts */
    struct pool_slot slots[];
};

static inline unsigned char *mproc__ring_data(struct pool_shm *shm, int slot)
{
    return (unsigned char *)shm + shm->ring_off + (size_t)slot * shm->ring_cap;
}

static inline unsigned char *mproc__direct_data(struct pool_shm *shm, int slot)
{
    return (unsigned char *)shm + shm->direct_off + (size_t)slot * shm->direct_cap;
}

/* Staging areas (src/pool/transport.c): POOL_STAGES per worker slot, where the supervisor
 * puts a large map chunk's inputs and the worker writes its outputs, both in place. */
#define POOL_STAGES 2

static inline unsigned char *mproc__stage_data(struct pool_shm *shm, int slot, int k)
{
    return (unsigned char *)shm + shm->stage_off +
           ((size_t)slot * POOL_STAGES + (size_t)k) * shm->stage_cap;
}

void mproc__ring_reset(struct pool_ring *r);
/* Publish one record (blocks while the ring is full). 0 or -EMSGSIZE. *head_seen: the
 * writer's cache of head. */
int mproc__ring_put(struct pool_ring *r, unsigned char *data, size_t cap, uint64_t *head_seen,
                    const void *rec, size_t len);
/* The same, -EAGAIN at once when the ring has no room for it (the relay of a pool on MPI
 * must not wait: src/pool/remote.c). */
int mproc__ring_put_nowait(struct pool_ring *r, unsigned char *data, size_t cap,
                           uint64_t *head_seen, const void *rec, size_t len);
/* Consumer side, in batches: read records from *pos up to tail (from mproc__ring_tail)
 * (1, 0 at tail, -MPROC_ECORRUPT), then release them all at once. A record in one piece
 * is not copied: *rec points into the ring (valid until mproc__ring_release); one that
 * wraps is copied into buf (bufcap bytes: the largest record). */
uint64_t mproc__ring_head(struct pool_ring *r);
uint64_t mproc__ring_tail(struct pool_ring *r);
int mproc__ring_next(const unsigned char *data, size_t cap, uint64_t *pos, uint64_t tail, void *buf,
                     size_t bufcap, const unsigned char **rec, size_t *len);
void mproc__ring_release(struct pool_ring *r, uint64_t pos);
bool mproc__ring_pending(struct pool_ring *r);

/* snprintf that may truncate (messages are capped on purpose). */
__attribute__((format(printf, 3, 4))) static inline void mproc__pool_say(char *buf, size_t n,
                                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

#endif
