/* src/pool/worker.c - the pool's worker process: initializer, then a loop of chunks.
 *
 * DESIGN. A worker is a forked child of the pool's supervisor thread (spawn core, daemon
 * flag: it dies with that thread). It owns two channels in shared memory: `in` (an
 * mproc_queue) carries chunks from the supervisor; its result ring (src/pool/ring.c,
 * lock-free, one producer one consumer) carries one record per task back, in the order
 * the tasks were sent. Its slot in the pool's shared mapping holds `started`,
 * the number of tasks it has begun, incremented before each task is decoded or run.
Successful outcomes of fixed-size tasks (map, imap) are published in batches (see
struct batch below); a failure or an apply result goes alone, right away.
 *
 * What the supervisor learns when the worker dies: every result record it published
 * whole (the ring never shows a half-written one); `started`; and `ended`, the tasks it
 * was done with (stored once a task's outcome is held in a batch or published). If
 * started exceeds both the outcomes received and `ended`, the started-th task was in
 * flight: it fails with -MPROC_EDIED (or -MPROC_ETIMELIMIT). The tasks before it (or,
 * when none was in flight, up to `started`) ran but their batch was never published, and
 * the tasks after it were never begun: both go to another worker. So a death at any
 * point (decode, run, encode, after sending, between tasks) fails at most the one task
 * it interrupted, and never one that had returned.
 *
 * Who wakes whom: the worker sleeps in mproc_queue_get on `in` (the queue's futex
 * doorbell; spin first when CPUs allow); after publishing a record it rings the
 * supervisor's eventfd only if the supervisor armed its bell (sup_bell; the ring's
 * seq_cst tail store is the bell's store-load barrier), so a busy pool
 * makes no system call per task. The supervisor closes `in` to make the worker exit.
 *
 * A chunk flagged CHUNK_DIRECT is a blocking apply posted by its caller (the transport's
 * way past the supervisor): it does not count in `started` and its outcome goes where the
 * transport says (the slot's mailbox), not the ring.
 *
 * Where a chunk's inputs are and where its outputs go (in the chunk and the record, in
 * place in shared memory, or read and written in the caller's memory: reach) is the
 * transport's business (src/pool/transport.c, its worker's end: struct carry); a chunk
 * whose inputs cannot be read goes back unbegun (REC_BOUNCE).
 *
 * Fault points (tests): "pool.task.decode", "pool.task.run", "pool.result.encode",
 * "pool.result.sent". FAIL at the first three fails the task with the armed code.
 * "pool.reach" FAIL: the worker does not offer reach; "pool.reach.read" FAIL: reading a
 * chunk's inputs fails (the chunk bounces); "pool.reach.write" FAIL: writing a batch's
 * outputs fails (they go in the record).
 */
#include "internal.h"

#include "fnref.h"
#include "pool/worker.h"
#include "sys/evfd.h"
#include "sys/cpu.h"

#include <stdio.h>

struct mproc_task {
    void *state;
    int worker;
    char msg[POOL_MSG_MAX];
    bool has_msg;
};

int mproc_task_fail(mproc_task *t, int code, const char *fmt, ...)
{
    if (t != NULL && fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->msg, sizeof t->msg, fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof t->msg) /* cut: say so where it was cut */
            memcpy(t->msg + sizeof t->msg - 4, "...", 4);
        t->has_msg = true;
    }
    return code;
}

void *mproc_task_state(mproc_task *t)
{
    return t != NULL ? t->state : NULL;
}

int mproc_task_worker(mproc_task *t)
{
    return t != NULL ? t->worker : -EINVAL;
}

/* ---- the worker's state ------------------------------------------------------------------ */

/* The worker's cache of the last function it decoded. */
struct fn_cache {
    mproc_task_fn fn;
    unsigned char ref[MPROC__FNREF_MAX];
    uint32_t len;
};

