/* tests/test_dict.c - the shared dictionary: across processes, by name, growing, full,
 * and with its users killed in the middle of every step of every call.
 */
#include "harness.h"
#include "internal.h"
#include "shared/heap.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static mproc_dict *new_dict(size_t max_bytes)
{
    mproc_dict *d;
    assert_ok(mproc_dict_new(&d, NULL, 0, max_bytes));
    return d;
}

static void set_u64(mproc_dict *d, uint64_t k, uint64_t v)
{
    assert_ok(mproc_dict_set(d, &k, sizeof k, &v, sizeof v));
}

static int get_u64(mproc_dict *d, uint64_t k, uint64_t *v)
{
    size_t len = 0;
    int rc = mproc_dict_get(d, &k, sizeof k, v, sizeof *v, &len);
    if (rc == 0 && len != sizeof *v)
        return -EPROTO;
    return rc;
}

/* The heap is consistent: every block reachable or free, exactly once. */
static void check_heap(mproc_dict *d, uint64_t *used)
{
    uint64_t u, f;
    assert_ok(mproc__container_check((struct mproc__container *)d, &u, &f));
    if (used != NULL)
        *used = u;
}

static void test_basics(void **state)
{
    (void)state;
    mproc_dict *d = new_dict(0);
    size_t n, len;
    char buf[64];
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, 0);
    assert_code(mproc_dict_get(d, "a", 1, buf, sizeof buf, &len), -ENOENT);
    assert_ok(mproc_dict_set(d, "a", 1, "apple", 5));
    assert_ok(mproc_dict_get(d, "a", 1, buf, sizeof buf, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "apple", 5);
    assert_ok(mproc_dict_set(d, "a", 1, "avocado", 7)); /* replace */
    assert_code(mproc_dict_get(d, "a", 1, buf, 3, &len), -MPROC_ETOOSMALL);
    assert_int_equal(len, 7);
    void *p;
    assert_ok(mproc_dict_get_alloc(d, "a", 1, &p, &len));
    assert_int_equal(len, 7);
    assert_memory_equal(p, "avocado", 7);
    free(p);
    /* 0-byte keys and values are keys and values */
    assert_ok(mproc_dict_set(d, NULL, 0, NULL, 0));
    assert_int_equal(mproc_dict_contains(d, NULL, 0), 1);
    assert_ok(mproc_dict_get(d, NULL, 0, NULL, 0, &len));
    assert_int_equal(len, 0);
    assert_ok(mproc_dict_get_alloc(d, "", 0, &p, &len));
    assert_int_equal(len, 0);
    free(p);
    /* a key that is a prefix of another, and one with the same bytes but longer */
    assert_ok(mproc_dict_set(d, "ab", 2, "x", 1));
    assert_ok(mproc_dict_set(d, "ab\0", 3, "y", 1));
    assert_ok(mproc_dict_get(d, "ab\0", 3, buf, sizeof buf, &len));
    assert_true(len == 1 && buf[0] == 'y');
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, 4);
    assert_ok(mproc_dict_delete(d, "ab", 2));
    assert_code(mproc_dict_delete(d, "ab", 2), -ENOENT);
    assert_int_equal(mproc_dict_contains(d, "ab", 2), 0);
    assert_int_equal(mproc_dict_contains(d, "ab\0", 3), 1);
    /* a large value, a large key */
    size_t big = (size_t)3 << 20;
    char *v = malloc(big);
    assert_non_null(v);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)(i * 31);
    assert_ok(mproc_dict_set(d, v, 5000, v, big));
    assert_ok(mproc_dict_get_alloc(d, v, 5000, &p, &len));
    assert_int_equal(len, big);
    assert_memory_equal(p, v, big);
    free(p);
    free(v);
    check_heap(d, NULL);
    mproc_dict_free(d);
}

