/* src/pool/dispatch.c - feeding the workers: imap generators fill their windows, and
 * chunks of tasks go into each ready worker's channel.
 *
 * DESIGN. Runs only in the supervisor thread, under the pool mutex (dropped around a
 * generator call). Each worker gets DEPTH chunks at once, so it finds the next one waiting
 * when it finishes one; a worker whose measured time per task is tiny gets more, up to
 * POOL_SEGS chunks' worth of tasks or QUEUE_NS of work, merged into few messages
 * (chunksize 1 over tiny tasks: one wake-up and one channel operation for many tasks),
 * but only of the job it was measured on, so slow tasks still spread evenly. Who
 * wakes whom: mproc_queue_put_nowait wakes a worker asleep on its channel; a full
 * channel is simply retried on a later pass (the worker's records wake the supervisor).
 *
 * How a chunk travels (through the channel, in place, reach, staging) is the transport's
 * business (src/pool/transport.c): send_chunk asks it for a route and hands it the chunk.
 * A worker that dies holding chunks is handled by src/pool/life.c.
 *
 * Placement: a map over arrays the workers share (read and written in place) is split
 * into one part per worker slot, and a worker takes its chunks from the front of its own
 * part; with its own part done it takes from the back of the largest part left. So a map
 * over the same arrays again gives each worker mostly the same pages as last time, whose
 * mappings it still has: a page a process touches for the first time costs a page fault
 * (on a virtual machine with shadow page tables, ~5 us even when the page is in memory),
 * and with one cursor the workers swapped ranges from one map to the next (measured:
 * 10 M items, the same map repeated, 240, 130, 95, 55 ms while each worker slowly came to
 * have touched every page; placed, the second run is the fast one). It is also what keeps
 * each worker's part in its own caches.
 *
 * Work stealing (steal): when nothing is left to send and a worker is idle while another
 * has chunks waiting in its channel, the oldest waiting chunk is taken back out of that
 * channel (the queue gives each message to one taker only, so its worker never sees it)
 * and its tasks go, as retries, to the idle worker. A long task then holds back only its
 * own chunk, and the end of a job does not wait for a chunk queued behind a slow one.
 */
#include "internal.h"

#include "pool/pool.h"
#include "sys/relax.h"

#define DEPTH 2
#define QUEUE_NS INT64_C(200000)

/* ---- generators and dispatch ------------------------------------------------------------ */