/* Successful fixed-size outcomes held back to go as one REC_BATCH record (the cost of a
 * record, ~50 ns, then is paid once per batch instead of once per tiny task). Held
 * outcomes are lost if the worker dies: the supervisor then sends those tasks again
 * (they ran, but nobody saw their outputs), see on_death in src/pool/life.c. A batch is
 * published when it is full (BATCH_BYTES of outputs or BATCH_TASKS tasks, see
 * batch_fit), when it is BATCH_AGE_NS old, counted from the start of its first task
 * (looked at after 1, 2, 4, ..., 256, then every 256 tasks: a few clock reads per batch
 * of tiny tasks, at most about 2 * BATCH_AGE_NS of work held, and a slow task goes out
 * as soon as it is done, so the supervisor refills and balances as before batching),
 * before a failure, at the end of every chunk (so a long task never holds back the
 * outcomes of the chunks before it, and the supervisor sees progress and refills the
 * channel in time), and before the worker retires. So a batch never spans chunks: the
 * worker starts each chunk with none held. */
#define BATCH_BYTES ((size_t)64 << 10)
#define BATCH_TASKS 1024u
#define BATCH_AGE_NS INT64_C(1000000)

struct batch {
    unsigned char *buf; /* the record being built: header, then outputs */
    size_t room;        /* output bytes it can hold */
    size_t reach_room;  /* the same for a batch bound for the caller's array: all of buf */
    uint64_t job, first;
    uint32_t out_cap; /* bytes per output in buf (0: written in place) */
    uint64_t reach;   /* CHUNK_ROUT: item 0's output address in the pool process; else 0 */
    size_t n;         /* tasks held */
    int64_t t0;       /* when the first was added */
};

/* Everything a worker process keeps, in one place: it is a process of its own (one
 * worker per process), but nothing here is a static, so the loop reads as a function of
 * its state. */
struct wk {
    const struct worker_arg *a;
    struct pool_shm *shm;
    struct pool_slot *slot;
    mproc_task t;
    struct fn_cache fc;
    struct batch b;
    unsigned char *inbuf;  /* a chunk as received (msg_max bytes) */
    unsigned char *outbuf; /* a record being built: a batch or one task's outcome */
    unsigned char small[sizeof(struct pool_rec) + POOL_MSG_MAX]; /* a failure record: works
                                                                    without memory */
    uint64_t begun;     /* tasks begun (what `started` says) */
    uint64_t tasks;     /* tasks done, for maxtasksperchild */
    uint64_t head_seen; /* the writer's cache of its ring's head */
    /* The supervisor's doorbell as this worker was born with it. A task may close any
     * descriptor (daemons close everything above 2), and the number may then name a file
     * the task opened: the worker checks before each ring (rings are rare: only when the
     * supervisor sleeps), and one that lost its doorbell exits (its outcomes are
     * published), so the supervisor learns through the worker's pidfd instead of waiting
     * for ever. */
    struct mproc__fd_id doorbell;
    int64_t quiet_t0;   /* the first record published without ringing since the last ring
                           (0: none): see publish */
    bool timing;        /* .phase_times */
    struct carry carry; /* the transport's end: where inputs and outputs are */
};

/* ---- publishing --------------------------------------------------------------------------- */

static void ring_supervisor(struct wk *k)
{
    if (mproc__bell_claim(&k->shm->sup_bell)) {
        if (!mproc__sys_fd_same(k->shm->evfd, &k->doorbell))
            _exit(WORKER_LOST_FD);
        mproc__sys_eventfd_ring(k->shm->evfd);
    }
}

static inline int64_t phase_start(const struct wk *k)
{
    return mproc__phase_start(k->timing);
}

static inline void phase_end(const struct wk *k, _Atomic uint64_t *acc, int64_t t0)
{
    mproc__phase_end(k->timing, acc, t0);
}

/* Publish one record; 0 or -EMSGSIZE (the ring is smaller than the record). quiet: the
 * record of one task of a chunk with more to come, whose outputs go alone (map_var): the
 * supervisor is rung only when the first record not rung for is BATCH_AGE_NS old, or the
 * ring is half full (so that it drains before the ring fills: a worker waiting for room
 * would wait for the supervisor's next periodic look), and at the end of the chunk
 * (ring_pending).
 * Ringing for each of thousands of small outputs woke the supervisor for each (measured:
 * most of the publish phase of a map_var). */
