/* bench/pool.c - the worker pool (mproc_pool) against a plain C loop and raw processes.
 *
 * One repetition of each figure, the mproc side first, then its C anchors:
 *   pool.imap.mem     peak RSS (MiB) of the calling process over an ordered imap of 10 M
 *                     generated 8-byte items, 2 workers | limit: the 64 MiB target
 *                     (measured first, in a fresh exec of this program, so nothing else
 *                     counts towards the peak)
 *   pool.imap.rate    items/s, ordered imap of x*x over 1 M generated 8-byte ints,
 *                     default chunksize, 2 workers
 *   pool.map.cs1      tasks/s, x*x on 8-byte ints, chunksize 1, 2 workers, 2 M items
 *   pool.map.default  items/s, x*x over 10 M 8-byte ints in malloc'd arrays, default
 *                     chunksize, 2 workers | serial: the same loop in this process;
 *                     indirect: that loop calling the task through a function pointer
 *                     (informative: the per-item floor of any worker, which cannot
 *                     inline the caller's function; measured here 1.5-2.2 ns a call
  *                     against 0.7-0.9 ns inlined); 2procs: two children forked and
 *                     warmed up before the clock, each running the indirect loop over its
 *                     half of shared arrays (informative: what two processes reach on
 *                     this machine at all; two loops at once share the memory bandwidth
 *                     and each runs slower than one alone)

 *   pool.map.shm      the same with both arrays in shared memory mapped before the pool
  *                     (zero-copy: read and written in place) | serial, indirect, 2procs

 *                     Both maps are warmed up: the same map runs once, untimed, before
 *                     the timed one, as the serial loop runs over arrays this process has
 *                     already touched. On this kind of VM a process's first touch of a
 *                     page costs ~5 us even when the page is in memory (shadow page
 *                     tables): a cold map.shm pays it in each worker for each page (150-
 *                     250 ms for the 160 MB here); workers keep their mappings, and the
 *                     pool gives each worker the same part of the arrays again (placement,
 *                     src/pool/dispatch.c), so only the first map over them pays it.
 *                     Each also prints where the time goes (`phase` lines: a second
 *                     pool created with .phase_times, warmed up the same way, runs the
 *                     map once more: ms per phase summed over the workers, and its
 *                     wall time), shown by bench/run below the table.
 *   pool.map.var      items/s, mproc_pool_map_var reversing 200 k byte strings of 10-1,000
 *                     bytes (lengths from a 64-bit LCG, byte k of item i 'a' + (i + k) %
 *                     26: the same strings bench/py_pool.py builds), default chunksize,
 *                     2 workers; warmed up once untimed (the strings and outputs of the
 *                     first map touch fresh pages), every output checked and freed
 *                     outside the timed region | python: Pool(2).map of the same
 *                     reverse over 200 k of them
 *   pool.apply.rtt    us per mproc_pool_apply of a task returning x + 1, 20 k calls
 *                     | raw: a spin-then-futex ping-pong between two processes
 *   pool.primes       s to count the primes below 3 M by trial division in 64 ranges,
 *                     2 workers | serial: the same function over the same ranges
 *   pool.map.uneven   s for a map of 400 sleeps, the first 40 of 5 ms and the rest of 0,
 *                     default chunksize, 2 workers | ideal: 0.100 s (the slow ones
 *                     shared evenly)
 *   pool.sleep24      s for 24 x sleep(0.1 s), 8 workers, chunksize 1 (pool created
 *                     beforehand) | ideal: 0.300 s
 *   pool.create       ms per pool: mproc_pool_new (2 workers) + close + join + free,
  *                     20 pools | raw: 2 x fork, then waitpid of both
 *   pool.create.forkserver, pool.create.spawn, pool.apply.rtt.forkserver,
 *   pool.apply.rtt.spawn  the same two figures for pools whose workers start by the
 *                     fork server or by spawn (mproc/init.h); one pool made first,
 *                     untimed (it starts the fork server) | python: Pool with that
 *                     start method (informative: the issue sets no target)

 *
 * Every result is checked (each x*x, each x + 1, the prime count against the known value,
 * the count of imap results and their order); a wrong answer exits 1.
 * Usage: pool [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 */
#include "bench.h"

#include "mproc/error.h"
#include "mproc/pool.h"

#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static double scale = 1.0;