static void test_cas_items_clear(void **state)
{
    (void)state;
    mproc_dict *d = new_dict(0);
    assert_int_equal(mproc_dict_cas(d, "k", 1, NULL, 0, "1", 1), 1); /* absent: inserted */
    assert_int_equal(mproc_dict_cas(d, "k", 1, NULL, 0, "2", 1), 0); /* present: not */
    assert_int_equal(mproc_dict_cas(d, "k", 1, "9", 1, "2", 1), 0);  /* differs */
    assert_int_equal(mproc_dict_cas(d, "k", 1, "1", 1, "2", 1), 1);  /* equal: swapped */
    char buf[4];
    size_t len;
    assert_ok(mproc_dict_get(d, "k", 1, buf, sizeof buf, &len));
    assert_true(len == 1 && buf[0] == '2');
    assert_int_equal(mproc_dict_cas(d, "k", 1, "2", 2, "3", 1), 0); /* longer than it */

    for (uint64_t i = 0; i < 1000; i++)
        set_u64(d, i, i * i);
    mproc_dict_item *items;
    size_t n;
    assert_ok(mproc_dict_items(d, &items, &n));
    assert_int_equal(n, 1001);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].key_len == 1)
            continue; /* "k" */
        uint64_t k, v;
        assert_int_equal(items[i].key_len, 8);
        assert_int_equal(items[i].value_len, 8);
        memcpy(&k, items[i].key, 8);
        memcpy(&v, items[i].value, 8);
        assert_int_equal(v, k * k);
        sum += k;
    }
    assert_int_equal(sum, 999 * 1000 / 2);
    free(items);

    uint64_t used_full;
    check_heap(d, &used_full);
    assert_ok(mproc_dict_clear(d));
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, 0);
    uint64_t used_empty;
    check_heap(d, &used_empty);
    assert_int_equal(used_empty, 0);
    assert_ok(mproc_dict_items(d, &items, &n));
    assert_int_equal(n, 0);
    free(items);
    set_u64(d, 7, 49); /* usable after */
    uint64_t v;
    assert_ok(get_u64(d, 7, &v));
    assert_int_equal(v, 49);
    mproc_dict_free(d);
}

/* 200,000 entries: the table grows many times; deletes leave tombstones that the next
 * growth drops; every entry is there, and the heap holds exactly what is reachable. */
static void test_growth(void **state)
{
    (void)state;
    mproc_dict *d = new_dict(0);
    const uint64_t n = 200000;
    for (uint64_t i = 0; i < n; i++)
        set_u64(d, i, ~i);
    for (uint64_t i = 0; i < n; i += 2)
        assert_ok(mproc_dict_delete(d, &i, sizeof i));
    for (uint64_t i = n; i < n + n / 2; i++)
        set_u64(d, i, ~i);
    size_t len;
    assert_ok(mproc_dict_len(d, &len));
    assert_int_equal(len, n);
    for (uint64_t i = 0; i < n + n / 2; i++) {
        uint64_t v;
        int rc = get_u64(d, i, &v);
        if (i < n && i % 2 == 0) {
            assert_code(rc, -ENOENT);
        } else {
            assert_ok(rc);
            assert_int_equal(v, ~i);
        }
    }
    check_heap(d, NULL);
    mproc_dict_free(d);
}

/* A small dictionary fills up: -ENOSPC, unchanged; room again after deletes. */
static void test_full(void **state)
{
    (void)state;
    mproc_dict *d = new_dict(1); /* the least: 68 KiB */
    char value[1000];
    memset(value, 'v', sizeof value);
    uint64_t k = 0;
    int rc;
    while ((rc = mproc_dict_set(d, &k, sizeof k, value, sizeof value)) == 0)
        k++;
    assert_code(rc, -ENOSPC);
    assert_true(k > 10);
    size_t n;
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, k);
    assert_int_equal(mproc_dict_contains(d, &k, sizeof k), 0);
    /* a value larger than the whole dictionary */
    char *huge = calloc(1, 1 << 20);
    assert_non_null(huge);
    uint64_t other = 999999;
    assert_code(mproc_dict_set(d, &other, sizeof other, huge, 1 << 20), -ENOSPC);
    free(huge);
    for (uint64_t i = 0; i < 5; i++)
        assert_ok(mproc_dict_delete(d, &i, sizeof i));
    assert_ok(mproc_dict_set(d, &k, sizeof k, value, sizeof value));
    check_heap(d, NULL);
    mproc_dict_free(d);
}

