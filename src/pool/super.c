/* src/pool/super.c - the pool's supervisor thread: starts, feeds, watches and replaces
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
 * is drained, the task it had begun without an outcome fails (-MPROC_EDIED, or
 * -MPROC_ETIMELIMIT when we killed it for its time limit), the tasks it ran without
 * publishing their batch and those it had not begun are queued again for another
 * worker, and a replacement is forked unless the
 * restart budget is spent (then the pool breaks: every worker is killed and every task
 * without an outcome fails with -MPROC_EBROKEN and the cause); (3) kill workers whose
 * task ran past its limit; (4) call imap generators for free window slots; (5) give each
 * ready worker up to DEPTH chunks, so it finds the next one waiting when it finishes one
 * (more for tiny tasks, see src/pool/dispatch.c).
 *
 * Who wakes whom: the supervisor arms its bell (sup_bell, src/sys/bell.h), re-checks the
 * channels and `kicks`, and only then polls; workers, after a record, and callers, after
 * bumping `kicks`, claim the bell and write the eventfd only if it was armed. It polls (eventfd +
 * every pidfd, with the earliest time limit as deadline). So while there is work, no one makes a
 * system call per task. Before sleeping it spins briefly when CPUs allow (the spin rule,
 * docs/benchmarks.md).
 *
 * States (p->sup.state, written here only; callers ask through p->request):
 *   STARTING  the workers are being forked; when each is ready (at once, or after its
 *             initializer said so) -> RUNNING, and mproc_pool_new returns; a worker that
 *             cannot start -> DONE (the creation fails with its cause)
 *   RUNNING   passes as above; terminate -> DONE (every task without an outcome is
 *             cancelled); broken -> DONE (life.c failed them with the cause); join with
 *             no job left -> STOPPING (the workers' channels are closed: they exit)
 *   STOPPING  waiting for the workers to exit -> DONE; terminate -> DONE
 *   DONE      the loop is left: workers still alive are killed and reaped, the last
 *             results delivered -> FINISHED, which join, terminate and free wait for
 *
 * Files: this one is the loop; outcomes are recorded in src/pool/settle.c, workers are
 * forked, replaced and timed in src/pool/life.c, chunks are sent in src/pool/dispatch.c.
 *
 * Ordering: a worker runs its chunks in the order sent and publishes their outcomes in
 * that order (a record per failure or apply result, one batch record for many successes),
 * so outcomes are matched to tasks by position (the record's job id and index are
 * checked by assert). If the caller's process dies, the workers die with it
 * (daemon flag); their memory is anonymous, so nothing is left anywhere.
 */
#include "internal.h"

#include "pool/pool.h"
#include "sys/evfd.h"
#include "sys/relax.h"

#define BUSY_CHECK_NS INT64_C(5000000)
#define SPIN_ITERS 2000

/* ---- the loop ------------------------------------------------------------------------------ */

static bool any_records(mproc_pool *p)
{
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i].live && mproc__ring_pending(&p->shm->slots[i].ring))
            return true;
    return false;
}

void mproc__sup_moved(struct sup *s)
{
    s->progress = true;
}

