/* tests/test_list.c - the shared list (deque): both ends, indexes, growth, processes,
 * names, and its users killed in the middle of every step.
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
#include <unistd.h>

static mproc_list *new_list(void)
{
    mproc_list *l;
    assert_ok(mproc_list_new(&l, NULL, 0, 0));
    return l;
}

static void check_heap(mproc_list *l)
{
    uint64_t used, free_bytes;
    assert_ok(mproc__container_check((struct mproc__container *)l, &used, &free_bytes));
}

static uint64_t pop_u64(mproc_list *l, bool front)
{
    void *p;
    size_t len;
    assert_ok(front ? mproc_list_popleft(l, &p, &len) : mproc_list_pop(l, &p, &len));
    assert_int_equal(len, 8);
    uint64_t v;
    memcpy(&v, p, 8);
    free(p);
    return v;
}

static void test_both_ends_and_indexes(void **state)
{
    (void)state;
    mproc_list *l = new_list();
    void *p;
    size_t len, n;
    assert_code(mproc_list_pop(l, &p, &len), -ERANGE);
    assert_code(mproc_list_popleft(l, &p, &len), -ERANGE);
    assert_code(mproc_list_get(l, 0, NULL, 0, &len), -ERANGE);
    /* [3 2 1 0 10 11 12] */
    for (uint64_t i = 0; i < 4; i++)
        assert_ok(mproc_list_appendleft(l, &i, sizeof i));
    for (uint64_t i = 10; i < 13; i++)
        assert_ok(mproc_list_append(l, &i, sizeof i));
    assert_ok(mproc_list_len(l, &n));
    assert_int_equal(n, 7);
    uint64_t want[] = {3, 2, 1, 0, 10, 11, 12}, v;
    for (long i = 0; i < 7; i++) {
        assert_ok(mproc_list_get(l, i, &v, sizeof v, &len));
        assert_int_equal(v, want[i]);
        assert_ok(mproc_list_get(l, i - 7, &v, sizeof v, &len)); /* Python's negative index */
        assert_int_equal(v, want[i]);
    }
    assert_code(mproc_list_get(l, 7, &v, sizeof v, &len), -ERANGE);
    assert_code(mproc_list_get(l, -8, &v, sizeof v, &len), -ERANGE);
    assert_code(mproc_list_get(l, 0, &v, 4, &len), -MPROC_ETOOSMALL);
    assert_int_equal(len, 8);
    /* set: a longer item and a 0-byte one */
    assert_ok(mproc_list_set(l, -1, "twelve and more", 15));
    assert_ok(mproc_list_set(l, 1, NULL, 0));
    char buf[32];
    assert_ok(mproc_list_get(l, 6, buf, sizeof buf, &len));
    assert_true(len == 15 && memcmp(buf, "twelve and more", 15) == 0);
    assert_ok(mproc_list_get(l, 1, NULL, 0, &len));
    assert_int_equal(len, 0);
    assert_code(mproc_list_set(l, 7, "x", 1), -ERANGE);
    /* items: a snapshot, first to last */
    mproc_list_item *items;
    assert_ok(mproc_list_items(l, &items, &n));
    assert_int_equal(n, 7);
    assert_int_equal(items[1].len, 0);
    memcpy(&v, items[4].data, 8);
    assert_int_equal(v, 10);
    free(items);
    /* pops from both ends */
    assert_int_equal(pop_u64(l, true), 3);
    assert_ok(mproc_list_popleft(l, &p, &len)); /* the 0-byte item */
    assert_int_equal(len, 0);
    free(p);
    assert_ok(mproc_list_pop(l, &p, &len));
    assert_int_equal(len, 15);
    free(p);
    assert_int_equal(pop_u64(l, false), 11);
    assert_ok(mproc_list_len(l, &n));
    assert_int_equal(n, 3);
    check_heap(l);
    assert_ok(mproc_list_clear(l));
    assert_ok(mproc_list_len(l, &n));
    assert_int_equal(n, 0);
    check_heap(l);
    assert_ok(mproc_list_append(l, "again", 5));
    mproc_list_free(l);
}

/* 100,000 items through a ring that grows while it wraps; FIFO and LIFO order kept. */
static void test_growth_order(void **state)
{
    (void)state;
    mproc_list *l = new_list();
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 10000; i++, next_in++)
            assert_ok(mproc_list_append(l, &next_in, sizeof next_in));
        for (int i = 0; i < 3000; i++, next_out++)
            assert_int_equal(pop_u64(l, true), next_out); /* FIFO from the front */
    }
    size_t n;
    assert_ok(mproc_list_len(l, &n));
    assert_int_equal(n, next_in - next_out);
    assert_int_equal(pop_u64(l, false), next_in - 1); /* LIFO from the back */
    uint64_t v;
    size_t len;
    assert_ok(mproc_list_get(l, 12345, &v, sizeof v, &len));
    assert_int_equal(v, next_out + 12345);
    check_heap(l);
    mproc_list_free(l);
}