static int publish_as(struct wk *k, const void *rec, size_t len, bool quiet)
{
    int64_t t0 = phase_start(k);
    int rc = mproc__ring_put(&k->slot->ring, mproc__ring_data(k->shm, k->a->slot), k->shm->ring_cap,
                             &k->head_seen, rec, len);
    if (quiet) { /* stays quiet while young and the ring has room */
        int64_t now = mproc__sys_now_ns();
        if (k->quiet_t0 == 0)
            k->quiet_t0 = now;
        uint64_t used =
            atomic_load_explicit(&k->slot->ring.tail, memory_order_relaxed) - k->head_seen;
        quiet = used <= k->shm->ring_cap / 2 && now - k->quiet_t0 < BATCH_AGE_NS;
    }
    if (!quiet) {
        k->quiet_t0 = 0;
        ring_supervisor(k);
    }
    phase_end(k, &k->slot->publish_ns, t0);
    return rc;
}

static int publish(struct wk *k, const void *rec, size_t len)
{
    return publish_as(k, rec, len, false);
}

/* Ring for the records published quietly, if any. */
static void ring_pending(struct wk *k)
{
    if (k->quiet_t0 != 0) {
        k->quiet_t0 = 0;
        ring_supervisor(k);
    }
}

/* Build and send one record in buf. code != 0: msg (may be empty) and no output. */
static int send_rec(struct wk *k, unsigned char *buf, uint32_t kind, int code, const char *msg,
                    uint64_t job, uint64_t index, size_t out_len, int64_t busy_ns, bool quiet)
{
    struct pool_rec *h = (struct pool_rec *)(void *)buf;
    size_t ml = 0;
    if (code != 0) {
        ml = msg != NULL ? strlen(msg) : 0;
        if (ml >= POOL_MSG_MAX)
            ml = POOL_MSG_MAX - 1;
        /* the output, if any, sits where the message goes: drop it */
        memcpy(buf + sizeof *h, msg != NULL ? msg : "", ml);
        out_len = 0;
    }
    h->kind = kind;
    h->code = code;
    h->msg_len = (uint32_t)ml;
    h->out_len = (uint32_t)out_len;
    h->job_id = job;
    h->index = index;
    h->count = 1;
    h->busy_ns = busy_ns;
    return publish_as(k, buf, sizeof *h + ml + out_len, quiet);
}

/* ---- the batch ------------------------------------------------------------------------- */

static unsigned char *batch_slot(const struct batch *b)
{
    return b->buf + sizeof(struct pool_rec) + b->n * b->out_cap;
}

/* Start an empty batch with task index of job (outputs of bcap bytes; reach: see above). */
static void batch_open(struct batch *b, uint64_t job, uint64_t index, uint32_t bcap, uint64_t reach)
{
    b->job = job;
    b->first = index;
    b->out_cap = bcap;
    b->reach = reach;
    b->t0 = mproc__sys_now_ns();
}

/* How many more tasks the batch can take. A batch whose outputs are written in place
 * (out_cap 0) or bound for the caller's array has no task limit, only its age: it is one
 * small record or one system call, and publishing it more often would buy nothing
 * (measured: 10 M in-place tasks, a record per 1,024 cost 12-40 ms of publishing). */
static size_t batch_fit(const struct batch *b)
{
    size_t cap = b->out_cap == 0 ? SIZE_MAX
                 : b->reach != 0 ? b->reach_room / b->out_cap
                                 : b->room / b->out_cap;
    if (b->reach == 0 && b->out_cap != 0 && cap > BATCH_TASKS)
        cap = BATCH_TASKS;
    return cap > b->n ? cap - b->n : 0;
}

/* Is the batch old enough to publish? Looked at after 1, 2, 4, ..., BATCH_LOOK tasks,
 * then every BATCH_LOOK (see BATCH_AGE_NS above). A look is a clock read (26 ns on a
 * kvm-clock VM): every 64 tasks of 2 ns it took a tenth of the time. */
#define BATCH_LOOK 256u

static bool batch_due(const struct batch *b)
{
    return ((b->n & (b->n - 1)) == 0 || b->n % BATCH_LOOK == 0) &&
           mproc__sys_now_ns() - b->t0 >= BATCH_AGE_NS;
}

/* How many tasks the batch takes before batch_due looks next. */
static size_t batch_to_look(const struct batch *b)
{
    size_t n = b->n, next = 1;
    if (n >= BATCH_LOOK)
        return BATCH_LOOK - n % BATCH_LOOK;
    while (next <= n)
        next <<= 1;
    return next - n;
}

