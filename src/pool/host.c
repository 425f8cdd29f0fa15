/* src/pool/host.c - a host: a process of an MPI job (any rank but the master) that runs
 * one worker of the master's pool (src/pool/link.h).
 *
 * DESIGN. mproc_init never returns in a host: it serves here until the master's program
 * ends (L_EXIT) or the master is lost. For each pool the master opens, the host makes a
 * one-slot pool mapping of its own and, on each L_START, forks a real pool worker on it
 * (the same worker loop as on one machine: src/pool/worker.c), so a task that crashes or
 * is killed for its time limit ends that worker only and the host reports its exit status
 * (L_DIED) like a pidfd would. The host's one thread relays: a chunk from the link goes
 * into the worker's channel (or waits in a FIFO while the channel is full); the records
 * the worker publishes in its ring go to the master in L_UP messages with the slot's
 * counters, which the master's time limits read. It never runs a task itself.
 *
 * Waiting: the link (MPI) has no descriptor to sleep on, so the host polls it, spinning
 * while messages come, then sleeping in poll() on its worker's doorbell and pidfd and the
 * master's watch: a master that sends after a quiet spell also writes a byte there (the
 * link's wake-up, src/mpi/link.c), so the host sleeps without missing it; the sleep is
 * cut at IDLE_MAX_NS all the same.
 */
#include "internal.h"

#include <poll.h>
#include <signal.h>

#include "pool/link.h"
#include "pool/wire.h"
#include "pool/worker.h"
#include "sys/bell.h"
#include "sys/evfd.h"
#include "sys/relax.h"
#include "sys/spawn.h"

#define SPIN_NS INT64_C(100000)      /* keep polling the link this long after the last message */
#define IDLE_MIN_NS INT64_C(20000)   /* then sleep, first this long ... */
#define IDLE_MAX_NS INT64_C(2000000) /* ... doubling up to this */

struct pending { /* a chunk the worker's channel had no room for yet */
    struct pending *next;
    size_t len;
    unsigned char data[];
};

struct host {
    const struct mproc__link_ops *l;
    int watch; /* the master's: readable when it is lost */
    unsigned char *buf;
    size_t cap;
    /* the pool, while one is open */
    bool open;
    struct pool_shm *shm;
    size_t shm_size;
    struct link_open o;
    void *initarg;
    mproc_pool_init_fn init;
    /* its worker, while one lives */
    pid_t pid;
    int pidfd;
    uint32_t inc;
    mproc_queue *in;
    struct worker_arg a;
    struct pending *head, *tail;
    bool winding; /* L_WIND: its channel closes once the FIFO is in it */

    uint64_t told_started, told_ended; /* the counters last sent */
    uint32_t told_retiring;
    unsigned char *up; /* an L_UP being built */
    size_t upcap;
};

static int send_ctl(struct host *h, uint32_t kind, uint32_t inc, int code, int pid,
                    const char *text)
{
    struct {
        struct link_msg m;
        char text[POOL_MSG_MAX];
    } b = {.m = {.kind = kind, .inc = inc, .code = code, .pid = pid}};
    size_t n = 0;
    if (text != NULL) {
        n = strnlen(text, sizeof b.text - 1);
        memcpy(b.text, text, n);
    }
    return h->l->send(0, LINK_CTL, &b, sizeof b.m + n);
}

/* ---- the worker's records, to the master ----------------------------------------------- */

static int flush_up(struct host *h, size_t len)
{
    return h->l->send(0, LINK_CTL, h->up, len);
}

/* Send what the worker published since the last call, and its counters if they moved.
 * true: something was sent. */
static bool forward(struct host *h)
{
    if (h->pid <= 0)
        return false;
    struct pool_slot *sl = &h->shm->slots[h->o.slot];
    uint64_t pos = mproc__ring_head(&sl->ring), tail = mproc__ring_tail(&sl->ring);
    uint64_t started = atomic_load(&sl->started), ended = atomic_load(&sl->ended);
    uint32_t retiring = atomic_load(&sl->retiring);
    if (pos == tail && started == h->told_started && ended == h->told_ended &&
        retiring == h->told_retiring)
        return false;
    int64_t t0 = atomic_load(&sl->started_ns);
    struct link_msg m = {.kind = L_UP,
                         .inc = h->inc,
                         .started = started,
                         .ended = ended,
                         .age_ns = t0 != 0 ? mproc__sys_now_ns() - t0 : 0,
                         .retiring = retiring};
    memcpy(h->up, &m, sizeof m);
    size_t len = sizeof m;
    const unsigned char *rec;
    size_t rlen;
    unsigned char *wrap = h->up + h->upcap - h->o.ring_cap; /* a record that wraps: copied */
    while (mproc__ring_next(mproc__ring_data(h->shm, (int)h->o.slot), h->o.ring_cap, &pos, tail,
                            wrap, h->o.ring_cap, &rec, &rlen) == 1) {
        size_t need = 8 + ((rlen + 7) & ~(size_t)7);
        if (len + need > h->upcap - h->o.ring_cap) { /* full: this one goes in the next */
            (void)flush_up(h, len);
            len = sizeof m;
        }
        uint32_t l32 = (uint32_t)rlen;
        memcpy(h->up + len, &l32, sizeof l32);
        memmove(h->up + len + 8, rec, rlen);
        len += need;
    }
    (void)flush_up(h, len);
    mproc__ring_release(&sl->ring, pos);
    h->told_started = started;
    h->told_ended = ended;
    h->told_retiring = retiring;
    return true;
}

