/* examples/pool_option.c - Monte Carlo pricing of a European call, on a pool.
 *
 *   Python:  with Pool() as p:
 *                sums = p.map(simulate, seeds)
 *
 * A European call (spot 100, strike 105, rate 5 %, volatility 20 %, one year) priced by
 * simulating 8 M terminal prices of geometric Brownian motion, in 32 tasks of 250,000
 * paths with their own seeds. The same tasks run serially, then on the pool: the two
 * prices must be identical (same seeds, same sums), and within 4 standard errors of the
 * Black-Scholes closed form.
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { TASKS = 32, PATHS = 250000 };
#define TWO_PI 6.283185307179586
static const double S0 = 100, K = 105, R = 0.05, SIGMA = 0.2, T = 1;

struct sums {
    double payoff, payoff2; /* sum of the discounted payoffs and of their squares */
};

/* xorshift64* random numbers, uniform in (0, 1) */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return ((double)((*s * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
}

static struct sums simulate(uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    double drift = (R - 0.5 * SIGMA * SIGMA) * T, vol = SIGMA * sqrt(T), disc = exp(-R * T);
    struct sums out = {0, 0};
    for (int i = 0; i < PATHS; i += 2) { /* Box-Muller: two normal numbers per pair */
        double u1 = uniform(&s), u2 = uniform(&s);
        double r = sqrt(-2 * log(u1)), z[2] = {r * cos(TWO_PI * u2), r * sin(TWO_PI * u2)};
        for (int k = 0; k < 2; k++) {
            double st = S0 * exp(drift + vol * z[k]);
            double pay = st > K ? disc * (st - K) : 0;
            out.payoff += pay;
            out.payoff2 += pay * pay;
        }
    }
    return out;
}

/* The task: a seed in, the sums of its paths out. */
static int simulate_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    (void)out_len;
    uint64_t seed;
    memcpy(&seed, in, sizeof seed);
    struct sums s = simulate(seed);
    memcpy(out, &s, sizeof s);
    return 0;
}

static double black_scholes_call(void)
{
    double d1 = (log(S0 / K) + (R + 0.5 * SIGMA * SIGMA) * T) / (SIGMA * sqrt(T));
    double d2 = d1 - SIGMA * sqrt(T);
    double n1 = 0.5 * erfc(-d1 / sqrt(2)), n2 = 0.5 * erfc(-d2 / sqrt(2));
    return S0 * n1 - K * exp(-R * T) * n2;
}

static void price(const struct sums *s, double *mean, double *stderr_)
{
    double a = 0, b = 0, n = (double)TASKS * PATHS;
    for (int i = 0; i < TASKS; i++) {
        a += s[i].payoff;
        b += s[i].payoff2;
    }
    *mean = a / n;
    *stderr_ = sqrt((b / n - *mean * *mean) / n);
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
    uint64_t seeds[TASKS];
    struct sums serial[TASKS], pooled[TASKS];
    for (int i = 0; i < TASKS; i++)
        seeds[i] = (uint64_t)i + 1;

    double t0 = now();
    for (int i = 0; i < TASKS; i++)
        serial[i] = simulate(seeds[i]);
    double t_serial = now() - t0;

    mproc_pool *pool;
    int rc = mproc_pool_new(&pool, NULL);
    if (rc < 0) {
        fprintf(stderr, "pool_option: %s\n", mproc_strerror(rc));
        return 1;
    }
    t0 = now();
    rc = mproc_pool_map(pool, simulate_task, seeds, TASKS, sizeof *seeds, pooled, sizeof *pooled,
                        NULL);
    double t_pool = now() - t0;
    int workers = mproc_pool_workers(pool);
    mproc_pool_close(pool);
    if (rc == 0)
        rc = mproc_pool_join(pool, 10);
    mproc_pool_free(pool);
    if (rc < 0) {
        fprintf(stderr, "pool_option: %s\n", mproc_strerror(rc));
        return 1;
    }

    double mc_serial, mc, se, bs = black_scholes_call();
    price(serial, &mc_serial, &se);
    price(pooled, &mc, &se);
    printf("European call S=%.0f K=%.0f r=%.2f sigma=%.2f T=%.0f, %d paths\n", S0, K, R, SIGMA, T,
           TASKS * PATHS);
    printf("  Monte Carlo    %.4f (standard error %.4f)\n", mc, se);
    printf("  Black-Scholes  %.4f\n", bs);
    printf("  difference     %+.4f (%.1f standard errors)\n", mc - bs, fabs(mc - bs) / se);
    printf("  %-8s %9s\n", "", "time");
    printf("  %-8s %7.3f s\n", "serial", t_serial);
    printf("  %-8s %7.3f s   (%d workers)\n", "pool", t_pool, workers);
    printf("  %-8s %7.2fx\n", "speedup", t_serial / t_pool);
    if (mc != mc_serial || fabs(mc - bs) > 4 * se) {
        fprintf(stderr, "pool_option: serial %.6f, pool %.6f, closed form %.6f\n", mc_serial, mc,
                bs);
        return 1;
    }
    printf("pool price equals serial price; within 4 standard errors of Black-Scholes: ok\n");
    return 0;
}
