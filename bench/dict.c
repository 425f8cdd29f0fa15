/* bench/dict.c - the shared dictionary against a raw table in shared memory.
 *
 * One repetition of each figure, mproc first, then its C anchor:
 *   dict.set  total sets/s, 2 processes, each setting 8-byte keys (its own 50,000,
 *             round and round) to 64-byte values
 *             | raw: a process-shared pthread mutex around an open-addressing table of
 *               fixed 72-byte slots in shared memory, written here: the floor any
 *               shared dictionary stands on (no growth, no variable sizes, no repair)
 *   dict.get  total gets/s, the same 2 x 50,000 keys read round and round | raw
 *   list.append_pop  total operations/s, 2 processes each appending an 8-byte item to
 *             one shared list and popping one from its front, n times (no C anchor)
 * Every get checks the value it copied. The warm-up (filling the table, and for mproc the
 * memory it grows into) is outside the timed region. The Python anchor
 * (multiprocessing.Manager().dict() and .list(), the same patterns) is bench/py_dict.py.
 * Usage: dict   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 */
#include "bench.h"

#include <pthread.h>

#include "mproc/dict.h"
#include "mproc/error.h"
#include "mproc/list.h"

enum { KEYS = 50000, VALUE = 64, RAW_CAP = 1 << 18 };

/* ---- the raw floor ------------------------------------------------------------------- */

struct raw_slot {
    uint64_t key; /* 0: empty (keys here start at 1) */
    unsigned char value[VALUE];
};

struct raw {
    pthread_mutex_t mutex;
    struct raw_slot slots[RAW_CAP];
};

static inline uint64_t raw_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    return k ^ (k >> 33);
}

static struct raw_slot *raw_find(struct raw *r, uint64_t key)
{
    uint64_t i = raw_hash(key) & (RAW_CAP - 1);
    while (r->slots[i].key != key && r->slots[i].key != 0)
        i = (i + 1) & (RAW_CAP - 1);
    return &r->slots[i];
}

static void raw_set(struct raw *r, uint64_t key, const void *value)
{
    pthread_mutex_lock(&r->mutex);
    struct raw_slot *s = raw_find(r, key);
    s->key = key;
    memcpy(s->value, value, VALUE);
    pthread_mutex_unlock(&r->mutex);
}

static int raw_get(struct raw *r, uint64_t key, void *out)
{
    pthread_mutex_lock(&r->mutex);
    struct raw_slot *s = raw_find(r, key);
    int found = s->key == key;
    if (found)
        memcpy(out, s->value, VALUE);
    pthread_mutex_unlock(&r->mutex);
    return found ? 0 : -1;
}

/* ---- the two, behind one loop -------------------------------------------------------- */

struct shared {
    int ready, go;
    double t_end[2];
};

struct target {
    mproc_dict *d;
    struct raw *r;
};

static void fill(unsigned char *v, uint64_t key, uint64_t round)
{
    memset(v, (int)(key + round), VALUE);
    memcpy(v, &key, 8);
}

static void op(struct target *t, int set, uint64_t key, uint64_t round)
{
    unsigned char v[VALUE], got[VALUE];
    if (set) {
        fill(v, key, round);
        if (t->d != NULL)
            BENCH_OK(mproc_dict_set(t->d, &key, sizeof key, v, VALUE));
        else
            raw_set(t->r, key, v);
        return;
    }
    size_t len = VALUE;
    if (t->d != NULL)
        BENCH_OK(mproc_dict_get(t->d, &key, sizeof key, got, sizeof got, &len));
    else if (raw_get(t->r, key, got) < 0)
        bench_die("raw get: key %llu missing", (unsigned long long)key);
    uint64_t k;
    memcpy(&k, got, 8);
    if (len != VALUE || k != key)
        bench_die("get: key %llu has another value", (unsigned long long)key);
}

/* Run loop(w, arg) in 2 forked processes (w = 0, 1) started together; the seconds from
 * the start to the later one's end. */
