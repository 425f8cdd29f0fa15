/* src/pool_super.c - the pool's supervisor thread: starts, feeds, watches and replaces
 * the workers, and completes every task exactly once.
 *
 * DESIGN. One thread per pool, created by mproc_pool_new, owns the workers: it forks them
 * (so PR_SET_PDEATHSIG ties them to a thread that lives as long as the pool), sends them
 * chunks, reads their result records, watches their pidfds and enforces time limits. All
 * job state is under the pool mutex; the thread holds it during a pass and drops it to
 * sleep, to call a generator, and to deliver completed results (callbacks run here, one at
 * a time, with no lock held).
 *
 * A pass: (1) drain every worker's result channel, recording each outcome; (2) look at
 * pidfds (after a poll said so, or every BUSY_CHECK_NS while busy): a dead worker's channel
 * is drained, the task it had begun without a record fails (-MPROC_EDIED, or
 * -MPROC_ETIMELIMIT when we killed it for its time limit), the tasks it was sent but had
 * not begun are queued again for another worker, and a replacement is forked unless the
 * restart budget is spent (then the pool breaks: every worker is killed and every task
 * without an outcome fails with -MPROC_EBROKEN and the cause); (3) kill workers whose
 * task ran past its limit; (4) call imap generators for free window slots; (5) give each
 * ready worker up to DEPTH chunks, so it finds the next one waiting when it finishes one.
 *
 * Who wakes whom: workers ring the eventfd after a record only if sup_sleeping is set;
 * callers bump `kicks` and ring likewise; the supervisor sets sup_sleeping (seq_cst),
 * re-checks the channels and `kicks`, and only then polls (eventfd + every pidfd, with the
 * earliest time limit as deadline). So while there is work, no one makes a system call
 * per task. Before sleeping it spins briefly when CPUs allow (BENCHMARKS.md rule 5).
 *
 * Ordering: a worker runs its chunks in the order sent and publishes one record per task
 * in that order, so outcomes are matched to tasks by position (the record's job id and
 * index are checked by assert). If the caller's process dies, the workers die with it
 * (daemon flag); their memory is anonymous, so nothing is left anywhere.
 */
#include "internal.h"

#include "pool_internal.h"
#include "sys/pool.h"
#include "sys/queue.h"
#include "sys/spawn.h"

#include <signal.h>
#include <stdio.h>
#include <stdarg.h>