static uint64_t scaled(uint64_t n)
{
    double v = (double)n * scale;
    return v < 16 ? 16 : (uint64_t)v;
}

/* ---- task functions ------------------------------------------------------------------ */

static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    return 0;
}

static int plus_one(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    if (in_len != sizeof(int64_t) || *out_len < sizeof(int64_t))
        return -EINVAL;
    int64_t x;
    memcpy(&x, in, sizeof x);
    x++;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

static int is_prime(uint64_t n)
{
    if (n < 2)
        return 0;
    if (n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return 0;
    return 1;
}

struct range {
    uint64_t lo, hi;
};

static uint64_t count_primes(uint64_t lo, uint64_t hi)
{
    uint64_t c = 0;
    for (uint64_t n = lo; n < hi; n++)
        c += (uint64_t)is_prime(n);
    return c;
}

static int primes_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    struct range r;
    memcpy(&r, in, sizeof r);
    uint64_t c = count_primes(r.lo, r.hi);
    memcpy(out, &c, sizeof c);
    return 0;
}

static int nap(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    double s;
    memcpy(&s, in, sizeof s);
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
    memset(out, 1, 1);
    return 0;
}

/* ---- pool.imap.mem (in a fresh exec of this program: --imap-mem N) ------------------ */

struct gen {
    uint64_t next, n;
};

static int gen_next(void *arg, void *item, size_t item_size)
{
    (void)item_size;
    struct gen *g = arg;
    if (g->next == g->n)
        return 0;
    int64_t x = (int64_t)(g->next++ % 1000003);
    memcpy(item, &x, sizeof x);
    return 1;
}

static int imap_mem_child(uint64_t n)
{
    mproc_pool *p;
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    struct gen g = {0, n};
    mproc_imap *it;
    BENCH_OK(mproc_pool_imap(p, square, gen_next, &g, sizeof(int64_t), sizeof(int64_t), NULL, &it));
    uint64_t got = 0;
    for (;;) {
        int64_t y;
        size_t idx;
        int rc = mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, MPROC_FOREVER);
        if (rc == -MPROC_EEOF)
            break;
        BENCH_OK(rc);
        int64_t x = (int64_t)(got % 1000003);
        if (idx != got || y != x * x)
            bench_die("imap item %llu: index %zu, value %lld", (unsigned long long)got, idx,
                      (long long)y);
        got++;
    }
    if (got != n)
        bench_die("imap: %llu results, want %llu", (unsigned long long)got, (unsigned long long)n);
    mproc_imap_free(it);
    BENCH_OK(mproc_pool_close(p));
    BENCH_OK(mproc_pool_join(p, MPROC_FOREVER));
    mproc_pool_free(p);
    struct rusage ru;
    BENCH_SYS(getrusage(RUSAGE_SELF, &ru));
    printf("%ld\n", ru.ru_maxrss); /* KiB */
    return 0;
}

/* Ordered imap of x*x over n generated items, default chunksize: items/s. */
static double run_imap_rate(mproc_pool *p, uint64_t n)
{
    struct gen g = {0, n};
    mproc_imap *it;
    double t0 = bench_now();
    BENCH_OK(mproc_pool_imap(p, square, gen_next, &g, sizeof(int64_t), sizeof(int64_t), NULL, &it));
    uint64_t got = 0;
    int64_t y;
    size_t idx;
    int rc;
    while ((rc = mproc_imap_next(it, &y, sizeof y, NULL, &idx, NULL, MPROC_FOREVER)) == 0) {
        int64_t x = (int64_t)(got % 1000003);
        if (idx != got || y != x * x)
            bench_die("imap rate item %llu: index %zu, value %lld", (unsigned long long)got, idx,
                      (long long)y);
        got++;
    }
    double t = bench_now() - t0;
    if (rc != -MPROC_EEOF || got != n)
        bench_die("imap rate: %llu results (%d), want %llu", (unsigned long long)got, rc,
                  (unsigned long long)n);
    mproc_imap_free(it);
    return (double)n / t;
}

static double run_imap_mem(const char *self, uint64_t n)
{
    int fd[2];
    BENCH_SYS(pipe2(fd, O_CLOEXEC));
    pid_t pid = bench_fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        char arg[32];
        snprintf(arg, sizeof arg, "%llu", (unsigned long long)n);
        execl(self, self, "--imap-mem", arg, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[64] = {0};
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd[0], buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd[0]);
    bench_reap(pid, "imap child");
    long kib = atol(buf);
    if (kib <= 0)
        bench_die("imap child printed %s", buf);
    return (double)kib / 1024.0;
}

