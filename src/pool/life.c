/* src/pool/life.c - the workers' lives: start, death, replacement, the restart budget,
 * time limits, stopping, and breaking the pool.
 *
 * DESIGN. Runs only in the supervisor thread, under the pool mutex. Workers are started by
 * the pool's launcher (struct launcher_ops: the fork launcher below, or boot.c's for the
 * forkserver and spawn methods); a forked one is forked here, so its PR_SET_PDEATHSIG
 * follows the supervisor thread, which lives as long as the pool. Every worker is watched
 * by its pidfd. When one dies: its ring is drained, the task it had begun without an
 * outcome (the started-th) fails with -MPROC_EDIED, or -MPROC_ETIMELIMIT when we killed it
 * for its limit; tasks it ran whose batch it never published, and tasks it never began,
 * are requeued for another worker; a replacement is started unless more than max_restarts
 * unplanned deaths fell within restart_period (then the pool breaks: every worker is
 * killed and every task without an outcome fails with -MPROC_EBROKEN and the cause). Who
 * wakes whom: a death wakes the supervisor through its pidfd in poll(); SIGKILL sent here
 * (time limit, stop) is followed by a reap.
 */
#include "internal.h"

#include <limits.h>

#include "pool/boot.h"
#include "pool/pool.h"
#include "sys/spawn.h"

#include <signal.h>

#define SPAWN_RETRY_NS INT64_C(100000000)
#define BOOT_LIMIT_S 10.0 /* spawn, forkserver: to reach mproc_init (src/start/init.c) */

static void break_pool(struct sup *s, const char *cause);

static void kill_worker(struct sup *s, struct worker *w)
{
    if (s->p->launcher->kill != NULL)
        s->p->launcher->kill(s, w);
    else
        (void)mproc__sys_pidfd_kill(w->pidfd, SIGKILL);
}

/* ---- workers ------------------------------------------------------------------------------- */

int mproc__pool_spawn_worker(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    struct worker_arg *a = &p->wargs[w->slot];
    mproc_queue_opts qo = {.capacity = p->o.channel_size};
    mproc_queue *in = NULL;
    bool forked = p->launcher->forks_caller;
    w->in_fd = -1;
    int rc = p->launcher->transport != NULL ? 0 /* chunks go another way: no channel here */
             : forked                       ? mproc_queue_new(&in, &qo)
                                            : mproc__queue_new_memfd(&in, &qo, &w->in_fd);
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
                             .home = getpid(),
                             .announce = p->o.initializer != NULL || p->o.pin ||
                                         !forked, /* a boot can fail */
                             .mask = p->caller_mask,
                             .timing = p->o.phase_times != 0,
                             .origin = a};
    struct pool_slot *sl = &p->shm->slots[w->slot];
    atomic_store(&sl->started, 0);
    atomic_store(&sl->ended, 0);
    atomic_store(&sl->retiring, 0);
    atomic_store(&sl->started_ns, 0);
    atomic_store(&sl->reach, REACH_UNTRIED);
    mproc__ring_reset(&sl->ring); /* the previous worker is reaped: nobody writes it */
    atomic_store(&sl->booted, 0);
    rc = p->launcher->start(s, w);
    if (rc == -ESRCH) {
        /* It was born and has already ended, and another waiter of this process (a host
           SIGCHLD handler that reaps every child) took it before we could hold it. What
           it had to say is in its ring: an initializer's failure, most likely. */
        w->live = true;
        w->init_code = 0;
        w->init_msg[0] = '\0';
        mproc__pool_drain(s, w);
        w->live = false;
        if (w->init_code < 0)
            rc = w->init_code;
    }
    if (rc < 0)
        goto fail;
    w->in = in;
    w->live = true;
    w->state = a->announce ? W_STARTING : W_READY;
    w->start_ns = mproc__sys_now_ns();
    mproc__assigned_reset(w, true);
    w->timed_out = false;
    w->init_code = 0;
    w->init_msg[0] = '\0';
    return 0;
