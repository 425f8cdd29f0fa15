/* src/pool/api.c - the worker pool: API, lifecycle and submission (see mproc/pool.h).
 *
 * DESIGN. This file is the caller's side: options resolved and checked, the pool's shared
 * mapping and its supervisor thread created, submissions turned into jobs
 * (src/pool/job.c) and queued under the pool mutex with a kick to the supervisor, close,
 * join, terminate and free. How the rest fits (the supervisor, the workers, the
 * transport, who wakes whom, what happens when a worker dies) is told once, in
 * docs/design.md, "The pool". A map whose input or output array lies in a shared mapping
 * that existed when the pool forked its workers, and is still the same mapping (checked
 * against /proc/self/maps at creation and at submission), is read or written in place.
 *
 * Lock order: pool mutex only (the queues' locks are taken with it held by the
 * supervisor, never the other way round). Nothing here blocks while holding it except
 * the supervisor's short reaping of processes it has just SIGKILLed.
 */
#include "internal.h"

#include "launch.h"
#include "pool/pool.h"
#include "sys/evfd.h"
#include "sys/procmem.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#define MAX_WORKERS 1024
#define DEFAULT_CHANNEL ((size_t)1 << 20)
#define MIN_CHANNEL ((size_t)4096)
#define MAX_CHANNEL ((size_t)1 << 30)

void mproc__pool_kick(mproc_pool *p)
{
    atomic_fetch_add(&p->kicks, 1);
    if (mproc__bell_claim(&p->shm->sup_bell))
        mproc__sys_eventfd_ring(p->shm->evfd);
}

/* mproc_cpu_usable reads the cgroup's quota files (five opens, ~15 us); a pool asks at
 * most once a second. A changed quota reaches new pools within that second. */
#define CPUS_TTL_NS INT64_C(1000000000)

static int usable_cpus(void)
{
    static _Atomic int cached_n; /* 0: not asked yet */
    static _Atomic int64_t cached_at;
    int64_t now = mproc__sys_now_ns();
    int n = atomic_load_explicit(&cached_n, memory_order_relaxed);
    if (n > 0 && now - atomic_load_explicit(&cached_at, memory_order_relaxed) < CPUS_TTL_NS)
        return n; /* racing threads may pair one's count with another's time: both fresh */
    n = mproc_cpu_usable();
    if (n > 0) {
        atomic_store_explicit(&cached_at, now, memory_order_relaxed);
        atomic_store_explicit(&cached_n, n, memory_order_relaxed);
    }
    return n;
}

static bool bad_time(double t)
{
    return isnan(t) || t < 0;
}

static void pool_release(mproc_pool *p)
{
    if (p->launcher->close != NULL)
        p->launcher->close(p); /* before the mapping goes: its relay writes there */
    if (p->shm != NULL) {
        mproc__sys_close(p->shm->evfd);
        mproc__sys_unmap(p->shm, p->shm_size);
    }
    mproc__sys_close(p->shm_fd);
    mproc__free(p->initarg_copy);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    mproc__free(p->workers);
    mproc__free(p->wargs);
    mproc__pool_life_free(p);

    mproc__free(p->ranges);
    mproc__free(p->keep_fds);
    mproc__free(p);
}

static int blocking_outcome(int rc, const char *msg);

