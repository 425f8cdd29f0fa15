/* bench/process.c - start + join of a child that returns at once.
 *
 * One repetition of each figure (microseconds per child), mproc first, then raw:
 *   process.start_join  mproc_process_new + start + join + exitcode + free
 *                       | raw: fork + _exit + waitpid, in C
 *
 * Child i exits with status i % 100 and the parent checks every exit status, on both sides.
 * Usage: process [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 */
#include "bench.h"

#include "mproc/error.h"
#include "mproc/process.h"

static uint64_t scaled(uint64_t n)
{
    return bench_scaled(n, 16);
}

static int child_fn(void *arg)
{
    return (int)(intptr_t)arg;
}

static double run_mproc(uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        int want = (int)(i % 100);
        mproc_process *p;
        BENCH_OK(mproc_process_new(&p, child_fn, (void *)(intptr_t)want, NULL));
        BENCH_OK(mproc_process_start(p));
        BENCH_OK(mproc_process_join(p, MPROC_FOREVER));
        int code = -1;
        int rc = mproc_process_exitcode(p, &code);
        if (rc != 1 || code != want)
            bench_die("process %llu: exitcode rc %d code %d, want %d", (unsigned long long)i, rc,
                      code, want);
        mproc_process_free(p);
    }
    return (bench_now() - t0) / (double)n * 1e6;
}

static double run_raw(uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        int want = (int)(i % 100);
        pid_t pid = fork();
        if (pid < 0)
            bench_die("fork: %s", strerror(errno));
        if (pid == 0)
            _exit(want);
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                bench_die("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != want)
            bench_die("raw child %llu: status 0x%x", (unsigned long long)i, (unsigned)st);
    }
    return (bench_now() - t0) / (double)n * 1e6;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fflush(NULL); /* nothing buffered may be duplicated into the children */
    uint64_t n = scaled(1000);
    bench_emit("process.start_join", "mproc", run_mproc(n), "us");
    bench_emit("process.start_join", "raw", run_raw(n), "us");
    return 0;
}