/* ---- pool.map.cs1 and pool.map.default --------------------------------------------- */

static void check_squares(const int64_t *out, uint64_t n, const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (out[i] != (int64_t)(i * i))
            bench_die("%s: out[%llu] = %lld", what, (unsigned long long)i, (long long)out[i]);
}

/* A map, then where its time went (see the header): `phase <id> <phase> <ms>` lines. */
static void map_phases(const char *id, const int64_t *in, int64_t *out, uint64_t n)
{
    mproc_pool *p;
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .phase_times = 1}));
    BENCH_OK(mproc_pool_map(p, square, in, n, sizeof *in, out, sizeof *out, NULL)); /* warm */
    mproc_pool_stats a, b;
    BENCH_OK(mproc_pool_stats_get(p, &a, NULL, 0));
    double t0 = bench_now();
    BENCH_OK(mproc_pool_map(p, square, in, n, sizeof *in, out, sizeof *out, NULL));
    double wall = bench_now() - t0;
    BENCH_OK(mproc_pool_stats_get(p, &b, NULL, 0));
    check_squares(out, n, id);
    BENCH_OK(mproc_pool_close(p));
    BENCH_OK(mproc_pool_join(p, MPROC_FOREVER));
    mproc_pool_free(p);
    const struct {
        const char *name;
        uint64_t a, b;
    } ph[] = {{"dispatch", a.ns.dispatch, b.ns.dispatch},
              {"fault", a.ns.fault, b.ns.fault},
              {"copy", a.ns.copy, b.ns.copy},
              {"run", a.ns.run, b.ns.run},
              {"publish", a.ns.publish, b.ns.publish},
              {"settle", a.ns.settle, b.ns.settle}};
    for (size_t i = 0; i < sizeof ph / sizeof ph[0]; i++)
        printf("phase %s %s %.3f\n", id, ph[i].name, (double)(ph[i].b - ph[i].a) / 1e6);
    printf("phase %s wall %.3f\n", id, wall * 1e3);
    fflush(stdout);
}

static double run_map(mproc_pool *p, const int64_t *in, int64_t *out, uint64_t n, size_t cs,
                      const char *what)
{
    memset(out, 0, n * sizeof *out);
    double t0 = bench_now();
    BENCH_OK(mproc_pool_map(p, square, in, n, sizeof *in, out, sizeof *out,
                            &(mproc_call_opts){.chunksize = cs}));
    double t = bench_now() - t0;
    check_squares(out, n, what);
    return (double)n / t;
}

/* The serial anchor: the same task function, called in a loop (the compiler sees it). */
static double run_serial(const int64_t *in, int64_t *out, uint64_t n)
{
    memset(out, 0, n * sizeof *out);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        size_t ol = sizeof *out;
        square(NULL, &in[i], sizeof *in, &out[i], &ol);
    }
    double t = bench_now() - t0;
    check_squares(out, n, "serial");
    return (double)n / t;
}

/* The per-item floor of any pool: the same loop calling the task through a function
 * pointer the compiler cannot see through, as a worker must (the serial loop above has
 * it inlined, and unrolled). */
static mproc_task_fn volatile opaque_task = square;

static double run_indirect(const int64_t *in, int64_t *out, uint64_t n)
{
    memset(out, 0, n * sizeof *out);
    mproc_task_fn fn = opaque_task;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        size_t ol = sizeof *out;
        (void)fn(NULL, &in[i], sizeof *in, &out[i], &ol);
    }
    double t = bench_now() - t0;
    check_squares(out, n, "indirect");
    return (double)n / t;
}

/* What two processes can do at all on this machine: two children forked and warmed up
 * before the clock starts, each running the indirect loop over its half of shared arrays,
 * started together through a pipe. No pool does better than this (it has the same two
 * CPUs, the same memory bandwidth and must call through a pointer too); on this VM two
 * loops at once run slower per item than one (they share the memory bandwidth), which is
 * why 2 x indirect is not reached. */
static void read_bytes(int fd, char *buf, size_t n, const char *what)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            bench_die("%s: a child ended early", what);
        got += r > 0 ? (size_t)r : 0;
    }
}

