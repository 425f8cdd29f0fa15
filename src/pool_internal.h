/* src/pool_internal.h - what the pool's files share (src/pool*.c, src/fnref.c).
 *
 * The objects and who owns them (see the DESIGN block of src/pool.c):
 *   struct pool_shm     one anonymous shared mapping: the supervisor's doorbell flag and
 *                       one slot per worker (progress words the worker writes).
 *   struct worker       process-local, owned by the supervisor thread: the process, its
 *                       task channel (mproc_queue) and result ring (pool_ring in the
 *                       shared mapping), the FIFO of segments sent to it.
 *   struct job          one submission (apply, map, imap): its inputs, cursor, retries,
 *                       outcome counters; protected by the pool mutex.
 *   mproc_result        the caller's handle of an apply or map job.
 *   mproc_imap          the caller's handle of an imap job: a window of item slots.
 */
#ifndef MPROC_POOL_INTERNAL_H
#define MPROC_POOL_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "fnref.h"
#include "sys/bell.h"
#include "sys/procmem.h"

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

/* CHUNK_DIRECT: a blocking apply posted by the caller itself (src/pool_direct.c): the
 * worker takes its slot's mailbox and answers there, not in its result ring. */
enum { CHUNK_IN = 1u, CHUNK_OUT = 2u, CHUNK_DIRECT = 4u, CHUNK_RIN = 8u, CHUNK_ROUT = 16u };

/* A slot's `reach`: whether its worker can read and write the pool process's memory. It
 * tries with the first CHUNK_RIN or CHUNK_ROUT chunk it gets (not at its start, which
 * pool.create would pay for, and only in pools that map large arrays); until then the
 * supervisor assumes it can (a chunk it cannot read comes back, REC_BOUNCE). */
enum { REACH_UNTRIED = 0u, REACH_YES = 1u, REACH_NO = 2u };

/* The exit status of a worker whose doorbell (the supervisor's eventfd) a task closed:
 * it can no longer wake the supervisor, so it leaves, and a replacement starts. */
#define WORKER_LOST_FD 125

/* Bytes of a chunk before its inputs: the header and the fnref padded to 8. */
static inline size_t mproc__chunk_head(uint32_t fnref_len)
{
    return sizeof(struct pool_chunk) + ((fnref_len + 7u) & ~(size_t)7);
}

/* REC_RESULT: one task's outcome. REC_BATCH: `count` successful fixed-size tasks of one
 * chunk, in the order they were sent, their outputs back to back (out_len = count *
 * out_cap, or 0 when written in place). A worker holds successful outcomes back to
 * publish them as one batch (src/pool_worker.c); a failure is always its own REC_RESULT,
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
    int64_t busy_ns; /* REC_BATCH: from its first task's start to its publication */
};

/* ---- shared memory ------------------------------------------------------------------- */

/* A worker's result ring (src/pool_ring.c); its bytes live elsewhere in the mapping. */
struct pool_ring {
    _Alignas(128) _Atomic uint64_t tail; /* bytes published (worker) */
    _Alignas(128) _Atomic uint64_t head; /* bytes consumed (supervisor) */
    struct mproc__bell space;            /* the worker sleeps for room */
};

/* A slot's mailbox for direct applies (src/pool_direct.c). `state`:
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

/* Write a mailbox's outcome (msg truncated to POOL_MSG_MAX - 1 bytes); its state is
 * published afterwards by the caller of this. */
static inline void mproc__direct_answer(struct pool_direct *d, int code, const char *msg,
                                        size_t out_len)
{
    size_t ml = code != 0 && msg != NULL ? strlen(msg) : 0;
    if (ml >= POOL_MSG_MAX)
        ml = POOL_MSG_MAX - 1;
    d->code = code;
    d->out_len = code == 0 ? out_len : 0;
    d->msg_len = (uint32_t)ml;
    memcpy(d->msg, msg != NULL ? msg : "", ml);
    d->msg[ml] = '\0';
}

/* Wake the mailbox's caller if it sleeps (after the state moved, by a seq_cst CAS). */
static inline void mproc__direct_wake(struct pool_direct *d)
{
    mproc__bell_ring(&d->bell, true);
}

