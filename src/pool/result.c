/* src/pool/result.c - async results of apply and map, and the imap iterator.
 *
 * DESIGN. A result is process-local and reference-counted: one reference for the caller's
 * handle (none for fire-and-forget apply_async), one for the pool until the job has its
 * last outcome. The supervisor thread records outcomes under the pool mutex; when the
 * last one is in, it finishes the result (sorts the failures, picks the code), stores
 * ready = 1 (release), runs the callbacks (in the supervisor thread, one at a time, no
 * lock held) and futex-wakes (process-private) whoever waits in mproc_result_wait. After
 * ready a result never changes, so readers need no lock. A waiter never sleeps for ever
 * without a deadline of its own choosing; the pool guarantees every job an outcome
 * (terminate and a broken pool complete everything), so MPROC_FOREVER is safe.
 *
 * An imap iterator holds a window of item slots: the supervisor calls the generator only
 * for an empty slot, dispatches queued slots, stores each outcome into its slot and bumps
 * `seq` (futex word); mproc_imap_next sleeps on `seq` and frees the slot it returns,
 * which lets the generator go on. Memory is bounded by the window. Ordered, item i lives
 * in slot i % window (the reader waits for item i anyway). Unordered, an item takes any
 * empty slot, so a slow item holds back only its own slot, not the items a window after
 * it (Python's imap_unordered does not wait either): a table maps the items in the window
 * to their slots (open addressing, linear probing, at least twice the window's size, so
 * a lookup is a probe or two).
 */
#include "internal.h"

#include "pool/pool.h"
#include "sys/evfd.h"
#include "sys/relax.h"

#include <stdio.h>

/* How long mproc_result_wait spins before it sleeps, when the pool has CPUs to spare
 * (the spin rule, docs/benchmarks.md): a futex wake-up on an idle CPU costs 40-50 us on a
 * VM, a short apply round trip is far less. Long waits lose at most this much CPU time. */
#define WAIT_SPIN_NS INT64_C(20000)

int mproc__result_new(mproc_result **out, mproc_pool *p, enum job_kind kind, size_t n,
                      const mproc_call_opts *o)
{
    mproc_result *r = mproc__calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->pool = p;
    r->spin = p->spin_wait;
    atomic_init(&r->evfd, -1);
    r->kind = kind;
    r->n = n;
    atomic_init(&r->refs, 1);
    if (o != NULL) {
        r->callback = o->callback;
        r->error_callback = o->error_callback;
        r->cb_arg = o->cb_arg;
    }
    *out = r;
    return 0;
}

void mproc__fails_release(struct pool_fails *f)
{
    for (size_t i = 0; i < f->n; i++)
        mproc__free(f->v[i].msg);
    mproc__free(f->v);
    *f = (struct pool_fails){0};
}