/* Publish what the batch holds (nothing: 0). 0, or < 0 when the channel is gone. */
static int flush(struct wk *k)
{
    struct batch *b = &k->b;
    if (b->n == 0)
        return 0;
    size_t out_len = b->n * b->out_cap;
    if (b->reach != 0 && mproc__carry_write(&k->carry, b->reach + b->first * b->out_cap,
                                            b->buf + sizeof(struct pool_rec), out_len))
        out_len = 0; /* in the caller's array now (else the supervisor copies them) */
    struct pool_rec h = {.kind = REC_BATCH,
                         .out_len = (uint32_t)out_len,
                         .job_id = b->job,
                         .index = b->first,
                         .count = b->n,
                         .busy_ns = mproc__sys_now_ns() - b->t0};
    memcpy(b->buf, &h, sizeof h);
    int rc = publish(k, b->buf, sizeof h + h.out_len);
    b->n = 0;
    if (rc == 0)
        (void)MPROC__FAULT("pool.result.sent");
    return rc;
}

/* ---- bounce ------------------------------------------------------------------------------ */

/* Hand a CHUNK_RIN chunk back unbegun (REC_BOUNCE: reach, src/pool/transport.c). */
static int bounce(struct wk *k, const struct pool_chunk *c, int code)
{
    struct pool_rec h = {.kind = REC_BOUNCE,
                         .code = code,
                         .job_id = c->job_id,
                         .index = c->first,
                         .count = c->count};
    memcpy(k->small, &h, sizeof h);
    return publish(k, k->small, sizeof h);
}

/* ---- tasks ------------------------------------------------------------------------------ */

static int find_fn(struct fn_cache *fc, const unsigned char *ref, uint32_t len)
{
    if (fc->fn != NULL && len == fc->len && memcmp(ref, fc->ref, len) == 0)
        return 0;
    if (len > sizeof fc->ref)
        return -EINVAL;
    void (*f)(void) = NULL;
    int rc = mproc__fnref_decode(ref, len, &f);
    if (rc == 0) {
        fc->fn = (mproc_task_fn)f;
        memcpy(fc->ref, ref, len);
        fc->len = len;
    }
    return rc;
}

/* A caller's own task (a direct apply, src/pool/transport.c): run it and answer where
 * the transport says. The fault points are those of the usual path, so the crash matrix
 * covers both. */
static void run_direct(struct wk *k, const struct pool_chunk *c, const unsigned char *ref,
                       const unsigned char *input)
{
    mproc_task *t = &k->t;
    unsigned char *out = mproc__carry_direct_begin(&k->carry);
    t->has_msg = false;
    t->msg[0] = '\0';
    int drc = MPROC__FAULT("pool.task.decode");
    if (drc == 0)
        drc = find_fn(&k->fc, ref, c->fnref_len);
    int rc = drc;
    if (rc == 0)
        rc = MPROC__FAULT("pool.task.run");
    size_t out_len = c->out_cap;
    if (rc == 0) {
        rc = k->fc.fn(t, input, c->in_size, out, &out_len);
        if (rc > 0)
            rc = mproc_task_fail(t, -EINVAL, "task returned %d (not 0 or a negative code)", rc);
        else if (rc == 0 && out_len > c->out_cap)
            rc = mproc_task_fail(t, -EMSGSIZE, "task set an output length of %zu (capacity %u)",
                                 out_len, c->out_cap);
    }
    int erc = MPROC__FAULT("pool.result.encode");
    if (rc == 0 && erc < 0)
        rc = erc;
    if (rc < 0 && !t->has_msg)
        mproc__pool_say(t->msg, sizeof t->msg, "%s", drc < 0 || erc < 0 ? mproc_strerror(rc) : "");
    mproc__carry_direct_answer(&k->carry, rc, t->msg, out_len);
    (void)MPROC__FAULT("pool.result.sent");
}

/* A task function returned trc with *out_len: its code, with a message for a bad one. */
static int judge(mproc_task *t, const struct pool_chunk *c, int trc, size_t out_len)
{
    if (trc > 0)
        return mproc_task_fail(t, -EINVAL, "task returned %d (not 0 or a negative code)", trc);
    if (trc == 0 && (c->fixed ? out_len != c->out_cap : out_len > c->out_cap))
        return mproc_task_fail(t, -EMSGSIZE, "task set an output length of %zu (capacity %u)",
                               out_len, c->out_cap);
    return trc;
}