fail:
    mproc_queue_free(in);
    mproc__sys_close(w->in_fd);
    w->in_fd = -1;
    w->state = W_NONE;
    w->pid = 0;
    w->pidfd = -1;
    return rc;
}

/* ---- the fork launcher ------------------------------------------------------------------ */

/* A fork of the supervisor thread (so its PR_SET_PDEATHSIG follows that thread), which
 * keeps only the descriptors the pool names. */
static int fork_start(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    struct mproc__spawn sp = {.fn = mproc__pool_worker_main,
                              .arg = &p->wargs[w->slot],
                              .fds = {-1, -1, -1},
                              .flags = MPROC_PROCESS_DAEMON,
                              .close_others = true,
                              .keep = p->keep_fds,
                              .nkeep = p->nkeep};
    return mproc__sys_spawn(&sp, &w->pid, &w->pidfd);
}

static int fork_reap(struct sup *s, struct worker *w, int *code)
{
    (void)s;
    return mproc__sys_reap(w->pidfd, true, code) < 0 ? -ECHILD : 0;
}

const struct launcher_ops mproc__launcher_fork = {
    .forks_caller = true, .start = fork_start, .reap = fork_reap};

/* A worker's exit code when its status was taken by another waiter of this process. */
#define EXIT_UNKNOWN INT_MIN

static void describe_exit(char *buf, size_t n, pid_t pid, int code)
{
    if (code == EXIT_UNKNOWN)
        mproc__pool_say(buf, n,
                        "worker (pid %d) ended; its exit status is unknown (another waiter in "
                        "this process took it: a SIGCHLD handler that reaps every child?)",
                        (int)pid);
    else if (code == WORKER_LOST_FD)
        mproc__pool_say(buf, n,
                        "worker (pid %d) exited: a task closed its descriptors (its doorbell "
                        "to the pool), so it could not go on",
                        (int)pid);
    else if (code < 0)
        mproc__pool_say(buf, n, "worker (pid %d) was killed by signal %d (%s)", (int)pid, -code,
                        sigabbrev_np(-code) != NULL ? sigabbrev_np(-code) : "?");
    else
        mproc__pool_say(buf, n, "worker (pid %d) exited with status %d", (int)pid, code);
}

void mproc__pool_worker_ready(struct sup *s, struct worker *w, int code, const char *msg,
                              size_t msg_len)
{
    w->init_code = code;
    mproc__pool_say(w->init_msg, sizeof w->init_msg, "%.*s", (int)msg_len, msg);
    if (code == 0)
        w->state = W_READY;
    mproc__sup_moved(s);
}

static void release_worker(struct worker *w)
{
    mproc__sys_close(w->pidfd);
    w->pidfd = -1;
    mproc_queue_free(w->in);
    w->in = NULL;
    mproc__sys_close(w->in_fd);
    w->in_fd = -1;
    w->live = false;
    w->state = W_NONE;
    w->pid = 0;
    mproc__assigned_reset(w, false);
}

int mproc__pool_life_init(mproc_pool *p)
{
    p->life.deaths = mproc__calloc((size_t)p->o.max_restarts + 1, sizeof *p->life.deaths);
    return p->life.deaths != NULL ? 0 : -ENOMEM;
}

void mproc__pool_life_free(mproc_pool *p)
{
    mproc__free(p->life.deaths);
}

/* Within the restart budget? Records this death. */
static bool budget_ok(mproc_pool *p)
{
    size_t cap = (size_t)p->o.max_restarts + 1;
    int64_t now = mproc__sys_now_ns();
    int64_t period = mproc__seconds_ns(p->o.restart_period);
    p->life.deaths[p->life.ndeaths % cap] = now;
    p->life.ndeaths++;
    if (p->life.ndeaths < cap)
        return true;
    int64_t oldest = p->life.deaths[p->life.ndeaths % cap]; /* cap deaths ago */
    return now - oldest > period;
}

/* Start a replacement in w's slot. A failed fork counts against the restart budget (so a
 * pool that can never fork again breaks instead of waiting for ever) and is retried
 * SPAWN_RETRY_NS later. */