/* snprintf that may truncate (messages are capped on purpose). */
__attribute__((format(printf, 3, 4))) static void say(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

#define DEPTH 2
#define BUSY_CHECK_NS INT64_C(5000000)
#define SPAWN_RETRY_NS INT64_C(100000000)
#define SPIN_ITERS 2000
#define RATE_NS INT64_C(1000000)
#define QUEUE_NS INT64_C(200000)

struct sup {
    mproc_pool *p;
    unsigned char *buf;  /* a record or a chunk, msg_max bytes */
    unsigned char *chunk;
    mproc_result *done;  /* results to deliver after the pass */
    bool progress;       /* something happened in this pass */
    int64_t last_check;  /* last look at the pidfds */
    int64_t spawn_retry; /* when to retry a failed fork */
    struct pollfd *pfd;  /* eventfd + one per worker */
};

/* ---- outcomes ---------------------------------------------------------------------------- */

static void job_unlink(mproc_pool *p, struct job *j)
{
    if (j->prev != NULL)
        j->prev->nextjob = j->nextjob;
    else
        p->jobs = j->nextjob;
    if (j->nextjob != NULL)
        j->nextjob->prev = j->prev;
    else
        p->jobs_tail = j->prev;
}

/* Everything in: detach the job, queue its result for delivery. */
static void maybe_finish(struct sup *s, struct job *j)
{
    if (!j->sealed || j->finished < j->n)
        return;
    assert(j->outstanding == 0);
    job_unlink(s->p, j);
    if (j->res != NULL) {
        mproc__result_finish(j->res);
        if (j->res->code == 0 && j->failed > 0) { /* a failure we could not record */
            j->res->code = -ENOMEM;
            j->res->msg = NULL;
        }
        j->res->done_next = s->done;
        s->done = j->res;
    }
    if (j->it != NULL) {
        j->it->job = NULL;
        mproc__imap_wake(j->it);
        mproc__imap_unref(j->it);
    }
    mproc__free(j->in_owned);
    mproc__free(j->retry);
    mproc__free(j);
}

/* One task's outcome (code != 0: failure with msg; else out/len). */
static void outcome(struct sup *s, struct job *j, size_t index, int code, const char *msg,
                    const void *out, size_t len, struct worker *w)
{
    mproc_pool *p = s->p;
    j->finished++;
    p->st.done++;
    if (w != NULL)
        w->st.done++;
    if (code != 0) {
        j->failed++;
        p->st.failed++;
        if (w != NULL)
            w->st.failed++;
    }
    switch (j->kind) {
    case JOB_APPLY:
        if (code != 0) {
            (void)mproc__fails_add(&j->res->fails, 0, 1, code, msg);
        } else if (len > 0) {
            j->res->data = mproc__malloc(len);
            if (j->res->data == NULL) {
                j->failed++;
                (void)mproc__fails_add(&j->res->fails, 0, 1, -ENOMEM, "no memory for the output");
            } else {
                memcpy(j->res->data, out, len);
                j->res->len = len;
            }
        }
        break;
    case JOB_MAP:
        if (code != 0)
            (void)mproc__fails_add(&j->res->fails, index, 1, code, msg);
        else if (!j->inplace_out) /* in place: the worker wrote it there */
            memcpy(j->out + index * j->out_size, out, j->out_size);
        break;
    case JOB_IMAP:
        mproc__imap_item(j->it, index, code, msg, out);
        mproc__imap_wake(j->it);
        break;
    }
    s->progress = true;
}

/* Fail the tasks of j never dispatched (and its retries) with code. Returns how many. */
static size_t fail_pending(struct sup *s, struct job *j, int code, const char *msg)
{
    size_t n = 0;
    for (size_t r = 0; r < j->nruns; r++)
        for (size_t i = 0; i < j->retry[r].count; i++, n++)
            outcome(s, j, j->retry[r].first + i, code, msg, NULL, 0, NULL);
    j->nruns = 0;
    j->nretry = 0;
    if (j->kind == JOB_IMAP) {
        for (; j->next < j->n; j->next++, n++)
            outcome(s, j, j->next, code, msg, NULL, 0, NULL);
    } else if (j->next < j->n) {
        size_t k = j->n - j->next;
        j->finished += k;
        j->failed += k;
        s->p->st.done += k;
        s->p->st.failed += k;
        (void)mproc__fails_add(&j->res->fails, j->next, k, code, msg);
        j->next = j->n;
        n += k;
    }
    return n;
}

/* ---- workers ------------------------------------------------------------------------------- */

static int spawn_worker(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    struct worker_arg *a = &p->wargs[w->slot];
    mproc_queue_opts qo = {.capacity = p->o.channel_size};
    mproc_queue *in = NULL;
    int rc = mproc_queue_new(&in, &qo);
    if (rc < 0)
        goto fail;
    *a = (struct worker_arg){.shm = p->shm,
                             .slot = w->slot,
                             .in = in,
                             .msg_max = p->msg_max,
                             .maxtasks = p->o.maxtasksperchild,
                             .pin = p->o.pin,
                             .init = p->o.initializer,
                             .initarg = p->o.initarg,
                             .mask = p->caller_mask};
    struct pool_slot *sl = &p->shm->slots[w->slot];
    atomic_store(&sl->started, 0);
    atomic_store(&sl->started_ns, 0);
    mproc__ring_reset(&sl->ring); /* the previous worker is reaped: nobody writes it */
    struct mproc__spawn sp = {.fn = mproc__pool_worker_main,
                              .arg = a,
                              .fds = {-1, -1, -1},
                              .flags = MPROC_PROCESS_DAEMON};
    rc = mproc__sys_spawn(&sp, &w->pid, &w->pidfd);
    if (rc < 0)
        goto fail;
    w->in = in;
    w->live = true;
    w->state = W_STARTING;
    w->received = w->sent = 0;
    w->nsegs = 0;
    w->seg0 = 0;
    w->rate_t0 = 0;
    w->task_ns = 0;
    w->timed_out = false;
    w->init_code = 0;
    w->init_msg[0] = '\0';
    w->st.pid = w->pid;
    return 0;
fail:
    mproc_queue_free(in);
    w->state = W_NONE;
    w->pid = 0;
    w->st.pid = 0;
    w->pidfd = -1;
    return rc;
}

/* The k-th chunk sent to w and not yet settled, oldest first. */
static struct seg *seg_at(struct worker *w, int k)
{
    return &w->segs[(w->seg0 + k) % POOL_SEGS];
}

static void pop_seg(struct worker *w)
{
    w->seg0 = (w->seg0 + 1) % POOL_SEGS;
    w->nsegs--;
}

/* The task a worker is running or will run next: its segment position. */
static struct seg *front(struct worker *w, size_t *index)
{
    if (w->nsegs == 0)
        return NULL;
    struct seg *g = seg_at(w, 0);
    *index = g->first + g->done;
    return g;
}

/* Settle n tasks at the front of w's first chunk (n <= what is left of it). */
static void pop_tasks(struct worker *w, size_t n)
{
    struct seg *g = seg_at(w, 0);
    g->done += n;
    if (g->done == g->count)
        pop_seg(w);
}

static void pop_task(struct worker *w)
{
    pop_tasks(w, 1);
}

/* count successful fixed-size outcomes of j from first on (a REC_BATCH), outputs back to
 * back at out (NULL: written in place). */
static void outcomes_ok(struct sup *s, struct job *j, size_t first, size_t count,
                        const unsigned char *out, struct worker *w)
{
    mproc_pool *p = s->p;
    j->finished += count;
    p->st.done += count;
    w->st.done += count;
    if (j->kind == JOB_MAP) {
        if (!j->inplace_out && out != NULL)
            memcpy(j->out + first * j->out_size, out, count * j->out_size);
    } else {
        for (size_t i = 0; i < count; i++)
            mproc__imap_item(j->it, first + i, 0, NULL,
                             out != NULL ? out + i * j->out_size : NULL);
        mproc__imap_wake(j->it);
    }
    s->progress = true;
}

/* A batch record: its tasks are the next count ones sent to w (maybe several chunks). */
static void take_batch(struct sup *s, struct worker *w, const struct pool_rec *h,
                       const unsigned char *out)
{
    size_t left = (size_t)h->count;
    assert(h->out_len == 0 || h->out_len % h->count == 0);
    size_t each = h->count != 0 ? h->out_len / (size_t)h->count : 0;
    while (left > 0) {
        size_t index;
        struct seg *g = front(w, &index);
        assert(g != NULL && g->job->id == h->job_id && g->job->kind != JOB_APPLY);
        if (g == NULL || g->job->kind == JOB_APPLY)
            return; /* cannot happen with a sane worker */
        struct job *j = g->job;
        size_t m = g->count - g->done;
        if (m > left)
            m = left;
        w->received += m;
        w->last_job = j->id;
        j->outstanding -= m;
        pop_tasks(w, m);
        outcomes_ok(s, j, index, m, each != 0 ? out : NULL, w);
        out += m * each;
        left -= m;
        maybe_finish(s, j);
    }
}

/* Read every record the worker published. */
static void drain(struct sup *s, struct worker *w)
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
        int rc = mproc__ring_next(data, p->shm->ring_cap, &pos, tail, s->buf, p->msg_max, &rb,
                                  &len);
        if (rc <= 0) {
            if (pos == mproc__ring_head(&sl->ring))
                return; /* nothing new (or nothing sane to do) */
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
        if (h.kind == REC_READY) {
            w->init_code = h.code;
            say(w->init_msg, sizeof w->init_msg, "%.*s", (int)h.msg_len, m);
            if (h.code == 0)
                w->state = W_READY;
            s->progress = true;
            continue;
        }
        size_t index;
        struct seg *g = front(w, &index);
        assert(g != NULL && g->job->id == h.job_id && index == h.index);
        if (g == NULL)
            continue;
        struct job *j = g->job;
        w->received++;
        w->last_job = j->id;
        j->outstanding--;
        pop_task(w);
        char text[POOL_MSG_MAX];
        if (h.code != 0)
            say(text, sizeof text, "%.*s", (int)h.msg_len, m);
        outcome(s, j, index, h.code, h.code != 0 ? text : NULL,
                rb + sizeof h + h.msg_len, h.out_len, w);
        maybe_finish(s, j);
    }
}