struct producer {
    mproc_list *l;
    const char *name;
    uint64_t from, to;
};

static int producer(void *arg)
{
    struct producer *p = arg;
    mproc_list *l = p->l;
    if (p->name != NULL && mproc_list_new(&l, p->name, 0, 0) != 0)
        return 1;
    for (uint64_t i = p->from; i < p->to; i++)
        if (mproc_list_append(l, &i, sizeof i) != 0)
            return 2;
    if (p->name != NULL)
        mproc_list_free(l);
    return 0;
}

static void test_processes_and_names(void **state)
{
    (void)state;
    mproc_list *l = new_list();
    struct producer a = {l, NULL, 0, 20000}, b = {l, NULL, 20000, 40000};
    pid_t pa = mproc_test_fork(producer, &a), pb = mproc_test_fork(producer, &b);
    assert_int_equal(mproc_test_exitcode(pa, 30), 0);
    assert_int_equal(mproc_test_exitcode(pb, 30), 0);
    /* each producer's items are in its order; together they are all there */
    uint64_t last_a = 0, last_b = 20000, sum = 0;
    for (int i = 0; i < 40000; i++) {
        uint64_t v = pop_u64(l, true);
        if (v < 20000) {
            assert_true(v == last_a);
            last_a++;
        } else {
            assert_true(v == last_b);
            last_b++;
        }
        sum += v;
    }
    assert_int_equal(sum, (uint64_t)39999 * 40000 / 2);
    mproc_list_free(l);

    assert_ok(mproc_list_new(&l, "mproc-test-list", MPROC_SHM_CREATE | MPROC_SHM_AUTO_UNLINK, 0));
    struct producer c = {NULL, "mproc-test-list", 0, 100};
    pid_t pc = mproc_test_fork(producer, &c);
    assert_int_equal(mproc_test_exitcode(pc, 30), 0);
    size_t n;
    assert_ok(mproc_list_len(l, &n));
    assert_int_equal(n, 100);
    assert_string_equal(mproc_list_name(l), "/mproc-test-list");
    mproc_dict *d;
    assert_code(mproc_dict_new(&d, "mproc-test-list", 0, 0), -EINVAL); /* a list, not a dict */
    mproc_list_free(l);
    assert_code(mproc_list_new(&l, "mproc-test-list", 0, 0), -ENOENT); /* auto-unlinked */
}

static void test_full_and_bad_arguments(void **state)
{
    (void)state;
    mproc_list *l;
    assert_ok(mproc_list_new(&l, NULL, 0, 1));
    char item[900] = {0};
    int rc, k = 0;
    while ((rc = mproc_list_append(l, item, sizeof item)) == 0)
        k++;
    assert_code(rc, -ENOSPC);
    size_t n;
    assert_ok(mproc_list_len(l, &n));
    assert_int_equal(n, (size_t)k);
    void *p;
    size_t len;
    assert_ok(mproc_list_pop(l, &p, &len));
    free(p);
    assert_ok(mproc_list_append(l, item, sizeof item));
    check_heap(l);

    assert_code(mproc_list_append(NULL, "x", 1), -EINVAL);
    assert_code(mproc_list_append(l, NULL, 1), -EINVAL);
    assert_code(mproc_list_pop(l, NULL, &len), -EINVAL);
    assert_code(mproc_list_popleft(l, &p, NULL), -EINVAL);
    assert_code(mproc_list_get(l, 0, NULL, 1, &len), -EINVAL);
    assert_code(mproc_list_set(l, 0, NULL, 1), -EINVAL);
    assert_code(mproc_list_len(l, NULL), -EINVAL);
    assert_code(mproc_list_items(l, NULL, &n), -EINVAL);
    assert_code(mproc_list_unlink(l), -EINVAL);
    assert_code(mproc_list_clear((mproc_list *)(void *)"not a list"), -EINVAL);
    assert_code(mproc_list_new(NULL, NULL, 0, 0), -EINVAL);
    mproc_list_free(l);
    mproc_list_free(NULL);
}

/* ---- killed in the middle ------------------------------------------------------------------- */

#ifdef MPROC_FAULT_INJECTION
struct dying {
    mproc_list *l;
    const char *point;
    unsigned nth;
};

/* Appends 0..599, pops 200 from the front, 100 from the back, sets the rest to i + 1. */
static int die_at(void *arg)
{
    struct dying *k = arg;
    if (mproc_fault_set(k->point, MPROC_FAULT_KILL, &(mproc_fault_opts){.nth = k->nth}) < 0)
        return 1;
    for (uint64_t i = 0; i < 600; i++)
        if (mproc_list_append(k->l, &i, sizeof i) != 0)
            return 2;
    void *p;
    size_t len;
    for (int i = 0; i < 300; i++) {
        if ((i < 200 ? mproc_list_popleft(k->l, &p, &len) : mproc_list_pop(k->l, &p, &len)) != 0)
            return 3;
        free(p);
    }
    for (long i = 0; i < 300; i++) {
        uint64_t v = (uint64_t)i + 201;
        if (mproc_list_set(k->l, i, &v, sizeof v) != 0)
            return 4;
    }
    return 0;
}