int mproc_pool_new(mproc_pool **out, const mproc_pool_opts *opts)
{
    if (out == NULL)
        return -EINVAL;
    mproc_pool_opts o = opts != NULL ? *opts : (mproc_pool_opts){0};
    if (o.workers < 0 || o.workers > MAX_WORKERS || bad_time(o.timeout) ||
        bad_time(o.init_timeout) || bad_time(o.restart_period) || o.max_restarts < 0 ||
        o.max_restarts > 1000000 ||
        (o.channel_size != 0 && (o.channel_size < MIN_CHANNEL || o.channel_size > MAX_CHANNEL)) ||
        (o.n_inherit_fds != 0 && (o.inherit_fds == NULL || o.n_inherit_fds > 4096)))
        return -EINVAL;
    for (size_t i = 0; i < o.n_inherit_fds; i++)
        if (o.inherit_fds[i] < 0 || !mproc__sys_fd_open(o.inherit_fds[i]))
            return -EINVAL;
    if (o.start == MPROC_START_DEFAULT)
        o.start = mproc_get_start_method();
    if (mproc_start_method_name(o.start) == NULL)
        return -EINVAL;
    if (mproc__boot_pending()) /* a worker that runs main() without mproc_init */
        return -MPROC_ENOINIT;
    /* A worker that did not fork gets the initializer by reference, its argument as
       bytes, and the descriptors in one message (src/pool/boot.c). */
    bool forked = o.start == MPROC_START_FORK;
    if (!forked &&
        ((o.initarg != NULL && o.initarg_size == 0) || (o.initarg == NULL && o.initarg_size != 0) ||
         o.initarg_size > MPROC__BOOT_ARG_MAX || o.n_inherit_fds > 48))
        return -EINVAL;
    if (forked)
        o.initarg_size = 0;
    const struct launcher_ops *launcher = forked                       ? &mproc__launcher_fork
                                          : o.start == MPROC_START_MPI ? &mproc__launcher_remote
                                                                       : &mproc__launcher_boot;
    if (launcher->transport != NULL && o.n_inherit_fds > 0)
        return -EINVAL; /* a worker on another host inherits nothing */
    unsigned char init_ref[MPROC__FNREF_MAX];
    size_t init_ref_len = 0;
    if (!forked && o.initializer != NULL) {
        int frc = mproc__fnref_encode((void (*)(void))o.initializer, init_ref, sizeof init_ref,
                                      &init_ref_len);
        if (frc < 0)
            return frc;
    }
    if (launcher->size != NULL) {
        char why[POOL_MSG_MAX] = "";
        int n = launcher->size(o.workers, why, sizeof why);
        if (n < 0)
            return blocking_outcome(n, why);
        if (n == 0)
            return blocking_outcome(-EINVAL, "MPROC_START_MPI: the MPI job has no rank besides "
                                             "this one (run it with mpirun -np 2 or more)");
        o.workers = n;
    }
    if (o.workers == 0) {
        int n = usable_cpus();
        o.workers = n > 0 ? (n > MAX_WORKERS ? MAX_WORKERS : n) : 1;
    }
    if (o.max_restarts == 0)
        o.max_restarts = o.workers * 2 > 10 ? o.workers * 2 : 10;
    if (o.restart_period == 0)
        o.restart_period = 1.0;
    if (isinf(o.timeout))
        o.timeout = 0;
    if (isinf(o.init_timeout))
        o.init_timeout = 0;
    if (o.channel_size == 0)
        o.channel_size = DEFAULT_CHANNEL;
    size_t cap = MIN_CHANNEL;
    while (cap < o.channel_size)
        cap <<= 1;
    o.channel_size = cap;

    mproc_pool *p = mproc__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->shm_fd = -1;
    p->start = o.start;
    p->launcher = launcher;
    memcpy(p->init_ref, init_ref, init_ref_len);
    p->init_ref_len = (uint32_t)init_ref_len;
    if (o.initarg_size > 0) {
        p->initarg_copy = mproc__malloc(o.initarg_size);
        if (p->initarg_copy == NULL) {
            mproc__free(p);
            return -ENOMEM;
        }
        memcpy(p->initarg_copy, o.initarg, o.initarg_size);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->o = o;
    p->nworkers = o.workers;
    p->msg_max = cap / 2 - 16; /* two messages fit in a channel at once */
    int cpus = usable_cpus();
    p->spin = cpus > 1;
    p->cpus = cpus > 0 ? cpus : 1;
    /* a caller spinning in mproc_result_wait needs a CPU of its own besides the
     * supervisor's and a worker's: with fewer it only delays them (measured on 2 CPUs:
     * apply 14 us without, 80 us with) */
    p->spin_wait = cpus > 2;
    mproc__pool_sup_init(p);
    mproc__jobs_init(p);
    p->workers = mproc__calloc((size_t)o.workers, sizeof *p->workers);
    p->transport = launcher->transport != NULL ? launcher->transport : &mproc__transport_local;
    p->wargs = mproc__calloc((size_t)o.workers, sizeof *p->wargs);
    int rc = -ENOMEM;
    if (p->workers == NULL || p->wargs == NULL || mproc__pool_life_init(p) < 0)
        goto fail;
    for (int i = 0; i < o.workers; i++)
        p->workers[i] =
            (struct worker){.slot = i, .pidfd = -1, .in_fd = -1, .transport = p->transport};
    size_t ring_off = sizeof(struct pool_shm) + (size_t)o.workers * sizeof(struct pool_slot);
    ring_off = (ring_off + 4095) & ~(size_t)4095;
    size_t direct_cap = p->msg_max - sizeof(struct pool_rec); /* as an apply's output */
    size_t direct_off = ring_off + (size_t)o.workers * cap;
    size_t stage_cap = cap / 2; /* a chunk's worth, as in a channel */
    size_t stage_off = (direct_off + (size_t)o.workers * direct_cap + 4095) & ~(size_t)4095;
    p->shm_size = stage_off + (size_t)o.workers * POOL_STAGES * stage_cap; /* pages are
                                                                 touched only when used */
    void *mem;
    if (!forked) { /* a memfd, which workers that did not fork map at the same address */
        rc = p->shm_fd = mproc__sys_memfd("mproc-pool");
        if (rc < 0 || (rc = mproc__sys_set_size(p->shm_fd, p->shm_size)) < 0)
            goto fail;
    }
    rc = mproc__sys_map_shared(p->shm_fd, p->shm_size, &mem);
    if (rc < 0)
        goto fail;
    p->shm = mem;
    p->shm->ring_cap = cap;
    p->shm->ring_off = ring_off;
    p->shm->direct_cap = direct_cap;
    p->shm->direct_off = direct_off;
    p->shm->stage_cap = stage_cap;
    p->shm->stage_off = stage_off;

    p->shm->evfd = -1;
    rc = mproc__sys_eventfd();
    if (rc < 0)
        goto fail;
    p->shm->evfd = rc;
    /* What a worker keeps of the descriptors above 2: its doorbell and what the caller
       named, ascending (the spawn core closes the gaps between them). */
    p->keep_fds = mproc__calloc(o.n_inherit_fds + 1, sizeof *p->keep_fds);
    rc = -ENOMEM;
    if (p->keep_fds == NULL)
        goto fail;
    p->keep_fds[0] = p->shm->evfd;
    p->nkeep = 1;
    for (size_t i = 0; i < o.n_inherit_fds; i++) {
        int fd = o.inherit_fds[i];
        size_t k = p->nkeep;
        while (k > 0 && p->keep_fds[k - 1] > fd)
            k--;
        if (k > 0 && p->keep_fds[k - 1] == fd)
            continue;
        memmove(p->keep_fds + k + 1, p->keep_fds + k, (p->nkeep - k) * sizeof *p->keep_fds);
        p->keep_fds[k] = fd;
        p->nkeep++;
    }
    p->o.inherit_fds = NULL; /* the caller's array need not outlive this call */

    /* Shared mappings the workers will inherit at the same address: arrays inside them
     * are read and written in place (zero-copy). Optional: without the list, copies. */
    if (!forked || mproc__sys_shared_ranges(&p->ranges, &p->nranges) < 0) {
        p->ranges = NULL;
        p->nranges = 0;
    }

    if (p->launcher->open != NULL) {
        char why[POOL_MSG_MAX] = "";
        rc = p->launcher->open(p, why, sizeof why);
        if (rc < 0) {
            (void)blocking_outcome(rc, why);
            goto fail;
        }
    }

    /* The thread starts with every signal blocked (no handler of the caller's runs on
     * it); workers restore the caller's mask, saved here. */
    sigset_t all;
    mproc__sys_block_all(&all);
    p->caller_mask = all;
    rc = MPROC__FAULT("pool.thread");
    if (rc == 0)
        rc = -pthread_create(&p->thread, NULL, mproc__pool_supervisor, p);
    mproc__sys_restore_mask(&all);
    if (rc < 0)
        goto fail;
    p->thread_started = true;

    pthread_mutex_lock(&p->mu);
    while (p->sup.start_rc == 1 && p->sup.state != S_FINISHED)
        pthread_cond_wait(&p->cv, &p->mu);
    rc = p->sup.start_rc;
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        pthread_join(p->thread, NULL);
        (void)blocking_outcome(rc, p->sup.start_msg); /* why: mproc_pool_message() */
        goto fail;
    }
    *out = p;
    return 0;
fail:
    pool_release(p);
    return rc < 0 ? rc : -ENOMEM;
}

