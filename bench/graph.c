/* bench/graph.c - `mproc make` against GNU make and ninja on the same job graph.
 *
 * Usage: graph [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the graph)
 *
 * The graph: a layered DAG, 50 jobs wide and 40 layers deep (2,000 jobs), each job
 * depending on 2 jobs of the layer above and writing a small file (`echo jN > jN.out`),
 * 2 at a time. The same graph as a Jobfile, a Makefile and a build.ninja, made here in a
 * temporary directory; every output is checked after each build.
 *   graph.full  jobs/s, a full build from nothing (outputs and state removed first).
 *               Anchors: `make -j2`, `ninja -j2`.
 *   graph.noop  s, a run again with nothing changed. Anchors: `make -j2`, `ninja -j2`.
 *   graph.one   s, the input file of one job of the top layer changed (j0 reads in0.txt).
 *               Its output comes out the same, so mproc runs that one job and stops
 *               there (early cutoff); make and ninja rebuild everything below it by time
 *               stamps (about a fifth of the graph). Anchors: `make -j2`, `ninja -j2`.
 *   graph.fn    jobs/s, 100,000 function jobs (x + 1 on 8 bytes, independent) run by the
 *               library (mproc_graph_run, 2 at a time) with a state file; graph.fn.memory
 *               the same without a state (informative). Anchor: Ruffus's function jobs
 *               (bench/py_graph.py, 1,000 jobs: rates are compared).
 *   graph.mem   MiB, peak RSS (wait4) of `mproc make --dry-run` over a jobs file of 100,000
 *               jobs (parsed, checked and compared with its state) | limit: 64 MiB.
 * Ruffus (Debian's python3-ruffus) is measured by bench/py_graph.py: graph.full ruffus is
 * its shell jobs (os.system per job, independent: Ruffus has no cheap layered DAG of
 * 2,000 jobs), graph.fn ruffus its function jobs. The mproc command is <this program's
 * dir>/../cli/mproc (or $MPROC_CLI). Anchors that are not installed are left out
 * (Snakemake is not measured yet).
 */
#include "bench.h"

#ifdef BENCH_GRAPH_LIB
#include "mproc/graph.h"
#endif

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[] = "/tmp/mproc-bench-graph-XXXXXX";
static int width = 50, layers = 40;