/* ---- the worker's life -------------------------------------------------------------------- */

static void drop_pending(struct host *h)
{
    while (h->head != NULL) {
        struct pending *n = h->head->next;
        mproc__free(h->head);
        h->head = n;
    }
    h->tail = NULL;
}

/* It ended (or is killed now and waited for): its last records, then its status. */
static void worker_end(struct host *h, bool kill, bool tell)
{
    if (h->pid <= 0)
        return;
    if (kill)
        (void)mproc__sys_pidfd_kill(h->pidfd, SIGKILL);
    int code = 0;
    if (mproc__sys_reap(h->pidfd, true, &code) < 0)
        code = INT32_MIN; /* taken by someone else: unknown */
    if (tell) {
        (void)forward(h);
        (void)send_ctl(h, L_DIED, h->inc, code, 0, NULL);
    }
    mproc__sys_close(h->pidfd);
    h->pidfd = -1;
    h->pid = 0;
    mproc_queue_free(h->in);
    h->in = NULL;
    drop_pending(h);
}

/* The worker: the signals MPI caught in the host (to print its own reports) are the
 * default again, as in any worker of the pool's. */
static int host_worker_main(void *arg)
{
    static const int caught[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGCHLD, SIGPIPE};
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++)
        (void)signal(caught[i], SIG_DFL);
    return mproc__pool_worker_main(arg);
}

static void worker_start(struct host *h, uint32_t inc)
{
    worker_end(h, true, false);
    h->inc = inc;
    h->winding = false;
    mproc_queue_opts qo = {.capacity = h->o.channel_size};
    int rc = mproc_queue_new(&h->in, &qo);
    if (rc < 0) {
        (void)send_ctl(h, L_STARTED, inc, rc, 0, "the host could not make the worker's channel");
        return;
    }
    struct pool_slot *sl = &h->shm->slots[h->o.slot];
    atomic_store(&sl->started, 0);
    atomic_store(&sl->ended, 0);
    atomic_store(&sl->retiring, 0);
    atomic_store(&sl->started_ns, 0);
    atomic_store(&sl->reach, REACH_NO); /* never asked: every chunk carries its inputs */
    mproc__ring_reset(&sl->ring);
    h->told_started = h->told_ended = 0;
    h->told_retiring = 0;
    sigset_t none;
    sigemptyset(&none);
    h->a = (struct worker_arg){.shm = h->shm,
                               .slot = (int)h->o.slot, /* as the pool numbers it */
                               .in = h->in,
                               .msg_max = h->o.msg_max,
                               .maxtasks = h->o.maxtasks,
                               .init = h->init,
                               .initarg = h->initarg,
                               .home = getpid(),
                               .announce = true,
                               .mask = none,
                               .timing = h->o.timing != 0,
                               .origin = &h->a};
    int keep = h->shm->evfd;
    struct mproc__spawn sp = {.fn = host_worker_main,
                              .arg = &h->a,
                              .fds = {-1, -1, -1},
                              .flags = MPROC_PROCESS_DAEMON,
                              .close_others = true, /* the link's descriptors too */
                              .keep = &keep,
                              .nkeep = 1};
    rc = mproc__sys_spawn(&sp, &h->pid, &h->pidfd);
    if (rc < 0) {
        mproc_queue_free(h->in);
        h->in = NULL;
        h->pid = 0;
        (void)send_ctl(h, L_STARTED, inc, rc, 0, "the host could not fork the worker");
        return;
    }
    (void)send_ctl(h, L_STARTED, inc, 0, (int)h->pid, NULL);
}