int mproc_pool_workers(const mproc_pool *p)
{
    return p == NULL ? -EINVAL : p->nworkers;
}

/* ---- submission ------------------------------------------------------------------------- */

int mproc__pool_admit(const mproc_pool *p)
{
    if (p->life.broken)
        return p->life.broken;
    if (p->closed || p->sup.state != S_RUNNING)
        return -MPROC_ECLOSED;
    return 0;
}

static int new_job(mproc_pool *p, const struct job_ops *ops, mproc_task_fn fn,
                   const mproc_call_opts *o, struct job **out)
{
    if (o != NULL && (bad_time(o->timeout) || (o->flags & ~(unsigned)MPROC_IMAP_UNORDERED)))
        return -EINVAL;
    return mproc__job_new(p, ops, fn, o, out);
}

static size_t input_room(const mproc_pool *p, const struct job *j)
{
    return p->msg_max - mproc__chunk_head(j->fnref_len);
}

int mproc_pool_apply_async(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len,
                           const mproc_call_opts *opts, mproc_result **r)
{
    if (p == NULL || fn == NULL || (in == NULL && in_len > 0))
        return -EINVAL;
    struct job *j;
    int rc = new_job(p, &mproc__job_apply, fn, opts, &j);
    if (rc < 0)
        return rc;
    if (in_len > input_room(p, j) || in_len > UINT32_MAX) {
        mproc__job_free(j);
        return -EMSGSIZE;
    }
    mproc_result *res = NULL;
    rc = mproc__job_set_apply(j, in, in_len);
    if (rc == 0)
        rc = mproc__result_new(&res, p, JOB_APPLY, 1, opts);
    if (rc < 0) {
        mproc__job_free(j);
        return rc;
    }
    mproc__job_attach(j, res);
    if (r != NULL)
        atomic_fetch_add(&res->refs, 1); /* the caller's handle */
    pthread_mutex_lock(&p->mu);
    rc = mproc__pool_admit(p);
    if (rc == 0)
        mproc__job_enqueue(p, j);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        if (r != NULL)
            mproc__result_unref(res);
        mproc__result_unref(res);
        mproc__job_free(j);
        return rc;
    }
    mproc__pool_kick(p);
    if (r != NULL)
        *r = res;
    return 0;
}

