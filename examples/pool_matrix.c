/* examples/pool_matrix.c - 64 products of random 200 x 200 matrices, on a pool.
 *
 *   Python:  with Pool() as p:
 *                checks = p.map(product, seeds)
 *
 * Each task makes two random matrices A and B from its seed, multiplies them and returns
 * the sum and the trace of C = A B. The same tasks run serially, then on the pool: the
 * results must be identical, and each sum must equal sum_k (column k of A's sum) x
 * (row k of B's sum), which is computed without the product.
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PRODUCTS = 64, DIM = 200 };

struct check {
    double sum, trace, expected_sum;
};

static double uniform(uint64_t *s) /* xorshift64*, in [-1, 1) */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) / 4503599627370496.0 - 1.0;
}

static int product(uint64_t seed, struct check *c)
{
    double *a = malloc(3 * DIM * DIM * sizeof *a);
    if (a == NULL)
        return -1;
    double *b = a + DIM * DIM, *p = b + DIM * DIM;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < 2 * DIM * DIM; i++)
        a[i] = uniform(&s);
    memset(p, 0, DIM * DIM * sizeof *p);
    for (int i = 0; i < DIM; i++) /* i-k-j: the inner loop walks rows */
        for (int k = 0; k < DIM; k++) {
            double aik = a[i * DIM + k];
            for (int j = 0; j < DIM; j++)
                p[i * DIM + j] += aik * b[k * DIM + j];
        }
    c->sum = c->trace = c->expected_sum = 0;
    for (int i = 0; i < DIM; i++) {
        c->trace += p[i * DIM + i];
        for (int j = 0; j < DIM; j++)
            c->sum += p[i * DIM + j];
    }
    for (int k = 0; k < DIM; k++) {
        double col = 0, row = 0;
        for (int i = 0; i < DIM; i++) {
            col += a[i * DIM + k];
            row += b[k * DIM + i];
        }
        c->expected_sum += col * row;
    }
    free(a);
    return 0;
}

static int product_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    (void)out_len;
    uint64_t seed;
    memcpy(&seed, in, sizeof seed);
    struct check c;
    if (product(seed, &c) < 0)
        return mproc_task_fail(t, -ENOMEM, "no memory for three %dx%d matrices", DIM, DIM);
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
    uint64_t seeds[PRODUCTS];
    struct check serial[PRODUCTS], pooled[PRODUCTS];
    for (int i = 0; i < PRODUCTS; i++)
        seeds[i] = (uint64_t)i + 1;

    double t0 = now();
    for (int i = 0; i < PRODUCTS; i++)
        if (product(seeds[i], &serial[i]) < 0) {
            fprintf(stderr, "pool_matrix: out of memory\n");
            return 1;
        }
    double t_serial = now() - t0;

    mproc_pool *pool;
    int rc = mproc_pool_new(&pool, NULL);
    if (rc < 0) {
        fprintf(stderr, "pool_matrix: %s\n", mproc_strerror(rc));
        return 1;
    }
    t0 = now();
    rc = mproc_pool_map(pool, product_task, seeds, PRODUCTS, sizeof *seeds, pooled, sizeof *pooled,
                        NULL);
    double t_pool = now() - t0;
    int workers = mproc_pool_workers(pool);
    mproc_pool_close(pool);
    if (rc == 0)
        rc = mproc_pool_join(pool, 10);
    mproc_pool_free(pool);
    if (rc < 0) {
        fprintf(stderr, "pool_matrix: %s\n", mproc_strerror(rc));
        return 1;
    }

    int bad = 0;
    for (int i = 0; i < PRODUCTS; i++) {
        if (memcmp(&serial[i], &pooled[i], sizeof serial[i]) != 0 ||
            fabs(pooled[i].sum - pooled[i].expected_sum) > 1e-9 * DIM * DIM * DIM)
            bad++;
    }
    printf("%d products of %dx%d matrices; product 0: sum %.6f, trace %.6f\n", PRODUCTS, DIM, DIM,
           pooled[0].sum, pooled[0].trace);
    printf("  %-8s %9s\n", "", "time");
    printf("  %-8s %7.3f s\n", "serial", t_serial);
    printf("  %-8s %7.3f s   (%d workers)\n", "pool", t_pool, workers);
    printf("  %-8s %7.2fx\n", "speedup", t_serial / t_pool);
    if (bad) {
        fprintf(stderr, "pool_matrix: %d products disagree\n", bad);
        return 1;
    }
    printf("all %d products equal the serial ones and match their row/column sums: ok\n", PRODUCTS);
    return 0;
}