static void describe_exit(char *buf, size_t n, pid_t pid, int code)
{
    if (code < 0)
        say(buf, n, "worker (pid %d) was killed by signal %d (%s)", (int)pid, -code,
                 sigabbrev_np(-code) != NULL ? sigabbrev_np(-code) : "?");
    else
        say(buf, n, "worker (pid %d) exited with status %d", (int)pid, code);
}

/* Put [first, first + count) of j at the front of its retries. false: no memory. */
static bool requeue_run(struct job *j, size_t first, size_t count)
{
    if (j->nruns == j->capruns) {
        size_t cap = j->capruns ? j->capruns * 2 : 4;
        struct run *v = mproc__realloc(j->retry, cap * sizeof *v);
        if (v == NULL)
            return false; /* see on_death: these fail instead */
        j->retry = v;
        j->capruns = cap;
    }
    memmove(j->retry + 1, j->retry, j->nruns * sizeof *j->retry);
    j->retry[0] = (struct run){.first = first, .count = count};
    j->nruns++;
    j->nretry += count;
    j->outstanding -= count;
    return true;
}

/* Queue a dead worker's unbegun tasks again, at the front of their jobs' retries, as runs
 * (a chunk of 100k items requeued is one run, not 100k entries). */
static void requeue(struct worker *w)
{
    for (int k = w->nsegs - 1; k >= 0; k--) {
        struct seg *g = seg_at(w, k);
        size_t cnt = g->count - g->done;
        if (cnt > 0 && requeue_run(g->job, g->first + g->done, cnt))
            g->done = g->count;
    }
}