static double run_two_procs(uint64_t n)
{
    int64_t *in = bench_shared(n * sizeof *in), *out = bench_shared(n * sizeof *out);
    for (uint64_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    int go[2], ready[2];
    if (pipe(go) != 0 || pipe(ready) != 0)
        bench_die("pipe");
    pid_t kid[2];
    for (int w = 0; w < 2; w++) {
        kid[w] = bench_fork();
        if (kid[w] == 0) {
            uint64_t a = (uint64_t)w * n / 2, b = (uint64_t)(w + 1) * n / 2;
            mproc_task_fn fn = opaque_task;
            for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up, untimed */
                if (pass == 1) {
                    char c;
                    if (read(go[0], &c, 1) != 1)
                        _exit(1);
                }
                for (uint64_t i = a; i < b; i++) {
                    size_t ol = sizeof *out;
                    (void)fn(NULL, &in[i], sizeof *in, &out[i], &ol);
                }
                if (write(ready[1], "r", 1) != 1)
                    _exit(1);
            }
            _exit(0);
        }
    }
    char c[2];
    read_bytes(ready[0], c, 2, "two procs: warm-up");
    memset(out, 0, n * sizeof *out);
    double t0 = bench_now();
    if (write(go[1], "gg", 2) != 2)
        bench_die("two procs: write");
    read_bytes(ready[0], c, 2, "two procs: run");
    double t = bench_now() - t0;
    for (int w = 0; w < 2; w++)
        bench_reap(kid[w], "two procs");
    check_squares(out, n, "two procs");
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    munmap(in, n * sizeof *in);
    munmap(out, n * sizeof *out);
    return (double)n / t;
}

/* ---- pool.map.var -------------------------------------------------------------------- */

static int reverse_bytes(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    if (in_len > *out_len)
        return -EMSGSIZE;
    const unsigned char *s = in;
    unsigned char *d = out;
    for (size_t k = 0; k < in_len; k++)
        d[k] = s[in_len - 1 - k];
    *out_len = in_len;
    return 0;
}

static mproc_item *var_strings(uint64_t n)
{
    mproc_item *v = malloc(n * sizeof *v);
    if (v == NULL)
        bench_die("malloc");
    uint64_t x = 1;
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        size_t len = 10 + (size_t)((x >> 33) % 991);
        unsigned char *d = malloc(len);
        if (d == NULL)
            bench_die("malloc");
        for (size_t k = 0; k < len; k++)
            d[k] = (unsigned char)('a' + (i + k) % 26);
        v[i] = (mproc_item){d, len};
    }
    return v;
}

static double run_map_var(mproc_pool *p, const mproc_item *in, uint64_t n)
{
    mproc_item *out = malloc(n * sizeof *out);
    if (out == NULL)
        bench_die("malloc");
    double t = 0;
    for (int round = 0; round < 2; round++) { /* the first warms up (see the header) */
        double t0 = bench_now();
        BENCH_OK(mproc_pool_map_var(p, reverse_bytes, in, n, out, NULL));
        t = bench_now() - t0;
        for (uint64_t i = 0; i < n; i++) {
            const unsigned char *s = in[i].data, *d = out[i].data;
            if (out[i].len != in[i].len)
                bench_die("map_var: item %llu has %zu bytes", (unsigned long long)i, out[i].len);
            for (size_t k = 0; k < in[i].len; k++)
                if (d[k] != s[in[i].len - 1 - k])
                    bench_die("map_var: item %llu is wrong", (unsigned long long)i);
            mproc_item_free(&out[i]);
        }
    }
    free(out);
    return (double)n / t;
}

/* ---- pool.apply.rtt ------------------------------------------------------------------ */

static double run_apply(mproc_pool *p, uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        int64_t x = (int64_t)i, y = 0;
        size_t len = 0;
        BENCH_OK(
            mproc_pool_apply(p, plus_one, &x, sizeof x, &y, sizeof y, &len, NULL, MPROC_FOREVER));
        if (len != sizeof y || y != x + 1)
            bench_die("apply %llu: got %lld (len %zu)", (unsigned long long)i, (long long)y, len);
    }
    return (bench_now() - t0) / (double)n * 1e6;
}

