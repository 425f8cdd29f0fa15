/* examples/pool_pids.c - which worker process ran which task.
 *
 *   Python:  def whoami(i):
 *                time.sleep(0.05); return i, os.getpid()
 *            with Pool(4) as p:
 *                print(p.map(whoami, range(12), chunksize=1))
 *
 * 12 tasks of 50 ms on 4 workers: each returns the pid of the process that ran it and
 * the worker's slot. The program checks every pid against the pool's own list of
 * workers (mproc_pool_stats_get) and that none is the caller's.
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { TASKS = 12, WORKERS = 4 };

struct ran {
    pid_t pid;
    int worker;
};

static void nap_50ms(void)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int whoami(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out_len;
    nap_50ms();
    struct ran r = {getpid(), t != NULL ? mproc_task_worker(t) : -1};
    memcpy(out, &r, sizeof r);
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
    int in[TASKS];
    struct ran out[TASKS];
    for (int i = 0; i < TASKS; i++)
        in[i] = i;

    double t0 = now();
    for (int i = 0; i < TASKS; i++) {
        size_t len = sizeof out[i];
        whoami(NULL, &in[i], sizeof in[i], &out[i], &len);
    }
    double t_serial = now() - t0;

    mproc_pool *pool;
    int rc = mproc_pool_new(&pool, &(mproc_pool_opts){.workers = WORKERS});
    if (rc < 0) {
        fprintf(stderr, "pool_pids: %s\n", mproc_strerror(rc));
        return 1;
    }
    t0 = now();
    rc = mproc_pool_map(pool, whoami, in, TASKS, sizeof *in, out, sizeof *out,
                        &(mproc_call_opts){.chunksize = 1});
    double t_pool = now() - t0;
    mproc_worker_stats ws[WORKERS];
    mproc_pool_stats st;
    if (rc == 0)
        rc = mproc_pool_stats_get(pool, &st, ws, WORKERS);
    mproc_pool_close(pool);
    if (rc == 0)
        rc = mproc_pool_join(pool, 10);
    mproc_pool_free(pool);
    if (rc < 0) {
        fprintf(stderr, "pool_pids: %s\n", mproc_strerror(rc));
        return 1;
    }

    printf("caller pid %d; workers:", (int)getpid());
    for (int w = 0; w < WORKERS; w++)
        printf(" %d", (int)ws[w].pid);
    printf("\n");
    int bad = 0, used[WORKERS] = {0};
    for (int i = 0; i < TASKS; i++) {
        int w = out[i].worker;
        int ok = w >= 0 && w < WORKERS && out[i].pid == ws[w].pid && out[i].pid != getpid();
        printf("  task %2d ran in worker %d, pid %d%s\n", i, w, (int)out[i].pid,
               ok ? "" : "  <- not a worker of this pool");
        if (!ok)
            bad++;
        else
            used[w]++;
    }
    int busy = 0;
    for (int w = 0; w < WORKERS; w++)
        busy += used[w] > 0;
    printf("  %-8s %9s\n", "", "time");
    printf("  %-8s %7.3f s\n", "serial", t_serial);
    printf("  %-8s %7.3f s   (%d workers)\n", "pool", t_pool, WORKERS);
    printf("  %-8s %7.2fx\n", "speedup", t_serial / t_pool);
    if (bad) {
        fprintf(stderr, "pool_pids: %d tasks report a pid that is not a worker's\n", bad);
        return 1;
    }
    printf("every task ran in one of the pool's workers (%d of %d workers busy): ok\n", busy,
           WORKERS);
    return 0;
}