/* The message of this thread's last blocking call (apply, map): see mproc_pool_message. */
static _Thread_local char last_msg[POOL_MSG_MAX];

static int blocking_outcome(int rc, const char *msg)
{
    if (rc == 0)
        last_msg[0] = '\0';
    else
        mproc__pool_say(last_msg, sizeof last_msg, "%s",
                        msg != NULL && msg[0] != '\0' ? msg : mproc_strerror(rc));
    return rc;
}

const char *mproc_pool_message(void)
{
    return last_msg;
}

static int apply_blocking(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len, void *out,
                          size_t cap, size_t *out_len, const mproc_call_opts *opts, double timeout,
                          char msg[POOL_MSG_MAX])
{
    if (out == NULL && cap > 0)
        return -EINVAL;
    if (opts != NULL && (opts->callback != NULL || opts->error_callback != NULL))
        return -EINVAL; /* a blocking call has no callbacks: its caller has the outcome */
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    if (p == NULL || fn == NULL || (in == NULL && in_len > 0))
        return -EINVAL;
    if (p->transport->apply != NULL && (opts == NULL || opts->timeout == 0)) {
        rc = p->transport->apply(p, fn, in, in_len, out, cap, out_len, msg, deadline);
        if (rc != 1)
            return rc;
    }
    mproc_result *r;
    rc = mproc_pool_apply_async(p, fn, in, in_len, opts, &r);
    if (rc < 0)
        return rc;
    rc = mproc_result_get(r, out, cap, out_len, timeout);
    if (rc != 0 && rc != -ETIMEDOUT && rc != -MPROC_ETOOSMALL)
        mproc__pool_say(msg, POOL_MSG_MAX, "%s", mproc_result_message(r));
    mproc_result_free(r);
    return rc;
}