/* Fail whatever is still assigned to w (after requeue failed, or on stop). */
static void fail_assigned(struct sup *s, struct worker *w, int code, const char *msg)
{
    size_t index;
    struct seg *g;
    while ((g = front(w, &index)) != NULL) {
        if (g->done >= g->count) { /* taken by requeue */
            pop_seg(w);
            continue;
        }
        struct job *j = g->job;
        j->outstanding--;
        pop_task(w);
        outcome(s, j, index, code, msg, NULL, 0, w);
        maybe_finish(s, j);
    }
}

static void release_worker(struct worker *w)
{
    mproc__sys_close(w->pidfd);
    w->pidfd = -1;
    mproc_queue_free(w->in);
    w->in = NULL;
    w->live = false;
    w->state = W_NONE;
    w->pid = 0;
    w->st.pid = 0;
    w->nsegs = 0;
    w->seg0 = 0;
}

static void break_pool(struct sup *s, const char *cause);

/* Within the restart budget? Records this death. */
static bool budget_ok(mproc_pool *p)
{
    size_t cap = (size_t)p->o.max_restarts + 1;
    int64_t now = mproc__sys_now_ns();
    int64_t period = (int64_t)(p->o.restart_period * 1e9);
    p->deaths[p->ndeaths % cap] = now;
    p->ndeaths++;
    if (p->ndeaths < cap)
        return true;
    int64_t oldest = p->deaths[p->ndeaths % cap]; /* cap deaths ago */
    return now - oldest > period;
}

/* Start a replacement in w's slot. A failed fork counts against the restart budget (so a
 * pool that can never fork again breaks instead of waiting for ever) and is retried
 * SPAWN_RETRY_NS later. */
static void respawn(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    int rc = spawn_worker(s, w);
    if (rc == 0)
        return;
    s->spawn_retry = mproc__sys_now_ns() + SPAWN_RETRY_NS;
    if (!budget_ok(p)) {
        char cause[POOL_MSG_MAX];
        say(cause, sizeof cause, "restart budget spent (%d in %g s); last: could not start a "
                                 "worker: %s", p->o.max_restarts, p->o.restart_period,
            mproc_strerror(rc));
        break_pool(s, cause);
    }
}

/* The worker's process has ended: settle its tasks, replace it. */
static void on_death(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    int code = 0;
    if (mproc__sys_reap(w->pidfd, true, &code) < 0)
        code = -SIGKILL; /* its status was taken elsewhere: we cannot know */
    drain(s, w);
    char why[POOL_MSG_MAX];
    describe_exit(why, sizeof why, w->pid, code);
    uint64_t started = atomic_load(&p->shm->slots[w->slot].started);
    bool inflight = started > w->received && w->nsegs > 0;
    bool was_starting = w->state == W_STARTING;
    /* Tasks it ran but whose batch it never published go out again, in order before
     * what it never began; the started-th task is the one it died in. */
    struct run held[POOL_SEGS];
    struct job *held_job[POOL_SEGS];
    int nheld = 0;
    for (uint64_t k = inflight ? started - 1 - w->received : 0; k > 0 && w->nsegs > 0;) {
        size_t index;
        struct seg *g = front(w, &index);
        size_t m = g->count - g->done;
        if (m > k)
            m = (size_t)k;
        held[nheld] = (struct run){.first = index, .count = m};
        held_job[nheld++] = g->job;
        w->received += m; /* counted as settled here, like outcomes */
        pop_tasks(w, m);
        k -= m;
    }
    inflight = inflight && w->nsegs > 0;
    if (inflight) {
        size_t index;
        struct seg *g = front(w, &index);
        struct job *j = g->job;
        j->outstanding--;
        pop_task(w);
        int tcode = -MPROC_EDIED;
        char msg[POOL_MSG_MAX];
        if (w->timed_out && started == w->timeout_seq) {
            tcode = -MPROC_ETIMELIMIT;
            say(msg, sizeof msg, "task ran past its time limit of %g s; worker (pid %d) "
                                      "was killed", j->timeout, (int)w->pid);
        } else {
            say(msg, sizeof msg, "%s", why);
        }
        outcome(s, j, index, tcode, msg, NULL, 0, w);
        maybe_finish(s, j);
    }
    requeue(w);
    fail_assigned(s, w, -MPROC_EDIED, why); /* only what requeue could not take */
    for (int k = nheld - 1; k >= 0; k--) {
        if (requeue_run(held_job[k], held[k].first, held[k].count))
            continue;
        for (size_t i = 0; i < held[k].count; i++) { /* no memory: they fail instead */
            held_job[k]->outstanding--;
            outcome(s, held_job[k], held[k].first + i, -MPROC_EDIED, why, NULL, 0, w);
        }
        maybe_finish(s, held_job[k]);
    }
    bool retired = p->o.maxtasksperchild != 0 && code == 0 && !inflight &&
                   w->received >= p->o.maxtasksperchild;
    bool planned = retired || w->timed_out || p->phase == P_STOPPING || p->terminating;
    release_worker(w);
    s->progress = true;
    p->check_jobs = true; /* requeued tasks of a cancelled job fail now */

    if (p->phase == P_STARTING) { /* any death before the pool is up fails its creation */
        if (p->start_rc == 1) {
            p->start_rc = w->init_code < 0 ? w->init_code : -MPROC_EDIED;
            say(p->start_msg, sizeof p->start_msg, "%s",
                     w->init_code < 0 ? w->init_msg : why);
        }
        return;
    }
    if (p->phase != P_RUNNING || p->broken)
        return;
    w->st.restarts++;
    p->st.restarts++;
    if (!planned && !budget_ok(p)) {
        char cause[POOL_MSG_MAX];
        say(cause, sizeof cause, "restart budget spent (%d in %g s); last: %.150s%s%.60s",
                 p->o.max_restarts, p->o.restart_period, why, was_starting ? ": " : "",
                 was_starting ? w->init_msg : "");
        break_pool(s, cause);
        return;
    }
    respawn(s, w);
}

