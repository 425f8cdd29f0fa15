/* src/pool/transport.c - how a chunk of tasks travels between the supervisor and a
 * worker: both ends of it. The supervisor asks for a route (plan), then sends the chunk
 * (send) and, when the outcomes come in, where each output was left (output); the worker
 * asks where its inputs are (carry_in), where its outputs go (carry_out) and writes a
 * batch's outputs back (carry_write). Neither knows the modes below: they are the
 * transport's. A transport of another kind (MPI ranks) is another struct
 * transport_ops; the pool holds the one it uses.
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

#define STAGE_MIN ((size_t)16 << 10)

/* ---- the supervisor's end ---------------------------------------------------------------- */

static void local_plan(const struct sup *s, const struct worker *w, const struct job *j,
                       size_t count, struct route *r)
{
    const mproc_pool *p = s->p;
    size_t head = mproc__chunk_head(j->fnref_len);
    *r = (struct route){.stage = -1, .out_off = SIZE_MAX};
    size_t per = (j->inplace_in ? 0 : j->in_size) + (j->inplace_out ? 0 : j->out_size);
    bool large = j->ops->staged && per > 0 && count * per >= STAGE_MIN;
    bool reach = large && atomic_load_explicit(&p->shm->slots[w->slot].reach,
                                               memory_order_relaxed) != REACH_NO;
    bool rin = reach && !j->inplace_in && j->in_size > 0;
    bool rout = reach && !j->inplace_out && j->out_size > 0;
    for (int k = 0; k < POOL_STAGES && large && !reach && r->stage < 0; k++)
        if (!w->stage_busy[k])
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
               (rout ? CHUNK_ROUT : 0u);
}

static bool local_send(struct sup *s, struct worker *w, const struct job *j, size_t first,
                       size_t unit, const struct route *r)
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
    if (mproc_queue_put_nowait(w->in, b, head + (carried ? count * j->in_size : 0)) < 0)
        return false;
    if (r->stage >= 0)
        w->stage_busy[r->stage] = true;
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
        w->stage_busy[g->stage] = false;
}

static void local_reset(struct worker *w)
{
    memset(w->stage_busy, 0, sizeof w->stage_busy);
}

const struct transport_ops mproc__transport_local = {
    .plan = local_plan,
    .send = local_send,
    .output = local_output,
    .release = local_release,
    .reset = local_reset,
};

/* ---- the worker's end -------------------------------------------------------------------- */

/* Can this worker read (and so write) the pool process's memory? It reads its own
 * argument block there: the same bytes as its copy from the fork. REACH_YES (and
 * home_mem open) or REACH_NO. */
static uint32_t reach_probe(struct carry *cr)
{
    cr->home_tried = true;
    if (MPROC__FAULT("pool.reach") < 0)
        return REACH_NO;
    int fd = mproc__sys_vm_open(cr->a->home);
    struct worker_arg there;
    if (fd >= 0 && mproc__sys_vm_read(fd, &there, (uint64_t)(uintptr_t)cr->a, sizeof there) == 0 &&
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
