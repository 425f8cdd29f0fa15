/* src/pool/remote.c - the master's end of a pool whose workers live on the hosts of a
 * link (.start = MPROC_START_MPI; src/pool/link.h): the remote launcher, and the relay
 * thread that makes each host's worker look local to the supervisor.
 *
 * DESIGN. One worker per host, slot i on host i. The supervisor runs as for any pool; only
 * its launcher and transport differ. Chunks go out on the link straight from the
 * supervisor (the remote transport in src/pool/transport.c, through post below). What
 * comes back is the relay thread's (one per pool): a host's result records go into the
 * worker slot's ring in this process, its counters into the slot (the time limits read
 * them), and the supervisor's doorbell is rung as a local worker would ring it. A
 * worker's pidfd is an eventfd here, written by the relay when the host says the worker
 * ended (L_DIED, its records all relayed before) or when the host itself is lost; reap
 * gives the exit status the host reported.
 *
 * A lost host (its rank died, its machine went away: the link's watch descriptor says
 * so) cannot be replaced: its worker's death breaks the pool (lost, read by
 * src/pool/life.c), naming the rank; outcomes received before stay. The job cannot end
 * cleanly then (MPI without fault tolerance): at exit the link aborts it with the
 * program's status (mproc__remote_exit).
 *
 * Waiting for a host's answer (open, start, reap, close) is bounded by the host's loss,
 * and by HOST_LIMIT_NS against a host that lives but never answers.
 */
#include "internal.h"

#include <limits.h>
#include <poll.h>

#include "pool/link.h"
#include "pool/pool.h"
#include "sys/evfd.h"
#include "sys/relax.h"

#define HOST_LIMIT_NS INT64_C(30000000000) /* 30 s */
#define REAP_LOOK_NS INT64_C(5000000)      /* reap: drain the worker's ring this often */
#define SPIN_NS INT64_C(100000)            /* the relay polls the link this long after a message, */
#define IDLE_MIN_NS INT64_C(20000)         /* then sleeps on the hosts' watches (a host writes a */
#define IDLE_MAX_NS INT64_C(2000000)       /* byte there after a quiet spell), at most this */

static const struct mproc__link_ops *_Atomic link_ops;
static _Atomic bool damaged; /* a host was lost: the job cannot end cleanly */

void mproc__link_register(const struct mproc__link_ops *l)
{
    atomic_store(&link_ops, l);
}

const struct mproc__link_ops *mproc__link(void)
{
    return atomic_load(&link_ops);
}

/* A host's L_UP or L_DIED that waits for room in its slot's ring (the relay never waits
 * for the supervisor, which may be waiting for the relay: a worker's start). */
struct held {
    struct held *next;
    size_t len, off; /* off: the next record's place (L_UP) */
    bool applied;    /* L_UP: its counters are in the slot */
    unsigned char data[];
};

struct rslot {
    uint32_t inc;  /* the worker's incarnation (the supervisor's start) */
    int evfd;      /* its pidfd stand-in while it lives (-1: none to write) */
    bool answered; /* L_STARTED came for inc ... */
    int start_code;
    pid_t pid;
    char start_msg[POOL_MSG_MAX];
    bool died; /* ... L_DIED */
    int status;
    bool lost; /* the host is gone */
    char lost_msg[POOL_MSG_MAX];
    uint64_t head_seen;            /* the relay's cache of the slot ring's head */
    struct held *held, *held_tail; /* the relay's: messages waiting, in order */
};

struct remote {
    mproc_pool *p;
    const struct mproc__link_ops *l;
    int n;
    pthread_t thread;
    bool thread_started;
    _Atomic bool stop;
    int wake; /* eventfd: the relay's sleep ends */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rslot *slots;
    int *watch;
    int opened, closed;
    int open_code;
    char open_msg[POOL_MSG_MAX];
    unsigned char *buf;
    size_t cap;
};

static struct remote *_Atomic current; /* the pool open on the link (one at a time) */

/* ---- the relay thread ---------------------------------------------------------------------- */

static void signal_end(struct rslot *sl)
{
    if (sl->evfd >= 0)
        mproc__sys_eventfd_ring(sl->evfd);
    sl->evfd = -1; /* the supervisor closes it after reap */
}