/* Raw anchor: two words in shared memory, ping (parent -> child) and pong (back). A
 * waiter spins briefly (about 20 us) on its word, then marks it SLEEPING with a CAS and
 * sleeps in FUTEX_WAIT; the other side swaps the new value in and wakes only if the mark
 * was set. Values are sequence numbers shifted left by one; bit 0 is the mark. */

#define SLEEPING 1u
#define SPIN_NS 20000.0

struct pingpong {
    _Alignas(64) uint32_t ping;
    _Alignas(64) uint32_t pong;
    int ready;
};

static void futex_wait(uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, w, FUTEX_WAIT, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wait until *w != old; returns the new value (without the mark). */
static uint32_t pp_wait(uint32_t *w, uint32_t old)
{
    uint32_t v;
    double t0 = 0;
    for (unsigned spins = 0;; spins++) {
        v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
        if (v != old)
            return v & ~SLEEPING;
        if ((spins & 63) == 63) {
            double t = bench_now();
            if (t0 == 0)
                t0 = t;
            else if ((t - t0) * 1e9 > SPIN_NS)
                break;
        }
        __builtin_ia32_pause();
    }
    for (;;) {
        uint32_t expect = old;
        if (__atomic_compare_exchange_n(w, &expect, old | SLEEPING, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE) ||
            expect == (old | SLEEPING))
            futex_wait(w, old | SLEEPING);
        v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
        if ((v & ~SLEEPING) != old)
            return v & ~SLEEPING;
    }
}

static void pp_post(uint32_t *w, uint32_t v)
{
    if (__atomic_exchange_n(w, v, __ATOMIC_ACQ_REL) & SLEEPING)
        futex_wake(w);
}

static double run_raw_pingpong(uint64_t n)
{
    struct pingpong *pp = bench_shared(sizeof *pp);
    pid_t pid = bench_fork();
    if (pid == 0) {
        bench_set_flag(&pp->ready, 1);
        uint32_t seen = 0;
        for (uint64_t i = 0; i < n; i++) {
            seen = pp_wait(&pp->ping, seen);
            if (seen != (uint32_t)((i + 1) << 1))
                _exit(1);
            pp_post(&pp->pong, seen + 2); /* the answer: x + 1 */
        }
        _exit(0);
    }
    bench_wait_flag(&pp->ready, 1);
    uint32_t last = 0;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)((i + 1) << 1);
        pp_post(&pp->ping, x);
        last = pp_wait(&pp->pong, last);
        if (last != x + 2)
            bench_die("raw ping-pong %llu: got %u want %u", (unsigned long long)i, last, x + 2);
    }
    double t = bench_now() - t0;
    bench_reap(pid, "ping-pong child");
    munmap(pp, sizeof *pp);
    return t / (double)n * 1e6;
}

/* ---- pool.primes ---------------------------------------------------------------------- */

#define PRIMES_RANGES 64

/* The number of primes below n, for the n used here (checked on both sides). */
static uint64_t primes_below(uint64_t n)
{
    switch (n) {
    case 3000000:
        return 216816;
    case 300000:
        return 25997;
    default:
        return 0; /* unknown: both sides must then agree with each other */
    }
}

static void make_ranges(struct range *r, uint64_t n)
{
    for (uint64_t i = 0; i < PRIMES_RANGES; i++) {
        r[i].lo = n * i / PRIMES_RANGES;
        r[i].hi = n * (i + 1) / PRIMES_RANGES;
    }
}

static double run_primes_pool(mproc_pool *p, uint64_t n, uint64_t *count)
{
    struct range r[PRIMES_RANGES];
    uint64_t c[PRIMES_RANGES] = {0};
    make_ranges(r, n);
    double t0 = bench_now();
    BENCH_OK(mproc_pool_map(p, primes_task, r, PRIMES_RANGES, sizeof *r, c, sizeof *c,
                            &(mproc_call_opts){.chunksize = 1}));
    double t = bench_now() - t0;
    *count = 0;
    for (int i = 0; i < PRIMES_RANGES; i++)
        *count += c[i];
    return t;
}

static double run_primes_serial(uint64_t n, uint64_t *count)
{
    struct range r[PRIMES_RANGES];
    uint64_t c[PRIMES_RANGES] = {0};
    make_ranges(r, n);
    double t0 = bench_now();
    for (int i = 0; i < PRIMES_RANGES; i++) {
        size_t ol = sizeof c[i];
        primes_task(NULL, &r[i], sizeof r[i], &c[i], &ol);
    }
    double t = bench_now() - t0;
    *count = 0;
    for (int i = 0; i < PRIMES_RANGES; i++)
        *count += c[i];
    return t;
}

