/* src/pool/transport.c - how a chunk of tasks travels between the supervisor and a
 * worker: both ends of it. The supervisor asks for a route (plan), then sends the chunk
 * (send) and, when the outcomes come in, where each output was left (output); the worker
 * asks where its inputs are (carry_in), where its outputs go (carry_out) and writes a
 * batch's outputs back (carry_write). Neither knows the modes below: they are the
 * transport's. A transport of another kind (MPI ranks) is another struct
 * transport_ops; the pool holds the one it uses.
 *
 * A transport may also offer a way past the supervisor (apply: a caller's blocking apply
 * handed straight to an idle worker). The local one does, below; its tasks are the
 * transport's to settle when their worker dies (gone) and to count (stats).
 *
 * DESIGN. The local transport (processes forked on this machine) has four ways, chosen
 * per chunk in plan (and told to the worker in the chunk's CHUNK_* flags):
 *   - through the channel: the inputs are copied into the chunk message, the outputs
 *     come back in the result record (small chunks, apply, imap);
 *   - in place: a map over arrays the workers share (mapped before the pool forked
 *     them, checked in src/pool/api.c): the chunk carries addresses only, the worker
 *     reads and writes the caller's arrays itself (CHUNK_IN, CHUNK_OUT), and maps in a
 *     large chunk's pages at once (once per range: see carry_prefault);
 *   - reach: a map chunk of at least STAGE_MIN bytes of items over the caller's private
 *     arrays, to a worker that has not said it cannot reach the pool process's memory
 *     (slot `reach`): the chunk carries addresses only (CHUNK_RIN, CHUNK_ROUT), the
 *     worker reads its inputs through /proc/<pid>/mem and writes each batch's outputs
 *     with process_vm_writev before publishing the batch, so the supervisor copies
 *     nothing and the copying runs on every worker at once. A worker tries with the first
 *     such chunk it gets (not at its start, which pool.create would pay for); where the
 *     kernel refuses (Yama, a non-dumpable process, seccomp), that chunk and any others
 *     sent before it said so come back unbegun (REC_BOUNCE) and go again, staged;
 *   - staging, where reach is refused: the supervisor copies the inputs into one of the
 *     worker's POOL_STAGES staging areas (in the pool's shared mapping, so at the same
 *     address in the worker), the worker works there in place and publishes only counts,
 *     and the supervisor copies each output into the caller's array as its outcome
 *     comes in (output). An area is busy from the send until its chunk is settled
 *     (release) or its worker is gone; with none free, the chunk goes through the channel.
 * Measured (docs/benchmarks.md, pool.map.default): reach carries 10 M 8-byte items each
 * way in about 30 ms of copying spread over 2 workers; staging does the same copies in
 * the supervisor thread alone, about twice the wall time. Staging stays because reach is
 * refused on hardened hosts. Either way a failed item's output is left untouched.
 */
#include "internal.h"

#include "pool/pool.h"
#include "sys/procmem.h"
#include "sys/relax.h"

#define STAGE_MIN ((size_t)16 << 10)

/* ---- the mailbox of direct applies, both ends ------------------------------------------- */

/* Write a mailbox's outcome (msg truncated to POOL_MSG_MAX - 1 bytes); its state is
 * published afterwards by the caller of this. */
static void answer(struct pool_direct *d, int code, const char *msg, size_t out_len)
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
static void wake(struct pool_direct *d)
{
    mproc__bell_ring(&d->bell, true);
}

/* ---- the supervisor's end ---------------------------------------------------------------- */

/* carried: every chunk carries its inputs and its outputs come back in the records (a
 * worker that shares no memory with this process: the remote transport) */