static double two_workers(void (*loop)(int w, void *arg), void *arg)
{
    struct shared *sh = bench_shared(sizeof *sh);
    pid_t pid[2];
    for (int w = 0; w < 2; w++) {
        pid[w] = bench_fork();
        if (pid[w] == 0) {
            __atomic_fetch_add(&sh->ready, 1, __ATOMIC_ACQ_REL);
            bench_wait_flag(&sh->go, 1);
            loop(w, arg);
            sh->t_end[w] = bench_now();
            _exit(0);
        }
    }
    bench_wait_flag(&sh->ready, 2);
    double t0 = bench_now();
    bench_set_flag(&sh->go, 1);
    bench_reap(pid[0], "worker");
    bench_reap(pid[1], "worker");
    double t1 = sh->t_end[0] > sh->t_end[1] ? sh->t_end[0] : sh->t_end[1];
    munmap(sh, sizeof *sh);
    return t1 - t0;
}

struct dict_run {
    struct target *t;
    int set;
    uint64_t n;
};

/* n operations over this worker's own KEYS keys. */
static void dict_loop(int w, void *arg)
{
    struct dict_run *r = arg;
    uint64_t base = 1 + (uint64_t)w * KEYS;
    for (uint64_t i = 0; i < r->n; i++)
        op(r->t, r->set, base + i % KEYS, i / KEYS + 1);
}

/* 2 processes, n operations each over their own KEYS keys: total operations/s. */
static double run(struct target *t, int set, uint64_t n)
{
    for (uint64_t k = 1; k <= 2 * KEYS; k++) /* warm-up: every key there, memory grown */
        op(t, 1, k, 0);
    struct dict_run r = {t, set, n};
    return (double)(2 * n) / two_workers(dict_loop, &r);
}

static double run_mproc(int set, uint64_t n)
{
    struct target t = {0};
    BENCH_OK(mproc_dict_new(&t.d, NULL, 0, 0));
    double rate = run(&t, set, n);
    size_t len;
    BENCH_OK(mproc_dict_len(t.d, &len));
    if (len != 2 * KEYS)
        bench_die("dict: %zu entries, want %d", len, 2 * KEYS);
    mproc_dict_free(t.d);
    return rate;
}

static double run_raw(int set, uint64_t n)
{
    struct target t = {0};
    t.r = bench_shared(sizeof *t.r);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (pthread_mutex_init(&t.r->mutex, &attr) != 0)
        bench_die("pthread_mutex_init");
    pthread_mutexattr_destroy(&attr);
    double rate = run(&t, set, n);
    munmap(t.r, sizeof *t.r);
    return rate;
}

struct list_run {
    mproc_list *l;
    uint64_t n;
};

/* n turns of an append and a pop from the front. */
static void list_loop(int w, void *arg)
{
    (void)w;
    struct list_run *r = arg;
    for (uint64_t i = 0; i < r->n; i++) {
        uint64_t got;
        size_t len;
        BENCH_OK(mproc_list_append(r->l, &i, sizeof i));
        void *p;
        BENCH_OK(mproc_list_popleft(r->l, &p, &len));
        memcpy(&got, p, sizeof got);
        free(p);
        if (len != sizeof got)
            bench_die("list: an item of %zu bytes", len);
    }
}

/* 2 processes, each appending and popping from the front n times: operations/s. */
static double run_list(uint64_t n)
{
    mproc_list *l;
    BENCH_OK(mproc_list_new(&l, NULL, 0, 0));
    for (uint64_t i = 0; i < 1000; i++) /* warm-up: the ring and its blocks exist */
        BENCH_OK(mproc_list_append(l, &i, sizeof i));
    struct list_run r = {l, n};
    double secs = two_workers(list_loop, &r);
    size_t len;
    BENCH_OK(mproc_list_len(l, &len));
    if (len != 1000)
        bench_die("list: %zu items left, want 1000", len);
    mproc_list_free(l);
    return (double)(4 * n) / secs;
}

int main(void)
{
    uint64_t n = bench_scaled(1000000, 1000);
    bench_emit("dict.set", "mproc", run_mproc(1, n), "ops/s");
    bench_emit("dict.set", "raw", run_raw(1, n), "ops/s");
    bench_emit("dict.get", "mproc", run_mproc(0, n), "ops/s");
    bench_emit("dict.get", "raw", run_raw(0, n), "ops/s");
    bench_emit("list.append_pop", "mproc", run_list(n / 2), "ops/s");
    return 0;
}