int mproc__fails_add(struct pool_fails *f, size_t first, size_t count, int code, const char *msg)
{
    if (count == 0)
        return 0;
    /* extend the last run when it is the same failure continued (cancel, broken) */
    if (f->n > 0) {
        struct pool_fail *l = &f->v[f->n - 1];
        if (l->code == code && l->first + l->count == first &&
            strcmp(l->msg != NULL ? l->msg : "", msg != NULL ? msg : "") == 0) {
            l->count += count;
            f->items += count;
            return 0;
        }
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct pool_fail *v = mproc__realloc(f->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    char *m = mproc__strdup(msg != NULL ? msg : "");
    if (m == NULL)
        return -ENOMEM;
    f->v[f->n++] = (struct pool_fail){.first = first, .count = count, .code = code, .msg = m};
    f->items += count;
    return 0;
}

static int cmp_fail(const void *a, const void *b)
{
    const struct pool_fail *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

void mproc__result_bind(mproc_result *r, struct job *j)
{
    r->job = j;
}

int mproc__result_keep(mproc_result *r, const void *out, size_t len)
{
    r->data = mproc__malloc(len);
    if (r->data == NULL)
        return -ENOMEM;
    memcpy(r->data, out, len);
    r->len = len;
    return 0;
}

void mproc__result_finish(mproc_result *r, bool lost)
{
    if (r->fails.n > 1)
        qsort(r->fails.v, r->fails.n, sizeof *r->fails.v, cmp_fail);
    if (r->fails.n > 0) {
        r->code = r->fails.v[0].code;
        r->msg = r->fails.v[0].msg; /* borrowed from the run; freed with it */
    }
    if (r->code == 0 && lost) { /* a failure that could not be recorded */
        r->code = -ENOMEM;
        r->msg = NULL;
    }
    r->job = NULL;
}

void mproc__result_chain(mproc_result **list, mproc_result *r)
{
    r->done_next = *list;
    *list = r;
}

void mproc__result_unref(mproc_result *r)
{
    if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    mproc__fails_release(&r->fails);
    mproc__free(r->data);
    int fd = atomic_load(&r->evfd);
    if (fd >= 0)
        mproc__sys_close(fd);
    mproc__free(r);
}

void mproc__result_deliver(mproc_result *r)
{
    atomic_store(&r->ready, 1);     /* seq_cst: the bell's store-load barrier */
    int fd = atomic_load(&r->evfd); /* seq_cst: see mproc_result_fd */
    if (fd >= 0)
        mproc__sys_eventfd_ring(fd);
    mproc_result_cb cb = r->code == 0 ? r->callback : r->error_callback;
    if (cb != NULL)
        cb(r, r->cb_arg);
    mproc__bell_ring(&r->bell, false); /* no system call when nobody sleeps */
    mproc__result_unref(r);
}

int mproc_result_wait(mproc_result *r, double timeout)
{
    if (r == NULL)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    if (atomic_load_explicit(&r->ready, memory_order_acquire) != 0)
        return 0;
    if (r->spin && timeout > 0) { /* see WAIT_SPIN_NS */
        int64_t until = mproc__sys_now_ns() + WAIT_SPIN_NS;
        for (unsigned k = 1;; k++) {
            if (atomic_load_explicit(&r->ready, memory_order_acquire) != 0)
                return 0;
            mproc__sys_cpu_relax();
            if (k % 64 == 0 && mproc__sys_now_ns() >= until)
                break;
        }
    }
    for (;;) {
        uint32_t seq = mproc__bell_arm(&r->bell);
        if (atomic_load(&r->ready) != 0) {
            mproc__bell_leave(&r->bell);
            return 0;
        }
        if (mproc__remaining_ns(deadline) == 0) {
            mproc__bell_leave(&r->bell);
            return -ETIMEDOUT;
        }
        (void)mproc__bell_sleep(&r->bell, seq, deadline, false);
    }
}

int mproc_result_ready(mproc_result *r)
{
    if (r == NULL)
        return -EINVAL;
    return atomic_load_explicit(&r->ready, memory_order_acquire) != 0;
}

int mproc_result_successful(mproc_result *r)
{
    if (r == NULL)
        return -EINVAL;
    if (!atomic_load_explicit(&r->ready, memory_order_acquire))
        return -MPROC_ESTATE;
    return r->code == 0;
}

int mproc_result_get(mproc_result *r, void *out, size_t cap, size_t *out_len, double timeout)
{
    if (r == NULL || (out == NULL && cap > 0))
        return -EINVAL;
    int rc = mproc_result_wait(r, timeout);
    if (rc < 0)
        return rc;
    if (r->code != 0)
        return r->code;
    if (r->kind == JOB_APPLY) {
        if (out_len != NULL)
            *out_len = r->len;
        if (out == NULL)
            return 0; /* the caller wants the outcome only */
        if (r->len > cap)
            return -MPROC_ETOOSMALL;
        if (r->len > 0)
            memcpy(out, r->data, r->len);
    }
    return 0;
}

int mproc_result_output(mproc_result *r, const void **data, size_t *len)
{
    if (r == NULL || data == NULL || len == NULL)
        return -EINVAL;
    if (!atomic_load_explicit(&r->ready, memory_order_acquire))
        return -MPROC_ESTATE;
    if (r->code != 0)
        return r->code;
    *data = r->data;
    *len = r->len;
    return 0;
}

const char *mproc_result_message(mproc_result *r)
{
    if (r == NULL)
        return NULL;
    if (!atomic_load_explicit(&r->ready, memory_order_acquire) || r->msg == NULL)
        return "";
    return r->msg;
}

int mproc_result_failures(mproc_result *r, size_t k, size_t *index, int *code, const char **msg)
{
    if (r == NULL)
        return -EINVAL;
    if (!atomic_load_explicit(&r->ready, memory_order_acquire))
        return -MPROC_ESTATE;
    size_t total = r->fails.items;
    if (total > INT32_MAX)
        total = INT32_MAX;
    if (k < total) {
        for (size_t i = 0; i < r->fails.n; i++) {
            const struct pool_fail *f = &r->fails.v[i];
            if (k < f->count) {
                if (index != NULL)
                    *index = f->first + k;
                if (code != NULL)
                    *code = f->code;
                if (msg != NULL)
                    *msg = f->msg;
                break;
            }
            k -= f->count;
        }
    }
    return (int)total;
}

int mproc_result_fd(mproc_result *r)
{
    if (r == NULL)
        return -EINVAL;
    int fd = atomic_load(&r->evfd);
    if (fd >= 0)
        return fd;
    fd = mproc__sys_eventfd();
    if (fd < 0)
        return fd;
    int none = -1;
    if (!atomic_compare_exchange_strong(&r->evfd, &none, fd)) {
        mproc__sys_close(fd); /* another thread made it first */
        return none;
    }
    /* published before looking at ready, as deliver stores ready before looking at the
       fd (both seq_cst): one of the two sees the other, so the fd is rung at least once */
    if (atomic_load(&r->ready) != 0)
        mproc__sys_eventfd_ring(fd);
    return fd;
}

void mproc_result_free(mproc_result *r)
{
    mproc__result_unref(r);
}

/* ---- imap ------------------------------------------------------------------------------ */

void mproc__imap_unref(mproc_imap *it)
{
    if (it == NULL || atomic_fetch_sub(&it->refs, 1) != 1)
        return;
    if (it->slots != NULL) {
        for (size_t i = 0; i < it->window; i++) {
            mproc__free(it->slots[i].msg);
            mproc__free(it->slots[i].input); /* fixed: output shares this allocation */
            if (it->vgen != NULL)
                mproc__free(it->slots[i].output);
        }
    }
    mproc__free(it->slots);
    mproc__free(it->free_slots);
    mproc__free(it->where);
    mproc__free(it->doneq);
    mproc__free(it->last_msg);
    mproc__free(it);
}

struct imap_where {
    uint64_t key; /* index + 1; 0: empty */
    uint32_t slot;
};

static int unordered_init(mproc_imap *it);

int mproc__imap_new(mproc_imap **out, mproc_pool *p, const struct imap_spec *spec)
{
    mproc_imap *t = mproc__calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->pool = p;
    t->window = spec->window;
    t->in_size = spec->in_size;
    t->out_size = spec->out_size;
    t->gen = spec->gen;
    t->vgen = spec->vgen;
    t->in_room = spec->room;
    t->gen_arg = spec->gen_arg;
    t->unordered = spec->unordered;
    atomic_init(&t->refs, 2); /* the caller's and the job's */
    t->slots = mproc__calloc(t->window, sizeof *t->slots);
    t->doneq = mproc__calloc(t->window, sizeof *t->doneq);
    int rc = t->slots != NULL && t->doneq != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; i < t->window && rc == 0 && t->vgen == NULL; i++) { /* imap_var:
                                                                     buffers per item */
        t->slots[i].input = mproc__malloc(t->in_size + t->out_size);
        if (t->slots[i].input == NULL)
            rc = -ENOMEM;
        else
            t->slots[i].output = t->slots[i].input + t->in_size;
    }
    if (rc == 0 && t->unordered)
        rc = unordered_init(t);
    if (rc < 0) {
        mproc__imap_discard(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* imap_var: a copy of len bytes in a block of its own (never NULL when it succeeds, even
 * for 0 bytes) */
static unsigned char *copy_bytes(const void *src, size_t len)
{
    unsigned char *p = mproc__malloc(len > 0 ? len : 1);
    if (p != NULL && len > 0)
        memcpy(p, src, len);
    return p;
}

int mproc__imap_generate(mproc_imap *it, struct imap_slot *sl)
{
    if (it->vgen == NULL)
        return it->gen(it->gen_arg, sl->input, it->in_size);
    mproc_item item = {NULL, 0};
    int rc = it->vgen(it->gen_arg, &item);
    if (rc != 1)
        return rc;
    if (item.data == NULL && item.len > 0)
        return -EINVAL;
    if (!mproc__var_fits(item.len, it->in_room))
        return -EMSGSIZE;                        /* as a failed generator: it is called no more */
    sl->input = copy_bytes(item.data, item.len); /* the slot is empty: its buffers are gone
                                                    (release) */
    if (sl->input == NULL)
        return -ENOMEM;
    sl->in_len = item.len;
    return 1;
}

void mproc__imap_bind(mproc_imap *it, struct job *j)
{
    it->job = j;
}

void mproc__imap_discard(mproc_imap *it)
{
    if (it == NULL)
        return;
    atomic_store(&it->refs, 1);
    mproc__imap_unref(it);
}

static int unordered_init(mproc_imap *it)
{
    size_t cap = 2;
    it->where_shift = 63;
    while (cap < 2 * it->window) {
        cap <<= 1;
        it->where_shift--;
    }
    it->where = mproc__calloc(cap, sizeof *it->where);
    it->free_slots = mproc__calloc(it->window, sizeof *it->free_slots);
    if (it->where == NULL || it->free_slots == NULL)
        return -ENOMEM;
    it->where_mask = cap - 1;
    for (size_t i = 0; i < it->window; i++) /* slot 0 on top */
        it->free_slots[i] = (uint32_t)(it->window - 1 - i);
    it->nfree = it->window;
    return 0;
}

/* An index's first table position. Multiplicative hashing: the indices in the window
 * are mostly consecutive, and taken as they are they would fill one long run of the
 * table, which a deletion below would have to walk. */
static size_t where_home(const mproc_imap *it, uint64_t index)
{
    return (size_t)((index * UINT64_C(0x9E3779B97F4A7C15)) >> it->where_shift);
}

/* The table position of index: where it is, or the empty one where it would go. */
static size_t where_pos(const mproc_imap *it, size_t index)
{
    size_t pos = where_home(it, index);
    while (it->where[pos].key != 0 && it->where[pos].key != (uint64_t)index + 1)
        pos = (pos + 1) & it->where_mask;
    return pos;
}

struct imap_slot *mproc__imap_slot(mproc_imap *it, size_t index)
{
    if (!it->unordered)
        return &it->slots[index % it->window];
    size_t pos = where_pos(it, index);
    assert(it->where[pos].key == (uint64_t)index + 1);
    return &it->slots[it->where[pos].slot];
}

struct imap_slot *mproc__imap_room(mproc_imap *it)
{
    if (it->produced - it->returned >= it->window)
        return NULL;
    struct imap_slot *s = it->unordered
                              ? (it->nfree > 0 ? &it->slots[it->free_slots[it->nfree - 1]] : NULL)
                              : &it->slots[it->produced % it->window];
    return s != NULL && s->state == SLOT_EMPTY ? s : NULL;
}

struct imap_slot *mproc__imap_gen_room(mproc_imap *it)
{
    struct imap_slot *s = mproc__imap_room(it);
    it->gen_waiting = s == NULL;
    return s;
}

void mproc__imap_gen_end(mproc_imap *it, int code)
{
    it->gen_done = true;
    if (code < 0)
        it->gen_code = code;
}

void mproc__imap_detach(mproc_imap *it)
{
    it->job = NULL;
}

void mproc__imap_place(mproc_imap *it, struct imap_slot *s)
{
    s->state = SLOT_QUEUED;
    s->index = it->produced++;
    if (!it->unordered)
        return;
    /* s was on top of the stack when the generator was called; the reader may have pushed
       slots since (the mutex is dropped around the call) */
    size_t k = it->nfree;
    while (k > 0 && &it->slots[it->free_slots[k - 1]] != s)
        k--;
    assert(k > 0);
    it->free_slots[k - 1] = it->free_slots[--it->nfree];
    size_t pos = where_pos(it, s->index);
    it->where[pos] =
        (struct imap_where){.key = (uint64_t)s->index + 1, .slot = (uint32_t)(s - it->slots)};
}

void mproc__imap_release(mproc_imap *it, struct imap_slot *s)
{
    s->state = SLOT_EMPTY;
    if (it->vgen != NULL) { /* imap_var: the item's own buffers */
        mproc__free(s->input);
        mproc__free(s->output);
        s->input = s->output = NULL;
    }
    it->returned++;
    if (!it->unordered)
        return;
    it->free_slots[it->nfree++] = (uint32_t)(s - it->slots);
    /* delete by shifting back the entries after it that probed past it */
    size_t hole = where_pos(it, s->index), pos = hole;
    it->where[hole].key = 0;
    for (;;) {
        pos = (pos + 1) & it->where_mask;
        if (it->where[pos].key == 0)
            return;
        size_t home = where_home(it, it->where[pos].key - 1);
        /* it may move to the hole unless its home lies cyclically in (hole, pos] */
        bool stays = hole <= pos ? (home > hole && home <= pos) : (home > hole || home <= pos);
        if (!stays) {
            it->where[hole] = it->where[pos];
            it->where[pos].key = 0;
            hole = pos;
        }
    }
}

void mproc__imap_wake(mproc_imap *it)
{
    mproc__bell_ring(&it->bell, false);
}

void mproc__imap_item(mproc_imap *it, size_t index, int code, const char *msg, const void *out)
{
    struct imap_slot *s = mproc__imap_slot(it, index);
    assert(s->state == SLOT_QUEUED && s->index == index);
    s->state = SLOT_DONE;
    s->code = code;
    if (code != 0) {
        s->msg = mproc__strdup(msg != NULL ? msg : "");
    } else if (out != NULL) {
        memcpy(s->output, out, it->out_size);
    }
    if (it->unordered) {
        it->doneq[(it->dq_head + it->dq_len) % it->window] = index;
        it->dq_len++;
    }
}

void mproc__imap_item_var(mproc_imap *it, size_t index, int code, const char *msg, const void *out,
                          size_t len)
{
    struct imap_slot *s = mproc__imap_slot(it, index);
    if (code == 0) {
        s->output = copy_bytes(out, len);
        s->out_len = len;
        if (s->output == NULL) { /* it succeeded, but its output is lost: a failure */
            code = -ENOMEM;
            msg = "no memory for the output";
        }
    }
    mproc__imap_item(it, index, code, msg, NULL);
}

/* ---- the imap reader --------------------------------------------------------------------- */

/* Take a finished item out of the window (under the mutex). */
static int take(mproc_imap *it, struct imap_slot *s, void *out, size_t *index, const char **msg)
{
    int code = s->code;
    if (index != NULL)
        *index = s->index;
    mproc__free(it->last_msg);
    it->last_msg = s->msg;
    s->msg = NULL;
    if (msg != NULL)
        *msg = it->last_msg != NULL ? it->last_msg : "";
    if (code == 0 && out != NULL)
        memcpy(out, s->output, it->vgen != NULL ? s->out_len : it->out_size);
    mproc__imap_release(it, s);
    return code;
}

/* The finished item the next call would take (NULL: none yet). */
static struct imap_slot *next_done(mproc_imap *it)
{
    if (it->unordered)
        return it->dq_len > 0 ? mproc__imap_slot(it, it->doneq[it->dq_head]) : NULL;
    struct imap_slot *s = &it->slots[it->next_ordered % it->window];
    return it->next_ordered < it->produced && s->state == SLOT_DONE && s->index == it->next_ordered
               ? s
               : NULL;
}

/* The generator cannot run: no slot for the next item yet. */
static bool gen_blocked(mproc_imap *it)
{
    return !it->gen_done && mproc__imap_room(it) == NULL;
}

int mproc_imap_next(mproc_imap *it, void *out, size_t cap, size_t *out_len, size_t *index,
                    const char **msg, double timeout)
{
    if (it == NULL || (out == NULL && cap > 0))
        return -EINVAL;
    if (out_len != NULL)
        *out_len = it->out_size;
    if (cap < it->out_size)
        return -MPROC_ETOOSMALL; /* the item stays for a call with room for it */
    int64_t deadline;
    int rc = mproc__deadline(timeout, &deadline);
    if (rc < 0)
        return rc;
    mproc_pool *p = it->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        rc = 1;
        struct imap_slot *s = next_done(it);
        if (s != NULL && it->vgen != NULL && s->code == 0) {
            if (out_len != NULL)
                *out_len = s->out_len;
            if (cap < s->out_len) {
                pthread_mutex_unlock(&p->mu);
                return -MPROC_ETOOSMALL; /* the item stays for a call with room for it */
            }
        }
        if (s != NULL) {
            if (it->unordered) {
                it->dq_head = (it->dq_head + 1) % it->window;
                it->dq_len--;
            } else {
                it->next_ordered++;
            }
            rc = take(it, s, out, index, msg);
        }
        if (rc == 1 && it->gen_done && it->returned == it->produced) {
            if (it->gen_code < 0 && !it->gen_reported) {
                it->gen_reported = true;
                rc = it->gen_code;
                if (msg != NULL)
                    *msg = "the generator failed";
            } else {
                rc = -MPROC_EEOF;
            }
        }
        if (rc != 1) {
            /* wake the supervisor only if the generator was waiting for room and has it:
               an eighth of the window, or all there is before this reader waits (a wake
               per item read would cost more than the item) */
            bool kick = it->gen_waiting && !gen_blocked(it) &&
                        (it->produced - it->returned + it->window / 8 <= it->window ||
                         next_done(it) == NULL);
            if (kick)
                it->gen_waiting = false;
            pthread_mutex_unlock(&p->mu);
            if (kick)
                mproc__pool_kick(p);
            return rc;
        }
        /* armed under the mutex: an item that completes after it rings the bell */
        uint32_t seq = mproc__bell_arm(&it->bell);
        pthread_mutex_unlock(&p->mu);
        if (mproc__remaining_ns(deadline) == 0) {
            mproc__bell_leave(&it->bell);
            return -ETIMEDOUT;
        }
        (void)mproc__bell_sleep(&it->bell, seq, deadline, false);
    }
}