static void plan(const struct sup *s, const struct worker *w, const struct job *j, size_t count,
                 struct route *r, bool carried)
{
    const mproc_pool *p = s->p;
    size_t head = mproc__chunk_head(j->fnref_len);
    *r = (struct route){.stage = -1, .out_off = SIZE_MAX};
    size_t per = (j->inplace_in ? 0 : j->in_size) + (j->inplace_out ? 0 : j->out_size);
    bool large = !carried && j->ops->staged && per > 0 && count * per >= STAGE_MIN;
    bool reach = large && atomic_load_explicit(&p->shm->slots[w->slot].reach,
                                               memory_order_relaxed) != REACH_NO;
    bool rin = reach && !j->inplace_in && j->in_size > 0;
    bool rout = reach && !j->inplace_out && j->out_size > 0;
    for (int k = 0; k < POOL_STAGES && large && !reach && r->stage < 0; k++)
        if (!w->stages.busy[k])
            r->stage = k;
    size_t fit = r->stage >= 0 ? p->shm->stage_cap / per
                 : j->inplace_in
                     ? SIZE_MAX
                     : (p->msg_max - head) / (j->in_size ? j->in_size : 1); /* in the channel,
                                                             or in the worker's buffer (rin) */
    if (rout && fit > (p->msg_max - sizeof(struct pool_rec)) / j->out_size)
        fit = (p->msg_max - sizeof(struct pool_rec)) / j->out_size; /* one batch's outputs */
    r->count = count < fit ? count : fit;
    bool stage_in = r->stage >= 0 && !j->inplace_in, stage_out = r->stage >= 0 && !j->inplace_out;
    if (stage_out)
        r->out_off = stage_in ? r->count * j->in_size : 0;
    r->flags = (j->inplace_in || stage_in ? CHUNK_IN : 0u) |
               (j->inplace_out || stage_out ? CHUNK_OUT : 0u) | (rin ? CHUNK_RIN : 0u) |
               (rout ? CHUNK_ROUT : 0u) | (j->ops->var ? CHUNK_VAR : 0u);
}

static void local_plan(const struct sup *s, const struct worker *w, const struct job *j,
                       size_t count, struct route *r)
{
    plan(s, w, j, count, r, false);
}

/* The chunk message for [first, first + r->count) of j in s->chunk: its length. */
static size_t build(struct sup *s, struct worker *w, const struct job *j, size_t first, size_t unit,
                    const struct route *r)
{
    mproc_pool *p = s->p;
    size_t head = mproc__chunk_head(j->fnref_len), count = r->count;
    bool stage_in = r->stage >= 0 && !j->inplace_in, stage_out = r->out_off != SIZE_MAX;
    unsigned char *area = r->stage >= 0 ? mproc__stage_data(p->shm, w->slot, r->stage) : NULL;
    /* addresses of item 0: the worker adds index * size (unsigned, so wrapping is fine) */
    uint64_t in_addr =
        stage_in ? (uint64_t)(uintptr_t)area - first * j->in_size : (uint64_t)(uintptr_t)j->in;
    uint64_t out_addr = stage_out ? (uint64_t)(uintptr_t)(area + r->out_off) - first * j->out_size
                                  : (uint64_t)(uintptr_t)j->out;
    bool carried = !(r->flags & (CHUNK_IN | CHUNK_RIN)); /* the inputs travel in the chunk */
    struct pool_chunk c = {
        .job_id = j->id,
        .first = first,
        .count = (uint32_t)count,
        .in_size = (uint32_t)j->in_size,
        .out_cap = (uint32_t)(j->ops->fixed ? j->out_size : p->msg_max - sizeof(struct pool_rec)),
        .fnref_len = j->fnref_len,
        .fixed = j->ops->fixed,
        .timed = j->timeout > 0,
        .inplace = r->flags,
        .unit = j->ops->units && unit < UINT32_MAX ? (uint32_t)unit : 0,
        .in_addr = in_addr,
        .out_addr = out_addr};
    unsigned char *b = s->chunk;
    memcpy(b, &c, sizeof c);
    memcpy(b + sizeof c, j->fnref, j->fnref_len);
    if (carried)
        mproc__job_inputs(j, first, count, b + head);
    if (stage_in) /* a free area: no chunk of this worker's reads it (if the put fails,
                 it is simply written again next time) */
        mproc__job_inputs(j, first, count, area);
    return head + (carried ? mproc__job_in_bytes(j, first, count) : 0);
}

static bool local_send(struct sup *s, struct worker *w, const struct job *j, size_t first,
                       size_t unit, const struct route *r)
{
    size_t len = build(s, w, j, first, unit, r);
    if (mproc_queue_put_nowait(w->in, s->chunk, len) < 0)
        return false;
    if (r->stage >= 0)
        w->stages.busy[r->stage] = true;
    return true;
}