/* A run of tasks of one chunk, to be run in a row (run_tasks). */
struct run_of {
    mproc_task_fn fn;
    int drc;                  /* the chunk's decode code: nonzero, every task fails with it */
    const unsigned char *src; /* the run's first input and output */
    unsigned char *dst;
    uint32_t in_size, out_cap; /* out_cap: the first task's output room */
    bool timed;                /* record when each begins */
    bool held;                 /* successes are held in the batch (else each goes alone) */
    int trc, erc;              /* of the task that did not succeed as fixed, if any */
    size_t out_len;
    int64_t busy_ns; /* a task whose output goes alone: how long it ran (for pacing) */
};

/* Run n tasks in a row, the i-th as the (begun + i)-th begun (stored in `started` before
 * it runs, and `ended` once it returned a fixed-size success, held in the batch). Returns
 * how many did so before the first that did not (n if all did); that one's codes and
 * length are in r. The fast path of the pool: for tiny tasks this loop is the cost. */
static uint32_t run_tasks(struct wk *k, struct run_of *r, uint32_t n, uint64_t begun)
{
    /* in locals: the task is an opaque call, after which anything read through a pointer
       would be read again */
    mproc_task_fn fn = r->fn;
    mproc_task *t = &k->t;
    _Atomic uint64_t *started = &k->slot->started, *ended = &k->slot->ended;
    const unsigned char *src = r->src;
    unsigned char *dst = r->dst;
    const uint32_t in_size = r->in_size, out_cap = r->out_cap;
    const int drc = r->drc;
    const bool held = r->held;
    for (uint32_t i = 0; i < n; i++, src += in_size, dst += out_cap) {
        if (r->timed) /* a clock read per task costs ~30 ns: only when it matters */
            atomic_store_explicit(&k->slot->started_ns, mproc__sys_now_ns(), memory_order_relaxed);
        atomic_store_explicit(started, begun + i, memory_order_release);
        size_t out_len = out_cap;
        t->has_msg = false;
        int trc = drc;
        if (trc == 0)
            trc = MPROC__FAULT("pool.task.run");
        if (trc == 0)
            trc = fn(t, src, in_size, dst, &out_len);
        int erc = MPROC__FAULT("pool.result.encode");
        if (__builtin_expect(trc != 0 || out_len != out_cap || erc != 0 || !held, 0)) {
            r->trc = trc;
            r->erc = erc;
            r->out_len = out_len;
            return i;
        }
        atomic_store_explicit(ended, begun + i, memory_order_release); /* held */
        (void)MPROC__FAULT("pool.task.held");
    }
    return n;
}

/* The outcome of a task that did not come out of run_tasks held in the batch (a
 * failure, or a success that goes alone: an apply's output, an output too large to
 * batch): published, after what the batch held before it. 0, or < 0 when the channel is
 * gone (the worker exits). */