int mproc_pool_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len, void *out,
                     size_t cap, size_t *out_len, const mproc_call_opts *opts, double timeout)
{
    char msg[POOL_MSG_MAX] = "";
    int rc = apply_blocking(p, fn, in, in_len, out, cap, out_len, opts, timeout, msg);
    return blocking_outcome(rc, msg);
}

static const struct mproc__shared_range *find_range(const struct mproc__shared_range *v, size_t n,
                                                    const void *ptr, size_t len)
{
    uintptr_t a = (uintptr_t)ptr;
    for (size_t i = 0; i < n; i++)
        if (a >= v[i].start && a < v[i].end && len <= v[i].end - a)
            return &v[i];
    return NULL;
}

/* Does [ptr, ptr + len) lie in a shared mapping that existed when the workers were forked,
 * and is that mapping still the same one now? Then the workers see the caller's bytes at
 * the same address. (A replacement worker, forked later, inherits it too.) */
static bool shared_with_workers(const mproc_pool *p, const void *ptr, size_t len,
                                const struct mproc__shared_range *now, size_t nnow)
{
    if (len == 0)
        return false;
    const struct mproc__shared_range *then = find_range(p->ranges, p->nranges, ptr, len);
    const struct mproc__shared_range *cur = find_range(now, nnow, ptr, len);
    return then != NULL && cur != NULL && then->start == cur->start && then->end == cur->end &&
           then->inode == cur->inode && then->offset == cur->offset;
}

/* Queue a map's job with its result (one reference for the caller, one for the pool). */
static int submit_map(mproc_pool *p, struct job *j, mproc_result *res, size_t n, mproc_result **r)
{
    mproc__job_attach(j, res);
    atomic_fetch_add(&res->refs, 1);
    pthread_mutex_lock(&p->mu);
    int rc = mproc__pool_admit(p);
    if (rc == 0) {
        mproc__job_enqueue(p, j);
        if (n == 0) /* nothing to run: the supervisor completes it at once */
            mproc__jobs_look(p);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        mproc__result_unref(res);
        mproc__result_unref(res);
        mproc__job_free(j);
        return rc;
    }
    mproc__pool_kick(p);
    *r = res;
    return 0;
}