struct pool_slot {
    _Alignas(128) _Atomic uint64_t started; /* tasks begun by this incarnation */
    _Atomic uint64_t ended;                 /* ... of them done with: outcome held in a
                                               batch or published (ended < started: the
                                               started-th is in flight) */
    _Atomic int64_t started_ns;             /* when the last one began */
    _Atomic uint32_t retiring;              /* it ran its maxtasksperchild and exits on
                                               purpose: told here, since a host that
                                               reaps every child may take its status */
    _Alignas(64) _Atomic uint32_t reach;    /* REACH_*: the worker can read and write the
                                               pool process's memory (CHUNK_RIN,
                                               CHUNK_ROUT); apart from `started`, written
                                               per task */
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

/* Staging areas (src/pool_dispatch.c): POOL_STAGES per worker slot, where the supervisor
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

/* ---- process-local ------------------------------------------------------------------ */

enum job_kind { JOB_APPLY, JOB_MAP, JOB_IMAP };

/* A failed run of items: [first, first + count) all with code and msg. */
struct pool_fail {
    size_t first, count;
    int code;
    char *msg; /* owned */
};

struct pool_fails {
    struct pool_fail *v;
    size_t n, cap;
    size_t items; /* sum of count */
};

struct run {
    size_t first, count;
};

struct job {
    uint64_t id;
    enum job_kind kind;
    unsigned char fnref[MPROC__FNREF_MAX];
    uint32_t fnref_len;
    double timeout; /* 0: none */
    size_t chunksize;
    bool paced;      /* map, imap with the default chunksize: chunks follow the
                        measured time per task (mproc__pool_paced) */
    size_t pace_cap; /* paced: the most tasks per chunk (imap: a fair share of the
                        window) */
    int64_t task_ns; /* paced: the estimate (0: none yet) */
    size_t in_size, out_size;
    size_t n;                /* tasks (imap: grows as the generator produces) */
    const unsigned char *in; /* map: the caller's inputs; apply: in_owned */
    unsigned char *in_owned; /* apply: a copy of the input */
    bool inplace_in;         /* map: in lies in memory the workers share (zero-copy) */
    bool inplace_out;        /* map: out likewise: workers write it directly */
    size_t failed;           /* outcomes that are failures */
    unsigned char *out;      /* map: the caller's outputs */
    size_t next;             /* first index never dispatched */
    struct run *retry;       /* runs of tasks to dispatch again (sent to a worker that
                                died before beginning them), in order */
    size_t nruns, capruns;
    size_t nretry;      /* tasks in those runs */
    size_t outstanding; /* dispatched without an outcome yet */
    size_t finished;    /* with an outcome */
    bool cancelled;     /* no more dispatching: the rest is cancelled */
    bool sealed;        /* n is final (imap: generator finished) */
    mproc_result *res;  /* apply, map */
    mproc_imap *it;     /* imap */
    struct job *prev, *nextjob;
};

struct mproc_result {
    _Atomic uint32_t ready;  /* 0 -> 1 once */
    struct mproc__bell bell; /* waiters sleep on it (process-private); rung when ready */
    bool spin;               /* waiters spin briefly first: the pool's CPUs allow it */
    _Atomic int refs;        /* the caller's handle + the pool's */
    enum job_kind kind;
    size_t n;
    int code;                /* first failure by item number, 0 if none */
    char *msg;               /* its message ("" if none); owned */
    struct pool_fails fails; /* sorted by first once ready */
    void *data;              /* apply: the output (owned) */
    size_t len;
    mproc_result_cb callback, error_callback;
    void *cb_arg;
    struct job *job;                /* while not ready; under the pool mutex */
    mproc_pool *pool;               /* the pool, while not ready */
    struct mproc_result *done_next; /* the supervisor's completion list */
};

enum { SLOT_EMPTY = 0, SLOT_QUEUED, SLOT_DONE };

struct imap_slot {
    int state;
    int code;
    size_t index;
    char *msg;             /* owned; NULL when none */
    unsigned char *input;  /* in_size bytes */
    unsigned char *output; /* out_size bytes (same allocation as input) */
};

struct mproc_imap {
    mproc_pool *pool;
    struct job *job; /* NULL once the job is finished and detached */
    _Atomic int refs;
    struct mproc__bell bell; /* next() sleeps on it; rung when an item completes or the
                                job ends (process-private) */
    bool unordered;
    mproc_imap_gen_fn gen;
    void *gen_arg;
    int gen_code; /* the generator's failure, reported once */
    bool gen_reported;
    bool gen_done;
    bool gen_waiting; /* the supervisor found no room for the generator: a reader
                         that makes enough kicks it */
    size_t window;
    size_t in_size, out_size;
    struct imap_slot *slots;
    /* ordered: item i lives in slot i % window. Unordered: in any empty slot, so one slow
       item holds back nothing but its own slot; `where` finds it (see pool_result.c) */
    uint32_t *free_slots; /* unordered: a stack of the empty slots */
    size_t nfree;
    struct imap_where *where;
    size_t where_mask;
    unsigned where_shift; /* 64 - log2 of the table's size */
    size_t produced;      /* items generated */
    size_t returned;      /* items handed to the caller */
    size_t next_ordered;  /* ordered: the next index to return */
    size_t *doneq;        /* unordered: completed indices, FIFO ring of window entries */
    size_t dq_head, dq_len;
    char *last_msg; /* the message handed out by the last next() */
};

struct seg {
    struct job *job;
    size_t first, count; /* contiguous run of task indices */
    size_t done;         /* outcomes received so far (from the front) */
    int stage;           /* the staging area it uses, or -1 */
    size_t out_off;      /* staged outputs: their offset in that area; SIZE_MAX: none */
};

#define POOL_SEGS 64 /* most chunks queued to one worker (tiny tasks: see dispatch) */

enum wstate { W_NONE, W_STARTING, W_READY, W_DEAD };

struct worker {
    int slot;
    enum wstate state;
    pid_t pid;
    int pidfd;
    mproc_queue *in;
    bool live;                  /* a process runs (or ran, unreaped) in this slot: ring is valid */
    uint64_t received;          /* result records of this incarnation */
    uint64_t sent;              /* tasks sent to this incarnation */
    struct seg segs[POOL_SEGS]; /* FIFO of chunks sent (a ring from seg0), oldest first */
    bool stage_busy[POOL_STAGES]; /* a chunk not yet settled uses that staging area */
    int seg0, nsegs;
    int64_t rate_t0;      /* the supervisor's estimate of this worker's time per task: */
    uint64_t rate_n0;     /*   a window start (time, received) ... */
    int64_t task_ns;      /*   ... and the last estimate (0: none yet) */
    uint64_t last_job;    /* the job of the last outcome received */
    bool timed_out;       /* we killed it for a time limit ... */
    uint64_t timeout_seq; /* ... while it ran its started-th task */
    int64_t start_ns;     /* when it was forked */
    int init_code;        /* REC_READY's code (or ours: its start ran past init_timeout) */
    char init_msg[POOL_MSG_MAX];
    mproc_worker_stats st;
};

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
};

