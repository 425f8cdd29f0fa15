/* src/pool/pool.h - the pool's process-local state, shared by the files of src/pool/
 * that run in the caller's process (the public API, the supervisor thread, results).
 *
 * The objects and who owns them (docs/design.md, "The pool"):
 *   struct worker       owned by the supervisor thread: the process, its task channel
 *                       (mproc_queue) and result ring (in the shared mapping, wire.h),
 *                       the FIFO of segments sent to it.
 *   struct job          one submission (apply, map, imap): its inputs, cursor, retries,
 *                       outcome counters; protected by the pool mutex.
 *   mproc_result        the caller's handle of an apply or map job.
 *   mproc_imap          the caller's handle of an imap job: a window of item slots.
 */
#ifndef MPROC_POOL_POOL_H
#define MPROC_POOL_POOL_H

#include <poll.h>
#include <pthread.h>

#include "fnref.h"
#include "pool/wire.h"
#include "pool/worker.h"
#include "sys/procmem.h"

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

/* A placed map's tasks never dispatched in one worker slot's part: [next, end). */
struct span {
    size_t next, end;
};

struct job_ops;
struct remote;
struct sup;
struct transport_ops;

struct worker;

/* How a worker's process comes to be and how its end is read, one per way of starting
 * workers: fork (src/pool/life.c), a fork of the supervisor thread, which has the
 * caller's memory; boot (src/pool/boot.c), the forkserver and spawn start methods, a
 * process of this program started afresh; remote (src/pool/remote.c), a worker on
 * another process of an MPI job. The supervisor learns of a worker's end from w->pidfd
 * (readable then), whatever the launcher. */
struct launcher_ops {
    bool forks_caller; /* the worker is a fork of this process and has the caller's
                          mappings (in-place arrays); else the pool's mapping and the
                          channels are memfds it maps itself, and it reports REC_READY
                          once booted (its start can fail) */
    const struct transport_ops *transport;         /* how chunks travel (NULL: the local one) */
    int (*start)(struct sup *s, struct worker *w); /* w->pid, w->pidfd */
    int (*reap)(struct sup *s, struct worker *w, int *code); /* its status, or < 0 */
    /* Optional (NULL: none, or the local way). How many workers a pool asking for `asked`
       (0: the launcher's choice) gets, or < 0 with why in msg: */
    int (*size)(int asked, char *msg, size_t n);
    /* before the supervisor starts: set p->remote up (0, or < 0 with why in msg); after
       it finished: tear it down */
    int (*open)(mproc_pool *p, char *msg, size_t n);
    void (*close)(mproc_pool *p);
    void (*kill)(struct sup *s, struct worker *w); /* SIGKILL (NULL: through w->pidfd) */
    /* no more chunks: w exits once it ran what it was sent (NULL: its channel closes) */
    void (*wind_down)(struct sup *s, struct worker *w);
    /* w's end came with its host's: why (the pool breaks: no replacement can start
       there); NULL while the host lives */
    const char *(*lost)(struct sup *s, struct worker *w);
    /* the remote transport: a chunk message on its way to w */
    void (*post)(struct sup *s, struct worker *w, const void *chunk, size_t len);
};

extern const struct launcher_ops mproc__launcher_fork, mproc__launcher_boot, mproc__launcher_remote;

