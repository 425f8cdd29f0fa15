/* src/pool/job.c - a submission (apply, map, imap) as the supervisor sees it: the tasks
 * not yet dispatched, the runs to dispatch again, and the record of their outcomes.
 *
 * DESIGN. Every field of struct job is written here (the other files read them, or call
 * in), always under the pool mutex. The three kinds differ only through their table of
 * operations (struct job_ops, at the end of this file): where a task's input is, how
 * many tasks can go in one chunk, where an outcome goes (the result of an apply, the
 * caller's array and the failure list of a map, an imap's window), how the tasks never
 * dispatched are failed, and what a finished job hands back. Nothing else switches on the
 * kind: a change to imap is a change to its operations.
 *
 * Tasks not dispatched: one cursor [next, n), or, for a placed map (a map over arrays the
 * workers share), one span per worker slot (see placement in src/pool/dispatch.c); runs
 * sent to a worker that died before beginning them go to the front of `retry` and are
 * dispatched first. A task is outstanding from its dispatch until its outcome, or until
 * it is requeued; a job is finished when it is sealed (no more tasks will come) and every
 * task has its outcome.
 */
#include "internal.h"

#include "pool/pool.h"

#include <math.h>

/* ---- creation and the list of jobs ----------------------------------------------------- */

int mproc__job_new(mproc_pool *p, const struct job_ops *ops, mproc_task_fn fn,
                   const mproc_call_opts *o, struct job **out)
{
    struct job *j = mproc__calloc(1, sizeof *j);
    if (j == NULL)
        return -ENOMEM;
    int rc = mproc__fnref_cached(fn, j->fnref, sizeof j->fnref, &j->fnref_len);
    if (rc < 0) {
        mproc__free(j);
        return rc;
    }
    j->ops = ops;
    double t = o != NULL && o->timeout > 0 ? o->timeout : p->o.timeout;
    j->timeout = isinf(t) ? 0 : t;
    j->chunksize = o != NULL ? o->chunksize : 0;
    j->hold_cap = SIZE_MAX;
    *out = j;
    return 0;
}

void mproc__job_free(struct job *j)
{
    if (j == NULL)
        return;
    mproc__free(j->in_owned);
    mproc__items_release(&j->slab);
    mproc__free(j->retry);
    mproc__free(j->spans);
    mproc__free(j);
}

/* The default chunksize paces the job: one task per chunk until measured; hold: the
 * most tasks of it one worker may hold beyond its first chunks. */
static void pace(struct job *j, size_t hold)
{
    if (j->chunksize == 0) {
        j->paced = true;
        j->pace_cap = hold;
        j->chunksize = 1;
    }
}

int mproc__job_set_apply(struct job *j, const void *in, size_t in_len)
{
    j->in_owned = mproc__malloc(in_len ? in_len : 1);
    if (j->in_owned == NULL)
        return -ENOMEM;
    if (in_len > 0)
        memcpy(j->in_owned, in, in_len);
    j->in = j->in_owned;
    j->in_size = in_len;
    j->n = 1;
    j->sealed = true;
    j->chunksize = 1;
    return 0;
}

void mproc__job_set_map_var(struct job *j, const mproc_item *in, size_t n, mproc_item *out,
                            size_t room)
{
    j->n = n;
    j->sealed = true;
    j->items = in;
    j->vout = out;
    j->in_room = room;
    pace(j, SIZE_MAX);
}

void mproc__job_set_map(struct job *j, const void *in, size_t n, size_t in_size, void *out,
                        size_t out_size)
{
    j->n = n;
    j->sealed = true;
    j->in = in;
    j->out = out;
    j->in_size = in_size;
    j->out_size = out_size;
    pace(j, SIZE_MAX);
}

/* A map over arrays the workers share: read and written in place, and placed (one span
 * per worker slot) when there are enough tasks and memory for the spans. */
void mproc__job_set_inplace(struct job *j, bool in, bool out, int nworkers)
{
    j->inplace_in = in;
    j->inplace_out = out;
    size_t parts = (size_t)nworkers;
    if ((!in && !out) || j->n < 2 * parts || parts < 2)
        return; /* too few tasks to split: one cursor */
    j->spans = mproc__calloc(parts, sizeof *j->spans);
    if (j->spans == NULL)
        return; /* unplaced: slower on pages new to a worker, never wrong */
    size_t each = j->n / parts, extra = j->n % parts, at = 0;
    for (size_t k = 0; k < parts; k++) {
        j->spans[k].next = at;
        at += each + (k < extra);
        j->spans[k].end = at;
    }
    j->nspans = parts;
    j->next = j->n; /* the spans hold what is left */
}