/* Fill free imap window slots from the generators (mutex dropped around each call). */
void mproc__pool_generate(struct sup *s)
{
    mproc_pool *p = s->p;
    for (struct job *j = p->jobs.head; j != NULL;) {
        mproc_imap *it = j->it;
        if (it == NULL || it->gen_done || j->cancelled) {
            j = j->nextjob;
            continue;
        }
        struct imap_slot *sl = mproc__imap_gen_room(it);
        if (sl == NULL) {
            j = j->nextjob;
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        int rc = mproc__imap_generate(it, sl);
        pthread_mutex_lock(&p->mu);
        mproc__sup_moved(s);
        if (rc == 1 && !j->cancelled) {
            mproc__imap_place(it, sl);
            mproc__job_produced(p, j, it->produced);
            continue; /* same job: maybe another slot is free */
        }
        mproc__imap_gen_end(it, rc);
        mproc__job_seal(j);
        mproc__imap_wake(it);
        struct job *nx = j->nextjob;
        mproc__job_maybe_finish(s, j);
        j = nx;
    }
}

/* Send one chunk of at most limit tasks of j to w; unit: j's chunk size now (this
 * message may carry several such chunks). false: the channel is full (nothing changed). */
static bool send_chunk(struct sup *s, struct worker *w, struct job *j, size_t limit, size_t unit)
{
    struct take t;
    mproc__job_plan(j, w->slot, &t);
    size_t count = t.count;
    if (count > limit)
        count = limit;
    if (count > UINT32_MAX)
        count = UINT32_MAX;
    struct route r;
    s->p->transport->plan(s, w, j, count, &r); /* how it travels: src/pool/transport.c */
    assert(r.count >= 1 && r.count <= count);
    mproc__job_plan_cut(&t, r.count);
    if (!s->p->transport->send(s, w, j, t.first, unit, &r))
        return false;
    mproc__job_taken(j, &t);
    mproc__assigned_push(
        w,
        &(struct seg){
            .job = j, .first = t.first, .count = r.count, .stage = r.stage, .out_off = r.out_off});
    mproc__sup_moved(s);
    return true;
}

/* A map with the default chunksize is paced: its chunks hold about PACE_NS of work by
 * the measured time per task (from its batches: each says how long its tasks took in the
 * worker), and no more than a 2 * workers-th of what is left, so the last chunks are
 * small and the workers finish together. Until the first measurement a chunk is one
 * task. Tiny tasks soon go in chunks as large as the channel allows (two or three round
 * trips); slow or uneven ones spread task by task, where Python's fixed
 * len / (4 * workers) would give one worker a whole run of slow tasks. */
#define PACE_NS INT64_C(1000000)

/* Tasks per chunk of j now. */
static size_t chunk_of(const mproc_pool *p, const struct job *j)
{
    if (!j->paced || j->task_ns == 0)
        return j->chunksize;
    size_t cs = (size_t)(PACE_NS / j->task_ns);
    if (cs > j->pace_cap)
        cs = j->pace_cap;
    if (j->ops->known_end) { /* the last chunks get small */
        size_t left = mproc__job_todo(j) + j->nretry, share = 2 * (size_t)p->nworkers;
        left = left / share + (left % share != 0);
        if (cs > left)
            cs = left;
    }
    return cs > 0 ? cs : 1;
}

/* How many tasks of j may w take now, in one chunk (0: none)? DEPTH chunks of cs (the
 * job's chunk size now, chunk_of) always (it finds the next one waiting when it finishes
 * one). More only while what it has queued is under QUEUE_NS of work by its measured time
 * per task, and only of the job it was measured on, and never more than POOL_SEGS chunks'
 * worth of tasks outstanding: so tiny tasks with chunksize 1 travel many to a message (one
 * wake-up and one channel operation for many), while slow tasks stay DEPTH chunks deep and
 * spread evenly over the workers. A merged chunk is only transport: each task still has
 * its own outcome, and a worker is never handed more tasks than POOL_SEGS of the caller's
 * chunks, so an explicit chunksize keeps bounding how much work one worker can hold. An
 * imap's items take window slots until they are read: beyond DEPTH chunks a worker holds
 * at most a 2 * workers-th of the window, so one slow item stuck in a worker, with what is
 * queued behind it, never holds the whole window (unordered, the other items keep flowing
 * past it). */
static size_t room_for(const struct worker *w, const struct job *j, size_t cs)
{
    size_t base = w->held.nsegs < DEPTH ? cs : 0;
    if (w->held.nsegs >= POOL_SEGS || w->held.task_ns <= 0 || j->id != w->held.last_job)
        return base;
    uint64_t out = w->held.sent - w->held.received;
    uint64_t want = (uint64_t)(QUEUE_NS / w->held.task_ns);
    uint64_t most = (uint64_t)POOL_SEGS * cs;
    if (most > j->hold_cap)
        most = j->hold_cap;
    if (want > most)
        want = most;
    if (want <= out)
        return base;
    uint64_t n = want - out, half = want / 2; /* two chunks share the queue */
    if (n > half)
        n = half;
    n -= n % cs;
    return n > base ? (size_t)n : base;
}

/* Send w what it has room for, from the jobs with work from *jp on (*jp moves past the
 * jobs that have none left: NULL when none has). */
static void feed(struct sup *s, struct worker *w, struct job **jp)
{
    mproc_pool *p = s->p;
    struct job *j = *jp;
    while (w->state == W_READY) {
        while (j != NULL && !mproc__job_has_work(j))
            j = j->nextjob;
        if (j == NULL)
            break;
        size_t cs = chunk_of(p, j);
        size_t limit = room_for(w, j, cs);
        if (limit == 0)
            break;
        if (p->o.maxtasksperchild != 0) {
            if (w->held.sent >= p->o.maxtasksperchild)
                break;
            if (limit > p->o.maxtasksperchild - w->held.sent)
                limit = p->o.maxtasksperchild - w->held.sent;
        }
        int64_t t0 = p->o.phase_times ? mproc__sys_now_ns() : 0;
        bool sent = send_chunk(s, w, j, limit, cs);
        if (p->o.phase_times)
            p->dispatch_ns += (uint64_t)(mproc__sys_now_ns() - t0);
        if (!sent)
            break;
    }
    *jp = j;
}

/* Work stealing: nothing is left to send and thief has nothing, while another worker has
 * chunks waiting in its channel behind the one it runs (a long task, or simply the end of
 * a job). Take the oldest waiting one back out of that channel (the queue hands each
 * message to exactly one taker, so the worker never sees it) and put its tasks at the
 * front of their job's retries, for the thief. Not from a worker that holds a caller's task
 * (a direct apply may wait in its channel). true: tasks to send. */
static bool steal(struct sup *s, struct worker *thief)
{
    mproc_pool *p = s->p;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *v = &p->workers[i];
        if (v == thief || v->state != W_READY || v->held.nsegs < 2 ||
            (p->transport->busy != NULL && p->transport->busy(p, v)))
            continue;
        size_t len;
        if (mproc_queue_get_into(v->in, s->chunk, p->msg_max, &len, 0) < 0)
            continue; /* it took them all meanwhile */
        struct pool_chunk c;
        memcpy(&c, s->chunk, sizeof c);
        assert(!(c.inplace & CHUNK_DIRECT));
        struct seg g;
        if (!mproc__assigned_take_back(v, &c, &g))
            continue; /* cannot happen: every message in a channel is a chunk sent */
        mproc__sup_moved(s);
        mproc__jobs_look(p); /* a cancelled job's tasks fail there */
        return mproc__pool_requeue_or_fail(s, g.job, g.first, g.count, -ENOMEM,
                                           "out of memory moving a queued task to an idle "
                                           "worker",
                                           v);
    }
    return false;
}

void mproc__pool_dispatch(struct sup *s)
{
    mproc_pool *p = s->p;
    struct job *j = p->jobs.head;
    int64_t now = mproc__sys_now_ns();
    for (int i = 0; i < p->nworkers; i++)
        mproc__assigned_rate(&p->workers[i], now);
    for (int i = 0; i < p->nworkers && j != NULL; i++)
        feed(s, &p->workers[i], &j);
    for (int i = 0; i < p->nworkers && j == NULL && p->request != REQ_TERMINATE; i++) {
        struct worker *w = &p->workers[i];
        if (w->state != W_READY || w->held.nsegs != 0 ||
            (p->o.maxtasksperchild != 0 && w->held.sent >= p->o.maxtasksperchild))
            continue;
        struct job *k = p->jobs.head;
        if (steal(s, w))
            feed(s, w, &k);
    }
}