void mproc__sup_deliver(struct sup *s, mproc_result *r)
{
    mproc__result_chain(&s->done, r);
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
    (void)mproc__bell_arm(&p->shm->sup_bell); /* it wakes us through the eventfd */
    if (!any_records(p) && atomic_load(&p->kicks) == kicks_seen) {
        unsigned n = 0;
        s->pfd[n++] = (struct pollfd){.fd = p->shm->evfd, .events = POLLIN};
        for (int i = 0; i < p->nworkers; i++)
            if (p->workers[i].pidfd >= 0)
                s->pfd[n++] = (struct pollfd){.fd = p->workers[i].pidfd, .events = POLLIN};
        (void)mproc__sys_poll(s->pfd, n, deadline);
        s->look = true; /* at the pidfds, now */
    }
    mproc__bell_leave(&p->shm->sup_bell);
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

/* Spin before sleeping unless it would only take a worker's time: when busy workers
 * occupy every usable CPU and each has work queued for longer than a spin (by its
 * measured time per task), the next record is far off and a worker needs the CPU more
 * (measured: spinning took 18% of a 2-CPU map of 10 M tiny tasks in large chunks). With
 * little queued (chunksize 1 over tiny tasks) the supervisor must refill fast: it spins
 * (measured: 3 M against 10 M tasks/s). */
#define SPIN_WORTH_NS INT64_C(100000)

static bool spin_pays(const mproc_pool *p)
{
    int busy = 0;
    for (int i = 0; i < p->nworkers; i++) {
        const struct worker *w = &p->workers[i];
        if (w->held.sent <= w->held.received)
            continue;
        if (w->held.task_ns <= 0 ||
            (int64_t)(w->held.sent - w->held.received) * w->held.task_ns < SPIN_WORTH_NS)
            return true; /* a record may come soon */
        busy++;
    }
    return busy < p->cpus;
}

/* One pass's work in the current state (see the DESIGN note); returns the next state. */
static enum pool_state step(struct sup *s)
{
    mproc_pool *p = s->p;
    switch (p->sup.state) {
    case S_STARTING: {
        if (p->life.start_fail < 0) { /* a worker could not start */
            p->sup.start_rc = p->life.start_fail;
            mproc__pool_say(p->sup.start_msg, sizeof p->sup.start_msg, "%s", p->life.start_msg);
            return S_DONE;
        }
        for (int i = 0; i < p->nworkers; i++)
            if (p->workers[i].state != W_READY)
                return S_STARTING;
        p->sup.start_rc = 0;
        return S_RUNNING;
    }
    case S_RUNNING:
        if (p->request == REQ_TERMINATE) {
            mproc__pool_fail_everything(s, -MPROC_ECANCELLED, "cancelled: the pool was terminated");
            return S_DONE;
        }
        if (p->life.broken)
            return S_DONE;
        mproc__jobs_sweep(s);
        for (int i = 0; i < p->nworkers && !p->life.broken; i++)
            if (p->workers[i].state == W_NONE && mproc__sys_now_ns() >= p->life.spawn_retry)
                mproc__pool_respawn(s, &p->workers[i]);
        if (p->life.broken)
            return S_DONE;
        mproc__pool_generate(s);
        mproc__pool_dispatch(s);
        return p->request == REQ_JOIN && p->jobs.head == NULL ? S_STOPPING : S_RUNNING;
    case S_STOPPING:
        if (p->request == REQ_TERMINATE) {
            mproc__pool_fail_everything(s, -MPROC_ECANCELLED, "cancelled: the pool was terminated");
            return S_DONE;
        }
        return all_down(p) ? S_DONE : S_STOPPING;
    case S_DONE:
    case S_FINISHED:
        break;
    }
    return S_DONE;
}

void mproc__pool_sup_init(mproc_pool *p)
{
    p->sup.state = S_STARTING;
    p->sup.start_rc = 1;
}

void *mproc__pool_supervisor(void *arg)
{
    mproc_pool *p = arg;
    struct sup s = {.p = p};
    s.buf = mproc__malloc(p->msg_max + 1);
    s.chunk = mproc__malloc(p->msg_max);
    s.pfd = mproc__calloc((size_t)p->nworkers + 1, sizeof *s.pfd);
    bool spin = p->spin;
    pthread_mutex_lock(&p->mu);
    if (s.buf == NULL || s.chunk == NULL || s.pfd == NULL) {
        p->sup.start_rc = -ENOMEM;
    } else {
        for (int i = 0; i < p->nworkers && p->sup.start_rc == 1; i++) {
            int rc = mproc__pool_spawn_worker(&s, &p->workers[i]);
            if (rc < 0) {
                p->sup.start_rc = rc;
                if (p->workers[i].init_code < 0 && rc == p->workers[i].init_code)
                    mproc__pool_say(p->sup.start_msg, sizeof p->sup.start_msg, "%s",
                                    p->workers[i].init_msg);
                else
                    mproc__pool_say(p->sup.start_msg, sizeof p->sup.start_msg,
                                    "could not start a worker: %s", mproc_strerror(rc));
            }
        }
    }
    p->sup.state = p->sup.start_rc == 1 ? S_STARTING : S_DONE;
    while (p->sup.state != S_DONE) {
        uint64_t kicks = atomic_load(&p->kicks);
        s.progress = false;
        int64_t t0 = p->o.phase_times ? mproc__sys_now_ns() : 0;
        for (int i = 0; i < p->nworkers; i++)
            mproc__pool_drain(&s, &p->workers[i]);
        if (p->o.phase_times)
            p->sup.settle_ns += (uint64_t)(mproc__sys_now_ns() - t0);
        if (s.look || mproc__sys_now_ns() - p->life.looked >= BUSY_CHECK_NS)
            mproc__pool_check_deaths(&s);
        s.look = false;
        enum pool_state next = step(&s);
        if (next != p->sup.state) {
            p->sup.state = next;
            s.progress = true;
            if (next == S_STOPPING)
                mproc__pool_wind_down(&s); /* they exit */
            if (next == S_RUNNING || next == S_DONE)
                pthread_cond_broadcast(&p->cv); /* mproc_pool_new waits */
            if (next == S_DONE)
                break;
        }
        int64_t deadline = mproc__pool_check_timeouts(&s);
        for (int i = 0; i < p->nworkers && p->sup.state == S_RUNNING; i++)
            if (p->workers[i].state == W_NONE && p->life.spawn_retry < deadline)
                deadline = p->life.spawn_retry; /* a fork to retry */
        bool moved = s.progress || s.done != NULL;
        deliver(&s);
        if (moved)
            continue;
        if (spin && p->sup.state == S_RUNNING && spin_pays(p)) { /* starting or stopping: the
                                            workers need the CPUs, and a death ends no spin */
            pthread_mutex_unlock(&p->mu);
            bool more = spin_wait(p, kicks);
            pthread_mutex_lock(&p->mu);
            if (more)
                continue;
        }
        sleep_until(&s, kicks, deadline);
    }
    if (p->sup.start_rc == 1)
        p->sup.start_rc = -ENOMEM; /* cannot happen: only a start result leaves STARTING */
    if (p->sup.start_rc != 0)
        mproc__pool_stop_workers(&s, -MPROC_ECANCELLED, "pool start failed");
    else if (p->jobs.head != NULL) /* cannot happen: DONE comes after every job ended */
        mproc__pool_fail_everything(&s, -MPROC_ECANCELLED, "cancelled");
    mproc__pool_stop_workers(&s, -MPROC_ECANCELLED, "cancelled");
    deliver(&s);
    p->sup.state = S_FINISHED;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    mproc__free(s.buf);
    mproc__free(s.chunk);
    mproc__free(s.pfd);
    return NULL;
}