static void check_deaths(struct sup *s)
{
    mproc_pool *p = s->p;
    unsigned n = 0;
    int idx[1024];
    for (int i = 0; i < p->nworkers; i++) {
        if (p->workers[i].pidfd >= 0) {
            s->pfd[n] = (struct pollfd){.fd = p->workers[i].pidfd, .events = POLLIN};
            idx[n++] = i;
        }
    }
    s->last_check = mproc__sys_now_ns();
    if (n == 0 || mproc__sys_poll(s->pfd, n, 0) <= 0)
        return;
    for (unsigned k = 0; k < n; k++)
        if (s->pfd[k].revents != 0)
            on_death(s, &p->workers[idx[k]]);
}

/* Kill every worker and wait for it; what it was running fails with code. */
static void stop_workers(struct sup *s, int code, const char *msg)
{
    mproc_pool *p = s->p;
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i].pidfd >= 0)
            (void)mproc__sys_pidfd_kill(p->workers[i].pidfd, SIGKILL);
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        if (w->pidfd < 0)
            continue;
        int c;
        (void)mproc__sys_reap(w->pidfd, true, &c);
        drain(s, w);
        fail_assigned(s, w, code, msg);
        release_worker(w);
    }
}

/* Complete every task without an outcome with code (terminate, broken). */
static void fail_everything(struct sup *s, int code, const char *msg)
{
    mproc_pool *p = s->p;
    stop_workers(s, code, msg);
    struct job *j = p->jobs;
    while (j != NULL) {
        struct job *nx = j->nextjob;
        j->cancelled = true;
        if (j->it != NULL) {
            j->it->gen_done = true;
            j->sealed = true;
        }
        fail_pending(s, j, code, msg);
        maybe_finish(s, j);
        j = nx;
    }
}

static void break_pool(struct sup *s, const char *cause)
{
    mproc_pool *p = s->p;
    p->broken = -MPROC_EBROKEN;
    p->st.broken = 1;
    say(p->broken_msg, sizeof p->broken_msg, "pool broken: %s", cause);
    fail_everything(s, -MPROC_EBROKEN, p->broken_msg);
    p->phase = P_DONE;
}

/* ---- time limits ------------------------------------------------------------------------- */

/* Kill workers past a task's limit; return the earliest deadline still ahead. */
static int64_t check_timeouts(struct sup *s)
{
    mproc_pool *p = s->p;
    int64_t now = mproc__sys_now_ns(), next = MPROC__NO_DEADLINE;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        if (w->state != W_READY || w->nsegs == 0 || w->timed_out)
            continue;
        struct pool_slot *sl = &p->shm->slots[w->slot];
        uint64_t s1 = atomic_load(&sl->started);
        int64_t t0 = atomic_load(&sl->started_ns);
        uint64_t s2 = atomic_load(&sl->started);
        /* not-yet-begun tasks cannot expire before now + their limit */
        for (int k = 0; k < w->nsegs; k++) {
            double t = seg_at(w, k)->job->timeout;
            if (t > 0) {
                int64_t d = now + (int64_t)(t * 1e9);
                if (d < next)
                    next = d;
            }
        }
        if (s1 != s2 || s1 <= w->received)
            continue;
        uint64_t pos = s1 - 1 - w->received; /* the running task, from the front */
        struct job *j = NULL;
        for (int k = 0; k < w->nsegs; k++) {
            size_t left = seg_at(w, k)->count - seg_at(w, k)->done;
            if (pos < left) {
                j = seg_at(w, k)->job;
                break;
            }
            pos -= left;
        }
        if (j == NULL || j->timeout <= 0)
            continue;
        int64_t d = t0 + (int64_t)(j->timeout * 1e9);
        if (now >= d) {
            w->timed_out = true;
            w->timeout_seq = s1;
            (void)mproc__sys_pidfd_kill(w->pidfd, SIGKILL);
        } else if (d < next) {
            next = d;
        }
    }
    return next;
}