static void host_lost(struct remote *r, int h, const char *why)
{
    struct rslot *sl = &r->slots[h];
    char name[96];
    r->l->name_host(h, name, sizeof name);
    pthread_mutex_lock(&r->mu);
    if (!sl->lost) {
        sl->lost = true;
        atomic_store(&damaged, true);
        mproc__pool_say(sl->lost_msg, sizeof sl->lost_msg, "MPI %s %s", name, why);
        signal_end(sl);
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static void ring_supervisor(mproc_pool *p)
{
    if (mproc__bell_claim(&p->shm->sup_bell))
        mproc__sys_eventfd_ring(p->shm->evfd);
}

/* L_UP: the counters into the slot (once), then the records into its ring from *off.
 * false: the ring is full (*off: where to go on). */
static bool relay_up(struct remote *r, int h, const unsigned char *b, size_t len, size_t *off,
                     bool *applied)
{
    mproc_pool *p = r->p;
    struct rslot *sl = &r->slots[h];
    struct link_msg m;
    memcpy(&m, b, sizeof m);
    pthread_mutex_lock(&r->mu);
    bool current_inc = sl->answered && !sl->died && m.inc == sl->inc;
    pthread_mutex_unlock(&r->mu);
    if (!current_inc)
        return true; /* of a worker that is gone */
    struct pool_slot *ps = &p->shm->slots[h];
    if (!*applied) {
        atomic_store(&ps->started_ns, m.age_ns > 0 ? mproc__sys_now_ns() - m.age_ns : 0);
        atomic_store(&ps->retiring, m.retiring);
        atomic_store(&ps->ended, m.ended);
        atomic_store(&ps->started, m.started);
        *applied = true;
        *off = sizeof m;
    }
    bool any = false, done = true;
    while (*off + 8 <= len) {
        uint32_t rlen;
        memcpy(&rlen, b + *off, sizeof rlen);
        if (rlen > len - *off - 8)
            break;
        if (mproc__ring_put_nowait(&ps->ring, mproc__ring_data(p->shm, h), p->shm->ring_cap,
                                   &sl->head_seen, b + *off + 8, rlen) == -EAGAIN) {
            done = false;
            break;
        }
        *off += 8 + (((size_t)rlen + 7) & ~(size_t)7);
        any = true;
    }
    if (any || !done) /* a full ring: the supervisor drains it */
        ring_supervisor(p);
    return done;
}

static void relay_died(struct remote *r, int h, const struct link_msg *m)
{
    struct rslot *sl = &r->slots[h];
    pthread_mutex_lock(&r->mu);
    if (m->inc == sl->inc && sl->answered && !sl->died) {
        sl->died = true;
        sl->status = m->code;
        signal_end(sl);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Deliver what waits for host h, in order. true: something was. */
static bool relay_held(struct remote *r, int h)
{
    struct rslot *sl = &r->slots[h];
    bool moved = false;
    while (sl->held != NULL) {
        struct held *x = sl->held;
        struct link_msg m;
        memcpy(&m, x->data, sizeof m);
        if (m.kind == L_UP && !relay_up(r, h, x->data, x->len, &x->off, &x->applied))
            return moved;
        if (m.kind == L_DIED)
            relay_died(r, h, &m);
        sl->held = x->next;
        if (sl->held == NULL)
            sl->held_tail = NULL;
        mproc__free(x);
        moved = true;
    }
    return moved;
}

/* Keep b (or what is left of it: off, applied) to deliver later. false: no memory. */
static bool hold(struct rslot *sl, const unsigned char *b, size_t len, size_t off, bool applied)
{
    struct held *x = mproc__malloc(sizeof *x + len);
    if (x == NULL)
        return false;
    *x = (struct held){.len = len, .off = off, .applied = applied};
    memcpy(x->data, b, len);
    if (sl->held_tail != NULL)
        sl->held_tail->next = x;
    else
        sl->held = x;
    sl->held_tail = x;
    return true;
}

static void relay_ctl(struct remote *r, int h, const unsigned char *b, size_t len)
{
    struct link_msg m;
    if (len < sizeof m || h < 0 || h >= r->n)
        return;
    memcpy(&m, b, sizeof m);
    struct rslot *sl = &r->slots[h];
    if (m.kind == L_UP || m.kind == L_DIED) { /* in order, behind what waits already */
        size_t off = 0;
        bool applied = false;
        if (sl->held == NULL && (m.kind == L_DIED || relay_up(r, h, b, len, &off, &applied))) {
            if (m.kind == L_DIED)
                relay_died(r, h, &m);
            return;
        }
        if (!hold(sl, b, len, off, applied))
            host_lost(r, h, "sent what this process had no memory to keep");
        return;
    }
    char name[96];
    r->l->name_host(h, name, sizeof name);
    int tl = (int)(len - sizeof m);
    pthread_mutex_lock(&r->mu);
    switch (m.kind) {
    case L_OPENED:
        r->opened++;
        if (m.code < 0 && r->open_code == 0) {
            r->open_code = m.code;
            mproc__pool_say(r->open_msg, sizeof r->open_msg, "MPI %s: %.*s", name, tl,
                            (const char *)b + sizeof m);
        }
        break;
    case L_STARTED:
        if (m.inc == sl->inc) {
            sl->answered = true;
            sl->start_code = m.code;
            sl->pid = m.pid;
            mproc__pool_say(sl->start_msg, sizeof sl->start_msg, "MPI %s: %.*s", name, tl,
                            (const char *)b + sizeof m);
        }
        break;
    case L_CLOSED:
        r->closed++;
        break;
    default:
        break;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Which hosts are lost now (their watch turned readable)? true: one woke us (it sent). */
static bool look_at_hosts(struct remote *r, int64_t deadline)
{
    struct pollfd pfd[r->n + 1];
    int idx[r->n + 1];
    unsigned k = 0;
    pfd[k] = (struct pollfd){.fd = r->wake, .events = POLLIN};
    idx[k++] = -1;
    for (int h = 0; h < r->n; h++)
        if (r->watch[h] >= 0 && !r->slots[h].lost) {
            pfd[k] = (struct pollfd){.fd = r->watch[h], .events = POLLIN};
            idx[k++] = h;
        }
    if (mproc__sys_poll(pfd, k, deadline) <= 0)
        return false;
    mproc__sys_eventfd_drain(r->wake);
    bool woken = false;
    for (unsigned i = 1; i < k; i++) { /* a host's wake-up, or its end */
        if (pfd[i].revents == 0)
            continue;
        if (r->l->drain(idx[i]) < 0)
            host_lost(r, idx[i], "is gone (its process died, or its connection broke)");
        else
            woken = true;
    }
    return woken;
}

static void *relay(void *arg)
{
    struct remote *r = arg;
    int64_t last = mproc__sys_now_ns(), idle = IDLE_MIN_NS, looked = last;
    while (!atomic_load(&r->stop)) {
        bool moved = false;
        int h, tag, rc;
        size_t len;
        while ((rc = r->l->probe(&h, &tag, &len)) == 1) {
            if (len > r->cap) {
                void *nb = mproc__realloc(r->buf, len);
                if (nb == NULL)
                    break; /* the message stays; tried again */
                r->buf = nb;
                r->cap = len;
            }
            if (r->l->recv(h, tag, r->buf, len) < 0)
                break;
            moved = true;
            if (tag == LINK_CTL)
                relay_ctl(r, h, r->buf, len);
        }
        for (int k = 0; k < r->n; k++)
            if (r->slots[k].held != NULL)
                moved |= relay_held(r, k);
        int64_t now = mproc__sys_now_ns();
        if (moved) {
            last = now;
            idle = IDLE_MIN_NS;
        }
        if (now - looked > IDLE_MAX_NS) {
            (void)look_at_hosts(r, 0);
            looked = now;
        }
        /* spin a while after a message, and while a send of the supervisor's is not out
           yet (MPI moves it only inside MPI calls: ours, here) */
        if (moved || now - last < SPIN_NS || r->l->sending()) {
            mproc__sys_cpu_relax();
            continue;
        }
        bool waiting = false; /* held for room in a ring: look again soon */
        for (int k = 0; k < r->n; k++)
            waiting |= r->slots[k].held != NULL;
        if (look_at_hosts(r, now + (waiting ? IDLE_MIN_NS : idle))) {
            last = mproc__sys_now_ns(); /* woken: its message is on its way */
            idle = IDLE_MIN_NS;
        } else {
            idle = idle * 2 < IDLE_MAX_NS ? idle * 2 : IDLE_MAX_NS;
        }
        looked = mproc__sys_now_ns();
    }
    return NULL;
}

/* ---- waiting for hosts ------------------------------------------------------------------ */

static int64_t limit(void)
{
    return mproc__sys_now_ns() + HOST_LIMIT_NS;
}

/* Wait under r->mu for news from the relay; false at the deadline (monotonic ns). */
static bool wait_until(struct remote *r, int64_t deadline)
{
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    return pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT;
}

/* Wait under r->mu until *flag, or the host (h >= 0) is lost, or the deadline. */
static bool wait_for(struct remote *r, const bool *flag, int h, int64_t deadline)
{
    while (!*flag && (h < 0 || !r->slots[h].lost)) {
        if (!wait_until(r, deadline))
            return *flag;
    }
    return *flag;
}

static int send_ctl(struct remote *r, int h, uint32_t kind, uint32_t inc)
{
    struct link_msg m = {.kind = kind, .inc = inc};
    return r->l->send(h, LINK_CTL, &m, sizeof m);
}

/* ---- the launcher ----------------------------------------------------------------------- */

static int remote_size(int asked, char *msg, size_t n)
{
    const struct mproc__link_ops *l = mproc__link();
    if (l == NULL) {
        mproc__pool_say(msg, n,
                        "MPROC_START_MPI: this program is not linked with libmproc-mpi "
                        "(-lmproc-mpi)");
        return -MPROC_ENOTSUP;
    }
    int hosts = l->hosts(asked, msg, n);
    if (hosts > 0 && mproc__remote_at_exit() < 0)
        return -ENOMEM;
    return hosts;
}

static void remote_free(struct remote *r)
{
    if (r->thread_started) {
        atomic_store(&r->stop, true);
        mproc__sys_eventfd_ring(r->wake);
        pthread_join(r->thread, NULL);
    }
    mproc__sys_close(r->wake);
    for (int h = 0; h < r->n && r->slots != NULL; h++)
        while (r->slots[h].held != NULL) {
            struct held *x = r->slots[h].held;
            r->slots[h].held = x->next;
            mproc__free(x);
        }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    mproc__free(r->slots);
    mproc__free(r->watch);
    mproc__free(r->buf);
    mproc__free(r);
}

static int send_open(struct remote *r, int h)
{
    mproc_pool *p = r->p;
    size_t arglen = p->initarg_copy != NULL ? p->o.initarg_size : 0;
    size_t len = sizeof(struct link_msg) + sizeof(struct link_open) + arglen;
    unsigned char *b = mproc__calloc(1, len);
    if (b == NULL)
        return -ENOMEM;
    struct link_msg m = {.kind = L_OPEN};
    struct link_open o = {.msg_max = p->msg_max,
                          .channel_size = p->o.channel_size,
                          .ring_cap = p->shm->ring_cap,
                          .maxtasks = p->o.maxtasksperchild,
                          .timing = p->o.phase_times != 0,
                          .slot = (uint32_t)h,
                          .init_len = p->init_ref_len,
                          .initarg_len = arglen};
    o.build_len = (uint32_t)mproc__fnref_main_build(o.build, sizeof o.build);
    memcpy(o.init, p->init_ref, p->init_ref_len);
    memcpy(b, &m, sizeof m);
    memcpy(b + sizeof m, &o, sizeof o);
    if (arglen > 0)
        memcpy(b + sizeof m + sizeof o, p->initarg_copy, arglen);
    int rc = r->l->send(h, LINK_CTL, b, len);
    mproc__free(b);
    return rc;
}

static int remote_open(mproc_pool *p, char *msg, size_t n)
{
    struct remote *r = mproc__calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    struct remote *none = NULL;
    if (!atomic_compare_exchange_strong(&current, &none, r)) {
        mproc__free(r);
        mproc__pool_say(msg, n, "MPROC_START_MPI: another pool holds the MPI ranks; free it first");
        return -EBUSY;
    }
    r->p = p;
    r->l = mproc__link();
    r->n = p->nworkers;
    r->wake = mproc__sys_eventfd();
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->slots = mproc__calloc((size_t)r->n, sizeof *r->slots);
    r->watch = mproc__calloc((size_t)r->n, sizeof *r->watch);
    int rc = -ENOMEM;
    if (r->wake < 0 || r->slots == NULL || r->watch == NULL)
        goto fail;
    for (int h = 0; h < r->n; h++) {
        r->slots[h].evfd = -1;
        r->watch[h] = r->l->watch(h);
    }
    sigset_t all;
    mproc__sys_block_all(&all);
    rc = -pthread_create(&r->thread, NULL, relay, r);
    mproc__sys_restore_mask(&all);
    if (rc < 0)
        goto fail;
    r->thread_started = true;
    int sent = 0;
    for (int h = 0; h < r->n && rc == 0; h++, sent++)
        rc = send_open(r, h);
    int64_t deadline = limit();
    pthread_mutex_lock(&r->mu);
    for (;;) {
        bool lost = false;
        for (int h = 0; h < r->n; h++)
            if (r->slots[h].lost) {
                mproc__pool_say(msg, n, "%s", r->slots[h].lost_msg);
                lost = true;
            }
        if (lost) {
            rc = -MPROC_EBROKEN;
            break;
        }
        if (r->opened == sent || rc < 0)
            break;
        if (!wait_until(r, deadline)) {
            mproc__pool_say(msg, n, "MPROC_START_MPI: a host did not answer in 30 s");
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (rc == 0 && r->open_code < 0) {
        rc = r->open_code;
        mproc__pool_say(msg, n, "%s", r->open_msg);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        goto fail;
    p->remote = r;
    return 0;
fail:
    for (int h = 0; h < r->n && r->slots != NULL; h++)
        if (!r->slots[h].lost)
            (void)send_ctl(r, h, L_CLOSE, 0);
    remote_free(r);
    atomic_store(&current, NULL);
    return rc;
}

static void remote_close(mproc_pool *p)
{
    struct remote *r = p->remote;
    if (r == NULL)
        return;
    int alive = 0;
    for (int h = 0; h < r->n; h++)
        if (!r->slots[h].lost && send_ctl(r, h, L_CLOSE, 0) == 0)
            alive++;
    int64_t deadline = limit();
    pthread_mutex_lock(&r->mu);
    while (r->closed < alive) {
        if (!wait_until(r, deadline))
            break;
        alive = 0; /* hosts lost meanwhile answer no more */
        for (int h = 0; h < r->n; h++)
            alive += !r->slots[h].lost;
    }
    pthread_mutex_unlock(&r->mu);
    remote_free(r);
    p->remote = NULL;
    atomic_store(&current, NULL);
}

static int remote_start(struct sup *s, struct worker *w)
{
    struct remote *r = s->p->remote;
    int h = w->slot;
    struct rslot *sl = &r->slots[h];
    int evfd = mproc__sys_eventfd();
    if (evfd < 0)
        return evfd;
    pthread_mutex_lock(&r->mu);
    uint32_t inc = ++sl->inc;
    sl->answered = sl->died = false;
    sl->head_seen = 0;
    sl->evfd = evfd; /* before L_START: a worker may end before we look again (its
                        initializer failed) and its L_DIED must find it (tested) */
    bool lost = sl->lost;
    pthread_mutex_unlock(&r->mu);
    int rc = lost ? -EHOSTDOWN : send_ctl(r, h, L_START, inc);
    pthread_mutex_lock(&r->mu);
    if (rc == 0)
        rc = wait_for(r, &sl->answered, h, limit()) ? sl->start_code : -EHOSTDOWN;
    if (rc == 0) {
        w->pid = sl->pid;
        w->pidfd = evfd;
        atomic_store(&s->p->shm->slots[h].booted, 1); /* forked there: no boot to wait for */
    } else {
        sl->evfd = -1;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        mproc__sys_close(evfd);
    return rc;
}

static int remote_reap(struct sup *s, struct worker *w, int *code)
{
    struct remote *r = s->p->remote;
    struct rslot *sl = &r->slots[w->slot];
    int64_t deadline = limit();
    pthread_mutex_lock(&r->mu);
    bool died = false;
    while (!died && !sl->lost && mproc__sys_now_ns() < deadline) {
        died = wait_for(r, &sl->died, w->slot, mproc__sys_now_ns() + REAP_LOOK_NS);
        if (!died) { /* its last records may wait for room in its ring: make some */
            pthread_mutex_unlock(&r->mu);
            mproc__pool_drain(s, w);
            pthread_mutex_lock(&r->mu);
        }
    }
    if (!died) /* lost, or silent past the limit: counted as lost */
        sl->lost = true;
    sl->evfd = -1; /* the supervisor closes it */
    int status = sl->status;
    pthread_mutex_unlock(&r->mu);
    if (!died || status == INT32_MIN)
        return -ECHILD;
    *code = status;
    return 0;
}

/* Ask w's host to do `kind` to its present incarnation (none: the host is lost). */
static void tell_host(struct sup *s, struct worker *w, uint32_t kind)
{
    struct remote *r = s->p->remote;
    struct rslot *sl = &r->slots[w->slot];
    pthread_mutex_lock(&r->mu);
    uint32_t inc = sl->inc;
    bool lost = sl->lost;
    pthread_mutex_unlock(&r->mu);
    if (!lost)
        (void)send_ctl(r, w->slot, kind, inc);
}

static void remote_kill(struct sup *s, struct worker *w)
{
    tell_host(s, w, L_KILL);
}

static void remote_wind_down(struct sup *s, struct worker *w)
{
    tell_host(s, w, L_WIND);
}

static const char *remote_lost(struct sup *s, struct worker *w)
{
    struct remote *r = s->p->remote;
    pthread_mutex_lock(&r->mu);
    bool lost = r->slots[w->slot].lost;
    pthread_mutex_unlock(&r->mu);
    return lost ? r->slots[w->slot].lost_msg : NULL; /* written once, before `lost` */
}

static void remote_post(struct sup *s, struct worker *w, const void *chunk, size_t len)
{
    struct remote *r = s->p->remote;
    /* A send that fails means the host is lost: its worker's end says so (watch). */
    (void)r->l->send(w->slot, LINK_CHUNK, chunk, len);
}

const struct launcher_ops mproc__launcher_remote = {.forks_caller = false,
                                                    .transport = &mproc__transport_remote,
                                                    .size = remote_size,
                                                    .open = remote_open,
                                                    .close = remote_close,
                                                    .start = remote_start,
                                                    .reap = remote_reap,
                                                    .kill = remote_kill,
                                                    .wind_down = remote_wind_down,
                                                    .lost = remote_lost,
                                                    .post = remote_post};

/* ---- the program's end -------------------------------------------------------------------- */

/* The master's exit: the hosts leave, and so does this process; a job that lost a host is
 * aborted with the program's status. */
static void remote_exit(int status, void *arg)
{
    (void)arg;
    const struct mproc__link_ops *l = mproc__link();
    struct remote *r = atomic_load(&current);
    if (r != NULL && r->thread_started) { /* a pool never freed: its relay stops first */
        atomic_store(&r->stop, true);
        mproc__sys_eventfd_ring(r->wake);
        pthread_join(r->thread, NULL);
        r->thread_started = false;
    }
    int n = l->hosts(-1, NULL, 0);
    for (int h = 0; h < n; h++) {
        struct link_msg m = {.kind = L_EXIT};
        bool lost = r != NULL && h < r->n && r->slots[h].lost;
        if (!lost)
            (void)l->send(h, LINK_CTL, &m, sizeof m);
    }
    l->leave(status, atomic_load(&damaged));
}

int mproc__remote_at_exit(void)
{
    static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
    static bool registered;
    pthread_mutex_lock(&once);
    int rc = registered || on_exit(remote_exit, NULL) == 0 ? 0 : -ENOMEM;
    registered = rc == 0;
    pthread_mutex_unlock(&once);
    return rc;
}