static int have(const char *prog)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Run argv in dir, output to /dev/null; seconds. The benchmark fails unless it exits 0. */
static double run(char **argv)
{
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open("/dev/null", O_WRONLY);
        if (chdir(dir) < 0 || fo < 0 || dup2(fo, 1) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    bench_wait_ok(pid, NULL, argv[0]);
    return bench_now() - t0;
}

/* Peak RSS (MiB) of `mproc make --dry-run -f big` over n jobs written here. */
static double dry_run_rss(const char *mproc, int n)
{
    char path[300];
    snprintf(path, sizeof path, "%s/big", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        bench_die("%s: %s", path, strerror(errno));
    for (int j = 0; j < n; j++) { /* a chain, and 2 dependencies where there are */
        if (j < 2)
            fprintf(f, "b%d:\n", j);
        else
            fprintf(f, "b%d: b%d b%d\n", j, j - 1, j / 2);
        fprintf(f, "    out: b%d.out\n    run: echo b%d > b%d.out\n", j, j, j);
    }
    if (fclose(f) != 0)
        bench_die("%s: write failed", path);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open("/dev/null", O_WRONLY);
        if (chdir(dir) < 0 || fo < 0 || dup2(fo, 1) < 0)
            _exit(126);
        execl(mproc, mproc, "make", "--dry-run", "-f", "big", (char *)NULL);
        _exit(127);
    }
    struct rusage ru;
    bench_wait_ok(pid, &ru, "mproc make --dry-run");
    return (double)ru.ru_maxrss / 1024.0;
}

static void sh(const char *cmd)
{
    char buf[600];
    snprintf(buf, sizeof buf, "cd %s && %s", dir, cmd);
    if (system(buf) != 0)
        bench_die("%s failed", buf);
}

static int id(int layer, int k)
{
    return layer * width + k;
}

/* The three files, and j0's input. */
static void write_files(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/Jobfile", dir);
    FILE *jf = fopen(path, "w");
    snprintf(path, sizeof path, "%s/Makefile", dir);
    FILE *mf = fopen(path, "w");
    snprintf(path, sizeof path, "%s/build.ninja", dir);
    FILE *nf = fopen(path, "w");
    if (jf == NULL || mf == NULL || nf == NULL)
        bench_die("cannot write the build files in %s", dir);
    fprintf(mf, "all:");
    for (int k = 0; k < width; k++)
        fprintf(mf, " j%d.out", id(layers - 1, k));
    fprintf(mf, "\n");
    fprintf(nf, "rule job\n  command = $cmd\n");
    for (int l = 0; l < layers; l++)
        for (int k = 0; k < width; k++) {
            int j = id(l, k);
            char cmd[100];
            snprintf(cmd, sizeof cmd, "echo j%d > j%d.out", j, j);
            char deps[64] = "";
            if (l > 0)
                snprintf(deps, sizeof deps, "j%d j%d", id(l - 1, k), id(l - 1, (k + 1) % width));
            fprintf(jf, "j%d: %s\n    out: j%d.out\n    run: %s\n%s", j, deps, j, cmd,
                    j == 0 ? "    in: in0.txt\n" : "");
            fprintf(mf, "j%d.out:%s", j, j == 0 ? " in0.txt" : "");
            if (l > 0)
                fprintf(mf, " j%d.out j%d.out", id(l - 1, k), id(l - 1, (k + 1) % width));
            fprintf(mf, "\n\t%s\n", cmd);
            fprintf(nf, "build j%d.out: job%s", j, j == 0 ? " in0.txt" : "");
            if (l > 0)
                fprintf(nf, " j%d.out j%d.out", id(l - 1, k), id(l - 1, (k + 1) % width));
            fprintf(nf, "\n  cmd = %s\n", cmd);
        }
    if (fclose(jf) != 0 || fclose(mf) != 0 || fclose(nf) != 0)
        bench_die("writing the build files failed");
    sh("echo first > in0.txt");
}

static void check_outputs(void)
{
    for (int j = 0; j < width * layers; j++) {
        char path[300], line[64], want[64];
        snprintf(path, sizeof path, "%s/j%d.out", dir, j);
        FILE *f = fopen(path, "r");
        if (f == NULL || fgets(line, sizeof line, f) == NULL)
            bench_die("%s missing", path);
        fclose(f);
        snprintf(want, sizeof want, "j%d\n", j);
        if (strcmp(line, want) != 0)
            bench_die("%s: '%s'", path, line);
    }
}

static void clean(void)
{
    sh("rm -rf -- *.out .mproc .ninja_log .ninja_deps");
}

/* full, noop and one for one tool. */
static void measure(const char *variant, char **argv)
{
    int n = width * layers;
    write_files();
    clean();
    bench_emit("graph.full", variant, (double)n / run(argv), "jobs/s");
    check_outputs();
    bench_emit("graph.noop", variant, run(argv), "s");
    sh("sleep 0.01; echo second > in0.txt"); /* newer, and other contents */
    bench_emit("graph.one", variant, run(argv), "s");
    check_outputs();
}

#ifdef BENCH_GRAPH_LIB
static int plus_one(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    x++;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

/* n independent function jobs; jobs/s. Every output checked. */
static double run_fn_jobs(int n, const char *state)
{
    mproc_graph *g;
    if (mproc_graph_new(&g) != 0)
        bench_die("mproc_graph_new");
    char name[32];
    for (int i = 0; i < n; i++) {
        int64_t x = i;
        snprintf(name, sizeof name, "f%d", i);
        if (mproc_graph_add(
                g, name, &(mproc_job_opts){.fn = plus_one, .input = &x, .input_len = sizeof x}) !=
            0)
            bench_die("mproc_graph_add");
    }
    double t0 = bench_now();
    int rc = mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2, .state = state});
    double t = bench_now() - t0;
    if (rc != 0)
        bench_die("graph.fn: run: %d %s", rc, mproc_graph_error(g));
    for (int i = 0; i < n; i++) {
        const void *out;
        size_t len;
        int64_t y;
        snprintf(name, sizeof name, "f%d", i);
        if (mproc_graph_output(g, name, &out, &len) != 0 || len != sizeof y)
            bench_die("graph.fn: no output of %s", name);
        memcpy(&y, out, sizeof y);
        if (y != i + 1)
            bench_die("graph.fn: %s gave %lld", name, (long long)y);
    }
    mproc_graph_free(g);
    return (double)n / t;
}
#endif

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *s = getenv("BENCH_SCALE");
    if (s != NULL && atof(s) > 0 && atof(s) < 1)
        layers = (int)(layers * atof(s)) > 2 ? (int)(layers * atof(s)) : 2;
    char mproc[4096];
    bench_mproc_cli(mproc, sizeof mproc);
    if (!mkdtemp(dir))
        bench_die("mkdtemp: %s", strerror(errno));
    fflush(NULL);
    char *m[] = {mproc, "make", "-j2", NULL};
    measure("mproc", m);
    if (have("make")) {
        char *mk[] = {"make", "-s", "-j2", NULL};
        measure("make", mk);
    }
    if (have("ninja")) {
        char *nj[] = {"ninja", "-j2", NULL};
        measure("ninja", nj);
    }
    bench_emit("graph.mem", "mproc", dry_run_rss(mproc, (int)bench_scaled(100000, 1000)), "MiB");
    bench_emit("graph.mem", "limit", 64.0, "MiB");
    sh("rm -rf big .mproc");
#ifdef BENCH_GRAPH_LIB
    int nfn = (int)bench_scaled(100000, 1000);
    char st[300];
    snprintf(st, sizeof st, "%s/fn.db", dir);
    bench_emit("graph.fn", "mproc", run_fn_jobs(nfn, st), "jobs/s");
    bench_emit("graph.fn.memory", "mproc", run_fn_jobs(nfn, NULL), "jobs/s");
    sh("rm -f fn.db fn.db-wal fn.db-shm");
#endif
    clean();
    sh("rm -f Jobfile Makefile build.ninja in0.txt");
    if (rmdir(dir) != 0)
        bench_die("rmdir %s: %s", dir, strerror(errno));
    return 0;
}