void mproc__job_set_imap(struct job *j, mproc_imap *it, size_t in_size, size_t out_size,
                         int nworkers)
{
    j->in_size = in_size;
    j->out_size = out_size;
    j->it = it;
    j->in_room = it->in_room; /* imap_var */
    /* beyond its first chunks a worker holds at most a 2 * workers-th of the window (see
       room_for in src/pool/dispatch.c); a paced chunk no more than that either */
    j->hold_cap = it->window / (2 * (size_t)nworkers);
    pace(j, j->hold_cap);
}

void mproc__job_attach(struct job *j, mproc_result *res)
{
    j->res = res;
    mproc__result_bind(res, j);
}

void mproc__jobs_init(mproc_pool *p)
{
    p->jobs.next_id = 1;
}

void mproc__job_enqueue(mproc_pool *p, struct job *j)
{
    j->id = p->jobs.next_id++;
    j->prev = p->jobs.tail;
    if (p->jobs.tail != NULL)
        p->jobs.tail->nextjob = j;
    else
        p->jobs.head = j;
    p->jobs.tail = j;
    p->jobs.submitted += j->n;
}

void mproc__jobs_look(mproc_pool *p)
{
    p->jobs.look = true;
}

void mproc__jobs_sweep(struct sup *s)
{
    mproc_pool *p = s->p;
    if (!p->jobs.look)
        return;
    p->jobs.look = false;
    for (struct job *j = p->jobs.head, *nx; j != NULL; j = nx) {
        nx = j->nextjob;
        if (j->cancelled) {
            mproc__job_stop(j);
            mproc__job_fail_todo(s, j, -MPROC_ECANCELLED, "cancelled before it ran");
        }
        mproc__job_maybe_finish(s, j);
    }
}

static void unlink_job(mproc_pool *p, struct job *j)
{
    if (j->prev != NULL)
        j->prev->nextjob = j->nextjob;
    else
        p->jobs.head = j->nextjob;
    if (j->nextjob != NULL)
        j->nextjob->prev = j->prev;
    else
        p->jobs.tail = j->prev;
}

/* ---- the tasks not yet dispatched ------------------------------------------------------- */

size_t mproc__job_todo(const struct job *j)
{
    size_t n = j->n - j->next;
    for (size_t k = 0; k < j->nspans; k++)
        n += j->spans[k].end - j->spans[k].next;
    return n;
}

bool mproc__job_has_work(const struct job *j)
{
    return !j->cancelled && (j->nruns > 0 || mproc__job_todo(j) > 0);
}

/* The span of a placed job that slot takes from: its own while it has tasks, else the
 * largest (taken from its back: its owner goes on at its front). */
static struct span *span_for(struct job *j, int slot, bool *back)
{
    struct span *own = &j->spans[(size_t)slot % j->nspans];
    *back = false;
    if (own->next < own->end)
        return own;
    struct span *big = NULL;
    for (size_t k = 0; k < j->nspans; k++)
        if (j->spans[k].end - j->spans[k].next > (big != NULL ? big->end - big->next : 0))
            big = &j->spans[k];
    *back = true;
    return big;
}

void mproc__job_plan(struct job *j, int slot, struct take *t)
{
    *t = (struct take){.retry = j->nruns > 0};
    if (t->retry) {
        t->first = j->retry[0].first;
        t->count = j->retry[0].count;
    } else if (j->nspans > 0) {
        t->span = span_for(j, slot, &t->back); /* has_work: one has tasks */
        t->first = t->span->next;
        t->count = t->span->end - t->span->next;
    } else {
        t->first = j->next;
        t->count = j->n - j->next;
    }
    t->count = j->ops->contiguous(j, t->first, t->count);
}

void mproc__job_plan_cut(struct take *t, size_t count)
{
    if (t->back)
        t->first = t->span->end - count;
    t->count = count;
}

void mproc__job_taken(struct job *j, const struct take *t)
{
    if (t->retry) {
        j->nretry -= t->count;
        j->retry[0].first += t->count;
        j->retry[0].count -= t->count;
        if (j->retry[0].count == 0) {
            j->nruns--;
            memmove(j->retry, j->retry + 1, j->nruns * sizeof *j->retry);
        }
    } else if (t->span != NULL) {
        if (t->back)
            t->span->end -= t->count;
        else
            t->span->next += t->count;
    } else {
        j->next += t->count;
    }
    j->outstanding += t->count;
}