/* A submission; written only by src/pool/job.c (see there). */
struct job {
    uint64_t id;
    const struct job_ops *ops; /* what its kind does (apply, map, imap) */
    unsigned char fnref[MPROC__FNREF_MAX];
    uint32_t fnref_len;
    double timeout; /* 0: none */
    size_t chunksize;
    bool paced;      /* map, imap with the default chunksize: chunks follow the
                        measured time per task (mproc__pool_paced) */
    size_t pace_cap; /* paced: the most tasks per chunk (imap: a fair share of the
                        window) */
    size_t hold_cap; /* the most tasks one worker may hold beyond its first chunks
                        (imap: a fair share of the window; else SIZE_MAX) */
    int64_t task_ns; /* paced: the estimate (0: none yet) */
    size_t in_size, out_size;
    size_t n;                /* tasks (imap: grows as the generator produces) */
    const unsigned char *in; /* map: the caller's inputs; apply: in_owned */
    unsigned char *in_owned; /* apply: a copy of the input */
    bool inplace_in;         /* map: in lies in memory the workers share (zero-copy) */
    bool inplace_out;        /* map: out likewise: workers write it directly */
    size_t failed;           /* outcomes that are failures */
    unsigned char *out;      /* map: the caller's outputs */
    const mproc_item *items; /* map_var: the caller's inputs ... */
    mproc_item *vout;        /* ... and outputs */
    size_t in_room;          /* map_var, imap_var: the most bytes of packed inputs in a chunk */
    struct item_slab *slab;  /* map_var: where its next outputs go (src/pool/items.c) */
    size_t next;             /* first index never dispatched (not placed) */
    struct span *spans;      /* placed (a map over shared arrays): one part per worker
                                slot, the tasks never dispatched (src/pool/dispatch.c) */
    size_t nspans;           /* 0: not placed */
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
    _Atomic int evfd;               /* mproc_result_fd's (-1: none asked for) */
};

enum { SLOT_EMPTY = 0, SLOT_QUEUED, SLOT_DONE };

struct imap_slot {
    int state;
    int code;
    size_t index;
    char *msg;             /* owned; NULL when none */
    unsigned char *input;  /* in_size bytes (imap_var: in_len, its own allocation) */
    unsigned char *output; /* out_size bytes (same allocation as input; imap_var: out_len,
                              its own) */
    size_t in_len, out_len;
};

struct mproc_imap {
    mproc_pool *pool;
    struct job *job; /* NULL once the job is finished and detached */
    _Atomic int refs;
    struct mproc__bell bell; /* next() sleeps on it; rung when an item completes or the
                                job ends (process-private) */
    bool unordered;
    mproc_imap_gen_fn gen;
    mproc_imap_var_gen_fn vgen; /* imap_var (then in_size and out_size are 0) */
    size_t in_room;             /* imap_var: the most bytes of one packed input */
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
       item holds back nothing but its own slot; `where` finds it (see src/pool/result.c) */
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

/* A worker slot as the supervisor sees it: slot and transport set at the pool's creation,
 * then one part per owner (below), each written by its file only. */

struct worker {
    int slot;
    const struct transport_ops *transport; /* the pool's (release needs it per worker) */
    /* the process in the slot: src/pool/life.c's */
    enum wstate state;
    pid_t pid;
    int pidfd;
    mproc_queue *in;
    int in_fd;            /* spawn, forkserver: the memfd behind `in`; else -1 */
    bool live;            /* a process runs (or ran, unreaped) in this slot: ring is valid */
    bool timed_out;       /* we killed it for a time limit ... */
    uint64_t timeout_seq; /* ... while it ran its started-th task */
    int64_t start_ns;     /* when it was forked */
    int init_code;        /* REC_READY's code (or ours: its start ran past init_timeout) */
    char init_msg[POOL_MSG_MAX];
    uint64_t restarts; /* times this slot's worker was replaced */
    /* what it holds: src/pool/assigned.c's */
    struct {
        uint64_t received;          /* result records of this incarnation */
        uint64_t sent;              /* tasks sent to this incarnation */
        struct seg segs[POOL_SEGS]; /* FIFO of chunks sent (a ring from seg0), oldest first */
        int seg0, nsegs;
        int64_t rate_t0;       /* the supervisor's estimate of this worker's time per task: */
        uint64_t rate_n0;      /*   a window start (time, received) ... */
        int64_t task_ns;       /*   ... and the last estimate (0: none yet) */
        uint64_t last_job;     /* the job of the last outcome received */
        uint64_t done, failed; /* outcomes in this slot, all incarnations (stats) */
    } held;
    /* the staging areas its unsettled chunks use: the local transport's */
    struct {
        bool busy[POOL_STAGES];
    } stages;
};

/* The supervisor's state: one machine, written only by src/pool/super.c (see there for
 * what moves it). Callers wait for FINISHED. */
enum pool_state { S_STARTING, S_RUNNING, S_STOPPING, S_DONE, S_FINISHED };

/* What the callers asked of the supervisor; it only grows (terminate outranks join). */
enum pool_request { REQ_NONE, REQ_JOIN, REQ_TERMINATE };

struct mproc_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* start result, thread finished */
    pthread_t thread;
    bool thread_started;
    struct pool_shm *shm;
    size_t shm_size;
    mproc_start_method start;            /* resolved: never MPROC_START_DEFAULT */
    const struct launcher_ops *launcher; /* how its workers start (from `start`) */
    int shm_fd;            /* spawn, forkserver: the memfd behind shm (workers map it at
                              the same address); else -1 */
    struct remote *remote; /* MPI: the launcher's state (src/pool/remote.c writes it) */
    unsigned char init_ref[MPROC__FNREF_MAX]; /* spawn, forkserver, MPI: the initializer's */
    uint32_t init_ref_len;                    /* reference (0: none) ... */
    void *initarg_copy;                       /* ... and its argument's bytes */
    int nworkers;
    struct worker *workers;
    const struct transport_ops *transport; /* how chunks travel to the workers */
    struct worker_arg *wargs;
    int *keep_fds; /* descriptors above 2 workers keep (ascending): the doorbell and
                      the caller's inherit_fds; they close every other one */
    size_t nkeep;
    mproc_pool_opts o; /* resolved */
    size_t msg_max;    /* largest message on a channel */
    sigset_t caller_mask;
    bool spin;      /* more than one usable CPU: the supervisor spins briefly */
    int cpus;       /* usable CPUs at creation */
    bool spin_wait; /* more than two: callers waiting for a result too */

