/* bench/cli.c - `mproc run` against GNU parallel, xargs -P and a raw posix_spawn loop.
 *
 * Usage: cli [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 *
 * One repetition of each figure, mproc first, then its anchors (bench/run alternates the
 * invocations). The mproc command is <this program's dir>/../cli/mproc (or $MPROC_CLI).
 *   cli.true  jobs/s: 5,000 x `true ARG` at 2 at a time. Anchors: `parallel -j2` (on 500
 *             jobs: it is ~20x slower; rates are compared), `xargs -P2 -n1`, and `raw`:
 *             posix_spawn of /bin/true + waitpid with 2 in flight, written here.
 *   cli.echo  jobs/s: 1,000 x `echo ARG` with -k -j2, output checked line by line.
 *             Anchor: `parallel -k -j2` (300 jobs).
 *   cli.mem   peak RSS (MiB, wait4's ru_maxrss) of `mproc run --dry-run true` over 1 M
 *             input lines, output checked. Anchors: `parallel -k --dry-run` over 500 lines
 *             (its --dry-run manages ~100 lines/s here, and its peak RSS was the same on
 *             2,000 and 8,000 lines); `limit` 32 MiB, the target (advantage >= 1: under it).
 * Every side must exit 0; the anchors that are not installed are left out.
 */
#include "bench.h"

#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>

extern char **environ;

static char tmpdir[] = "/tmp/mproc-bench-cli-XXXXXX";

static unsigned long scaled(unsigned long n)
{
    return (unsigned long)bench_scaled(n, 10);
}

static int have(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char buf[4096];
    for (const char *p = path; *p;) {
        size_t l = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)l, p, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        p += l;
        if (*p == ':')
            p++;
    }
    return 0;
}

/* A file with the lines 1..n; its path. */
static const char *numbers(unsigned long n)
{
    static char path[8][256];
    static unsigned long made[8];
    static int nmade;
    for (int i = 0; i < nmade; i++)
        if (made[i] == n)
            return path[i];
    if (nmade == 8)
        bench_die("too many input files");
    char *p = path[nmade];
    snprintf(p, 256, "%s/in%lu", tmpdir, n);
    FILE *f = fopen(p, "w");
    if (!f)
        bench_die("%s: %s", p, strerror(errno));
    for (unsigned long i = 1; i <= n; i++)
        fprintf(f, "%lu\n", i);
    if (fclose(f) != 0)
        bench_die("%s: write failed", p);
    made[nmade++] = n;
    return p;
}

/* Run argv with stdin from `in` and stdout to `out` (NULL: /dev/null); seconds taken,
 * peak RSS in KiB into *rss. Fails the benchmark unless it exits 0. */
static double run(char **argv, const char *in, const char *out, long *rss)
{
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fi = open(in, O_RDONLY);
        int fo = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fi < 0 || fo < 0 || dup2(fi, 0) < 0 || dup2(fo, 1) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    struct rusage ru;
    bench_wait_ok(pid, &ru, argv[0]);
    double dt = bench_now() - t0;
    if (rss)
        *rss = ru.ru_maxrss;
    return dt;
}

/* The raw limit: posix_spawn("/bin/true", "i") + waitpid, 2 in flight. Jobs/s. */
static double raw_true(unsigned long n)
{
    double t0 = bench_now();
    unsigned long started = 0, done = 0;
    int inflight = 0;
    while (done < n) {
        while (inflight < 2 && started < n) {
            char num[32];
            snprintf(num, sizeof num, "%lu", started + 1);
            char *argv[] = {"true", num, NULL};
            pid_t pid;
            int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
            if (rc != 0)
                bench_die("posix_spawn: %s", strerror(rc));
            started++;
            inflight++;
        }
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            bench_die("waitpid: %s", strerror(errno));
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bench_die("raw true: status 0x%x", (unsigned)st);
        inflight--;
        done++;
    }
    return (double)n / (bench_now() - t0);
}

/* The output file holds exactly the lines 1..n in order, each as `prefix N`. */
static void check_lines(const char *path, unsigned long n, const char *prefix)
{
    FILE *f = fopen(path, "r");
    if (!f)
        bench_die("%s: %s", path, strerror(errno));
    char line[256], want[256];
    unsigned long i = 0;
    while (fgets(line, sizeof line, f)) {
        i++;
        snprintf(want, sizeof want, "%s%lu\n", prefix, i);
        if (strcmp(line, want) != 0)
            bench_die("%s: line %lu is '%s', want '%s'", path, i, line, want);
    }
    fclose(f);
    if (i != n)
        bench_die("%s: %lu lines, want %lu", path, i, n);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char mproc[4096];
    bench_mproc_cli(mproc, sizeof mproc);
    if (!mkdtemp(tmpdir))
        bench_die("mkdtemp: %s", strerror(errno));
    int par = have("parallel"), xargs = have("xargs");
    fflush(NULL);

    /* cli.true */
    unsigned long nt = scaled(5000), np = scaled(500);
    char *m_true[] = {mproc, "run", "-j2", "true", NULL};
    bench_emit("cli.true", "mproc", (double)nt / run(m_true, numbers(nt), NULL, NULL), "jobs/s");
    if (par) {
        char *p_true[] = {"parallel", "--will-cite", "-j2", "true", NULL};
        bench_emit("cli.true", "parallel", (double)np / run(p_true, numbers(np), NULL, NULL),
                   "jobs/s");
    }
    if (xargs) {
        char *x_true[] = {"xargs", "-P2", "-n1", "true", NULL};
        bench_emit("cli.true", "xargs", (double)nt / run(x_true, numbers(nt), NULL, NULL),
                   "jobs/s");
    }
    bench_emit("cli.true", "raw", raw_true(nt), "jobs/s");

    /* cli.echo */
    unsigned long ne = scaled(1000), npe = scaled(300);
    char out[300];
    snprintf(out, sizeof out, "%s/out", tmpdir);
    char *m_echo[] = {mproc, "run", "-k", "-j2", "echo", NULL};
    double dt = run(m_echo, numbers(ne), out, NULL);
    check_lines(out, ne, "");
    bench_emit("cli.echo", "mproc", (double)ne / dt, "jobs/s");
    if (par) {
        char *p_echo[] = {"parallel", "--will-cite", "-k", "-j2", "echo", NULL};
        dt = run(p_echo, numbers(npe), out, NULL);
        check_lines(out, npe, "");
        bench_emit("cli.echo", "parallel", (double)npe / dt, "jobs/s");
    }

    /* cli.mem */
    unsigned long nm = scaled(1000000), npm = scaled(500);
    long rss = 0;
    char *m_mem[] = {mproc, "run", "--dry-run", "true", NULL};
    run(m_mem, numbers(nm), out, &rss);
    check_lines(out, nm, "true ");
    bench_emit("cli.mem", "mproc", (double)rss / 1024.0, "MiB");
    if (par) {
        char *p_mem[] = {"parallel", "--will-cite", "-k", "--dry-run", "true", NULL};
        run(p_mem, numbers(npm), out, &rss);
        check_lines(out, npm, "true ");
        bench_emit("cli.mem", "parallel", (double)rss / 1024.0, "MiB");
    }
    bench_emit("cli.mem", "limit", 32.0, "MiB");

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        bench_die("cannot remove %s", tmpdir);
    return 0;
}