/* ---- generators and dispatch ------------------------------------------------------------ */

/* Fill free imap window slots from the generators (mutex dropped around each call). */
static void generate(struct sup *s)
{
    mproc_pool *p = s->p;
    for (struct job *j = p->jobs; j != NULL;) {
        mproc_imap *it = j->it;
        if (it == NULL || it->gen_done || j->cancelled) {
            j = j->nextjob;
            continue;
        }
        struct imap_slot *sl = &it->slots[it->produced % it->window];
        if (it->produced - it->returned >= it->window || sl->state != SLOT_EMPTY) {
            j = j->nextjob;
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        int rc = it->gen(it->gen_arg, sl->input, it->in_size);
        pthread_mutex_lock(&p->mu);
        s->progress = true;
        if (rc == 1 && !j->cancelled) {
            sl->state = SLOT_QUEUED;
            sl->index = it->produced++;
            j->n = it->produced;
            p->st.submitted++;
            continue; /* same job: maybe another slot is free */
        }
        it->gen_done = true;
        it->gen_code = rc < 0 ? rc : 0;
        j->sealed = true;
        mproc__imap_wake(it);
        struct job *nx = j->nextjob;
        maybe_finish(s, j);
        j = nx;
    }
}

static bool has_work(const struct job *j)
{
    return !j->cancelled && (j->nruns > 0 || j->next < j->n);
}

/* Send one chunk of j to w. false: the channel is full (nothing changed). */
static bool send_chunk(struct sup *s, struct worker *w, struct job *j, size_t budget)
{
    mproc_pool *p = s->p;
    size_t head = sizeof(struct pool_chunk) + ((j->fnref_len + 7u) & ~(size_t)7);
    size_t first, count;
    bool retry = j->nruns > 0;
    if (retry) {
        first = j->retry[0].first;
        count = j->retry[0].count;
    } else {
        first = j->next;
        count = j->n - j->next;
    }
    {
        if (count > j->chunksize)
            count = j->chunksize;
        if (count > UINT32_MAX)
            count = UINT32_MAX;
        size_t fit = j->inplace_in ? SIZE_MAX : (p->msg_max - head) / (j->in_size ? j->in_size : 1);
        if (count > fit)
            count = fit;
        if (count > budget)
            count = budget;
        if (j->kind == JOB_IMAP) { /* contiguous in the window ring: at most to its end */
            size_t to_end = j->it->window - first % j->it->window;
            if (count > to_end)
                count = to_end;
        }
    }
    assert(count >= 1);
    struct pool_chunk c = {.job_id = j->id,
                           .first = first,
                           .count = (uint32_t)count,
                           .in_size = (uint32_t)j->in_size,
                           .out_cap = (uint32_t)(j->kind == JOB_APPLY
                                                     ? p->msg_max - sizeof(struct pool_rec)
                                                     : j->out_size),
                           .fnref_len = j->fnref_len,
                           .fixed = j->kind != JOB_APPLY,
                           .timed = j->timeout > 0,
                           .inplace = (j->inplace_in ? CHUNK_IN : 0u) |
                                      (j->inplace_out ? CHUNK_OUT : 0u),
                           .in_addr = (uint64_t)(uintptr_t)j->in,
                           .out_addr = (uint64_t)(uintptr_t)j->out};
    unsigned char *b = s->chunk;
    memcpy(b, &c, sizeof c);
    memcpy(b + sizeof c, j->fnref, j->fnref_len);
    unsigned char *items = b + head;
    switch (j->kind) {
    case JOB_APPLY:
        memcpy(items, j->in, j->in_size);
        break;
    case JOB_MAP:
        if (!j->inplace_in)
            memcpy(items, j->in + first * j->in_size, count * j->in_size);
        break;
    case JOB_IMAP:
        for (size_t i = 0; i < count; i++)
            memcpy(items + i * j->in_size, j->it->slots[(first + i) % j->it->window].input,
                   j->in_size);
        break;
    }
    int rc = mproc_queue_put_nowait(w->in, b, head + (j->inplace_in ? 0 : count * j->in_size));
    if (rc < 0)
        return false;
    if (retry) {
        j->nretry -= count;
        j->retry[0].first += count;
        j->retry[0].count -= count;
        if (j->retry[0].count == 0) {
            j->nruns--;
            memmove(j->retry, j->retry + 1, j->nruns * sizeof *j->retry);
        }
    } else {
        j->next += count;
    }
    j->outstanding += count;
    w->sent += count;
    *seg_at(w, w->nsegs) = (struct seg){.job = j, .first = first, .count = count};
    w->nsegs++;
    s->progress = true;
    return true;
}

/* Once per RATE_NS of a worker's busy time, estimate its time per task (idle time in the
 * window counts as work: the estimate errs slow, which keeps the queue short). */
static void update_rate(struct worker *w, int64_t now)
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

/* May w take another chunk of j? DEPTH chunks always (it finds the next one waiting
 * when it finishes one); more, up to POOL_SEGS, only while what it has queued is under
 * QUEUE_NS of work by its measured time per task, and only of the job it was measured
 * on: so tiny tasks with chunksize 1 travel many to a channel (one wake-up for many),
 * while slow tasks stay DEPTH deep and spread evenly over the workers. */
static bool room_for(const struct worker *w, const struct job *j)
{
    if (w->nsegs < DEPTH)
        return true;
    if (w->nsegs >= POOL_SEGS || w->task_ns <= 0 || j == NULL || j->id != w->last_job)
        return false;
    return (int64_t)(w->sent - w->received) * w->task_ns < QUEUE_NS;
}

static void dispatch(struct sup *s)
{
    mproc_pool *p = s->p;
    struct job *j = p->jobs;
    int64_t now = mproc__sys_now_ns();
    for (int i = 0; i < p->nworkers; i++)
        update_rate(&p->workers[i], now);
    for (int i = 0; i < p->nworkers && j != NULL; i++) {
        struct worker *w = &p->workers[i];
        while (w->state == W_READY) {
            while (j != NULL && !has_work(j))
                j = j->nextjob;
            if (j == NULL || !room_for(w, j))
                break;
            size_t budget = SIZE_MAX;
            if (p->o.maxtasksperchild != 0) {
                if (w->sent >= p->o.maxtasksperchild)
                    break;
                budget = p->o.maxtasksperchild - w->sent;
            }
            if (!send_chunk(s, w, j, budget))
                break;
        }
    }
}

/* ---- the loop ------------------------------------------------------------------------------ */

static bool any_records(mproc_pool *p)
{
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i].live && mproc__ring_pending(&p->shm->slots[i].ring))
            return true;
    return false;
}