static const unsigned char *local_output(const struct sup *s, const struct worker *w,
                                         const struct seg *g, size_t index)
{
    if (g->stage < 0 || g->out_off == SIZE_MAX)
        return NULL;
    return mproc__stage_data(s->p->shm, w->slot, g->stage) + g->out_off +
           (index - g->first) * g->job->out_size;
}

static void local_release(struct worker *w, const struct seg *g)
{
    if (g->stage >= 0)
        w->stages.busy[g->stage] = false;
}

static void local_reset(struct worker *w)
{
    memset(w->stages.busy, 0, sizeof w->stages.busy);
}

/* ---- the caller's end: direct applies ----------------------------------------------------
 *
 * DIRECT APPLIES. The usual path of a task is caller -> supervisor thread -> worker -> supervisor
 * -> caller: four hand-offs, two of them thread wake-ups, which is what an apply's round
 * trip costs (about 50 us on 2 CPUs). A blocking mproc_pool_apply does not need the
 * supervisor's help when a worker is idle: the caller, under the pool mutex, picks a
 * worker the supervisor has given nothing (state ready, no chunk outstanding) whose
 * slot mailbox is free, marks the mailbox POSTED and puts a chunk flagged CHUNK_DIRECT
 * into the worker's own task channel. The worker runs it and answers in the mailbox
 * (code, message, output in the slot's direct area), then wakes the caller only if it
 * announced that it sleeps. Both sides spin briefly before sleeping when CPUs allow, so
 * back-to-back applies make no system call at all.
 *
 * The guarantees stay those of the usual path, and the supervisor still gives them: it
 * watches the worker's pidfd, and when the worker dies it settles the mailbox
 * (local_gone): a task begun (RUNNING) fails with -MPROC_EDIED and the
 * worker's exit, a task never begun (POSTED) goes back to its caller, which submits it
 * again the usual way (so it runs on another worker, as a requeued chunk would);
 * terminate and a broken pool fail it with their code. The supervisor acts only on a
 * reaped worker, so it never races with the worker; it races with the caller only
 * through compare-and-swap on the state word.
 *
 * Not taken (the usual path instead): pools with a per-task time limit or
 * maxtasksperchild, and an apply given a time limit of its own (the supervisor's
 * accounting of those counts tasks it sent), no idle worker, apply_async (its callbacks
 * run in the supervisor thread).
 *
 * Progress counters: the worker counts what it finishes in its slot (done, failed); the
 * transport counts what it posted and what the supervisor settled (p->tp);
 * mproc_pool_stats_get adds them (local_stats).
 */

#define WAIT_SPIN_NS INT64_C(50000) /* a caller spins this long before it sleeps */
#define STACK_CHUNK 4096            /* chunks up to this size are built on the stack */

/* Pick an idle worker and post the chunk to it (under the mutex). The worker's index,
 * -1 when none is idle, or admit's error. */
static int post(mproc_pool *p, const void *chunk, size_t len)
{
    int rc = mproc__pool_admit(p);
    if (rc < 0)
        return rc;
    for (int k = 0; k < p->nworkers; k++) {
        int i = (int)((p->tp.next + (unsigned)k) % (unsigned)p->nworkers);
        struct worker *w = &p->workers[i];
        struct pool_direct *d = &p->shm->slots[i].direct;
        if (w->state != W_READY || w->held.nsegs != 0 || atomic_load(&d->state) != D_FREE)
            continue;
        /* only callers holding the mutex move a mailbox out of FREE */
        atomic_store(&d->state, D_POSTED);
        if (mproc_queue_put_nowait(w->in, chunk, len) < 0) {
            atomic_store(&d->state, D_FREE);
            continue;
        }
        p->tp.next = (unsigned)i; /* the same one next time: it is spinning, warm */
        p->tp.posted++;
        return i;
    }
    return -1;
}

