/* src/pool/direct.c - blocking applies that go straight to an idle worker.
 *
 * DESIGN. The usual path of a task is caller -> supervisor thread -> worker -> supervisor
 * -> caller: four hand-offs, two of them thread wake-ups, which is what an apply's round
 * trip costs (about 50 us on 2 CPUs). A blocking mproc_pool_apply does not need the
 * supervisor's help when a worker is idle: the caller, under the pool mutex, picks a
 * worker the supervisor has given nothing (state ready, no chunk outstanding) whose
 * slot mailbox is free, marks the mailbox POSTED and puts a chunk flagged CHUNK_DIRECT
 * into the worker's own task channel. The worker runs it and answers in the mailbox
 * (code, message, output in the slot's direct area), then wakes the caller only if it
 * announced that it sleeps. Both sides spin briefly before sleeping when CPUs allow, so
 * back-to-back applies make no system call at all.
 *
 * The guarantees stay those of the usual path, and the supervisor still gives them: it
 * watches the worker's pidfd, and when the worker dies it settles the mailbox
 * (mproc__pool_direct_settle): a task begun (RUNNING) fails with -MPROC_EDIED and the
 * worker's exit, a task never begun (POSTED) goes back to its caller, which submits it
 * again the usual way (so it runs on another worker, as a requeued chunk would);
 * terminate and a broken pool fail it with their code. The supervisor acts only on a
 * reaped worker, so it never races with the worker; it races with the caller only
 * through compare-and-swap on the state word.
 *
 * Not taken (the usual path instead): pools with a per-task time limit or
 * maxtasksperchild (the supervisor's accounting of those counts tasks it sent), no idle
 * worker, apply_async (its callbacks run in the supervisor thread).
 *
 * Progress counters: the worker counts what it finishes in its slot (done, failed);
 * what the supervisor settles it counts in the pool's totals; mproc_pool_stats_get adds
 * both.
 */
#include "internal.h"

#include "pool/pool.h"
#include "sys/relax.h"

#define WAIT_SPIN_NS INT64_C(50000) /* a caller spins this long before it sleeps */
#define STACK_CHUNK 4096            /* chunks up to this size are built on the stack */

/* Pick an idle worker and post the chunk to it (under the mutex). The worker's index,
 * -1 when none is idle, or admit's error. */
static int post(mproc_pool *p, const void *chunk, size_t len)
{
    int rc = mproc__pool_admit(p);
    if (rc < 0)
        return rc;
    for (int k = 0; k < p->nworkers; k++) {
        int i = (int)((p->direct_next + (unsigned)k) % (unsigned)p->nworkers);
        struct worker *w = &p->workers[i];
        struct pool_direct *d = &p->shm->slots[i].direct;
        if (w->state != W_READY || w->nsegs != 0 || atomic_load(&d->state) != D_FREE)
            continue;
        /* only callers holding the mutex move a mailbox out of FREE */
        atomic_store(&d->state, D_POSTED);
        if (mproc_queue_put_nowait(w->in, chunk, len) < 0) {
            atomic_store(&d->state, D_FREE);
            continue;
        }
        p->direct_next = (unsigned)i; /* the same one next time: it is spinning, warm */
        p->st.submitted++;
        return i;
    }
    return -1;
}

/* Wait for the mailbox to leave POSTED/RUNNING, or give up at the deadline. */
static uint32_t wait_outcome(mproc_pool *p, struct pool_direct *d, int64_t deadline)
{
    uint32_t st = atomic_load_explicit(&d->state, memory_order_acquire);
    if (st != D_POSTED && st != D_RUNNING)
        return st;
    if (p->spin) {
        int64_t t0 = mproc__sys_now_ns();
        for (unsigned k = 1;; k++) {
            mproc__sys_cpu_relax();
            st = atomic_load_explicit(&d->state, memory_order_acquire);
            if (st != D_POSTED && st != D_RUNNING)
                return st;
            if ((k & 255) == 0 && mproc__sys_now_ns() - t0 >= WAIT_SPIN_NS)
                break;
        }
    }
    for (;;) {
        uint32_t seq = mproc__bell_arm(&d->bell);
        st = atomic_load(&d->state);
        if (st != D_POSTED && st != D_RUNNING)
            break;
        if (mproc__remaining_ns(deadline) == 0) {
            uint32_t expect = st;
            if (atomic_compare_exchange_strong(&d->state, &expect, D_ABANDONED)) {
                st = D_ABANDONED;
                break;
            }
            continue; /* it moved on: look again */
        }
        (void)mproc__bell_sleep(&d->bell, seq, deadline, true);
    }
    mproc__bell_leave(&d->bell);
    atomic_thread_fence(memory_order_acquire);
    return st;
}