static void deliver(struct sup *s)
{
    mproc_result *r = s->done;
    s->done = NULL;
    if (r == NULL)
        return;
    pthread_mutex_unlock(&s->p->mu);
    while (r != NULL) {
        mproc_result *nx = r->done_next;
        mproc__result_deliver(r);
        r = nx;
    }
    pthread_mutex_lock(&s->p->mu);
}

/* Sleep until a record, a kick, a death or the deadline. Mutex held on entry and exit. */
static void sleep_until(struct sup *s, uint64_t kicks_seen, int64_t deadline)
{
    mproc_pool *p = s->p;
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->shm->sup_sleeping, 1);
    if (!any_records(p) && atomic_load(&p->kicks) == kicks_seen) {
        unsigned n = 0;
        s->pfd[n++] = (struct pollfd){.fd = p->shm->evfd, .events = POLLIN};
        for (int i = 0; i < p->nworkers; i++)
            if (p->workers[i].pidfd >= 0)
                s->pfd[n++] = (struct pollfd){.fd = p->workers[i].pidfd, .events = POLLIN};
        (void)mproc__sys_poll(s->pfd, n, deadline);
        s->last_check = 0; /* look at the pidfds now */
    }
    atomic_store(&p->shm->sup_sleeping, 0);
    mproc__sys_eventfd_drain(p->shm->evfd);
    pthread_mutex_lock(&p->mu);
}

static bool spin_wait(mproc_pool *p, uint64_t kicks_seen)
{
    for (int k = 0; k < SPIN_ITERS; k++) {
        if (atomic_load_explicit(&p->kicks, memory_order_relaxed) != kicks_seen || any_records(p))
            return true;
        mproc__sys_cpu_relax();
    }
    return false;
}

static bool all_down(mproc_pool *p)
{
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i].pidfd >= 0)
            return false;
    return true;
}