/* Wait for the mailbox to leave POSTED/RUNNING, or give up at the deadline. */
static uint32_t wait_outcome(mproc_pool *p, struct pool_direct *d, int64_t deadline)
{
    uint32_t st = atomic_load_explicit(&d->state, memory_order_acquire);
    if (st != D_POSTED && st != D_RUNNING)
        return st;
    if (p->spin) {
        int64_t t0 = mproc__sys_now_ns();
        for (unsigned k = 1;; k++) {
            mproc__sys_cpu_relax();
            st = atomic_load_explicit(&d->state, memory_order_acquire);
            if (st != D_POSTED && st != D_RUNNING)
                return st;
            if ((k & 255) == 0 && mproc__sys_now_ns() - t0 >= WAIT_SPIN_NS)
                break;
        }
    }
    for (;;) {
        uint32_t seq = mproc__bell_arm(&d->bell);
        st = atomic_load(&d->state);
        if (st != D_POSTED && st != D_RUNNING)
            break;
        if (mproc__remaining_ns(deadline) == 0) {
            uint32_t expect = st;
            if (atomic_compare_exchange_strong(&d->state, &expect, D_ABANDONED)) {
                st = D_ABANDONED;
                break;
            }
            continue; /* it moved on: look again */
        }
        (void)mproc__bell_sleep(&d->bell, seq, deadline, true);
    }
    mproc__bell_leave(&d->bell);
    atomic_thread_fence(memory_order_acquire);
    return st;
}

static int local_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len, void *out,
                       size_t cap, size_t *out_len, char *msg, int64_t deadline)
{
    if (p->o.timeout != 0 || p->o.maxtasksperchild != 0)
        return 1; /* the supervisor counts the tasks of those: see above */
    unsigned char stack[STACK_CHUNK];
    unsigned char ref[MPROC__FNREF_MAX];
    uint32_t ref_len;
    int rc = mproc__fnref_cached(fn, ref, sizeof ref, &ref_len);
    if (rc < 0)
        return rc;
    size_t head = mproc__chunk_head(ref_len);
    if (in_len > p->msg_max - head || in_len > UINT32_MAX)
        return -EMSGSIZE;
    size_t len = head + in_len;
    unsigned char *chunk = len <= sizeof stack ? stack : mproc__malloc(len);
    if (chunk == NULL)
        return 1; /* the usual path reports what it can */
    struct pool_chunk c = {.count = 1,
                           .in_size = (uint32_t)in_len,
                           .out_cap = (uint32_t)p->shm->direct_cap,
                           .fnref_len = ref_len,
                           .inplace = CHUNK_DIRECT};
    memcpy(chunk, &c, sizeof c);
    memcpy(chunk + sizeof c, ref, ref_len);
    if (in_len > 0)
        memcpy(chunk + head, in, in_len);
    pthread_mutex_lock(&p->mu);
    int slot = post(p, chunk, len);
    pthread_mutex_unlock(&p->mu);
    if (chunk != stack)
        mproc__free(chunk);
    if (slot < 0)
        return slot == -1 ? 1 : slot;

    struct pool_direct *d = &p->shm->slots[slot].direct;
    uint32_t st = wait_outcome(p, d, deadline);
    if (st == D_ABANDONED)
        return -ETIMEDOUT; /* the task goes on; whoever finishes it frees the mailbox */
    if (st == D_RETRY) {   /* its worker died before beginning it */
        atomic_store(&d->state, D_FREE);
        return 1;
    }
    rc = d->code;
    if (rc != 0)
        memcpy(msg, d->msg, d->msg_len + 1);
    if (rc == 0) {
        size_t n = d->out_len;
        if (out_len != NULL)
            *out_len = n;
        if (n > cap)
            rc = -MPROC_ETOOSMALL;
        else if (n > 0)
            memcpy(out, mproc__direct_data(p->shm, slot), n);
    }
    atomic_store_explicit(&d->state, D_FREE, memory_order_release);
    return rc;
}

static void local_gone(struct sup *s, struct worker *w, int code, const char *msg, bool retry)
{
    mproc_pool *p = s->p;
    struct pool_direct *d = &p->shm->slots[w->slot].direct;
    uint32_t st = atomic_load(&d->state);
    for (;;) {
        if (st == D_FREE || st == D_DONE || st == D_RETRY)
            return;
        if (st == D_ABANDONED) {
            atomic_store(&d->state, D_FREE);
            break;
        }
        if (st == D_POSTED && retry) {
            if (atomic_compare_exchange_strong(&d->state, &st, D_RETRY)) {
                p->tp.posted--; /* the caller submits it again */
                wake(d);
                return;
            }
            continue;
        }
        answer(d, code, msg, 0);
        if (atomic_compare_exchange_strong(&d->state, &st, D_DONE)) {
            wake(d);
            break;
        }
    }
    p->tp.settled++;
    mproc__assigned_counted(w, 1, true);
    mproc__sup_moved(s);
}