static int lone_outcome(struct wk *k, const struct pool_chunk *c, uint64_t index,
                        const struct run_of *r)
{
    mproc_task *t = &k->t;
    int trc = r->drc != 0 ? r->drc : judge(t, c, r->trc, r->out_len);
    if (trc == 0 && r->erc < 0)
        trc = r->erc;
    if (trc < 0 && !t->has_msg)
        mproc__pool_say(t->msg, sizeof t->msg, "%s",
                        r->drc < 0 || r->erc < 0 ? mproc_strerror(trc) : "");
    if (flush(k) < 0 ||
        send_rec(k, trc == 0 ? k->outbuf : k->small, REC_RESULT, trc, t->msg, c->job_id, index,
                 trc == 0 && !(c->inplace & CHUNK_OUT) ? r->out_len : 0, r->busy_ns,
                 (c->inplace & CHUNK_VAR) && index + 1 < c->first + c->count) < 0)
        return -1;
    (void)MPROC__FAULT("pool.result.sent");
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------ */

/* Run chunk c (its fnref at ref, its items at items). The tasks run in runs (run_tasks):
 * as many as the batch can take, up to its next look at the clock and the end of the
 * caller's chunk (imap), when they are fixed-size successes with no time limit and no
 * retirement to count; one at a time otherwise (an apply, a time limit, maxtasksperchild).
 * 0, 1: the worker retires, -1: the channel is gone. */
static int run_chunk(struct wk *k, const struct pool_chunk *c, const unsigned char *ref,
                     const unsigned char *src)
{
    const struct worker_arg *a = k->a;
    struct batch *b = &k->b;
    /* the chunk's first task is in flight from here: a death during decode fails it */
    if (c->timed)
        atomic_store_explicit(&k->slot->started_ns, mproc__sys_now_ns(), memory_order_relaxed);
    /* only this process writes `started`: a plain store (a locked add per task cost
     * more than half of a tiny task's time); the supervisor reads it after the
     * worker's death (the kernel's exit orders everything) or for time limits */
    uint64_t begun0 = ++k->begun; /* task i of the chunk is the (begun0 + i)-th begun */
    atomic_store_explicit(&k->slot->started, begun0, memory_order_release);
    int drc = MPROC__FAULT("pool.task.decode");
    if (drc == 0)
        drc = find_fn(&k->fc, ref, c->fnref_len);
    uint64_t back; /* a batch's outputs go to the caller's memory there (reach), or 0 */
    unsigned char *odst = mproc__carry_out(&k->carry, c, &back);
    uint32_t bcap = c->inplace & CHUNK_OUT ? 0 : c->out_cap;
    bool batched = c->fixed && bcap <= b->room;
    uint64_t reach = batched ? back : 0;
    bool in_runs = batched && !c->timed && a->maxtasks == 0;
    size_t out_room = a->msg_max - sizeof(struct pool_rec);
    const unsigned char *vnext = src; /* CHUNK_VAR: the next task's length and bytes */
    uint32_t i = 0;
    while (i < c->count) {
        if (batched && b->n > 0 && batch_fit(b) == 0 && flush(k) < 0)
            return -1;
        if (batched && b->n == 0) /* a batch's age counts from its first task's start: a
                                     slow task goes out as soon as it is done */
            batch_open(b, c->job_id, c->first + i, bcap, reach);
        size_t n = 1;
        const unsigned char *tsrc = src + (size_t)i * c->in_size;
        size_t in_len = c->in_size;
        if (c->inplace & CHUNK_VAR) { /* one task at a time: its outcome goes alone */
            uint64_t len;
            memcpy(&len, vnext, sizeof len);
            tsrc = vnext + 8;
            in_len = (size_t)len;
            vnext += mproc__var_size(in_len);
        }
        if (in_runs) {
            size_t fit = batch_fit(b), look = batch_to_look(b);
            n = c->count - i;
            n = n < fit ? n : fit;
            n = n < look ? n : look;
            if (c->unit != 0 && n > c->unit - i % c->unit)
                n = c->unit - i % c->unit; /* to the end of the caller's chunk */
        }
        struct run_of r = {
            .fn = k->fc.fn,
            .drc = drc,
            .src = tsrc,
            .dst = odst != NULL ? odst + (size_t)i * c->out_cap
                   : batched    ? batch_slot(b)
                                : k->outbuf + sizeof(struct pool_rec),
            .in_size = (uint32_t)in_len,
            .out_cap = odst != NULL || c->fixed ? c->out_cap
                       : c->out_cap <= out_room ? c->out_cap
                                                : (uint32_t)out_room,
            .timed = c->timed && i > 0, /* the first's was stored above */
            .held = batched,
        };
        int64_t tr = phase_start(k);
        int64_t t_alone = c->fixed ? 0 : mproc__sys_now_ns(); /* one task, timed (see
                                                  mproc__job_paced): a clock read is small
                                                  beside an output sent alone */
        uint32_t ok = run_tasks(k, &r, (uint32_t)n, begun0 + i);
        if (!c->fixed)
            r.busy_ns = mproc__sys_now_ns() - t_alone;
        phase_end(k, &k->slot->run_ns, tr);
        if (batched)
            b->n += ok;
        i += ok;
        k->tasks += ok;
        if (ok < n) { /* task i did not succeed as a fixed-size output in a row */
            if (lone_outcome(k, c, c->first + i, &r) < 0)
                return -1;
            atomic_store_explicit(&k->slot->ended, begun0 + i,
                                  memory_order_release); /* held or sent */
            (void)MPROC__FAULT("pool.task.held");
            i++;
            k->tasks++;
        }
        if (b->n > 0 && (batch_due(b) || (c->unit != 0 && i % c->unit == 0)) && flush(k) < 0)
            return -1;
        if (a->maxtasks != 0 && k->tasks >= a->maxtasks) { /* retire: nothing more was sent */
            if (flush(k) < 0)
                return -1;
            ring_pending(k);
            atomic_store(&k->slot->retiring, 1);
            return 1;
        }
    }
    k->begun = begun0 + c->count - 1;
    int frc = flush(k) < 0 ? -1 : 0; /* at the end of every chunk (see struct batch) */
    ring_pending(k);
    return frc;
}

int mproc__pool_worker_main(void *arg)
{
    const struct worker_arg *a = arg;
    static char name[32]; /* this process's own (a fork's copy) */
    snprintf(name, sizeof name, "PoolWorker-%d", a->slot + 1); /* a replacement, the same */
    mproc__self_enter(name, true, a->home);
    pthread_sigmask(SIG_SETMASK, &a->mask, NULL);
    struct wk state = {0}, *k = &state; /* on the stack: a worker with no memory still
                                            says so (REC_READY below) */
    k->a = a;
    k->shm = a->shm;
    k->slot = &a->shm->slots[a->slot];
    k->t.worker = a->slot;
    k->timing = a->timing;
    mproc__carry_init(&k->carry, a);
    if (mproc__sys_fd_id(a->shm->evfd, &k->doorbell) < 0)
        return WORKER_LOST_FD;
    k->inbuf = mproc__malloc(2 * a->msg_max); /* one block: fewer page faults in a new
                                                 worker */
    k->outbuf = k->inbuf != NULL ? k->inbuf + a->msg_max : NULL;
    int rc = 0;
    mproc_task *t = &k->t;
    if (k->inbuf == NULL) {
        rc = -ENOMEM;
        mproc__pool_say(t->msg, sizeof t->msg, "worker: out of memory");
    } else if (a->pin && (rc = mproc__sys_pin_nth((unsigned)a->slot)) < 0) {
        mproc__pool_say(t->msg, sizeof t->msg, "worker: could not pin to a CPU: %s",
                        mproc_strerror(rc));
    } else if (a->init != NULL) {
        rc = a->init(a->initarg, &t->state);
        if (rc > 0)
            rc = -EINVAL; /* a positive return is not a success code we know of */
        if (rc < 0 && !t->has_msg)
            mproc__pool_say(t->msg, sizeof t->msg, "initializer failed: %s", mproc_strerror(rc));
    }
    if (((a->announce || rc < 0) &&
         send_rec(k, k->small, REC_READY, rc, t->msg, 0, 0, 0, 0, false) < 0) ||
        rc < 0)
        return 1;

    size_t out_room = a->msg_max - sizeof(struct pool_rec);
    k->b = (struct batch){.buf = k->outbuf,
                          .room = out_room < BATCH_BYTES ? out_room : BATCH_BYTES,
                          .reach_room = out_room};
    for (;;) {
        size_t len;
        assert(k->b.n == 0); /* see struct batch */
        rc = mproc_queue_get_into(a->in, k->inbuf, a->msg_max, &len, MPROC_FOREVER);
        if (rc < 0)
            return rc == -MPROC_ECLOSED ? 0 : 1;
        struct pool_chunk c;
        memcpy(&c, k->inbuf, sizeof c);
        const unsigned char *ref = k->inbuf + sizeof c;
        unsigned char *items = k->inbuf + mproc__chunk_head(c.fnref_len);
        if (c.inplace & CHUNK_DIRECT) {
            run_direct(k, &c, ref, items);
            continue;
        }
        const unsigned char *src; /* the first task's input: where the transport says */
        int crc = mproc__carry_in(&k->carry, &c, items, &src);
        if (crc < 0) { /* none of it begun: it goes back (REC_BOUNCE) */
            if (bounce(k, &c, crc) < 0)
                return 1;
            k->begun += c.count; /* counted as settled by the supervisor, like outcomes */
            atomic_store_explicit(&k->slot->started, k->begun, memory_order_release);
            atomic_store_explicit(&k->slot->ended, k->begun, memory_order_release);
            continue;
        }
        rc = run_chunk(k, &c, ref, src);
        if (rc != 0)
            return rc < 0 ? 1 : 0;
    }
}