void mproc__job_inputs(const struct job *j, size_t first, size_t count, unsigned char *dst)
{
    j->ops->inputs(j, first, count, dst);
}

size_t mproc__job_in_bytes(const struct job *j, size_t first, size_t count)
{
    return j->ops->in_bytes(j, first, count);
}

void mproc__job_paced(struct job *j, uint64_t count, int64_t busy_ns)
{
    if (!j->paced || count == 0 || busy_ns <= 0)
        return;
    int64_t ns = busy_ns / (int64_t)count;
    if (ns < 1)
        ns = 1;
    j->task_ns = j->task_ns == 0 ? ns : (j->task_ns + ns) / 2; /* follows changes fast */
}

bool mproc__job_requeue(struct job *j, size_t first, size_t count)
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

size_t mproc__job_cancel(struct job *j)
{
    if (j->cancelled)
        return 0;
    j->cancelled = true; /* nothing more is dispatched; the supervisor fails the rest */
    return mproc__job_todo(j) + j->nretry;
}

void mproc__job_stop(struct job *j)
{
    j->cancelled = true;
    if (j->ops->stop_source(j))
        j->sealed = true;
}

void mproc__job_produced(mproc_pool *p, struct job *j, size_t n)
{
    p->jobs.submitted += n - j->n;
    j->n = n;
}

void mproc__job_seal(struct job *j)
{
    j->sealed = true;
}

/* ---- outcomes --------------------------------------------------------------------------- */

static void count_outcomes(struct sup *s, struct job *j, size_t n, bool failed, struct worker *w)
{
    mproc_pool *p = s->p;
    j->finished += n;
    p->jobs.done += n;
    if (w != NULL)
        mproc__assigned_counted(w, n, failed);
    if (failed) {
        j->failed += n;
        p->jobs.failed += n;
    }
    mproc__sup_moved(s);
}

void mproc__job_outcome(struct sup *s, struct job *j, size_t index, int code, const char *msg,
                        const void *out, size_t len, struct worker *w)
{
    count_outcomes(s, j, 1, code != 0, w);
    if (j->ops->outcome(j, index, code, msg, out, len) < 0)
        j->failed++; /* a failure we could not record: the result says -ENOMEM */
}

void mproc__job_successes(struct sup *s, struct job *j, size_t first, size_t count,
                          const unsigned char *out, struct worker *w)
{
    count_outcomes(s, j, count, false, w);
    j->ops->successes(j, first, count, out);
}

void mproc__job_settled(struct job *j, size_t n)
{
    j->outstanding -= n;
}

size_t mproc__job_fail_todo(struct sup *s, struct job *j, int code, const char *msg)
{
    size_t n = 0;
    for (size_t r = 0; r < j->nruns; r++) {
        count_outcomes(s, j, j->retry[r].count, true, NULL);
        j->ops->failures(j, j->retry[r].first, j->retry[r].count, code, msg);
        n += j->retry[r].count;
    }
    j->nruns = 0;
    j->nretry = 0;
    size_t nsp = j->nspans > 0 ? j->nspans : 1; /* one cursor, or one span per slot */
    for (size_t i = 0; i < nsp; i++) {
        size_t first = j->nspans > 0 ? j->spans[i].next : j->next;
        size_t end = j->nspans > 0 ? j->spans[i].end : j->n;
        if (first >= end)
            continue;
        count_outcomes(s, j, end - first, true, NULL);
        j->ops->failures(j, first, end - first, code, msg);
        n += end - first;
    }
    j->next = j->n;
    for (size_t k = 0; k < j->nspans; k++)
        j->spans[k].next = j->spans[k].end;
    return n;
}

void mproc__job_maybe_finish(struct sup *s, struct job *j)
{
    if (!j->sealed || j->finished < j->n)
        return;
    assert(j->outstanding == 0);
    unlink_job(s->p, j);
    if (j->res != NULL) {
        mproc__result_finish(j->res, j->failed > 0);
        mproc__sup_deliver(s, j->res);
    }
    if (j->it != NULL) {
        mproc__imap_detach(j->it);
        mproc__imap_wake(j->it);
        mproc__imap_unref(j->it);
    }
    mproc__job_free(j);
}