    _Atomic uint64_t kicks;             /* caller-side events since the start */
    struct mproc__shared_range *ranges; /* shared mappings when the workers were forked */
    size_t nranges;
    /* under mu */
    enum pool_request request; /* the callers' (join, terminate) */
    bool closed;               /* no more submissions (close, terminate) */

    /* Everything above is written by src/pool/api.c; each part below by one file. */
    uint64_t dispatch_ns; /* time spent sending chunks (.phase_times): src/pool/dispatch.c's */
    struct {
        enum pool_state state; /* see src/pool/super.c */
        int start_rc;          /* 1 while starting, then 0 or the failure */
        char start_msg[POOL_MSG_MAX];
        uint64_t settle_ns; /* time spent reading outcomes (.phase_times) */
    } sup;                  /* the supervisor's (src/pool/super.c), under mu */
    struct {
        struct job *head, *tail; /* active jobs, oldest first */
        uint64_t next_id;
        bool look; /* a job may be cancelled or complete: the supervisor looks (sweep) */
        uint64_t submitted, done, failed; /* tasks (the stats) */
    } jobs;                               /* src/pool/job.c's, under mu */
    struct {
        int broken; /* -MPROC_EBROKEN once broken */
        char broken_msg[POOL_MSG_MAX];
        int start_fail; /* a worker died while the pool started: its cause */
        char start_msg[POOL_MSG_MAX];
        uint64_t restarts;
        int64_t spawn_retry; /* when to retry a failed fork */
        int64_t looked;      /* the last look at the pidfds */
        int64_t *deaths;     /* ring of unplanned death times (max_restarts + 1) */
        size_t ndeaths;
    } life; /* the workers' lives (src/pool/life.c), under mu */
    struct {
        unsigned next;    /* the worker of the last direct apply, looked at first */
        uint64_t posted;  /* direct applies taken by a worker (less those sent back) */
        uint64_t settled; /* ... and failed by the supervisor (their worker died) */
    } tp;                 /* the local transport's own (src/pool/transport.c), under mu */
};

/* ---- between the files ---------------------------------------------------------------- */