/* Values of every size set again and again over a few keys: what is freed is used again,
 * so a small dictionary never fills (its live data is a tenth of it). */
static void test_churn_reuses_memory(void **state)
{
    (void)state;
    mproc_dict *d = new_dict((size_t)4 << 20);
    static unsigned char value[3000];
    uint64_t r = 88172645463325252u;
    for (int i = 0; i < 200000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        uint64_t key = r % 100;
        size_t len = (size_t)(r >> 32) % sizeof value;
        int rc = mproc_dict_set(d, &key, sizeof key, value, len);
        if (rc != 0)
            fail_msg("set %d (%zu bytes): %s", i, len, mproc_errname(rc));
    }
    check_heap(d, NULL);
    mproc_dict_free(d);
}

#ifdef MPROC_FAULT_INJECTION
/* No memory to grow into: the call says so and the dictionary is as it was. */
static void test_no_memory(void **state)
{
    (void)state;
    mproc_dict *d = new_dict(0);
    uint64_t i = 0;
    mproc_fault_set("sys.populate", MPROC_FAULT_FAIL,
                    &(mproc_fault_opts){.code = -ENOMEM, .sticky = true});
    int rc;
    while ((rc = mproc_dict_set(d, &i, sizeof i, &i, sizeof i)) == 0)
        i++;
    mproc_fault_clear();
    assert_code(rc, -ENOMEM);
    size_t n;
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, i);
    for (uint64_t j = 0; j < i; j++) {
        uint64_t v;
        assert_ok(get_u64(d, j, &v));
        assert_int_equal(v, j);
    }
    set_u64(d, i, i); /* and with memory again, it grows */
    check_heap(d, NULL);
    mproc_dict_free(d);
}
#endif

/* ---- across processes ----------------------------------------------------------------- */

struct writer {
    mproc_dict *d;
    const char *name; /* attach by name instead */
    uint64_t from, to;
};

static int writer(void *arg)
{
    struct writer *w = arg;
    mproc_dict *d = w->d;
    if (w->name != NULL && mproc_dict_new(&d, w->name, 0, 0) != 0)
        return 1;
    for (uint64_t i = w->from; i < w->to; i++)
        if (mproc_dict_set(d, &i, sizeof i, &i, sizeof i) != 0)
            return 2;
    if (w->name != NULL)
        mproc_dict_free(d);
    return 0;
}