void mproc__pool_respawn(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    int rc = mproc__pool_spawn_worker(s, w);
    if (rc == 0)
        return;
    p->life.spawn_retry = mproc__sys_now_ns() + SPAWN_RETRY_NS;
    if (!budget_ok(p)) {
        char cause[POOL_MSG_MAX];
        mproc__pool_say(cause, sizeof cause,
                        "restart budget spent (%d in %g s); last: could not start a "
                        "worker: %s",
                        p->o.max_restarts, p->o.restart_period, mproc_strerror(rc));
        break_pool(s, cause);
    }
}

/* The worker's process has ended: settle its tasks, replace it. */
static void on_death(struct sup *s, struct worker *w)
{
    mproc_pool *p = s->p;
    int code = 0;
    if (p->launcher->reap(s, w, &code) < 0)
        code = EXIT_UNKNOWN; /* its status was taken elsewhere: say so, never guess */
    if (w->init_code == 0 && atomic_load(&p->shm->slots[w->slot].booted) == 0 &&
        !p->launcher->forks_caller)
        (void)mproc__pool_boot_failed(code, &w->init_code, w->init_msg, sizeof w->init_msg);
    mproc__pool_drain(s, w);
    char why[POOL_MSG_MAX];
    const char *lost = p->launcher->lost != NULL ? p->launcher->lost(s, w) : NULL;
    if (lost != NULL) /* with its host: no replacement can start there */
        mproc__pool_say(why, sizeof why, "worker (pid %d) lost: %s", (int)w->pid, lost);
    else
        describe_exit(why, sizeof why, w->pid, code);

    if (p->transport->gone != NULL)
        p->transport->gone(s, w, -MPROC_EDIED, why,
                           p->sup.state == S_RUNNING && p->request != REQ_TERMINATE &&
                               !p->life.broken);
    uint64_t started = atomic_load(&p->shm->slots[w->slot].started);
    uint64_t ended = atomic_load(&p->shm->slots[w->slot].ended);
    bool begun = started > w->held.received && w->held.nsegs > 0;
    bool inflight = begun && started > ended; /* else it died between tasks */
    bool was_starting = w->state == W_STARTING || w->init_code < 0;
    /* Tasks it ran but whose batch it never published go out again, in order before
     * what it never began; the started-th task is the one it died in, unless it had
     * ended (its outcome held in a batch): then that one goes out again too. */
    struct run held[POOL_SEGS];
    struct job *held_job[POOL_SEGS];
    int nheld = 0;
    for (uint64_t k = begun ? started - (inflight ? 1 : 0) - w->held.received : 0;
         k > 0 && w->held.nsegs > 0;) {
        size_t index;
        struct seg *g = mproc__pool_front(w, &index);
        size_t m = g->count - g->done;
        if (m > k)
            m = (size_t)k;
        held[nheld] = (struct run){.first = index, .count = m};
        held_job[nheld++] = g->job;
        mproc__assigned_received(w, m, 0); /* counted as settled here, like outcomes */
        mproc__pool_pop_tasks(w, m);
        k -= m;
    }
    inflight = inflight && w->held.nsegs > 0;
    if (inflight) {
        size_t index;
        struct seg *g = mproc__pool_front(w, &index);
        struct job *j = g->job;
        mproc__job_settled(j, 1);
        mproc__pool_pop_task(w);
        int tcode = -MPROC_EDIED;
        char msg[POOL_MSG_MAX];
        if (w->timed_out && started == w->timeout_seq) {
            tcode = -MPROC_ETIMELIMIT;
            mproc__pool_say(msg, sizeof msg,
                            "task ran past its time limit of %g s; worker (pid %d) "
                            "was killed",
                            j->timeout, (int)w->pid);
        } else {
            mproc__pool_say(msg, sizeof msg, "%s", why);
        }
        mproc__job_outcome(s, j, index, tcode, msg, NULL, 0, w);
        mproc__job_maybe_finish(s, j);
    }
    mproc__pool_requeue(w);
    mproc__pool_fail_assigned(s, w, -MPROC_EDIED, why); /* only what requeue could not take */
    for (int k = nheld - 1; k >= 0; k--)
        (void)mproc__pool_requeue_or_fail(s, held_job[k], held[k].first, held[k].count,
                                          -MPROC_EDIED, why, w);
    bool retired =
        p->o.maxtasksperchild != 0 && !inflight && w->held.received >= p->o.maxtasksperchild &&
        (code == 0 || (code == EXIT_UNKNOWN && atomic_load(&p->shm->slots[w->slot].retiring) != 0));
    bool planned =
        retired || w->timed_out || p->sup.state == S_STOPPING || p->request == REQ_TERMINATE;
    release_worker(w);
    mproc__sup_moved(s);
    mproc__jobs_look(p); /* requeued tasks of a cancelled job fail now */

    if (p->sup.state == S_STARTING) {  /* any death before the pool is up fails its creation */
        if (p->life.start_fail == 0) { /* the supervisor fails the creation with it */
            p->life.start_fail = w->init_code < 0 ? w->init_code : -MPROC_EDIED;
            mproc__pool_say(p->life.start_msg, sizeof p->life.start_msg, "%s",
                            w->init_code < 0 ? w->init_msg : why);
        }
        return;
    }
    if (p->sup.state != S_RUNNING || p->life.broken)
        return;
    if (lost != NULL) {
        break_pool(s, why);
        return;
    }
    w->restarts++;
    p->life.restarts++;
    if (!planned && !budget_ok(p)) {
        char cause[POOL_MSG_MAX];
        mproc__pool_say(cause, sizeof cause,
                        "restart budget spent (%d in %g s); last: %.150s%s%.60s", p->o.max_restarts,
                        p->o.restart_period, why, was_starting ? ": " : "",
                        was_starting ? w->init_msg : "");
        break_pool(s, cause);
        return;
    }
    mproc__pool_respawn(s, w);
}