/* src/pool/super.c: the supervisor thread. */
void mproc__pool_sup_init(mproc_pool *p); /* at creation, before the thread */
void *mproc__pool_supervisor(void *arg);
struct sup;
void mproc__sup_moved(struct sup *s); /* something moved in this pass: another pass follows */
void mproc__sup_deliver(struct sup *s, mproc_result *r); /* r is complete: deliver it */

/* The supervisor thread's state during a pass (all under the pool mutex), on its stack
 * and written by src/pool/super.c only; the pass's callees report through
 * mproc__sup_moved and mproc__sup_deliver, and use `buf`, `chunk` and `pfd` as scratch
 * space. */
struct sup {
    mproc_pool *p;
    unsigned char *buf;   /* a record that wraps in its ring, msg_max bytes */
    unsigned char *chunk; /* a chunk being built, msg_max bytes */
    mproc_result *done;   /* results to deliver after the pass */
    bool progress;        /* something happened in this pass */
    bool look;            /* a poll returned: look at the pidfds now */

    struct pollfd *pfd; /* eventfd + one per worker */
};

/* src/pool/job.c: a submission (under the pool mutex). */

/* What a kind of job does (apply, map, imap): the only place they differ. */
struct job_ops {
    enum job_kind kind;
    bool fixed;     /* fixed-size outputs (out_size each); else up to the channel's room */
    bool staged;    /* large chunks may travel by reach or staging (maps) */
    bool known_end; /* n is known from the start: the last chunks get small */
    bool units;     /* outcomes are published every caller's chunk (imap: a reader waits) */
    bool var;       /* inputs of any size, packed in the chunk with their lengths (CHUNK_VAR) */
    /* how many of count tasks from first one chunk can hold */
    size_t (*contiguous)(const struct job *j, size_t first, size_t count);
    /* copy the inputs of [first, first + count) to dst */
    void (*inputs)(const struct job *j, size_t first, size_t count, unsigned char *dst);
    /* the bytes those inputs take in a chunk */
    size_t (*in_bytes)(const struct job *j, size_t first, size_t count);
    /* one task's outcome (code != 0: failure with msg; else out, len); < 0: it could not
       be recorded (no memory) */
    int (*outcome)(struct job *j, size_t index, int code, const char *msg, const void *out,
                   size_t len);
    /* count successes from first, outputs back to back at out (NULL: in place) */
    void (*successes)(struct job *j, size_t first, size_t count, const unsigned char *out);
    /* [first, first + count) all failed with code, msg */
    void (*failures)(struct job *j, size_t first, size_t count, int code, const char *msg);
    /* no more tasks will be produced; true: the job is sealed now */
    bool (*stop_source)(struct job *j);
};

extern const struct job_ops mproc__job_apply, mproc__job_map, mproc__job_map_var, mproc__job_imap,
    mproc__job_imap_var;

int mproc__job_new(mproc_pool *p, const struct job_ops *ops, mproc_task_fn fn,
                   const mproc_call_opts *o, struct job **out);
void mproc__job_free(struct job *j);                                    /* a job never enqueued */
int mproc__job_set_apply(struct job *j, const void *in, size_t in_len); /* 0 or -ENOMEM */
/* map_var: room, the most bytes of inputs one chunk carries (each item takes
 * mproc__var_size of its length). */
void mproc__job_set_map_var(struct job *j, const mproc_item *in, size_t n, mproc_item *out,
                            size_t room);
void mproc__job_set_map(struct job *j, const void *in, size_t n, size_t in_size, void *out,
                        size_t out_size);
/* The map's arrays are shared with the workers (read, written in place): it is placed. */
void mproc__job_set_inplace(struct job *j, bool in, bool out, int nworkers);
void mproc__job_set_imap(struct job *j, mproc_imap *it, size_t in_size, size_t out_size,
                         int nworkers);
void mproc__job_attach(struct job *j, mproc_result *res); /* apply, map: its result */
void mproc__jobs_init(mproc_pool *p);
void mproc__job_enqueue(mproc_pool *p, struct job *j);
/* A job may be cancelled or complete: the supervisor's next pass looks (mproc__jobs_sweep). */
void mproc__jobs_look(mproc_pool *p);
/* Cancelled jobs lose what was never dispatched; finished ones hand their results over. */
void mproc__jobs_sweep(struct sup *s); /* admit checked */