int mproc_pool_map_async(mproc_pool *p, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                         void *out, size_t out_size, const mproc_call_opts *opts, mproc_result **r)
{
    if (p == NULL || fn == NULL || r == NULL || in_size == 0 || out_size == 0 ||
        (n > 0 && (in == NULL || out == NULL)) || n > SIZE_MAX / in_size || n > SIZE_MAX / out_size)
        return -EINVAL;
    if (in_size > UINT32_MAX || out_size > p->msg_max - sizeof(struct pool_rec))
        return -EMSGSIZE;
    struct job *j;
    int rc = new_job(p, &mproc__job_map, fn, opts, &j);
    if (rc < 0)
        return rc;
    if (in_size > input_room(p, j)) {
        mproc__job_free(j);
        return -EMSGSIZE;
    }
    mproc_result *res;
    rc = mproc__result_new(&res, p, JOB_MAP, n, opts);
    if (rc < 0) {
        mproc__job_free(j);
        return rc;
    }
    mproc__job_set_map(j, in, n, in_size, out, out_size);
    if (n > 0 && (find_range(p->ranges, p->nranges, in, n * in_size) != NULL ||
                  find_range(p->ranges, p->nranges, out, n * out_size) != NULL)) {
        struct mproc__shared_range *now;
        size_t nnow;
        if (mproc__sys_shared_ranges(&now, &nnow) == 0) {
            mproc__job_set_inplace(j, shared_with_workers(p, in, n * in_size, now, nnow),
                                   shared_with_workers(p, out, n * out_size, now, nnow),
                                   p->nworkers);
            mproc__free(now);
        }
    }
    return submit_map(p, j, res, n, r);
}

/* A blocking map: wait for its result, keep its message for the thread, release it. */
static int wait_map(mproc_result *r)
{
    int rc = mproc_result_get(r, NULL, 0, NULL, MPROC_FOREVER);
    rc = blocking_outcome(rc, mproc_result_message(r));
    mproc_result_free(r);
    return rc;
}

int mproc_pool_map(mproc_pool *p, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                   void *out, size_t out_size, const mproc_call_opts *opts)
{
    mproc_result *r;
    int rc = mproc_pool_map_async(p, fn, in, n, in_size, out, out_size, opts, &r);
    return rc < 0 ? blocking_outcome(rc, NULL) : wait_map(r);
}

int mproc_pool_map_var_async(mproc_pool *p, mproc_task_fn fn, const mproc_item *in, size_t n,
                             mproc_item *out, const mproc_call_opts *opts, mproc_result **r)
{
    if (p == NULL || fn == NULL || r == NULL || (n > 0 && (in == NULL || out == NULL)))
        return -EINVAL;
    struct job *j;
    int rc = new_job(p, &mproc__job_map_var, fn, opts, &j);
    if (rc < 0)
        return rc;
    size_t room = input_room(p, j);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (in[i].data == NULL && in[i].len > 0)
            rc = -EINVAL;
        else if (!mproc__var_fits(in[i].len, room))
            rc = -EMSGSIZE;
    }
    mproc_result *res = NULL;
    if (rc == 0)
        rc = mproc__result_new(&res, p, JOB_MAP, n, opts);
    if (rc < 0) {
        mproc__job_free(j);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (mproc_item){NULL, 0}; /* a failed item's, until its outcome */
    mproc__job_set_map_var(j, in, n, out, room);
    return submit_map(p, j, res, n, r);
}

int mproc_pool_map_var(mproc_pool *p, mproc_task_fn fn, const mproc_item *in, size_t n,
                       mproc_item *out, const mproc_call_opts *opts)
{
    mproc_result *r;
    int rc = mproc_pool_map_var_async(p, fn, in, n, out, opts, &r);
    return rc < 0 ? blocking_outcome(rc, NULL) : wait_map(r);
}