static void test_processes_and_names(void **state)
{
    (void)state;
    /* the family: two children write, the parent reads */
    mproc_dict *d = new_dict(0);
    struct writer a = {d, NULL, 0, 20000}, b = {d, NULL, 20000, 40000};
    pid_t pa = mproc_test_fork(writer, &a), pb = mproc_test_fork(writer, &b);
    assert_int_equal(mproc_test_exitcode(pa, 30), 0);
    assert_int_equal(mproc_test_exitcode(pb, 30), 0);
    size_t n;
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, 40000);
    for (uint64_t i = 0; i < 40000; i += 997) {
        uint64_t v;
        assert_ok(get_u64(d, i, &v));
        assert_int_equal(v, i);
    }
    check_heap(d, NULL);
    mproc_dict_free(d);

    /* by name: a random one, attached by a process that knows only the name */
    assert_ok(mproc_dict_new(&d, NULL, MPROC_SHM_CREATE | MPROC_SHM_NAMED | MPROC_SHM_AUTO_UNLINK,
                             1 << 20));
    const char *name = mproc_dict_name(d);
    assert_non_null(name);
    struct writer c = {NULL, name, 0, 100};
    pid_t pc = mproc_test_fork(writer, &c);
    assert_int_equal(mproc_test_exitcode(pc, 30), 0);
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, 100);
    mproc_dict *again;
    assert_code(mproc_dict_new(&again, name, MPROC_SHM_CREATE, 0), -EEXIST);
    char path[300];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    mproc_dict_free(d); /* the creator's free: the name goes */
    struct stat st;
    assert_int_equal(stat(path, &st), -1);

    /* explicit names, unlink, and a name that holds something else */
    assert_ok(mproc_dict_new(&d, "mproc-test-dict", MPROC_SHM_CREATE, 0));
    assert_ok(mproc_dict_new(&again, "mproc-test-dict", 0, 0));
    set_u64(again, 1, 2);
    uint64_t v;
    assert_ok(get_u64(d, 1, &v));
    assert_int_equal(v, 2);
    assert_ok(mproc_dict_unlink(d));
    assert_code(mproc_dict_unlink(again), -ENOENT);
    set_u64(d, 3, 4); /* still usable by both */
    assert_ok(get_u64(again, 3, &v));
    mproc_dict_free(again);
    mproc_dict_free(d);
    assert_code(mproc_dict_new(&d, "mproc-test-dict", 0, 0), -ENOENT);
    mproc_shm *s;
    assert_ok(mproc_shm_new(&s, "mproc-test-notdict", 1 << 20, MPROC_SHM_CREATE));
    assert_code(mproc_dict_new(&d, "mproc-test-notdict", 0, 0), -EAGAIN); /* zeros: unmade */
    memset(mproc_shm_buf(s), 0x55, 64);
    assert_code(mproc_dict_new(&d, "mproc-test-notdict", 0, 0), -EINVAL); /* not a dict */
    assert_ok(mproc_shm_unlink(s));
    mproc_shm_free(s);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    mproc_dict *d;
    assert_code(mproc_dict_new(NULL, NULL, 0, 0), -EINVAL);
    assert_code(mproc_dict_new(&d, NULL, 1u << 20, 0), -EINVAL);
    assert_code(mproc_dict_new(&d, NULL, 0, (size_t)1 << 41), -EINVAL);
    assert_code(mproc_dict_new(&d, NULL, 0, SIZE_MAX), -EINVAL);
    assert_code(mproc_dict_new(&d, "a/b", MPROC_SHM_CREATE, 0), -EINVAL);
    d = new_dict(0);
    size_t len;
    void *p;
    assert_code(mproc_dict_set(NULL, "a", 1, "b", 1), -EINVAL);
    assert_code(mproc_dict_set(d, NULL, 1, "b", 1), -EINVAL);
    assert_code(mproc_dict_set(d, "a", 1, NULL, 1), -EINVAL);
    assert_code(mproc_dict_get(d, "a", 1, NULL, 1, &len), -EINVAL);
    assert_code(mproc_dict_get(d, "a", 1, NULL, 0, NULL), -EINVAL);
    assert_code(mproc_dict_get_alloc(d, "a", 1, NULL, &len), -EINVAL);
    assert_code(mproc_dict_get_alloc(d, "a", 1, &p, NULL), -EINVAL);
    assert_code(mproc_dict_cas(d, "a", 1, NULL, 1, "b", 1), -EINVAL);
    assert_code(mproc_dict_len(d, NULL), -EINVAL);
    assert_code(mproc_dict_items(d, NULL, &len), -EINVAL);
    assert_code(mproc_dict_unlink(d), -EINVAL); /* anonymous */
    assert_null(mproc_dict_name(d));
    assert_code(mproc_dict_clear(NULL), -EINVAL);
    assert_code(mproc_dict_contains((mproc_dict *)(void *)"not a dict", "a", 1), -EINVAL);
    mproc_dict_free(d);
    mproc_dict_free(NULL);
}

/* ---- killed in the middle ----------------------------------------------------------------- */

#ifdef MPROC_FAULT_INJECTION
struct dying {
    mproc_dict *d;
    const char *point;
    unsigned nth;
};