/* Dispatch: what the next chunk for a worker slot takes (plan), shortened (cut: count no
 * more than planned), then committed once sent (taken). */
struct take {
    size_t first, count;
    bool retry;        /* from the front run of retries */
    struct span *span; /* a placed job's span, or NULL */
    bool back;         /* from that span's back */
};
size_t mproc__job_todo(const struct job *j); /* never dispatched (retries apart) */
bool mproc__job_has_work(const struct job *j);
void mproc__job_plan(struct job *j, int slot, struct take *t);
void mproc__job_plan_cut(struct take *t, size_t count);
void mproc__job_taken(struct job *j, const struct take *t);
/* src/pool/items.c: map_var's outputs. A copy of len bytes in the slab *cur (a new one
 * when it is full or NULL), for mproc_item_free; NULL: no memory. Release: the job adds
 * no more to *cur. */
struct item_slab;
void *mproc__items_copy(struct item_slab **cur, const void *src, size_t len);
void mproc__items_release(struct item_slab **cur);

void mproc__job_inputs(const struct job *j, size_t first, size_t count, unsigned char *dst);
size_t mproc__job_in_bytes(const struct job *j, size_t first, size_t count);
/* A batch of count tasks of j took busy_ns in its worker (pacing). */
void mproc__job_paced(struct job *j, uint64_t count, int64_t busy_ns);
/* Put [first, first + count) at the front of the retries (no longer outstanding).
 * false: no memory (nothing changed). */
bool mproc__job_requeue(struct job *j, size_t first, size_t count);
/* The caller cancelled: how many tasks were never dispatched (0 if cancelled before). */
size_t mproc__job_cancel(struct job *j);
/* Terminate, broken, cancelled: nothing more is dispatched or produced. */
void mproc__job_stop(struct job *j);
void mproc__job_produced(mproc_pool *p, struct job *j,
                         size_t n);  /* imap: n tasks generated so far */
void mproc__job_seal(struct job *j); /* imap: no more will come */

/* Outcomes: one task's (w: the worker it came from, or NULL), count successes (a batch),
 * n outstanding tasks settled (their outcome follows), every task never dispatched failed
 * (returns how many), and, when everything is in, detach j and queue its result for
 * delivery (j is freed). */
void mproc__job_outcome(struct sup *s, struct job *j, size_t index, int code, const char *msg,
                        const void *out, size_t len, struct worker *w);
void mproc__job_successes(struct sup *s, struct job *j, size_t first, size_t count,
                          const unsigned char *out, struct worker *w);
void mproc__job_settled(struct job *j, size_t n);
size_t mproc__job_fail_todo(struct sup *s, struct job *j, int code, const char *msg);
void mproc__job_maybe_finish(struct sup *s, struct job *j);

/* src/pool/transport.c: how a chunk travels (see there). */

/* A chunk's route, planned by the transport for the supervisor. */
struct route {
    size_t count;   /* tasks it carries (plan may cut the count asked for) */
    int stage;      /* the staging area it uses, or -1 */
    size_t out_off; /* staged outputs: their offset in that area; SIZE_MAX: none */
    uint32_t flags; /* CHUNK_*: what the worker is told */
};

struct transport_ops {
    /* how count tasks of j would travel to w (r->count: how many it can carry, >= 1) */
    void (*plan)(const struct sup *s, const struct worker *w, const struct job *j, size_t count,
                 struct route *r);
    /* send [first, first + r->count) of j to w the planned way (unit: j's chunk size now);
       false: the channel is full (nothing sent) */
    bool (*send)(struct sup *s, struct worker *w, const struct job *j, size_t first, size_t unit,
                 const struct route *r);
    /* where w left the output of task index of its chunk g (NULL: in the record, or in
       place) */
    const unsigned char *(*output)(const struct sup *s, const struct worker *w, const struct seg *g,
                                   size_t index);
    /* chunk g is settled (or taken back): what its route held is free */
    void (*release)(struct worker *w, const struct seg *g);
    /* w's process is gone (or new): nothing of its routes is held */
    void (*reset)(struct worker *w);