/* ---- pool.map.uneven ------------------------------------------------------------------ */

enum { UNEVEN_N = 400, UNEVEN_SLOW = 40 };
#define UNEVEN_SLOW_S 0.005

static double run_uneven(mproc_pool *p)
{
    double secs[UNEVEN_N];
    unsigned char done[UNEVEN_N] = {0};
    for (int i = 0; i < UNEVEN_N; i++)
        secs[i] = i < UNEVEN_SLOW ? UNEVEN_SLOW_S : 0;
    double t0 = bench_now();
    BENCH_OK(mproc_pool_map(p, nap, secs, UNEVEN_N, sizeof *secs, done, 1, NULL));
    double t = bench_now() - t0;
    for (int i = 0; i < UNEVEN_N; i++)
        if (done[i] != 1)
            bench_die("uneven: task %d did not run", i);
    return t;
}

/* ---- pool.sleep24 --------------------------------------------------------------------- */

static double run_sleep24(void)
{
    mproc_pool *p;
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 8}));
    double secs[24];
    unsigned char done[24] = {0};
    for (int i = 0; i < 24; i++)
        secs[i] = 0.1;
    double t0 = bench_now();
    BENCH_OK(mproc_pool_map(p, nap, secs, 24, sizeof *secs, done, 1,
                            &(mproc_call_opts){.chunksize = 1}));
    double t = bench_now() - t0;
    for (int i = 0; i < 24; i++)
        if (done[i] != 1)
            bench_die("sleep24: task %d did not run", i);
    BENCH_OK(mproc_pool_close(p));
    BENCH_OK(mproc_pool_join(p, MPROC_FOREVER));
    mproc_pool_free(p);
    return t;
}

/* ---- pool.create ---------------------------------------------------------------------- */

static double run_create(uint64_t n, mproc_start_method m)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        mproc_pool *p;
        BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = m}));
        if (mproc_pool_workers(p) != 2)
            bench_die("pool.create: %d workers", mproc_pool_workers(p));
        BENCH_OK(mproc_pool_close(p));
        BENCH_OK(mproc_pool_join(p, MPROC_FOREVER));
        mproc_pool_free(p);
    }
    return (bench_now() - t0) / (double)n * 1e3;
}

static double run_create_raw(uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        pid_t a = bench_fork();
        if (a == 0)
            _exit(0);
        pid_t b = bench_fork();
        if (b == 0)
            _exit(0);
        bench_reap(a, "raw child a");
        bench_reap(b, "raw child b");
    }
    return (bench_now() - t0) / (double)n * 1e3;
}