/* Sets 0..999 (value i), deletes the even ones, sets them again (value i + 1): armed to
 * die at the nth pass through the point. */
static int die_at(void *arg)
{
    struct dying *k = arg;
    if (mproc_fault_set(k->point, MPROC_FAULT_KILL, &(mproc_fault_opts){.nth = k->nth}) < 0)
        return 1;
    for (uint64_t i = 0; i < 1000; i++)
        if (mproc_dict_set(k->d, &i, sizeof i, &i, sizeof i) != 0)
            return 2;
    for (uint64_t i = 0; i < 1000; i += 2)
        if (mproc_dict_delete(k->d, &i, sizeof i) != 0)
            return 3;
    for (uint64_t i = 0; i < 1000; i += 2) {
        uint64_t v = i + 1;
        if (mproc_dict_set(k->d, &i, sizeof i, &v, sizeof v) != 0)
            return 4;
    }
    return 0;
}

/* After the death: the heap is whole, every key holds a value some call stored, and the
 * dictionary works on. */
static void after_death(mproc_dict *d)
{
    size_t n, seen = 0;
    for (uint64_t i = 0; i < 1000; i++) { /* gets first: the lock-free read must cope */
        uint64_t v;
        int rc = get_u64(d, i, &v);
        if (rc == -ENOENT)
            continue;
        assert_ok(rc);
        assert_true(v == i || v == i + 1);
        seen++;
    }
    check_heap(d, NULL);
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(seen, n);
    for (uint64_t i = 0; i < 1000; i++)
        set_u64(d, i, 7);
    assert_ok(mproc_dict_len(d, &n));
    assert_int_equal(n, 1000);
    check_heap(d, NULL);
}

static void test_killed_at_every_step(void **state)
{
    (void)state;
    const char *points[] = {"dict.set.written",      "dict.set.committed", "dict.grow.copied",
                            "dict.delete.committed", "heap.free.linked",   "heap.alloc.popped",
                            "heap.bump.written"};
    unsigned nths[] = {1, 2, 17, 300, 700, 1100};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(points); i++) {
        for (size_t j = 0; j < MPROC__ARRAY_LEN(nths); j++) {
            mproc_dict *d = new_dict(0);
            struct dying k = {d, points[i], nths[j]};
            pid_t pid = mproc_test_fork(die_at, &k);
            int code = mproc_test_exitcode(pid, 30);
            if (code != -SIGKILL && code != 0) /* 0: the point is passed fewer times */
                fail_msg("%s #%u: exit %d", points[i], nths[j], code);
            after_death(d);
            mproc_dict_free(d);
        }
    }
}
#endif

/* ---- kill storm ----------------------------------------------------------------------------- */

enum { STORM_WORKERS = 3, STORM_KEYS = 300, STORM_KILLS = 30 };

/* What the test knows of each key: the state the last finished call left, and the one
 * the call in flight leaves (equal when none is). A state: 0 absent, else the version. */
struct storm_state {
    int64_t done[STORM_WORKERS * STORM_KEYS];
    int64_t going[STORM_WORKERS * STORM_KEYS];
    _Atomic int stop;
};

static size_t value_len(uint64_t key, int64_t version)
{
    return 16 + (size_t)((key * 131 + (uint64_t)version * 7919) % 1500);
}

static void make_value(uint64_t key, int64_t version, unsigned char *buf, size_t len)
{
    memcpy(buf, &key, 8);
    memcpy(buf + 8, &version, 8);
    for (size_t i = 16; i < len; i++)
        buf[i] = (unsigned char)(key + (uint64_t)version + i);
}

/* The version a stored value says, or -1 if it is not a value the storm wrote whole. */
static int64_t check_value(uint64_t key, const unsigned char *buf, size_t len)
{
    uint64_t k;
    int64_t version;
    if (len < 16)
        return -1;
    memcpy(&k, buf, 8);
    memcpy(&version, buf + 8, 8);
    if (k != key || version <= 0 || len != value_len(key, version))
        return -1;
    for (size_t i = 16; i < len; i++)
        if (buf[i] != (unsigned char)(key + (uint64_t)version + i))
            return -1;
    return version;
}