    /* Optional (NULL: every task goes through the supervisor). The caller's end: a
              blocking apply handed straight to an idle worker; 1 when not taken (the caller
       submits it the usual way), else 0 or the task's code (its message in msg). */
    int (*apply)(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len, void *out,
                 size_t cap, size_t *out_len, char msg[POOL_MSG_MAX], int64_t deadline);
    /* w holds a caller's task (its channel may still hold it: not to be stolen from) */
    bool (*busy)(const mproc_pool *p, const struct worker *w);
    /* w's process is gone (reaped): settle the caller's task it held. retry: one it never
       began goes back to its caller to be submitted again; else it fails with code. */
    void (*gone)(struct sup *s, struct worker *w, int code, const char *msg, bool retry);
    /* add the outcomes of the callers' tasks to the pool's and the workers' stats */
    void (*stats)(const mproc_pool *p, mproc_pool_stats *s, mproc_worker_stats *w, size_t nw);
};

extern const struct transport_ops mproc__transport_local;
/* Workers on other hosts (MPI): every chunk carries its inputs, and goes out through the
 * launcher's post. */
extern const struct transport_ops mproc__transport_remote;

/* src/pool/assigned.c: what a worker holds (the chunks sent to it, their counts, its
 * time per task). */
struct seg *mproc__pool_seg_at(struct worker *w, int k);        /* k-th chunk not settled */
struct seg *mproc__pool_front(struct worker *w, size_t *index); /* the next task's chunk */
void mproc__pool_pop_tasks(struct worker *w, size_t n);         /* settle n of the front chunk */
void mproc__pool_pop_task(struct worker *w);
void mproc__assigned_push(struct worker *w, const struct seg *g); /* a chunk sent */
/* Steal: take back the chunk c (still in w's channel, taken out of it): *out. false: no
 * such chunk (cannot happen). */
bool mproc__assigned_take_back(struct worker *w, const struct pool_chunk *c, struct seg *out);
/* n outcomes received (job: theirs, or 0: none to note, e.g. a death's accounting). */
void mproc__assigned_received(struct worker *w, uint64_t n, uint64_t job);
void mproc__assigned_counted(struct worker *w, uint64_t n, bool failed); /* stats */
void mproc__assigned_rate(struct worker *w, int64_t now); /* the time per task, now */
/* Nothing held (a new or gone process); counts: the counts and estimate start afresh. */
void mproc__assigned_reset(struct worker *w, bool counts);
/* Requeue every unsettled task of w (where there is memory); fail whatever is left. */
void mproc__pool_requeue(struct worker *w);
void mproc__pool_fail_assigned(struct sup *s, struct worker *w, int code, const char *msg);

/* src/pool/settle.c: outcomes. */
/* Read and record every record w published. */
void mproc__pool_drain(struct sup *s, struct worker *w);
/* Requeue [first, first + count) of j at the front, and where there is no memory for
 * it those tasks fail with code and msg (outcomes from w; j may be finished and gone
 * then). true: requeued. */
bool mproc__pool_requeue_or_fail(struct sup *s, struct job *j, size_t first, size_t count, int code,
                                 const char *msg, struct worker *w);

/* src/pool/life.c: workers' lives. */
/* w said it started (REC_READY): code 0, or its initializer's failure with msg. */
void mproc__pool_worker_ready(struct sup *s, struct worker *w, int code, const char *msg,
                              size_t msg_len);
int mproc__pool_spawn_worker(struct sup *s, struct worker *w);
void mproc__pool_respawn(struct sup *s, struct worker *w);
void mproc__pool_check_deaths(struct sup *s);
/* No more chunks: each worker exits once it has run what it was sent (join). */
void mproc__pool_wind_down(struct sup *s);
int mproc__pool_life_init(mproc_pool *p); /* at creation: 0 or -ENOMEM */
void mproc__pool_life_free(mproc_pool *p);
void mproc__pool_stop_workers(struct sup *s, int code, const char *msg);
void mproc__pool_fail_everything(struct sup *s, int code, const char *msg);
/* Kill workers past a task's limit; the earliest deadline still ahead. */
int64_t mproc__pool_check_timeouts(struct sup *s);