/* A worker that holds a caller's task (its mailbox in use): a steal must leave its
 * channel alone, since that task may still wait there. */
static bool local_busy(const mproc_pool *p, const struct worker *w)
{
    return atomic_load(&p->shm->slots[w->slot].direct.state) != D_FREE;
}

static void local_stats(const mproc_pool *p, mproc_pool_stats *s, mproc_worker_stats *w, size_t nw)
{
    s->submitted += p->tp.posted;
    s->done += p->tp.settled;
    s->failed += p->tp.settled;
    for (size_t i = 0; i < (size_t)p->nworkers; i++) {
        struct pool_direct *d = &p->shm->slots[i].direct;
        uint64_t done = atomic_load(&d->done), failed = atomic_load(&d->failed);
        s->done += done;
        s->failed += failed;
        if (i < nw) {
            w[i].done += done;
            w[i].failed += failed;
        }
    }
}

const struct transport_ops mproc__transport_local = {
    .plan = local_plan,
    .send = local_send,
    .output = local_output,
    .release = local_release,
    .reset = local_reset,
    .apply = local_apply,
    .busy = local_busy,
    .gone = local_gone,
    .stats = local_stats,
};

/* ---- the remote transport: workers on other hosts (src/pool/remote.c) -------------------- */

static void remote_plan(const struct sup *s, const struct worker *w, const struct job *j,
                        size_t count, struct route *r)
{
    plan(s, w, j, count, r, true);
}

static bool remote_send(struct sup *s, struct worker *w, const struct job *j, size_t first,
                        size_t unit, const struct route *r)
{
    size_t len = build(s, w, j, first, unit, r);
    s->p->launcher->post(s, w, s->chunk, len); /* the host holds what its channel cannot */
    return true;
}

const struct transport_ops mproc__transport_remote = {
    .plan = remote_plan,
    .send = remote_send,
    .output = local_output,
    .release = local_release,
    .reset = local_reset,
};

/* ---- the worker's end -------------------------------------------------------------------- */

/* Can this worker read (and so write) the pool process's memory? It reads its own
 * argument block there (origin): the same bytes as its own copy. REACH_YES (and
 * home_mem open) or REACH_NO. */
static uint32_t reach_probe(struct carry *cr)
{
    cr->home_tried = true;
    if (MPROC__FAULT("pool.reach") < 0)
        return REACH_NO;
    int fd = mproc__sys_vm_open(cr->a->home);
    struct worker_arg there;
    if (fd >= 0 &&
        mproc__sys_vm_read(fd, &there, (uint64_t)(uintptr_t)cr->a->origin, sizeof there) == 0 &&
        there.slot == cr->a->slot && there.shm == cr->a->shm) {
        if (mproc__sys_fd_id(fd, &cr->home_id) == 0) {
            cr->home_mem = fd;
            return REACH_YES;
        }
    }
    if (fd >= 0)
        mproc__sys_close(fd);
    return REACH_NO;
}

/* The shared ranges this worker has mapped in: a chunk inside one is not mapped in
 * again. Populating pages that are already mapped still walks them (measured: 80 MB,
 * 1-4 ms each time), and a map over the same arrays again (placed: mostly the same pages
 * for each worker, see src/pool/dispatch.c) would pay that per chunk. Valid for the
 * worker's life: the in-place ranges are mappings it inherited at its fork, which the
 * caller's later munmap does not touch. A full table starts afresh (only a cost). */
#define PREFAULT_MIN ((size_t)64 << 10)

static void carry_prefault(struct carry *cr, const void *addr, size_t len, bool write)
{
    if (len < PREFAULT_MIN)
        return; /* a few faults cost less than the call */
    uintptr_t a = (uintptr_t)addr, b = a + len;
    for (int i = 0; i < cr->nmapped; i++)
        if (cr->mapped[i].start <= a && b <= cr->mapped[i].end && (cr->mapped[i].write || !write))
            return;
    int64_t t0 = mproc__phase_start(cr->timing);
    mproc__sys_prefault(addr, len, write);
    mproc__phase_end(cr->timing, &cr->slot->fault_ns, t0);
    for (int i = 0; i < cr->nmapped; i++) /* extends a range it continues (chunks in order) */
        if (cr->mapped[i].write == write && cr->mapped[i].end == a) {
            cr->mapped[i].end = b;
            return;
        }
    if (cr->nmapped == CARRY_MAPPED)
        cr->nmapped = 0;
    cr->mapped[cr->nmapped].start = a;
    cr->mapped[cr->nmapped].end = b;
    cr->mapped[cr->nmapped].write = write;
    cr->nmapped++;
}