/* Chunks waiting for room go into the channel, in order. true: one did. */
static bool feed(struct host *h)
{
    bool moved = false;
    while (h->head != NULL && h->in != NULL &&
           mproc_queue_put_nowait(h->in, h->head->data, h->head->len) == 0) {
        struct pending *n = h->head->next;
        mproc__free(h->head);
        h->head = n;
        moved = true;
    }
    if (h->head == NULL) {
        h->tail = NULL;
        if (h->winding && h->in != NULL) {
            (void)mproc_queue_close(h->in); /* it exits once it ran them */
            h->winding = false;
        }
    }
    return moved;
}

static void chunk(struct host *h, const unsigned char *b, size_t len)
{
    if (h->pid <= 0) /* for a worker that is gone: the master requeued its tasks */
        return;
    if (h->head == NULL && mproc_queue_put_nowait(h->in, b, len) == 0)
        return;
    struct pending *p = mproc__malloc(sizeof *p + len);
    if (p == NULL) { /* the chunk is lost: so is this worker, as if it had died */
        worker_end(h, true, true);
        return;
    }
    p->next = NULL;
    p->len = len;
    memcpy(p->data, b, len);
    if (h->tail != NULL)
        h->tail->next = p;
    else
        h->head = p;
    h->tail = p;
}

/* ---- pools ----------------------------------------------------------------------------- */

static void pool_close(struct host *h)
{
    worker_end(h, true, false);
    if (h->shm != NULL) {
        mproc__sys_close(h->shm->evfd);
        mproc__sys_unmap(h->shm, h->shm_size);
    }
    h->shm = NULL;
    mproc__free(h->initarg);
    h->initarg = NULL;
    mproc__free(h->up);
    h->up = NULL;
    h->open = false;
}

static int pool_open(struct host *h, const unsigned char *b, size_t len, char *why, size_t n)
{
    pool_close(h);
    if (len < sizeof(struct link_msg) + sizeof(struct link_open))
        return -EPROTO;
    memcpy(&h->o, b + sizeof(struct link_msg), sizeof h->o);
    const struct link_open *o = &h->o;
    size_t argoff = sizeof(struct link_msg) + sizeof *o;
    if (o->build_len > MPROC__BUILD_MAX || o->init_len > MPROC__FNREF_MAX ||
        o->initarg_len != len - argoff || o->ring_cap == 0 || (o->ring_cap & (o->ring_cap - 1)) ||
        o->msg_max == 0 || o->msg_max > o->ring_cap)
        return -EPROTO;
    if (!mproc__launch_same_build(o->build, o->build_len)) {
        mproc__pool_say(why, n, "another build of the program than the master's");
        return -ESTALE;
    }
    h->init = NULL;
    if (o->init_len > 0) {
        void (*fn)(void);
        if (mproc__fnref_decode(o->init, o->init_len, &fn) < 0) {
            mproc__pool_say(why, n, "the initializer's reference does not resolve here");
            return -ESTALE;
        }
        h->init = (mproc_pool_init_fn)fn;
    }
    if (o->initarg_len > 0) {
        h->initarg = mproc__malloc(o->initarg_len);
        if (h->initarg == NULL)
            return -ENOMEM;
        memcpy(h->initarg, b + argoff, o->initarg_len);
    }
    /* The worker's slot at its number in the pool (the task sees it: mproc_task_worker),
     * its ring, an (unused) direct area, no staging areas; the slots and rings before it
     * are never touched, so never given pages. */
    if (o->slot >= 4096)
        return -EPROTO;
    size_t nslots = (size_t)o->slot + 1;
    size_t ring_off =
        (sizeof(struct pool_shm) + nslots * sizeof(struct pool_slot) + 4095) & ~(size_t)4095;
    size_t direct_off = ring_off + nslots * o->ring_cap;
    h->shm_size = direct_off + nslots * 4096;
    void *mem;
    int rc = mproc__sys_map_shared(-1, h->shm_size, &mem);
    if (rc < 0)
        return rc;
    h->shm = mem;
    h->shm->ring_cap = o->ring_cap;
    h->shm->ring_off = ring_off;
    h->shm->direct_cap = 4096;
    h->shm->direct_off = direct_off;
    h->shm->evfd = rc = mproc__sys_eventfd();
    h->upcap = sizeof(struct link_msg) + 3 * o->ring_cap;
    h->up = mproc__malloc(h->upcap);
    if (rc < 0 || h->up == NULL) {
        pool_close(h);
        return rc < 0 ? rc : -ENOMEM;
    }
    h->open = true;
    return 0;
}

/* ---- serving ----------------------------------------------------------------------------- */