/* src/pool/dispatch.c: feeding the workers. */

void mproc__pool_generate(struct sup *s);
void mproc__pool_dispatch(struct sup *s);

/* Wake the supervisor after a caller-side change (submission, cancel, close...). */
void mproc__pool_kick(mproc_pool *p);

/* May the pool take new work? 0, the broken code, or -MPROC_ECLOSED. Under the mutex. */
int mproc__pool_admit(const mproc_pool *p);

/* src/pool/result.c */
int mproc__result_new(mproc_result **out, mproc_pool *p, enum job_kind kind, size_t n,
                      const mproc_call_opts *o);
void mproc__result_bind(mproc_result *r, struct job *j); /* r is j's result */
/* Keep a copy of an apply's output (len > 0). 0 or -ENOMEM. */
int mproc__result_keep(mproc_result *r, const void *out, size_t len);
/* Add r to a list of results to deliver (linked through done_next). */
void mproc__result_chain(mproc_result **list, mproc_result *r);
void mproc__result_unref(mproc_result *r);
/* Record an outcome of items [first, first + count) (code != 0) in r. Under the mutex. */
int mproc__fails_add(struct pool_fails *f, size_t first, size_t count, int code, const char *msg);
void mproc__fails_release(struct pool_fails *f);
/* Finish r (all outcomes in): sort failures, set code/msg. Does not mark it ready. */
void mproc__result_finish(mproc_result *r, bool lost); /* lost: a failure went unrecorded */
/* Mark ready, run callbacks, wake waiters, drop the pool's reference. No mutex held. */
void mproc__result_deliver(mproc_result *r);

void mproc__imap_unref(mproc_imap *it);
/* A new iterator (two references: the caller's and the job's); its job is bound later. */
struct imap_spec {
    size_t window;
    size_t in_size, out_size; /* imap */
    mproc_imap_gen_fn gen;
    mproc_imap_var_gen_fn vgen; /* imap_var: items of any size ... */
    size_t room;                /* ... each at most room bytes packed (mproc__var_size) */
    void *gen_arg;
    bool unordered;
};
int mproc__imap_new(mproc_imap **out, mproc_pool *p, const struct imap_spec *spec);
/* Call the generator for slot sl (mutex not held): its result (1: an item in sl). */
int mproc__imap_generate(mproc_imap *it, struct imap_slot *sl);
void mproc__imap_bind(mproc_imap *it, struct job *j);
void mproc__imap_discard(mproc_imap *it); /* one never handed out (NULL: nothing) */
/* Slot placement (under the mutex): the slot holding item index; the empty slot the next
 * item goes to (NULL: none yet); that slot now holds item `produced` (queued); the caller
 * took the item in slot s. */
struct imap_slot *mproc__imap_slot(mproc_imap *it, size_t index);
struct imap_slot *mproc__imap_room(mproc_imap *it);
void mproc__imap_place(mproc_imap *it, struct imap_slot *s);
void mproc__imap_release(mproc_imap *it, struct imap_slot *s);
/* The generator's room: as mproc__imap_room, noting that it waits when there is none. */
struct imap_slot *mproc__imap_gen_room(mproc_imap *it);
void mproc__imap_gen_end(mproc_imap *it, int code); /* it is called no more (code < 0: failed) */
void mproc__imap_detach(mproc_imap *it);            /* its job is gone */
/* An imap item's outcome (under the mutex). */
void mproc__imap_item(mproc_imap *it, size_t index, int code, const char *msg, const void *out);
/* imap_var: an item's outcome with its output of len bytes (kept: a copy). */
void mproc__imap_item_var(mproc_imap *it, size_t index, int code, const char *msg, const void *out,
                          size_t len);
void mproc__imap_wake(mproc_imap *it);

#endif