/* Item index of an in-place array whose item 0 is at addr: computed as integers (a
 * staging area's item-0 address may lie below the area, wrapping). */
static unsigned char *item_at(uint64_t addr, uint64_t index, uint32_t size)
{
    return (unsigned char *)(uintptr_t)(addr + index * size);
}

void mproc__carry_init(struct carry *cr, const struct worker_arg *a)
{
    *cr = (struct carry){
        .a = a, .slot = &a->shm->slots[a->slot], .home_mem = -1, .timing = a->timing};
}

int mproc__carry_in(struct carry *cr, const struct pool_chunk *c, unsigned char *items,
                    const unsigned char **src)
{
    if ((c->inplace & (CHUNK_RIN | CHUNK_ROUT)) && !cr->home_tried)
        atomic_store(&cr->slot->reach, reach_probe(cr));
    if (c->inplace & CHUNK_IN) {
        *src = item_at(c->in_addr, c->first, c->in_size);
        carry_prefault(cr, *src, (size_t)c->count * c->in_size, false);
        return 0;
    }
    *src = items;
    if (!(c->inplace & CHUNK_RIN))
        return 0;
    /* the inputs are in the caller's array */
    if (cr->home_mem >= 0 && !mproc__sys_fd_same(cr->home_mem, &cr->home_id))
        cr->home_mem = -1; /* a task closed it (the number is not ours to close now) */
    int64_t t0 = mproc__phase_start(cr->timing);
    int rc = cr->home_mem < 0 ? -EBADF : MPROC__FAULT("pool.reach.read");
    if (rc == 0)
        rc = mproc__sys_vm_read(cr->home_mem, items, c->in_addr + c->first * c->in_size,
                                (size_t)c->count * c->in_size);
    mproc__phase_end(cr->timing, &cr->slot->copy_ns, t0);
    if (rc < 0)
        atomic_store(&cr->slot->reach, REACH_NO); /* the supervisor stops sending such */
    return rc;
}

unsigned char *mproc__carry_out(struct carry *cr, const struct pool_chunk *c, uint64_t *back)
{
    *back = c->inplace & CHUNK_ROUT ? c->out_addr : 0;
    if (!(c->inplace & CHUNK_OUT))
        return NULL;
    unsigned char *dst = item_at(c->out_addr, c->first, c->out_cap);
    carry_prefault(cr, dst, (size_t)c->count * c->out_cap, true);
    return dst;
}

bool mproc__carry_write(struct carry *cr, uint64_t addr, const void *buf, size_t len)
{
    int64_t t0 = mproc__phase_start(cr->timing);
    bool ok = cr->home_mem >= 0 && MPROC__FAULT("pool.reach.write") == 0 &&
              mproc__sys_vm_write(cr->a->home, addr, buf, len) == 0;
    mproc__phase_end(cr->timing, &cr->slot->copy_ns, t0);
    return ok;
}

/* A caller's task (CHUNK_DIRECT): its outcome goes to the slot's mailbox. */
unsigned char *mproc__carry_direct_begin(struct carry *cr)
{
    uint32_t expect = D_POSTED;
    (void)atomic_compare_exchange_strong(&cr->slot->direct.state, &expect, D_RUNNING); /* or
                                                                           ABANDONED */
    return mproc__direct_data(cr->a->shm, cr->a->slot);
}

void mproc__carry_direct_answer(struct carry *cr, int code, const char *msg, size_t out_len)
{
    struct pool_direct *d = &cr->slot->direct;
    answer(d, code, msg, out_len);
    /* counted before the outcome is published: a caller that has it sees the count */
    atomic_store_explicit(&d->done, atomic_load_explicit(&d->done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (code != 0)
        atomic_store_explicit(&d->failed,
                              atomic_load_explicit(&d->failed, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    uint32_t expect = D_RUNNING;
    if (!atomic_compare_exchange_strong(&d->state, &expect, D_DONE))
        atomic_store(&d->state, D_FREE); /* its caller stopped waiting: drop it */
    else
        wake(d);
}
