/* src/pool/settle.c - the supervisor's bookkeeping of outcomes: result records read from
 * a worker's ring are matched to the tasks sent to it, recorded in their jobs, and a
 * finished job's result is queued for delivery; tasks of a dead worker are requeued.
 *
 * DESIGN. Runs only in the supervisor thread (src/pool/super.c), under the pool mutex.
 * A worker runs its chunks in the order sent and publishes outcomes in that order (one
 * REC_RESULT per failure or apply, one REC_BATCH for many successes), so each record is
 * matched by position to the FIFO of chunks sent to that worker (struct seg ring); the
 * record's job id and index are only checked. Records are read in place from the ring
 * and released in one store per drain. Who wakes whom: nobody is woken here except
 * imap readers (their futex) and the ring's writer when it waited for room (in
 * mproc__ring_release); results are delivered after the pass (mproc__result_deliver).
 * When a worker dies, what it published is drained first, then its tasks are settled by
 * src/pool/life.c with requeue/fail_assigned from here: a task gets exactly one outcome
 * whatever instant the worker died at.
 */
#include "internal.h"

#include "pool/pool.h"

/* A batch record: its tasks are the next count ones sent to w (workers publish one chunk
 * at most per batch; the walk below would take several). */
static void take_batch(struct sup *s, struct worker *w, const struct pool_rec *h,
                       const unsigned char *out)
{
    size_t left = (size_t)h->count;
    assert(h->out_len == 0 || h->out_len % h->count == 0);
    struct seg *g0 = mproc__pool_seg_at(w, 0);
    if (w->held.nsegs > 0 && g0->job->id == h->job_id)
        mproc__job_paced(g0->job, left, h->busy_ns);
    size_t each = h->count != 0 ? h->out_len / (size_t)h->count : 0;
    while (left > 0) {
        size_t index;
        struct seg *g = mproc__pool_front(w, &index);
        assert(g != NULL && g->job->id == h->job_id && g->job->ops->fixed);
        if (g == NULL || !g->job->ops->fixed)
            return; /* cannot happen with a sane worker */
        struct job *j = g->job;
        size_t m = g->count - g->done;
        if (m > left)
            m = left;
        const unsigned char *src = each != 0 ? out : s->p->transport->output(s, w, g, index);
        mproc__assigned_received(w, m, j->id);
        mproc__job_settled(j, m);
        mproc__pool_pop_tasks(w, m);
        mproc__job_successes(s, j, index, m, src, w);
        out += m * each;
        left -= m;
        mproc__job_maybe_finish(s, j);
    }
}

/* A chunk whose inputs the worker could not read (REC_BOUNCE): it began none of its
 * tasks, so they go out again like a dead worker's unbegun ones. */
static void give_back(struct sup *s, struct worker *w, const struct pool_rec *h)
{
    size_t index;
    struct seg *g = mproc__pool_front(w, &index);
    assert(g != NULL && g->job->id == h->job_id && index == h->index &&
           g->count - g->done == h->count);
    if (g == NULL)
        return; /* cannot happen with a sane worker */
    struct job *j = g->job;
    size_t m = g->count - g->done;
    mproc__assigned_received(w, m, 0); /* the worker counted them as begun and settled */
    mproc__pool_pop_tasks(w, m);
    mproc__sup_moved(s);
    mproc__jobs_look(s->p); /* a cancelled job's requeued tasks fail there */
    char msg[POOL_MSG_MAX];
    mproc__pool_say(msg, sizeof msg,
                    "a worker could not read the inputs (%s), and there was "
                    "no memory to send them to another",
                    mproc_strerror((int)h->code));
    (void)mproc__pool_requeue_or_fail(s, j, index, m, -ENOMEM, msg, w);
}

/* Read every record the worker published. */
void mproc__pool_drain(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    if (!w->live)
        return;
    struct pool_slot *sl = &p->shm->slots[w->slot];
    unsigned char *data = mproc__ring_data(p->shm, w->slot);
    uint64_t pos = mproc__ring_head(&sl->ring), tail = mproc__ring_tail(&sl->ring);
    for (;;) {
        size_t len;
        const unsigned char *rb; /* the record: in the ring, or copied to s->buf if split */
        int rc =
            mproc__ring_next(data, p->shm->ring_cap, &pos, tail, s->buf, p->msg_max, &rb, &len);
        if (rc <= 0) {
            if (pos == mproc__ring_head(&sl->ring))
                return;                          /* nothing new (or nothing sane to do) */
            mproc__ring_release(&sl->ring, pos); /* the whole batch at once */
            tail = mproc__ring_tail(&sl->ring);
            if (pos == tail)
                return;
            continue;
        }
        struct pool_rec h;
        if (len < sizeof h)
            continue;
        memcpy(&h, rb, sizeof h);
        const char *m = (const char *)rb + sizeof h;
        if (h.kind == REC_BATCH) {
            take_batch(s, w, &h, rb + sizeof h);
            continue;
        }
        if (h.kind == REC_BOUNCE) {
            give_back(s, w, &h);
            continue;
        }
        if (h.kind == REC_READY) {
            mproc__pool_worker_ready(s, w, h.code, m, h.msg_len);
            continue;
        }
        size_t index;
        struct seg *g = mproc__pool_front(w, &index);
        assert(g != NULL && g->job->id == h.job_id && index == h.index);
        if (g == NULL)
            continue;
        struct job *j = g->job;
        const unsigned char *staged = s->p->transport->output(s, w, g, index);
        mproc__assigned_received(w, 1, j->id);
        mproc__job_settled(j, 1);
        mproc__job_paced(j, 1, h.busy_ns); /* outputs sent alone (map_var) pace it too */
        mproc__pool_pop_task(w);
        char text[POOL_MSG_MAX];
        if (h.code != 0)
            mproc__pool_say(text, sizeof text, "%.*s", (int)h.msg_len, m);
        mproc__job_outcome(s, j, index, h.code, h.code != 0 ? text : NULL,
                           staged != NULL ? staged : rb + sizeof h + h.msg_len,
                           staged != NULL ? j->out_size : h.out_len, w);
        mproc__job_maybe_finish(s, j);
    }
}

bool mproc__pool_requeue_or_fail(struct sup *s, struct job *j, size_t first, size_t count, int code,
                                 const char *msg, struct worker *w)
{
    if (mproc__job_requeue(j, first, count))
        return true;
    mproc__job_settled(j, count);
    for (size_t i = 0; i < count; i++)
        mproc__job_outcome(s, j, first + i, code, msg, NULL, 0, w);
    mproc__job_maybe_finish(s, j);
    return false;
}