void mproc__pool_check_deaths(struct sup *s)
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
    p->life.looked = mproc__sys_now_ns();
    if (n == 0 || mproc__sys_poll(s->pfd, n, 0) <= 0)
        return;
    for (unsigned k = 0; k < n; k++) {
        struct worker *w = &p->workers[idx[k]];
        /* asked again: an earlier death of this pass may have broken the pool, and the
           workers it stopped are reaped and gone (a second reap waited for ever on a
           closed pidfd: two workers died at once, the first spent the restart budget) */
        if (s->pfd[k].revents != 0 && w->pidfd >= 0 && mproc__sys_poll1(w->pidfd, POLLIN, 0) > 0)
            on_death(s, w);
    }
}

void mproc__pool_wind_down(struct sup *s)
{
    mproc_pool *p = s->p;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        if (p->launcher->wind_down != NULL && w->pidfd >= 0)
            p->launcher->wind_down(s, w);
        else if (w->in != NULL)
            (void)mproc_queue_close(w->in);
    }
}

/* Kill every worker and wait for it; what it was running fails with code. */
void mproc__pool_stop_workers(struct sup *s, int code, const char *msg)
{
    mproc_pool *p = s->p;
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i].pidfd >= 0)
            kill_worker(s, &p->workers[i]);
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        if (w->pidfd < 0)
            continue;
        int c;
        (void)p->launcher->reap(s, w, &c);
        mproc__pool_drain(s, w);
        mproc__pool_fail_assigned(s, w, code, msg);
        if (p->transport->gone != NULL)
            p->transport->gone(s, w, code, msg, false);
        release_worker(w);
    }
}

/* Complete every task without an outcome with code (terminate, broken). */
void mproc__pool_fail_everything(struct sup *s, int code, const char *msg)
{
    mproc_pool *p = s->p;
    mproc__pool_stop_workers(s, code, msg);
    struct job *j = p->jobs.head;
    while (j != NULL) {
        struct job *nx = j->nextjob;
        mproc__job_stop(j);
        mproc__job_fail_todo(s, j, code, msg);
        mproc__job_maybe_finish(s, j);
        j = nx;
    }
}