void *mproc__pool_supervisor(void *arg)
{
    mproc_pool *p = arg;
    struct sup s = {.p = p};
    s.buf = mproc__malloc(p->msg_max + 1);
    s.chunk = mproc__malloc(p->msg_max);
    s.pfd = mproc__calloc((size_t)p->nworkers + 1, sizeof *s.pfd);
    bool spin = p->spin;              /* measured: spinning pays even with workers on
                                          * every CPU (chunksize 1: 250k against 100k
                                          * tasks/s, 2 workers on 2 CPUs) */
    pthread_mutex_lock(&p->mu);
    if (s.buf == NULL || s.chunk == NULL || s.pfd == NULL) {
        p->start_rc = -ENOMEM;
    } else {
        for (int i = 0; i < p->nworkers && p->start_rc == 1; i++) {
            int rc = spawn_worker(&s, &p->workers[i]);
            if (rc < 0) {
                p->start_rc = rc;
                say(p->start_msg, sizeof p->start_msg, "could not start a worker: %s",
                         mproc_strerror(rc));
            }
        }
    }
    bool closed_inboxes = false;
    while (p->start_rc == 1 || p->phase == P_RUNNING || p->phase == P_STOPPING) {
        uint64_t kicks = atomic_load(&p->kicks);
        s.progress = false;
        for (int i = 0; i < p->nworkers; i++)
            drain(&s, &p->workers[i]);
        if (mproc__sys_now_ns() - s.last_check >= BUSY_CHECK_NS)
            check_deaths(&s);
        if (p->phase == P_STARTING) {
            bool all = true;
            for (int i = 0; i < p->nworkers; i++)
                all = all && p->workers[i].state == W_READY;
            if (p->start_rc == 1 && all) {
                p->start_rc = 0;
                p->phase = P_RUNNING;
                pthread_cond_broadcast(&p->cv);
            }
            if (p->start_rc != 1 && p->start_rc != 0)
                break;
        }
        if (p->terminating) {
            fail_everything(&s, -MPROC_ECANCELLED, "cancelled: the pool was terminated");
            p->phase = P_DONE;
            break;
        }
        if (p->broken)
            break;
        if (p->check_jobs) { /* a caller cancelled, or a worker died */
            p->check_jobs = false;
            for (struct job *j = p->jobs, *nx; j != NULL; j = nx) {
                nx = j->nextjob;
                if (j->cancelled) {
                    if (j->it != NULL && !j->it->gen_done) {
                        j->it->gen_done = true;
                        j->sealed = true;
                    }
                    fail_pending(&s, j, -MPROC_ECANCELLED, "cancelled before it ran");
                }
                maybe_finish(&s, j);
            }
        }
        if (p->phase == P_RUNNING) {
            for (int i = 0; i < p->nworkers && !p->broken; i++)
                if (p->workers[i].state == W_NONE && mproc__sys_now_ns() >= s.spawn_retry)
                    respawn(&s, &p->workers[i]);
            if (p->broken)
                break;
            generate(&s);
            dispatch(&s);
            if (p->joining && p->jobs == NULL) {
                p->phase = P_STOPPING;
            }
        }
        if (p->phase == P_STOPPING) {
            if (!closed_inboxes) {
                for (int i = 0; i < p->nworkers; i++)
                    if (p->workers[i].in != NULL)
                        (void)mproc_queue_close(p->workers[i].in);
                closed_inboxes = true;
            }
            if (all_down(p)) {
                p->phase = P_DONE;
                break;
            }
        }
        int64_t deadline = check_timeouts(&s);
        for (int i = 0; i < p->nworkers && p->phase == P_RUNNING; i++)
            if (p->workers[i].state == W_NONE && s.spawn_retry < deadline)
                deadline = s.spawn_retry; /* a fork to retry */
        bool moved = s.progress || s.done != NULL;
        deliver(&s);
        if (moved)
            continue;
        if (spin) {
            pthread_mutex_unlock(&p->mu);
            bool more = spin_wait(p, kicks);
            pthread_mutex_lock(&p->mu);
            if (more)
                continue;
        }
        sleep_until(&s, kicks, deadline);
    }
    if (p->start_rc != 0 && p->start_rc != 1) {
        stop_workers(&s, -MPROC_ECANCELLED, "pool start failed");
    } else if (p->start_rc == 1) {
        p->start_rc = -ENOMEM;
    }
    if (p->phase != P_DONE && p->start_rc == 0)
        fail_everything(&s, -MPROC_ECANCELLED, "cancelled");
    stop_workers(&s, -MPROC_ECANCELLED, "cancelled");
    p->finished = true;
    pthread_cond_broadcast(&p->cv);
    deliver(&s);
    pthread_mutex_unlock(&p->mu);
    mproc__free(s.buf);
    mproc__free(s.chunk);
    mproc__free(s.pfd);
    return NULL;
}
