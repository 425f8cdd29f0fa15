/* src/pool/assigned.c - what a worker holds: the chunks sent to it and not yet settled
 * (struct seg, a FIFO in the order sent, which is the order the worker runs them and
 * publishes their outcomes), the counts that go with them, and the supervisor's estimate
 * of its time per task.
 *
 * DESIGN. These fields of struct worker are written here only, by the supervisor thread
 * under the pool mutex: dispatch pushes (src/pool/dispatch.c), settle and a death pop
 * (src/pool/settle.c, src/pool/life.c), stealing takes one back. The FIFO is what matches
 * an outcome to its task: a record's job id and index are only checked against it.
 * Chunks hold POOL_SEGS at most (dispatch never sends more).
 */
#include "internal.h"

#include "pool/pool.h"

#define RATE_NS INT64_C(1000000)

struct seg *mproc__pool_seg_at(struct worker *w, int k)
{
    return &w->held.segs[(w->held.seg0 + k) % POOL_SEGS];
}

struct seg *mproc__pool_front(struct worker *w, size_t *index)
{
    if (w->held.nsegs == 0)
        return NULL;
    struct seg *g = mproc__pool_seg_at(w, 0);
    *index = g->first + g->done;
    return g;
}

static void pop_seg(struct worker *w)
{
    w->transport->release(w, mproc__pool_seg_at(w, 0));
    w->held.seg0 = (w->held.seg0 + 1) % POOL_SEGS;
    w->held.nsegs--;
}

void mproc__pool_pop_tasks(struct worker *w, size_t n)
{
    struct seg *g = mproc__pool_seg_at(w, 0);
    g->done += n;
    if (g->done >= g->count)
        pop_seg(w);
}

void mproc__pool_pop_task(struct worker *w)
{
    mproc__pool_pop_tasks(w, 1);
}

void mproc__assigned_push(struct worker *w, const struct seg *g)
{
    assert(w->held.nsegs < POOL_SEGS);
    *mproc__pool_seg_at(w, w->held.nsegs) = *g;
    w->held.nsegs++;
    w->held.sent += g->count;
}

bool mproc__assigned_take_back(struct worker *w, const struct pool_chunk *c, struct seg *out)
{
    int k = 0; /* usually 1 or more: the worker runs the front one */
    while (k < w->held.nsegs && !(mproc__pool_seg_at(w, k)->job->id == c->job_id &&
                                  mproc__pool_seg_at(w, k)->first == c->first &&
                                  mproc__pool_seg_at(w, k)->count == c->count))
        k++;
    if (k == w->held.nsegs)
        return false;
    *out = *mproc__pool_seg_at(w, k);
    for (; k + 1 < w->held.nsegs; k++)
        *mproc__pool_seg_at(w, k) = *mproc__pool_seg_at(w, k + 1);
    w->held.nsegs--;
    w->transport->release(w, out);
    w->held.sent -= out->count;
    return true;
}

void mproc__assigned_received(struct worker *w, uint64_t n, uint64_t job)
{
    w->held.received += n;
    if (job != 0 && w->held.last_job != job) {
        /* an outcome of a new job: its time per task is measured afresh (dispatch) */
        w->held.last_job = job;
        w->held.task_ns = 0;
        w->held.rate_t0 = 0;
    }
}

void mproc__assigned_counted(struct worker *w, uint64_t n, bool failed)
{
    w->held.done += n;
    if (failed)
        w->held.failed += n;
}

/* Once per RATE_NS of a worker's busy time, estimate its time per task (idle time in the
 * window counts as work: the estimate errs slow, which keeps the queue short). */
void mproc__assigned_rate(struct worker *w, int64_t now)
{
    bool busy = w->held.sent > w->held.received;
    if (w->held.rate_t0 == 0) {
        if (busy) {
            w->held.rate_t0 = now;
            w->held.rate_n0 = w->held.received;
        }
        return;
    }
    if (now - w->held.rate_t0 < RATE_NS)
        return;
    uint64_t n = w->held.received - w->held.rate_n0;
    w->held.task_ns = (now - w->held.rate_t0) / (int64_t)(n > 0 ? n : 1);
    w->held.rate_t0 = busy ? now : 0;
    w->held.rate_n0 = w->held.received;
}

void mproc__assigned_reset(struct worker *w, bool counts)
{
    w->held.nsegs = 0;
    w->held.seg0 = 0;
    w->transport->reset(w);
    if (counts) {
        w->held.received = w->held.sent = 0;
        w->held.rate_t0 = 0;
        w->held.task_ns = 0;
    }
}

void mproc__pool_requeue(struct worker *w)
{
    for (int k = w->held.nsegs - 1; k >= 0; k--) {
        struct seg *g = mproc__pool_seg_at(w, k);
        size_t cnt = g->count - g->done;
        if (cnt > 0 && mproc__job_requeue(g->job, g->first + g->done, cnt))
            g->done = g->count;
    }
}

void mproc__pool_fail_assigned(struct sup *s, struct worker *w, int code, const char *msg)
{
    size_t index;
    struct seg *g;
    while ((g = mproc__pool_front(w, &index)) != NULL) {
        if (g->done >= g->count) { /* taken by requeue */
            pop_seg(w);
            continue;
        }
        struct job *j = g->job;
        mproc__job_settled(j, 1);
        mproc__pool_pop_task(w);
        mproc__job_outcome(s, j, index, code, msg, NULL, 0, w);
        mproc__job_maybe_finish(s, j);
    }
}