int mproc__pool_direct_apply(mproc_pool *p, mproc_task_fn fn, const void *in, size_t in_len,
                             void *out, size_t cap, size_t *out_len, int64_t deadline)
{
    if (!p->direct)
        return 1;
    unsigned char stack[STACK_CHUNK];
    unsigned char ref[MPROC__FNREF_MAX];
    uint32_t ref_len;
    int rc = mproc__fnref_cached(fn, ref, sizeof ref, &ref_len);
    if (rc < 0)
        return rc;
    size_t head = mproc__chunk_head(ref_len);
    if (in_len > p->msg_max - head || in_len > UINT32_MAX)
        return -EMSGSIZE;
    size_t len = head + in_len;
    unsigned char *chunk = len <= sizeof stack ? stack : mproc__malloc(len);
    if (chunk == NULL)
        return 1; /* the usual path reports what it can */
    struct pool_chunk c = {.count = 1,
                           .in_size = (uint32_t)in_len,
                           .out_cap = (uint32_t)p->shm->direct_cap,
                           .fnref_len = ref_len,
                           .inplace = CHUNK_DIRECT};
    memcpy(chunk, &c, sizeof c);
    memcpy(chunk + sizeof c, ref, ref_len);
    if (in_len > 0)
        memcpy(chunk + head, in, in_len);
    pthread_mutex_lock(&p->mu);
    int slot = post(p, chunk, len);
    pthread_mutex_unlock(&p->mu);
    if (chunk != stack)
        mproc__free(chunk);
    if (slot < 0)
        return slot == -1 ? 1 : slot;

    struct pool_direct *d = &p->shm->slots[slot].direct;
    uint32_t st = wait_outcome(p, d, deadline);
    if (st == D_ABANDONED)
        return -ETIMEDOUT; /* the task goes on; whoever finishes it frees the mailbox */
    if (st == D_RETRY) {   /* its worker died before beginning it */
        atomic_store(&d->state, D_FREE);
        return 1;
    }
    rc = d->code;
    if (rc == 0) {
        size_t n = d->out_len;
        if (out_len != NULL)
            *out_len = n;
        if (n > cap)
            rc = -MPROC_ETOOSMALL;
        else if (n > 0)
            memcpy(out, mproc__direct_data(p->shm, slot), n);
    }
    atomic_store_explicit(&d->state, D_FREE, memory_order_release);
    return rc;
}

void mproc__pool_direct_settle(struct sup *s, struct worker *w, int code, const char *msg,
                               bool retry)
{
    mproc_pool *p = s->p;
    struct pool_direct *d = &p->shm->slots[w->slot].direct;
    uint32_t st = atomic_load(&d->state);
    for (;;) {
        if (st == D_FREE || st == D_DONE || st == D_RETRY)
            return;
        if (st == D_ABANDONED) {
            atomic_store(&d->state, D_FREE);
            break;
        }
        if (st == D_POSTED && retry) {
            if (atomic_compare_exchange_strong(&d->state, &st, D_RETRY)) {
                p->st.submitted--; /* the caller submits it again */
                mproc__direct_wake(d);
                return;
            }
            continue;
        }
        mproc__direct_answer(d, code, msg, 0);
        if (atomic_compare_exchange_strong(&d->state, &st, D_DONE)) {
            mproc__direct_wake(d);
            break;
        }
    }
    p->st.done++;
    p->st.failed++;
    mproc__assigned_counted(w, 1, true);
    s->progress = true;
}
