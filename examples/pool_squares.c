/* examples/pool_squares.c - a pool of workers: map squares, then the classic sleep demo.
 *
 *   Python:  with Pool(8) as p:
 *                print(p.map(square, range(10)))
 *                p.map(time.sleep, [0.1] * 24)     # ~0.3 s instead of 2.4 s
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    long x;
    memcpy(&x, in, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    return 0;
}

static int nap(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out;
    (void)out_len;
    double s;
    memcpy(&s, in, sizeof s);
    struct timespec ts = {0, (long)(s * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
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
    mproc_pool *pool;
    int rc = mproc_pool_new(&pool, &(mproc_pool_opts){.workers = 8});
    if (rc < 0) {
        fprintf(stderr, "pool_squares: %s\n", mproc_strerror(rc));
        return 1;
    }
    long in[10], out[10];
    for (long i = 0; i < 10; i++)
        in[i] = i;
    rc = mproc_pool_map(pool, square, in, 10, sizeof *in, out, sizeof *out, NULL);
    if (rc == 0) {
        for (int i = 0; i < 10; i++)
            printf("%ld%s", out[i], i < 9 ? " " : "\n");
    }

    enum { N = 24 };
    double secs[N], serial = 0, t0;
    for (int i = 0; i < N; i++)
        secs[i] = 0.1;
    char done[N];
    t0 = now();
    for (int i = 0; i < N; i++) { /* the same tasks in a plain loop */
        size_t one = 1;
        nap(NULL, &secs[i], sizeof secs[i], &done[i], &one);
    }
    serial = now() - t0;
    t0 = now();
    if (rc == 0)
        rc = mproc_pool_map(pool, nap, secs, N, sizeof *secs, done, 1,
                            &(mproc_call_opts){.chunksize = 1});
    double elapsed = now() - t0;
    mproc_pool_close(pool);
    if (rc == 0)
        rc = mproc_pool_join(pool, 10);
    mproc_pool_free(pool);
    if (rc < 0) {
        fprintf(stderr, "pool_squares: %s\n", mproc_strerror(rc));
        return 1;
    }
    printf("%d x sleep(0.1) on 8 workers: serial %.3f s, pool %.3f s, speedup %.1fx\n", N, serial,
           elapsed, serial / elapsed);
    return 0;
}