int mproc_result_cancel(mproc_result *r)
{
    if (r == NULL)
        return -EINVAL;
    mproc_pool *p = r->pool; /* alive while r is pending: free completes everything */
    if (p == NULL || atomic_load_explicit(&r->ready, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&p->mu);
    struct job *j = r->job;
    size_t n = 0;
    if (j != NULL && !j->cancelled) {
        n = mproc__job_cancel(j); /* the supervisor fails them */
        mproc__jobs_look(p);
    }
    pthread_mutex_unlock(&p->mu);
    mproc__pool_kick(p);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ---- imap --------------------------------------------------------------------------- */

#define WINDOW_BYTES ((size_t)1 << 20)

/* Make an imap's iterator as spec says (and opts: unordered) and queue its job. */
static int start_imap(mproc_pool *p, struct job *j, const mproc_call_opts *opts,
                      struct imap_spec *spec, mproc_imap **it)
{
    spec->unordered = opts != NULL && (opts->flags & MPROC_IMAP_UNORDERED);
    mproc_imap *t = NULL;
    int rc = mproc__imap_new(&t, p, spec);
    if (rc < 0)
        goto fail;
    mproc__job_set_imap(j, t, t->in_size, t->out_size, p->nworkers);
    mproc__imap_bind(t, j);
    pthread_mutex_lock(&p->mu);
    rc = mproc__pool_admit(p);
    if (rc == 0)
        mproc__job_enqueue(p, j);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0)
        goto fail;
    mproc__pool_kick(p);
    *it = t;
    return 0;
fail:
    mproc__imap_discard(t);
    mproc__job_free(j);
    return rc;
}

int mproc_pool_imap(mproc_pool *p, mproc_task_fn fn, mproc_imap_gen_fn gen, void *gen_arg,
                    size_t in_size, size_t out_size, const mproc_call_opts *opts, mproc_imap **it)
{
    if (p == NULL || fn == NULL || gen == NULL || it == NULL || in_size == 0 || out_size == 0)
        return -EINVAL;
    if (in_size > UINT32_MAX || out_size > p->msg_max - sizeof(struct pool_rec))
        return -EMSGSIZE;
    struct job *j;
    int rc = new_job(p, &mproc__job_imap, fn, opts, &j);
    if (rc < 0)
        return rc;
    if (in_size > input_room(p, j)) {
        mproc__job_free(j);
        return -EMSGSIZE;
    }
    /* the default window: about WINDOW_BYTES of items (a deep pipeline for small ones),
       within [256, 16384] items, and at least 8 chunks per worker */
    size_t window = WINDOW_BYTES / (in_size + out_size + sizeof(struct imap_slot));
    window = window < 256 ? 256 : window > 16384 ? 16384 : window;
    if (window < (size_t)p->nworkers * 8 * j->chunksize)
        window = (size_t)p->nworkers * 8 * j->chunksize;
    if (opts != NULL && opts->window != 0)
        window = opts->window;
    if (window > ((size_t)1 << 24) || in_size + out_size > SIZE_MAX / window) {
        mproc__job_free(j);
        return -EINVAL;
    }
    return start_imap(p, j, opts,
                      &(struct imap_spec){.window = window,
                                          .in_size = in_size,
                                          .out_size = out_size,
                                          .gen = gen,
                                          .gen_arg = gen_arg},
                      it);
}

int mproc_pool_imap_var(mproc_pool *p, mproc_task_fn fn, mproc_imap_var_gen_fn gen, void *gen_arg,
                        const mproc_call_opts *opts, mproc_imap **it)
{
    if (p == NULL || fn == NULL || gen == NULL || it == NULL)
        return -EINVAL;
    struct job *j;
    int rc = new_job(p, &mproc__job_imap_var, fn, opts, &j);
    if (rc < 0)
        return rc;
    /* the default window: as many items as chunks of 8 for each worker, 256 at least */
    size_t window = (size_t)p->nworkers * 8 * (j->chunksize ? j->chunksize : 1);
    window = window < 256 ? 256 : window;
    if (opts != NULL && opts->window != 0)
        window = opts->window;
    if (window > ((size_t)1 << 24)) {
        mproc__job_free(j);
        return -EINVAL;
    }
    return start_imap(
        p, j, opts,
        &(struct imap_spec){
            .window = window, .vgen = gen, .room = input_room(p, j), .gen_arg = gen_arg},
        it);
}

void mproc_imap_free(mproc_imap *it)
{
    if (it == NULL)
        return;
    mproc_pool *p = it->pool;
    pthread_mutex_lock(&p->mu);
    if (it->job != NULL) {
        (void)mproc__job_cancel(it->job);
        mproc__jobs_look(p);
    }
    pthread_mutex_unlock(&p->mu);
    mproc__pool_kick(p);
    mproc__imap_unref(it);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int mproc_pool_close(mproc_pool *p)
{
    if (p == NULL)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Wait for the supervisor to leave its loop, then join it. */
static int wait_finished(mproc_pool *p, int64_t deadline)
{
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (p->sup.state != S_FINISHED) {
        if (deadline == MPROC__NO_DEADLINE) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        int64_t left = mproc__remaining_ns(deadline);
        if (left == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t abs_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + left;
        ts.tv_sec = (time_t)(abs_ns / 1000000000);
        ts.tv_nsec = (long)(abs_ns % 1000000000);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool join = rc == 0 && p->thread_started;
    if (join)
        p->thread_started = false;
    pthread_mutex_unlock(&p->mu);
    if (join)
        pthread_join(p->thread, NULL);
    return rc;
}

int mproc_pool_join(mproc_pool *p, double timeout)
{
    if (p == NULL)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    bool closed = p->closed;
    if (closed && p->request < REQ_JOIN)
        p->request = REQ_JOIN;
    pthread_mutex_unlock(&p->mu);
    if (!closed)
        return -MPROC_ESTATE;
    mproc__pool_kick(p);
    return wait_finished(p, deadline);
}

int mproc_pool_terminate(mproc_pool *p)
{
    if (p == NULL)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    p->request = REQ_TERMINATE;
    pthread_mutex_unlock(&p->mu);
    mproc__pool_kick(p);
    return wait_finished(p, MPROC__NO_DEADLINE);
}

void mproc_pool_free(mproc_pool *p)
{
    if (p == NULL)
        return;
    (void)mproc_pool_terminate(p);
    pool_release(p);
}

/* ---- progress ------------------------------------------------------------------------ */

int mproc_pool_stats_get(mproc_pool *p, mproc_pool_stats *s, mproc_worker_stats *w, size_t nw)
{
    if (p == NULL || s == NULL || (w == NULL && nw > 0))
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    *s = (mproc_pool_stats){.submitted = p->jobs.submitted,
                            .done = p->jobs.done,
                            .failed = p->jobs.failed,
                            .restarts = p->life.restarts,
                            .broken = p->life.broken != 0,
                            .ns = {.dispatch = p->dispatch_ns, .settle = p->sup.settle_ns}};

    for (size_t i = 0; i < (size_t)p->nworkers; i++) {
        struct pool_slot *sl = &p->shm->slots[i];
        s->ns.fault += atomic_load_explicit(&sl->fault_ns, memory_order_relaxed);
        s->ns.copy += atomic_load_explicit(&sl->copy_ns, memory_order_relaxed);
        s->ns.run += atomic_load_explicit(&sl->run_ns, memory_order_relaxed);
        s->ns.publish += atomic_load_explicit(&sl->publish_ns, memory_order_relaxed);
        if (i < nw)
            w[i] = (mproc_worker_stats){.pid = p->workers[i].pid,
                                        .done = p->workers[i].held.done,
                                        .failed = p->workers[i].held.failed,
                                        .restarts = p->workers[i].restarts};
    }
    if (p->transport->stats != NULL)
        p->transport->stats(p, s, w, nw);
    s->pending = s->submitted - s->done;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int mproc_pool_broken(mproc_pool *p, const char **msg)
{
    if (p == NULL)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    int rc = p->life.broken;
    pthread_mutex_unlock(&p->mu);
    if (msg != NULL)
        *msg = rc != 0 ? p->life.broken_msg : "";
    return rc;
}