enum pool_phase { P_STARTING, P_RUNNING, P_STOPPING, P_DONE };

struct mproc_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* start result, thread finished */
    pthread_t thread;
    bool thread_started;
    struct pool_shm *shm;
    size_t shm_size;
    int nworkers;
    struct worker *workers;
    struct worker_arg *wargs;
    int *keep_fds; /* descriptors above 2 workers keep (ascending): the doorbell and
                      the caller's inherit_fds; they close every other one */
    size_t nkeep;
    mproc_pool_opts o; /* resolved */
    size_t msg_max;    /* largest message on a channel */
    sigset_t caller_mask;
    bool spin;              /* more than one usable CPU: the supervisor spins briefly */
    int cpus;               /* usable CPUs at creation */
    bool spin_wait;         /* more than two: callers waiting for a result too */
    bool direct;            /* blocking applies may go straight to an idle worker */
    unsigned direct_next;   /* the worker of the last direct apply, looked at first (mu) */
    _Atomic uint64_t kicks; /* caller-side events since the start */
    /* under mu */
    int start_rc; /* 1 while starting, then 0 or the failure */
    char start_msg[POOL_MSG_MAX];
    enum pool_phase phase;
    bool closed, joining, terminating;
    bool finished;   /* the supervisor thread has left its loop */
    bool check_jobs; /* a caller cancelled: look for jobs that are complete */
    int broken;      /* -MPROC_EBROKEN once broken */
    char broken_msg[POOL_MSG_MAX];
    struct job *jobs, *jobs_tail; /* active jobs, oldest first */
    uint64_t next_job_id;
    mproc_pool_stats st;
    struct mproc__shared_range *ranges; /* shared mappings when the workers were forked */
    size_t nranges;
    int64_t *deaths; /* ring of unplanned death times (max_restarts + 1) */
    size_t ndeaths;
};

/* ---- between the files ---------------------------------------------------------------- */

/* src/pool_worker.c: the worker process's main function (arg: struct worker_arg *). */
int mproc__pool_worker_main(void *arg);

/* src/pool_super.c: the supervisor thread. */
void *mproc__pool_supervisor(void *arg);

/* The supervisor thread's state during a pass (all under the pool mutex). */
struct sup {
    mproc_pool *p;
    unsigned char *buf;   /* a record that wraps in its ring, msg_max bytes */
    unsigned char *chunk; /* a chunk being built, msg_max bytes */
    mproc_result *done;   /* results to deliver after the pass */
    bool progress;        /* something happened in this pass */
    int64_t last_check;   /* last look at the pidfds */
    int64_t spawn_retry;  /* when to retry a failed fork */
    struct pollfd *pfd;   /* eventfd + one per worker */
};

