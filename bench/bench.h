/* bench/bench.h - the little that every benchmark program shares.
 *
 * A benchmark program runs ONE repetition of each of its variants (the mproc side and
 * the raw C anchors, alternating) and prints one machine-readable line per figure:
 *
 *     <id> <variant> <value> <unit>
 *
 * bench/run calls it N times, alternating with the Python anchor script of the same
 * group, and turns the lines into the table and bench/results/latest.tsv.
 *
 * These are programs, not library code: on any failure (a call fails, a count or a
 * checksum is wrong) they print why on stderr and exit 1, which bench/run reports.
 */
#ifndef MPROC_BENCH_H
#define MPROC_BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC is system-wide: a time taken in a child compares with the parent's. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((format(printf, 1, 2), noreturn)) static inline void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Fail unless rc >= 0 (an mproc call). */
#define BENCH_OK(expr)                                                                             \
    do {                                                                                           \
        int bench_rc_ = (expr);                                                                    \
        if (bench_rc_ < 0)                                                                         \
            bench_die("%s:%d: %s = %d (%s)", __FILE__, __LINE__, #expr, bench_rc_,                 \
                      strerror(bench_rc_ > -4096 ? -bench_rc_ : 0));                               \
    } while (0)

/* Fail unless a libc call succeeded (returns >= 0, errno on failure). */
#define BENCH_SYS(expr)                                                                            \
    do {                                                                                           \
        if ((expr) < 0)                                                                            \
            bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #expr, strerror(errno));                \
    } while (0)

/* n scaled by $BENCH_SCALE (for quick runs; default 1), never below floor. */
static inline uint64_t bench_scaled(uint64_t n, uint64_t floor)
{
    static double scale = -1;
    if (scale < 0) {
        const char *s = getenv("BENCH_SCALE");
        scale = s != NULL && atof(s) > 0 ? atof(s) : 1.0;
    }
    double v = (double)n * scale;
    return v < (double)floor ? floor : (uint64_t)v;
}

static inline void bench_emit(const char *id, const char *variant, double value, const char *unit)
{
    printf("%s %s %.6g %s\n", id, variant, value, unit);
    fflush(stdout);
}

/* A zeroed anonymous shared mapping, inherited by children forked afterwards. */
/* The mproc command to measure: $MPROC_CLI, else <this program's dir>/../cli/mproc.
 * Exits (bench_die) when it is not built. */
static inline void bench_mproc_cli(char *buf, size_t n)
{
    const char *env = getenv("MPROC_CLI");
    if (env) {
        snprintf(buf, n, "%s", env);
    } else {
        char self[4000];
        ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
        if (l < 0)
            bench_die("readlink /proc/self/exe: %s", strerror(errno));
        self[l] = '\0';
        *strrchr(self, '/') = '\0';
        snprintf(buf, n, "%s/../cli/mproc", self);
    }
    if (access(buf, X_OK) != 0)
        bench_die("%s is not built", buf);
}

/* Wait for a child (wait4, so *ru, if not NULL, gets its usage) and fail the benchmark
 * unless it exited 0. */
static inline void bench_wait_ok(pid_t pid, struct rusage *ru, const char *what)
{
    int st;
    struct rusage local;
    while (wait4(pid, &st, 0, ru != NULL ? ru : &local) < 0)
        if (errno != EINTR)
            bench_die("wait4: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("%s: status 0x%x", what, (unsigned)st);
}

static inline void *bench_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        bench_die("mmap %zu: %s", size, strerror(errno));
    return p;
}

static inline pid_t bench_fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    return pid;
}

/* Reap pid; fail unless it exited 0. */
static inline void bench_reap(pid_t pid, const char *what)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            bench_die("waitpid %s: %s", what, strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("%s: child ended with status 0x%x", what, (unsigned)st);
}

/* Wait for a flag in shared memory set by another process: spin briefly, then yield
 * (the two may share one CPU on this busy machine). */
static inline void bench_wait_flag(int *flag, int want)
{
    unsigned spins = 0;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != want)
        if (++spins > 64)
            sched_yield();
}

static inline void bench_set_flag(int *flag, int v)
{
    __atomic_store_n(flag, v, __ATOMIC_RELEASE);
}

#endif
