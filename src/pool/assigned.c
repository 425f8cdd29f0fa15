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
    return &w->segs[(w->seg0 + k) % POOL_SEGS];
}

struct seg *mproc__pool_front(struct worker *w, size_t *index)
{
    if (w->nsegs == 0)
        return NULL;
    struct seg *g = mproc__pool_seg_at(w, 0);
    *index = g->first + g->done;
    return g;
}

static void pop_seg(struct worker *w)
{
    w->transport->release(w, mproc__pool_seg_at(w, 0));
    w->seg0 = (w->seg0 + 1) % POOL_SEGS;
    w->nsegs--;
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
    assert(w->nsegs < POOL_SEGS);
    *mproc__pool_seg_at(w, w->nsegs) = *g;
    w->nsegs++;
    w->sent += g->count;
}

bool mproc__assigned_take_back(struct worker *w, const struct pool_chunk *c, struct seg *out)
{
    int k = 0; /* usually 1 or more: the worker runs the front one */
    while (k < w->nsegs && !(mproc__pool_seg_at(w, k)->job->id == c->job_id &&
                             mproc__pool_seg_at(w, k)->first == c->first &&
                             mproc__pool_seg_at(w, k)->count == c->count))
        k++;
    if (k == w->nsegs)
        return false;
    *out = *mproc__pool_seg_at(w, k);
    for (; k + 1 < w->nsegs; k++)
        *mproc__pool_seg_at(w, k) = *mproc__pool_seg_at(w, k + 1);
    w->nsegs--;
    w->transport->release(w, out);
    w->sent -= out->count;
    return true;
}

void mproc__assigned_received(struct worker *w, uint64_t n, uint64_t job)
{
    w->received += n;
    if (job != 0 && w->last_job != job) {
        /* an outcome of a new job: its time per task is measured afresh (dispatch) */
        w->last_job = job;
        w->task_ns = 0;
        w->rate_t0 = 0;
    }
}

void mproc__assigned_counted(struct worker *w, uint64_t n, bool failed)
{
    w->st.done += n;
    if (failed)
        w->st.failed += n;
}

/* Once per RATE_NS of a worker's busy time, estimate its time per task (idle time in the
 * window counts as work: the estimate errs slow, which keeps the queue short). */
void mproc__assigned_rate(struct worker *w, int64_t now)
{
    bool busy = w->sent > w->received;
    if (w->rate_t0 == 0) {
        if (busy) {
            w->rate_t0 = now;
            w->rate_n0 = w->received;
        }
        return;
    }
    if (now - w->rate_t0 < RATE_NS)
        return;
    uint64_t n = w->received - w->rate_n0;
    w->task_ns = (now - w->rate_t0) / (int64_t)(n > 0 ? n : 1);
    w->rate_t0 = busy ? now : 0;
    w->rate_n0 = w->received;
}

void mproc__assigned_reset(struct worker *w, bool counts)
{
    w->nsegs = 0;
    w->seg0 = 0;
    w->transport->reset(w);
    if (counts) {
        w->received = w->sent = 0;
        w->rate_t0 = 0;
        w->task_ns = 0;
    }
}

void mproc__pool_requeue(struct worker *w)
{
    for (int k = w->nsegs - 1; k >= 0; k--) {
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