/* snprintf that may truncate (messages are capped on purpose). */
__attribute__((format(printf, 3, 4))) static inline void mproc__pool_say(char *buf, size_t n,
                                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* src/pool_settle.c: outcomes. */
struct seg *mproc__pool_seg_at(struct worker *w, int k);        /* k-th chunk not settled */
struct seg *mproc__pool_front(struct worker *w, size_t *index); /* the next task's chunk */
void mproc__pool_pop_tasks(struct worker *w, size_t n);         /* settle n of the front chunk */
void mproc__pool_pop_task(struct worker *w);
/* One task's outcome (code != 0: failure with msg; else out/len). */
void mproc__pool_outcome(struct sup *s, struct job *j, size_t index, int code, const char *msg,
                         const void *out, size_t len, struct worker *w);
/* Everything in: detach j, queue its result for delivery. */
void mproc__pool_maybe_finish(struct sup *s, struct job *j);
/* Fail j's tasks never dispatched (and its retries); returns how many. */
size_t mproc__pool_fail_pending(struct sup *s, struct job *j, int code, const char *msg);
/* Read and record every record w published. */
void mproc__pool_drain(struct sup *s, struct worker *w);
/* Requeue [first, first + count) of j at the front (false: no memory); requeue every
 * unsettled task of w; fail whatever requeue could not take. */
bool mproc__pool_requeue_run(struct job *j, size_t first, size_t count);
/* The same, and where there is no memory for it those tasks fail with code and msg
 * (outcomes from w; j may be finished and gone then). true: requeued. */
bool mproc__pool_requeue_or_fail(struct sup *s, struct job *j, size_t first, size_t count, int code,
                                 const char *msg, struct worker *w);
void mproc__pool_requeue(struct worker *w);
void mproc__pool_fail_assigned(struct sup *s, struct worker *w, int code, const char *msg);

/* src/pool_direct.c: blocking applies straight to an idle worker. */
/* 1: not taken (no idle worker; use the usual path), else 0 or the outcome's code. */
int mproc__pool_direct_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len,
                             void *out, size_t cap, size_t *out_len, int64_t deadline);
/* w's process is gone (reaped): settle its mailbox. retry: a task it never began goes
 * back to its caller to be submitted again; else it fails with code like a begun one. */
void mproc__pool_direct_settle(struct sup *s, struct worker *w, int code, const char *msg,
                               bool retry);

/* src/pool_life.c: workers' lives. */
int mproc__pool_spawn_worker(struct sup *s, struct worker *w);
void mproc__pool_respawn(struct sup *s, struct worker *w);
void mproc__pool_check_deaths(struct sup *s);
void mproc__pool_stop_workers(struct sup *s, int code, const char *msg);
void mproc__pool_fail_everything(struct sup *s, int code, const char *msg);
/* Kill workers past a task's limit; the earliest deadline still ahead. */
int64_t mproc__pool_check_timeouts(struct sup *s);

/* src/pool_dispatch.c: feeding the workers. */
void mproc__pool_generate(struct sup *s);
void mproc__pool_dispatch(struct sup *s);

/* Wake the supervisor after a caller-side change (submission, cancel, close...). */
void mproc__pool_kick(mproc_pool *p);

/* May the pool take new work? 0, the broken code, or -MPROC_ECLOSED. Under the mutex. */
int mproc__pool_admit(const mproc_pool *p);

/* src/pool_result.c */
int mproc__result_new(mproc_result **out, enum job_kind kind, size_t n, const mproc_call_opts *o);
void mproc__result_unref(mproc_result *r);
/* Record an outcome of items [first, first + count) (code != 0) in r. Under the mutex. */
int mproc__fails_add(struct pool_fails *f, size_t first, size_t count, int code, const char *msg);
void mproc__fails_release(struct pool_fails *f);
/* Finish r (all outcomes in): sort failures, set code/msg. Does not mark it ready. */
void mproc__result_finish(mproc_result *r);
/* Mark ready, run callbacks, wake waiters, drop the pool's reference. No mutex held. */
void mproc__result_deliver(mproc_result *r);

void mproc__imap_unref(mproc_imap *it);
/* A batch of count tasks of paced job j took busy_ns in its worker. */
void mproc__pool_paced(struct job *j, uint64_t count, int64_t busy_ns);
/* Slot placement (under the mutex): the slot holding item index; the empty slot the next
 * item goes to (NULL: none yet); that slot now holds item `produced` (queued); the caller
 * took the item in slot s. */
int mproc__imap_unordered_init(mproc_imap *it); /* after window and slots are set */
struct imap_slot *mproc__imap_slot(mproc_imap *it, size_t index);
struct imap_slot *mproc__imap_room(mproc_imap *it);
void mproc__imap_place(mproc_imap *it, struct imap_slot *s);
void mproc__imap_release(mproc_imap *it, struct imap_slot *s);
/* An imap item's outcome (under the mutex). */
void mproc__imap_item(mproc_imap *it, size_t index, int code, const char *msg, const void *out);
void mproc__imap_wake(mproc_imap *it);

#endif