/* One message from the master. 1: the program ends; 0: go on; < 0: the link failed. */
static int handle(struct host *h, int tag, size_t len)
{
    struct link_msg m;
    if (tag == LINK_CHUNK) {
        chunk(h, h->buf, len);
        return 0;
    }
    if (len < sizeof m)
        return 0;
    memcpy(&m, h->buf, sizeof m);
    char why[POOL_MSG_MAX] = "";
    switch (m.kind) {
    case L_OPEN: {
        int rc = pool_open(h, h->buf, len, why, sizeof why);
        (void)send_ctl(h, L_OPENED, 0, rc, (int)getpid(), rc < 0 ? why : NULL);
        break;
    }
    case L_START:
        if (h->open)
            worker_start(h, m.inc);
        else
            (void)send_ctl(h, L_STARTED, m.inc, -EPROTO, 0, "no pool is open on this host");
        break;
    case L_KILL:
        if (h->pid > 0 && m.inc == h->inc)
            (void)mproc__sys_pidfd_kill(h->pidfd, SIGKILL); /* its end is seen below */
        break;
    case L_WIND:
        if (h->pid > 0 && m.inc == h->inc)
            h->winding = true; /* feed closes its channel */
        break;
    case L_CLOSE:
        pool_close(h);
        (void)send_ctl(h, L_CLOSED, 0, 0, 0, NULL);
        break;
    case L_EXIT:
        pool_close(h);
        return 1;
    default:
        break;
    }
    return 0;
}

int mproc__host_serve(const struct mproc__link_ops *l)
{
    struct host h = {.l = l, .watch = l->watch(0), .pidfd = -1};
    int status = 0;
    int64_t last = mproc__sys_now_ns(), idle = IDLE_MIN_NS;
    for (;;) {
        bool moved = false;
        int from, tag;
        size_t len;
        int rc;
        while ((rc = l->probe(&from, &tag, &len)) == 1) {
            if (len > h.cap) {
                void *nb = mproc__realloc(h.buf, len);
                if (nb == NULL) {
                    status = 1;
                    goto out;
                }
                h.buf = nb;
                h.cap = len;
            }
            if (l->recv(from, tag, h.buf, len) < 0) {
                status = 1;
                goto out;
            }
            moved = true;
            rc = handle(&h, tag, len);
            if (rc != 0) {
                status = rc > 0 ? 0 : 1;
                goto out;
            }
        }
        if (rc < 0) {
            status = 1;
            goto out;
        }
        moved |= feed(&h);
        moved |= forward(&h);
        if (h.pid > 0 && mproc__sys_poll1(h.pidfd, POLLIN, 0) > 0) {
            worker_end(&h, false, true);
            moved = true;
        }
        int64_t now = mproc__sys_now_ns();
        if (moved) {
            last = now;
            idle = IDLE_MIN_NS;
            continue;
        }
        if (now - last < SPIN_NS || l->sending()) { /* MPI moves a send only inside MPI
                                               calls: while one is not out, ours */
            mproc__sys_cpu_relax();
            continue;
        }
        /* Quiet: sleep until the worker rings, ends, the master is lost, or a while. */
        struct pollfd pfd[3];
        unsigned n = 0;
        if (h.watch >= 0)
            pfd[n++] = (struct pollfd){.fd = h.watch, .events = POLLIN};

        if (h.shm != NULL) {
            (void)mproc__bell_arm(&h.shm->sup_bell);
            pfd[n++] = (struct pollfd){.fd = h.shm->evfd, .events = POLLIN};
        }
        if (h.pid > 0)
            pfd[n++] = (struct pollfd){.fd = h.pidfd, .events = POLLIN};
        bool ready =
            h.shm != NULL && h.pid > 0 && mproc__ring_pending(&h.shm->slots[h.o.slot].ring);
        if (!ready)
            (void)mproc__sys_poll(pfd, n, now + idle);
        if (h.shm != NULL) {
            mproc__bell_leave(&h.shm->sup_bell);
            mproc__sys_eventfd_drain(h.shm->evfd);
        }
        if (h.watch >= 0 && mproc__sys_poll1(h.watch, POLLIN, 0) > 0) {
            if (l->drain(0) < 0) {
                status = 1; /* the master is gone: so is the program */
                goto out;
            }
            last = mproc__sys_now_ns(); /* woken: its message is on its way */
            idle = IDLE_MIN_NS;
            continue;
        }
        idle = idle * 2 < IDLE_MAX_NS ? idle * 2 : IDLE_MAX_NS;
    }
out:
    pool_close(&h);
    mproc__free(h.buf);
    l->leave(status, status != 0);
    return status;
}
