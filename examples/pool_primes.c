/* examples/pool_primes.c - count the primes below 2,000,000 with a pool, and without.
 *
 *   Python:  with Pool() as p:
 *                total = sum(p.map(count_primes, ranges))
 *
 * The range [0, N) is cut into 64 slices; each task counts the primes in one slice by
 * trial division. The same function runs serially first, then on the pool (one worker
 * per usable CPU); both counts are checked against the known value pi(2,000,000).
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { SLICES = 64 };
#define N 2000000u
#define PI_N 148933u /* the number of primes below 2,000,000 */

struct slice {
    uint32_t lo, hi;
};

static uint32_t count_primes(uint32_t lo, uint32_t hi)
{
    uint32_t count = 0;
    for (uint32_t n = lo < 2 ? 2 : lo; n < hi; n++) {
        int prime = n == 2 || n % 2 != 0;
        for (uint32_t d = 3; prime && d * d <= n; d += 2)
            prime = n % d != 0;
        count += (uint32_t)prime;
    }
    return count;
}

/* The task: a slice in, its count out. */
static int primes_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    struct slice s;
    memcpy(&s, in, sizeof s);
    uint32_t c = count_primes(s.lo, s.hi);
    memcpy(out, &c, sizeof c);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    /* first: a worker started by spawn or the fork server becomes one here; run with
       --mproc-start=spawn (or forkserver) to have the pool start its workers that way */
    if (mproc_init(&argc, &argv) < 0) {
        fprintf(stderr, "usage: %s [--mproc-start=fork|forkserver|spawn]\n", argv[0]);
        return 2;
    }
    struct slice in[SLICES];
    uint32_t out[SLICES];
    for (uint32_t i = 0; i < SLICES; i++) {
        in[i].lo = (uint32_t)((uint64_t)N * i / SLICES);
        in[i].hi = (uint32_t)((uint64_t)N * (i + 1) / SLICES);
    }

    double t0 = now();
    uint32_t serial = 0;
    for (int i = 0; i < SLICES; i++)
        serial += count_primes(in[i].lo, in[i].hi);
    double t_serial = now() - t0;

    mproc_pool *pool;
    int rc = mproc_pool_new(&pool, NULL); /* one worker per usable CPU */
    if (rc < 0) {
        fprintf(stderr, "pool_primes: %s\n", mproc_strerror(rc));
        return 1;
    }
    t0 = now();
    rc = mproc_pool_map(pool, primes_task, in, SLICES, sizeof *in, out, sizeof *out,
                        &(mproc_call_opts){.chunksize = 1}); /* slices differ in cost */
    double t_pool = now() - t0;
    int workers = mproc_pool_workers(pool);
    mproc_pool_close(pool);
    if (rc == 0)
        rc = mproc_pool_join(pool, 10);
    mproc_pool_free(pool);
    if (rc < 0) {
        fprintf(stderr, "pool_primes: %s\n", mproc_strerror(rc));
        return 1;
    }
    uint32_t pooled = 0;
    for (int i = 0; i < SLICES; i++)
        pooled += out[i];

    printf("primes below %u: serial %u, pool %u (expected %u)\n", N, serial, pooled, PI_N);
    printf("  %-8s %9s\n", "", "time");
    printf("  %-8s %7.3f s\n", "serial", t_serial);
    printf("  %-8s %7.3f s   (%d workers)\n", "pool", t_pool, workers);
    printf("  %-8s %7.2fx\n", "speedup", t_serial / t_pool);
    if (serial != PI_N || pooled != PI_N) {
        fprintf(stderr, "pool_primes: wrong count\n");
        return 1;
    }
    return 0;
}