/* The state of key in the dictionary: 0 absent, the version, or -1 garbled. */
static int64_t state_of(mproc_dict *d, uint64_t key)
{
    void *buf;
    size_t len;
    int rc = mproc_dict_get_alloc(d, &key, sizeof key, &buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return -1;
    int64_t v = check_value(key, buf, len);
    free(buf);
    return v;
}

struct storm_worker {
    mproc_dict *d;
    struct storm_state *st;
    int who;
    uint64_t seed;
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int storm_worker(void *arg)
{
    struct storm_worker *w = arg;
    struct storm_state *st = w->st;
    uint64_t base = (uint64_t)w->who * STORM_KEYS;
    /* settle what the killed predecessor left in flight */
    for (uint64_t i = 0; i < STORM_KEYS; i++) {
        if (st->done[base + i] == st->going[base + i])
            continue;
        int64_t now = state_of(w->d, base + i);
        if (now != st->done[base + i] && now != st->going[base + i]) {
            fprintf(stderr,
                    "storm: key %" PRIu64 " holds %" PRId64 ", not %" PRId64 " or %" PRId64 "\n",
                    base + i, now, st->done[base + i], st->going[base + i]);
            return 10;
        }
        st->done[base + i] = st->going[base + i] = now;
    }
    unsigned char buf[16 + 1500];
    int64_t version = 1;
    for (uint64_t i = 0; i < STORM_KEYS; i++)
        if (st->done[base + i] >= version)
            version = st->done[base + i] + 1;
    while (!atomic_load(&st->stop)) {
        uint64_t r = next_rand(&w->seed), i = r % STORM_KEYS, key = base + i;
        int64_t cur = st->done[key];
        int op = (int)((r >> 32) % 10), rc;
        if (op < 6 || cur == 0) { /* set (or cas on an absent key) */
            int64_t v = version++;
            size_t len = value_len(key, v);
            make_value(key, v, buf, len);
            st->going[key] = v;
            rc = op == 9 ? mproc_dict_cas(w->d, &key, sizeof key, NULL, 0, buf, len) - 1
                         : mproc_dict_set(w->d, &key, sizeof key, buf, len);
        } else if (op < 9) { /* delete */
            st->going[key] = 0;
            rc = mproc_dict_delete(w->d, &key, sizeof key);
        } else { /* cas from the current value */
            unsigned char old[16 + 1500];
            size_t olen = value_len(key, cur);
            make_value(key, cur, old, olen);
            int64_t v = version++;
            size_t len = value_len(key, v);
            make_value(key, v, buf, len);
            st->going[key] = v;
            rc = mproc_dict_cas(w->d, &key, sizeof key, old, olen, buf, len) - 1;
        }
        if (rc != 0) {
            fprintf(stderr, "storm: op %d on key %" PRIu64 ": %s\n", op, key, mproc_strerror(rc));
            return 11;
        }
        st->done[key] = st->going[key];
    }
    return 0;
}

/* ---- readers without the lock see whole values ---------------------------------------------- */

struct churn {
    mproc_dict *d;
    _Atomic int stop;
};

/* Key 0 set again and again to values of changing sizes; other keys set and deleted, so
 * that the table is rebuilt and blocks are freed and reused under the readers. */
static int churn(void *arg)
{
    struct churn *c = arg;
    unsigned char buf[16 + 1500];
    for (int64_t v = 2; !atomic_load(&c->stop); v++) {
        uint64_t key = 0;
        size_t len = value_len(key, v);
        make_value(key, v, buf, len);
        if (mproc_dict_set(c->d, &key, sizeof key, buf, len) != 0)
            return 1;
        uint64_t other = 1 + (uint64_t)v % 5000;
        int rc = v % 3 == 0 ? mproc_dict_delete(c->d, &other, sizeof other)
                            : mproc_dict_set(c->d, &other, sizeof other, buf, len);
        if (rc != 0 && rc != -ENOENT)
            return 2;
    }
    return 0;
}

static void test_readers_see_whole_values(void **state)
{
    (void)state;
    struct churn *c =
        mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(c != MAP_FAILED);
    c->d = new_dict(0);
    atomic_store(&c->stop, 0);
    uint64_t key = 0;
    unsigned char first[16 + 1500];
    make_value(key, 1, first, value_len(key, 1));
    assert_ok(mproc_dict_set(c->d, &key, sizeof key, first, value_len(key, 1)));
    pid_t pid = mproc_test_fork(churn, c);
    unsigned char buf[16 + 1500];
    int64_t last = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len;
        assert_ok(mproc_dict_get(c->d, &key, sizeof key, buf, sizeof buf, &len));
        int64_t v = check_value(key, buf, len);
        if (v < last) /* garbled (-1), or older than one seen before */
            fail_msg("read %d: version %" PRId64 " after %" PRId64, i, v, last);
        last = v;
    }
    atomic_store(&c->stop, 1);
    assert_int_equal(mproc_test_exitcode(pid, 30), 0);
    printf("the writer reached version %" PRId64 " meanwhile\n", last);
    check_heap(c->d, NULL);
    mproc_dict_free(c->d);
    munmap(c, sizeof *c);
}

static void test_kill_storm(void **state)
{
    (void)state;
    const char *env = getenv("MPROC_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)(mproc_test_now() * 1e6);
    seed |= 1;
    printf("dict kill storm seed %" PRIu64 " (MPROC_TEST_SEED to replay)\n", seed);
    struct storm_state *st =
        mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(st != MAP_FAILED);
    memset(st, 0, sizeof *st);
    mproc_dict *d = new_dict(0);
    struct storm_worker w[STORM_WORKERS];
    pid_t pid[STORM_WORKERS];
    for (int i = 0; i < STORM_WORKERS; i++) {
        w[i] = (struct storm_worker){d, st, i, next_rand(&seed) | 1};
        pid[i] = mproc_test_fork(storm_worker, &w[i]);
    }
    int kills = 0;
    for (int k = 0; k < STORM_KILLS; k++) {
        mproc_test_sleep((double)(next_rand(&seed) % 30000) / 1e6);
        int i = (int)(next_rand(&seed) % STORM_WORKERS);
        kill(pid[i], SIGKILL);
        int code = mproc_test_exitcode(pid[i], 30);
        if (code != -SIGKILL)
            fail_msg("storm worker %d: exit %d", i, code);
        kills++;
        w[i].seed = next_rand(&seed) | 1;
        pid[i] = mproc_test_fork(storm_worker, &w[i]);
    }
    mproc_test_sleep(0.05);
    atomic_store(&st->stop, 1);
    for (int i = 0; i < STORM_WORKERS; i++)
        assert_int_equal(mproc_test_exitcode(pid[i], 30), 0);
    check_heap(d, NULL);
    size_t n, present = 0;
    assert_ok(mproc_dict_len(d, &n));
    for (uint64_t key = 0; key < STORM_WORKERS * STORM_KEYS; key++) {
        int64_t now = state_of(d, key);
        assert_int_equal(now, st->done[key]); /* every worker finished its last call */
        present += now != 0;
    }
    assert_int_equal(present, n);
    printf("%d kills, %zu keys present\n", kills, n);
    mproc_dict_free(d);
    munmap(st, sizeof *st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_basics),
        MPROC_TEST(test_cas_items_clear),
        MPROC_TEST(test_growth),
        MPROC_TEST(test_full),
        MPROC_TEST(test_churn_reuses_memory),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_no_memory),
        MPROC_TEST(test_killed_at_every_step),
#endif
        MPROC_TEST(test_processes_and_names),
        MPROC_TEST(test_bad_arguments),
        MPROC_TEST(test_readers_see_whole_values),
        MPROC_TEST(test_kill_storm),
    };
    return mproc_test_run(tests);
}