/* ---- the three kinds -------------------------------------------------------------------- */

static size_t whole(const struct job *j, size_t first, size_t count)
{
    (void)j;
    (void)first;
    return count;
}

/* imap: a chunk is contiguous in the window ring, so at most to its end */
static size_t to_window_end(const struct job *j, size_t first, size_t count)
{
    size_t to_end = j->it->window - first % j->it->window;
    return count < to_end ? count : to_end;
}

/* map_var and imap_var: input i, in the caller's array or in its window slot */
static mproc_item var_item(const struct job *j, size_t i)
{
    if (j->it == NULL)
        return j->items[i];
    const struct imap_slot *s = mproc__imap_slot(j->it, i);
    return (mproc_item){s->input, s->in_len};
}

/* As many as fit in a chunk's room (one at least: each fits alone, checked at submission
 * or generation) */
static size_t var_fit(const struct job *j, size_t first, size_t count)
{
    size_t bytes = 0, k = 0;
    for (; k < count; k++) {
        bytes += mproc__var_size(var_item(j, first + k).len);
        if (bytes > j->in_room)
            break;
    }
    return k > 0 ? k : 1;
}

/* imap_var: to the window's end, and as many as fit */
static size_t window_var_fit(const struct job *j, size_t first, size_t count)
{
    return var_fit(j, first, to_window_end(j, first, count));
}

static void array_inputs(const struct job *j, size_t first, size_t count, unsigned char *dst)
{
    memcpy(dst, j->in + first * j->in_size, count * j->in_size);
}

static size_t fixed_bytes(const struct job *j, size_t first, size_t count)
{
    (void)first;
    return count * j->in_size;
}

/* Each input: its length (8 bytes), its bytes, zeros to a multiple of 8 (CHUNK_VAR) */
static void var_inputs(const struct job *j, size_t first, size_t count, unsigned char *dst)
{
    for (size_t i = first; i < first + count; i++) {
        mproc_item it = var_item(j, i);
        uint64_t len = it.len;
        size_t size = mproc__var_size(it.len);
        memcpy(dst, &len, 8);
        if (it.len > 0)
            memcpy(dst + 8, it.data, it.len);
        memset(dst + 8 + it.len, 0, size - 8 - it.len);
        dst += size;
    }
}

static size_t var_bytes(const struct job *j, size_t first, size_t count)
{
    size_t bytes = 0;
    for (size_t i = first; i < first + count; i++)
        bytes += mproc__var_size(var_item(j, i).len);
    return bytes;
}

static void window_inputs(const struct job *j, size_t first, size_t count, unsigned char *dst)
{
    for (size_t i = 0; i < count; i++)
        memcpy(dst + i * j->in_size, mproc__imap_slot(j->it, first + i)->input, j->in_size);
}

static int apply_outcome(struct job *j, size_t index, int code, const char *msg, const void *out,
                         size_t len)
{
    (void)index;
    if (code != 0)
        return mproc__fails_add(&j->res->fails, 0, 1, code, msg);
    if (len == 0)
        return 0;
    if (mproc__result_keep(j->res, out, len) < 0) { /* the task succeeded, but its output is
                                                   lost: a failure */
        (void)mproc__fails_add(&j->res->fails, 0, 1, -ENOMEM, "no memory for the output");
        return -ENOMEM;
    }
    return 0;
}

static int map_outcome(struct job *j, size_t index, int code, const char *msg, const void *out,
                       size_t len)
{
    (void)len;
    if (code != 0)
        return mproc__fails_add(&j->res->fails, index, 1, code, msg);
    if (!j->inplace_out && out != NULL) /* in place: the worker wrote it there */
        memcpy(j->out + index * j->out_size, out, j->out_size);
    return 0;
}

static int imap_outcome(struct job *j, size_t index, int code, const char *msg, const void *out,
                        size_t len)
{
    (void)len;
    mproc__imap_item(j->it, index, code, msg, out);
    mproc__imap_wake(j->it);
    return 0;
}

/* map_var: a copy of each output, for the caller to free (mproc_item_free; a success
 * always has a block, even for 0 bytes) */