static void break_pool(struct sup *s, const char *cause)
{
    mproc_pool *p = s->p;
    p->life.broken = -MPROC_EBROKEN;

    mproc__pool_say(p->life.broken_msg, sizeof p->life.broken_msg, "pool broken: %s", cause);
    mproc__pool_fail_everything(s, -MPROC_EBROKEN, p->life.broken_msg); /* the supervisor
                                                                       sees it: DONE */
}

/* ---- time limits ------------------------------------------------------------------------- */

/* Kill workers past a task's limit or past init_timeout in their start; return the
 * earliest deadline still ahead. */
int64_t mproc__pool_check_timeouts(struct sup *s)
{
    mproc_pool *p = s->p;
    int64_t now = mproc__sys_now_ns(), next = MPROC__NO_DEADLINE;
    for (int i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        if (w->state == W_STARTING && !p->launcher->forks_caller && w->init_code == 0 &&
            atomic_load(&p->shm->slots[w->slot].booted) == 0) {
            double limit = p->o.init_timeout > 0 && p->o.init_timeout < BOOT_LIMIT_S
                               ? p->o.init_timeout
                               : BOOT_LIMIT_S; /* booting is part of its start */
            int64_t d = mproc__deadline_after(w->start_ns, limit);
            if (now >= d) {
                w->init_code = -MPROC_ENOINIT;
                mproc__pool_say(w->init_msg, sizeof w->init_msg,
                                "worker (pid %d) did not reach mproc_init(&argc, &argv) in "
                                "%g s: call it at the top of main(); it was killed",
                                (int)w->pid, limit);
                kill_worker(s, w);
            } else if (d < next) {
                next = d;
            }
            continue;
        }
        if (w->state == W_STARTING && p->o.init_timeout > 0 && w->init_code == 0) {
            int64_t d = mproc__deadline_after(w->start_ns, p->o.init_timeout);
            if (now >= d) { /* its death fails its start with this code and message */
                w->init_code = -MPROC_ETIMELIMIT;
                mproc__pool_say(w->init_msg, sizeof w->init_msg,
                                "worker start (initializer) ran past its time limit of %g s; "
                                "worker (pid %d) was killed",
                                p->o.init_timeout, (int)w->pid);
                kill_worker(s, w);
            } else if (d < next) {
                next = d;
            }
            continue;
        }
        if (w->state != W_READY || w->held.nsegs == 0 || w->timed_out)
            continue;
        /* not-yet-begun tasks cannot expire before now + their limit */
        bool timed = false;
        for (int k = 0; k < w->held.nsegs; k++) {
            double t = mproc__pool_seg_at(w, k)->job->timeout;
            if (t > 0) {
                timed = true;
                int64_t d = mproc__deadline_after(now, t);
                if (d < next)
                    next = d;
            }
        }
        if (!timed) /* leave `started` alone: the worker writes it per task, and reading it
                       on every pass would pull its cache line away each time */
            continue;
        struct pool_slot *sl = &p->shm->slots[w->slot];
        uint64_t s1 = atomic_load(&sl->started);
        int64_t t0 = atomic_load(&sl->started_ns);
        uint64_t s2 = atomic_load(&sl->started);
        if (s1 != s2 || s1 <= w->held.received ||
            atomic_load(&sl->ended) >= s1) /* it returned: held, not running */
            continue;
        uint64_t pos = s1 - 1 - w->held.received; /* the running task, from the front */
        struct job *j = NULL;
        for (int k = 0; k < w->held.nsegs; k++) {
            size_t left = mproc__pool_seg_at(w, k)->count - mproc__pool_seg_at(w, k)->done;
            if (pos < left) {
                j = mproc__pool_seg_at(w, k)->job;
                break;
            }
            pos -= left;
        }
        if (j == NULL || j->timeout <= 0)
            continue;
        int64_t d = mproc__deadline_after(t0, j->timeout);
        if (now >= d) {
            w->timed_out = true;
            w->timeout_seq = s1;
            kill_worker(s, w);
        } else if (d < next) {
            next = d;
        }
    }
    return next;
}