int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0) /* a spawned worker or the fork server stays in it */
        return 2;
    const char *s = getenv("BENCH_SCALE");
    if (s != NULL && atof(s) > 0)
        scale = atof(s);
    if (argc == 3 && strcmp(argv[1], "--imap-mem") == 0)
        return imap_mem_child(strtoull(argv[2], NULL, 10));
    fflush(NULL); /* nothing buffered may be duplicated into the children */

    bench_emit("pool.imap.mem", "mproc", run_imap_mem("/proc/self/exe", scaled(10000000)), "MiB");
    bench_emit("pool.imap.mem", "limit", 64.0, "MiB");

    uint64_t n_big = scaled(10000000), n_cs1 = scaled(2000000);
    int64_t *in = malloc(n_big * sizeof *in), *out = malloc(n_big * sizeof *out);
    if (in == NULL || out == NULL)
        bench_die("malloc");
    for (uint64_t i = 0; i < n_big; i++)
        in[i] = (int64_t)i;

    /* The same arrays in shared memory mapped before the pool: read and written in place. */
    int64_t *sin = bench_shared(n_big * sizeof *sin), *sout = bench_shared(n_big * sizeof *sout);
    memcpy(sin, in, n_big * sizeof *sin);

    mproc_pool *p;
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));

    bench_emit("pool.imap.rate", "mproc", run_imap_rate(p, scaled(1000000)), "items/s");
    bench_emit("pool.map.cs1", "mproc", run_map(p, in, out, n_cs1, 1, "map cs1"), "tasks/s");
    (void)run_map(p, in, out, n_big, 0, "map default warm-up"); /* see the header */
    bench_emit("pool.map.default", "mproc", run_map(p, in, out, n_big, 0, "map default"),
               "items/s");
    bench_emit("pool.map.default", "serial", run_serial(in, out, n_big), "items/s");
    bench_emit("pool.map.default", "indirect", run_indirect(in, out, n_big), "items/s");
    bench_emit("pool.map.default", "2procs", run_two_procs(n_big), "items/s");

    (void)run_map(p, sin, sout, n_big, 0, "map shm warm-up");
    bench_emit("pool.map.shm", "mproc", run_map(p, sin, sout, n_big, 0, "map shm"), "items/s");
    bench_emit("pool.map.shm", "serial", run_serial(in, out, n_big), "items/s");
    bench_emit("pool.map.shm", "indirect", run_indirect(in, out, n_big), "items/s");
    bench_emit("pool.map.shm", "2procs", run_two_procs(n_big), "items/s");

    map_phases("pool.map.default", in, out, n_big);
    map_phases("pool.map.shm", sin, sout, n_big);
    free(in);
    free(out);
    munmap(sin, n_big * sizeof *sin);
    munmap(sout, n_big * sizeof *sout);

    uint64_t n_rtt = scaled(20000);
    bench_emit("pool.apply.rtt", "mproc", run_apply(p, n_rtt), "us");
    bench_emit("pool.apply.rtt", "raw", run_raw_pingpong(n_rtt), "us");

    uint64_t n_primes = scale >= 1 ? 3000000 : 300000, c_pool, c_serial;
    double t_pool = run_primes_pool(p, n_primes, &c_pool);
    double t_serial = run_primes_serial(n_primes, &c_serial);
    if (c_pool != c_serial || (primes_below(n_primes) && c_pool != primes_below(n_primes)))
        bench_die("primes below %llu: pool %llu, serial %llu, known %llu",
                  (unsigned long long)n_primes, (unsigned long long)c_pool,
                  (unsigned long long)c_serial, (unsigned long long)primes_below(n_primes));
    bench_emit("pool.primes", "mproc", t_pool, "s");
    bench_emit("pool.primes", "serial", t_serial, "s");
    bench_emit("pool.map.uneven", "mproc", run_uneven(p), "s");
    bench_emit("pool.map.uneven", "ideal", UNEVEN_SLOW * UNEVEN_SLOW_S / 2, "s");

    BENCH_OK(mproc_pool_close(p));
    BENCH_OK(mproc_pool_join(p, MPROC_FOREVER));
    mproc_pool_free(p);

    bench_emit("pool.sleep24", "mproc", run_sleep24(), "s");
    bench_emit("pool.sleep24", "ideal", 0.3, "s");

    uint64_t n_create = scaled(20);
    bench_emit("pool.create", "mproc", run_create(n_create, MPROC_START_FORK), "ms");
    bench_emit("pool.create", "raw", run_create_raw(n_create), "ms");

    /* the other start methods (informative), each warmed up by one pool untimed (the
       fork server starts with the first) */
    static const struct {
        mproc_start_method m;
        const char *create, *rtt;
    } methods[] = {{MPROC_START_FORKSERVER, "pool.create.forkserver", "pool.apply.rtt.forkserver"},
                   {MPROC_START_SPAWN, "pool.create.spawn", "pool.apply.rtt.spawn"}};
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
        (void)run_create(1, methods[k].m);
        bench_emit(methods[k].create, "mproc", run_create(n_create, methods[k].m), "ms");
        BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2, .start = methods[k].m}));
        bench_emit(methods[k].rtt, "mproc", run_apply(p, n_rtt), "us");
        mproc_pool_free(p);
    }

    /* last: its 200 k strings and outputs leave this process larger (malloc keeps freed
       memory), which measurably slowed the forks and the uneven map of the rows above */
    uint64_t n_var = scaled(200000);
    mproc_item *strings = var_strings(n_var);
    BENCH_OK(mproc_pool_new(&p, &(mproc_pool_opts){.workers = 2}));
    bench_emit("pool.map.var", "mproc", run_map_var(p, strings, n_var), "items/s");
    mproc_pool_free(p);
    for (uint64_t i = 0; i < n_var; i++)
        free(strings[i].data);
    free(strings);
    mproc_items_trim();
    return 0;
}