static int var_outcome(struct job *j, size_t index, int code, const char *msg, const void *out,
                       size_t len)
{
    if (code != 0)
        return mproc__fails_add(&j->res->fails, index, 1, code, msg);
    void *copy = mproc__items_copy(&j->slab, out, len);
    if (copy == NULL) { /* the task succeeded, but its output is lost: a failure */
        (void)mproc__fails_add(&j->res->fails, index, 1, -ENOMEM, "no memory for the output");
        return -ENOMEM;
    }
    j->vout[index] = (mproc_item){copy, len};
    return 0;
}

/* map_var: never called (its outputs are not of a fixed size: no batch carries them) */
static void no_successes(struct job *j, size_t first, size_t count, const unsigned char *out)
{
    (void)j;
    (void)first;
    (void)count;
    (void)out;
    assert(!"a batch for a job without fixed-size outputs");
}

static int imap_var_outcome(struct job *j, size_t index, int code, const char *msg, const void *out,
                            size_t len)
{
    mproc__imap_item_var(j->it, index, code, msg, out, len);
    mproc__imap_wake(j->it);
    return 0;
}

static void map_successes(struct job *j, size_t first, size_t count, const unsigned char *out)
{
    if (!j->inplace_out && out != NULL)
        memcpy(j->out + first * j->out_size, out, count * j->out_size);
}

static void imap_successes(struct job *j, size_t first, size_t count, const unsigned char *out)
{
    for (size_t i = 0; i < count; i++)
        mproc__imap_item(j->it, first + i, 0, NULL, out != NULL ? out + i * j->out_size : NULL);
    mproc__imap_wake(j->it);
}

/* apply and map: failures are kept as runs, one entry for a run of items */
static void ranged_failures(struct job *j, size_t first, size_t count, int code, const char *msg)
{
    if (mproc__fails_add(&j->res->fails, first, count, code, msg) < 0)
        j->failed++; /* not recorded: the result says -ENOMEM */
}

/* imap: each item's failure takes its window slot, for the reader */
static void item_failures(struct job *j, size_t first, size_t count, int code, const char *msg)
{
    for (size_t i = 0; i < count; i++)
        mproc__imap_item(j->it, first + i, code, msg, NULL);
    mproc__imap_wake(j->it);
}

static bool no_source(struct job *j)
{
    (void)j;
    return false;
}

/* imap: its generator is called no more, so the job is sealed */
static bool stop_generator(struct job *j)
{
    mproc__imap_gen_end(j->it, 0);
    return true;
}

const struct job_ops mproc__job_apply = {
    .kind = JOB_APPLY,
    .fixed = false,
    .staged = false,
    .known_end = true,
    .units = false,
    .contiguous = whole,
    .inputs = array_inputs,
    .in_bytes = fixed_bytes,
    .outcome = apply_outcome,
    .successes = map_successes, /* never called: an apply's outcome is a REC_RESULT */
    .failures = ranged_failures,
    .stop_source = no_source,
};

const struct job_ops mproc__job_map = {
    .kind = JOB_MAP,
    .fixed = true,
    .staged = true,
    .known_end = true,
    .units = false,
    .contiguous = whole,
    .inputs = array_inputs,
    .in_bytes = fixed_bytes,
    .outcome = map_outcome,
    .successes = map_successes,
    .failures = ranged_failures,
    .stop_source = no_source,
};

const struct job_ops mproc__job_map_var = {
    .kind = JOB_MAP,
    .fixed = false,
    .staged = false,
    .known_end = true,
    .units = false,
    .var = true,
    .contiguous = var_fit,
    .inputs = var_inputs,
    .in_bytes = var_bytes,
    .outcome = var_outcome,
    .successes = no_successes,
    .failures = ranged_failures,
    .stop_source = no_source,
};

const struct job_ops mproc__job_imap = {
    .kind = JOB_IMAP,
    .fixed = true,
    .staged = false,
    .known_end = false,
    .units = true,
    .contiguous = to_window_end,
    .inputs = window_inputs,
    .in_bytes = fixed_bytes,
    .outcome = imap_outcome,
    .successes = imap_successes,
    .failures = item_failures,
    .stop_source = stop_generator,
};

const struct job_ops mproc__job_imap_var = {
    .kind = JOB_IMAP,
    .fixed = false,
    .staged = false,
    .known_end = false,
    .units = true,
    .var = true,
    .contiguous = window_var_fit,
    .inputs = var_inputs,
    .in_bytes = var_bytes,
    .outcome = imap_var_outcome,
    .successes = no_successes,
    .failures = item_failures,
    .stop_source = stop_generator,
};