static void test_killed_at_every_step(void **state)
{
    (void)state;
    const char *points[] = {"list.grow.copied", "list.push.written", "list.pop.committed",
                            "heap.free.linked", "heap.alloc.popped", "heap.bump.written"};
    unsigned nths[] = {1, 2, 5, 150, 450, 800};
    for (size_t i = 0; i < MPROC__ARRAY_LEN(points); i++) {
        for (size_t j = 0; j < MPROC__ARRAY_LEN(nths); j++) {
            mproc_list *l = new_list();
            struct dying k = {l, points[i], nths[j]};
            pid_t pid = mproc_test_fork(die_at, &k);
            int code = mproc_test_exitcode(pid, 30);
            if (code != -SIGKILL && code != 0)
                fail_msg("%s #%u: exit %d", points[i], nths[j], code);
            check_heap(l);
            /* what is left is a window of the sequence, each item i or i + 1 */
            mproc_list_item *items;
            size_t n;
            assert_ok(mproc_list_items(l, &items, &n));
            for (size_t m = 0; m < n; m++) {
                uint64_t v;
                assert_int_equal(items[m].len, 8);
                memcpy(&v, items[m].data, 8);
                if (m > 0) {
                    uint64_t prev;
                    memcpy(&prev, items[m - 1].data, 8);
                    assert_true(v == prev + 1 || v == prev); /* v == prev: where sets stopped */
                }
            }
            free(items);
            for (uint64_t v = 0; v < 100; v++) /* and it goes on */
                assert_ok(mproc_list_append(l, &v, sizeof v));
            check_heap(l);
            mproc_list_free(l);
        }
    }
}
#endif

/* ---- kill storm: producers and consumers killed from outside --------------------------------- */

enum { STORM_KILLS = 30 };

struct storm {
    mproc_list *l;
    _Atomic int stop;
    uint64_t seed;
};

static int storm_worker(void *arg)
{
    struct storm *s = arg;
    uint64_t r = s->seed ^ (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
    unsigned char buf[2000];
    while (!atomic_load(&s->stop)) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t len = 8 + (size_t)(r % 1900);
        memcpy(buf, &len, 8);
        memset(buf + 8, (int)(len & 0xff), len - 8);
        int rc;
        void *p;
        size_t got;
        switch ((r >> 20) % 4) {
        case 0:
            rc = mproc_list_append(s->l, buf, len);
            break;
        case 1:
            rc = mproc_list_appendleft(s->l, buf, len);
            break;
        default:
            rc =
                (r >> 30) & 1 ? mproc_list_pop(s->l, &p, &got) : mproc_list_popleft(s->l, &p, &got);
            if (rc == -ERANGE)
                rc = 0;
            else if (rc == 0)
                free(p);
        }
        if (rc != 0)
            return 1;
    }
    return 0;
}

static void test_kill_storm(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)(mproc_test_now() * 1e6) | 1;
    printf("list kill storm seed %" PRIu64 "\n", seed);
    struct storm *s =
        mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(s != MAP_FAILED);
    memset(s, 0, sizeof *s);
    s->l = new_list();
    s->seed = seed;
    pid_t pid[3];
    for (int i = 0; i < 3; i++)
        pid[i] = mproc_test_fork(storm_worker, s);
    for (int k = 0; k < STORM_KILLS; k++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        mproc_test_sleep((double)(seed % 30000) / 1e6);
        int i = (int)((seed >> 20) % 3);
        kill(pid[i], SIGKILL);
        assert_int_equal(mproc_test_exitcode(pid[i], 30), -SIGKILL);
        pid[i] = mproc_test_fork(storm_worker, s);
    }
    atomic_store(&s->stop, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mproc_test_exitcode(pid[i], 30), 0);
    check_heap(s->l);
    mproc_list_item *items;
    size_t n;
    assert_ok(mproc_list_items(s->l, &items, &n));
    for (size_t m = 0; m < n; m++) { /* every item whole */
        size_t len;
        assert_true(items[m].len >= 8);
        memcpy(&len, items[m].data, 8);
        assert_int_equal(len, items[m].len);
        for (size_t b = 8; b < len; b++)
            assert_int_equal(((const unsigned char *)items[m].data)[b], len & 0xff);
    }
    free(items);
    printf("%zu items left\n", n);
    mproc_list_free(s->l);
    munmap(s, sizeof *s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_both_ends_and_indexes),
        MPROC_TEST(test_growth_order),
        MPROC_TEST(test_processes_and_names),
        MPROC_TEST(test_full_and_bad_arguments),
#ifdef MPROC_FAULT_INJECTION
        MPROC_TEST(test_killed_at_every_step),
#endif
        MPROC_TEST(test_kill_storm),
    };
    return mproc_test_run(tests);
}
