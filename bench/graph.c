/* bench/graph.c - `mproc make` against GNU make, ninja and Snakemake on the same graphs.
 *
 * Usage: graph [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the graphs)
 *
 * The graphs, written here in a temporary directory as a Jobfile, a Makefile, a
 * build.ninja (and a Snakefile), 2 jobs at a time, every output checked after each build:
 *   the DAG: layered, 50 jobs wide and 200 layers deep (10,000 jobs), each job depending
 *     on 2 jobs of the layer above and writing a small file (`echo jN > jN.out`);
 *   the flat graph: 10,000 independent trivial jobs (`true`).
 *   graph.full  jobs/s, a full build of the DAG from nothing (outputs and state removed).
 *               Anchors: `make -j2`, `ninja -j2`; Snakemake (`--cores 2`) builds the first
 *               10 layers only (500 jobs: it takes 30-50 ms a job): rates are compared.
 *   graph.true  jobs/s, the flat graph. Anchors: `make -j2`, `ninja -j2`.
 *   graph.noop  s, the DAG run again with nothing changed. Anchors: make, ninja.
 *   graph.one   s, the input file of one job of the top layer changed (j0 reads in0.txt).
 *               Its output comes out the same, so mproc runs that one job and stops
 *               there (early cutoff); make and ninja rebuild everything below it by time
 *               stamps (about a fifth of the graph). Anchors: `make -j2`, `ninja -j2`.
 *   graph.resume  jobs, the first 40 layers of the DAG (2,000 jobs, each also appending
 *               its name to a log) killed (SIGKILL to the runner) once half the jobs ran,
 *               then run again without any flag: how many jobs that had completed ran
 *               again. "limit" is the jobs in flight at the kill (2): mproc's promise.
 *               make and ninja are shown (their jobs outlive the kill and finish).
 *   graph.fn    jobs/s, 100,000 function jobs (x + 1 on 8 bytes, independent) run by the
 *               library (mproc_graph_run, 2 at a time) with a state file; graph.fn.memory
 *               the same without a state (informative). Anchor: Ruffus's function jobs
 *               (bench/py_graph.py, 1,000 jobs: rates are compared).
 *   graph.mem   MiB, peak RSS (wait4) of `mproc make --dry-run` over a jobs file of 100,000
 *               jobs (parsed, checked and compared with its state) | limit: 64 MiB.
 * Ruffus (Debian's python3-ruffus) is measured by bench/py_graph.py: graph.full ruffus is
 * its shell jobs (os.system per job, independent: Ruffus has no cheap layered DAG of
 * 10,000 jobs), graph.fn ruffus its function jobs. The mproc command is <this program's
 * dir>/../cli/mproc (or $MPROC_CLI). Anchors that are not installed are left out.
 * One repetition builds 10,000 jobs seven times: about three minutes on 2 cores.
 */
#include "bench.h"

#ifdef BENCH_GRAPH_LIB
#include "mproc/graph.h"
#endif

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char dir[] = "/tmp/mproc-bench-graph-XXXXXX";
static int width = 50, layers = 200, flat = 10000;

static void nap(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) < 0 && errno == EINTR) {
    }
}

static int have(const char *prog)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Start argv in dir/sub (NULL: dir), its output to /dev/null. */
static pid_t start(char **argv, const char *sub)
{
    char where[400];
    snprintf(where, sizeof where, "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open("/dev/null", O_WRONLY);
        if (chdir(where) < 0 || fo < 0 || dup2(fo, 1) < 0 || dup2(fo, 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Run argv in dir/sub; seconds. The benchmark fails unless it exits 0. */
static double run_in(char **argv, const char *sub)
{
    double t0 = bench_now();
    bench_wait_ok(start(argv, sub), NULL, argv[0]);
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

static FILE *open_in(const char *sub, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        bench_die("cannot write %s: %s", path, strerror(errno));
    return f;
}

/* The DAG's first `nl` layers in dir/sub: Jobfile, Makefile, build.ninja, Snakefile, and
 * j0's input. With `log`, each job also appends its name to runs.log first. */
static void write_dag(const char *sub, int nl, int log)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        bench_die("mkdir %s: %s", path, strerror(errno));
    FILE *jf = open_in(sub, "Jobfile"), *mf = open_in(sub, "Makefile"),
         *nf = open_in(sub, "build.ninja"), *sf = open_in(sub, "Snakefile");
    fprintf(mf, "all:");
    for (int k = 0; k < width; k++)
        fprintf(mf, " j%d.out", id(nl - 1, k));
    fprintf(mf, "\n");
    fprintf(nf, "rule job\n  command = $cmd\n");
    /* Snakemake: one rule, its inputs looked up by the job's name */
    fprintf(sf, "DEPS = {\n");
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < width; k++) {
            int j = id(l, k);
            char cmd[160];
            if (log)
                snprintf(cmd, sizeof cmd, "echo j%d >> runs.log && echo j%d > j%d.out", j, j, j);
            else
                snprintf(cmd, sizeof cmd, "echo j%d > j%d.out", j, j);
            char deps[64] = "";
            if (l > 0)
                snprintf(deps, sizeof deps, "j%d j%d", id(l - 1, k), id(l - 1, (k + 1) % width));
            fprintf(jf, "j%d: %s\n    out: j%d.out\n    run: %s\n%s", j, deps, j, cmd,
                    j == 0 ? "    in: in0.txt\n" : "");
            fprintf(mf, "j%d.out:%s", j, j == 0 ? " in0.txt" : "");
            fprintf(nf, "build j%d.out: job%s", j, j == 0 ? " in0.txt" : "");
            fprintf(sf, "  'j%d': [%s", j, j == 0 ? "'in0.txt'" : "");
            if (l > 0) {
                fprintf(mf, " j%d.out j%d.out", id(l - 1, k), id(l - 1, (k + 1) % width));
                fprintf(nf, " j%d.out j%d.out", id(l - 1, k), id(l - 1, (k + 1) % width));
                fprintf(sf, "'j%d.out', 'j%d.out'", id(l - 1, k), id(l - 1, (k + 1) % width));
            }
            fprintf(mf, "\n\t%s\n", cmd);
            fprintf(nf, "\n  cmd = %s\n", cmd);
            fprintf(sf, "],\n");
        }
    fprintf(sf, "}\nrule all:\n  input: [");
    for (int k = 0; k < width; k++)
        fprintf(sf, "'j%d.out', ", id(nl - 1, k));
    fprintf(sf, "]\nrule job:\n  input: lambda w: DEPS[w.j]\n  output: '{j}.out'\n"
                "  wildcard_constraints: j='j[0-9]+'\n  shell: 'echo {wildcards.j} > {output}'\n");
    if (fclose(jf) != 0 || fclose(mf) != 0 || fclose(nf) != 0 || fclose(sf) != 0)
        bench_die("writing the build files failed");
    char cmd[500];
    snprintf(cmd, sizeof cmd, "echo first > %s/in0.txt", sub);
    sh(cmd);
}

/* The flat graph in dir/flat. */
static void write_flat(void)
{
    sh("mkdir -p flat");
    FILE *jf = open_in("flat", "Jobfile"), *mf = open_in("flat", "Makefile"),
         *nf = open_in("flat", "build.ninja");
    fprintf(mf, ".PHONY: all");
    for (int j = 0; j < flat; j++)
        fprintf(mf, " t%d", j);
    fprintf(mf, "\nall:");
    for (int j = 0; j < flat; j++)
        fprintf(mf, " t%d", j);
    fprintf(mf, "\n");
    fprintf(nf, "rule t\n  command = true\n");
    for (int j = 0; j < flat; j++) {
        fprintf(jf, "t%d:\n    run: true\n", j);
        fprintf(mf, "t%d:\n\ttrue\n", j);
        fprintf(nf, "build t%d: t\n", j);
    }
    if (fclose(jf) != 0 || fclose(mf) != 0 || fclose(nf) != 0)
        bench_die("writing the flat graph failed");
}

static void check_outputs(const char *sub, int nl)
{
    for (int j = 0; j < width * nl; j++) {
        char path[400], line[64], want[64];
        snprintf(path, sizeof path, "%s/%s/j%d.out", dir, sub, j);
        FILE *f = fopen(path, "r");
        if (f == NULL || fgets(line, sizeof line, f) == NULL)
            bench_die("%s missing", path);
        fclose(f);
        snprintf(want, sizeof want, "j%d\n", j);
        if (strcmp(line, want) != 0)
            bench_die("%s: '%s'", path, line);
    }
}

static void clean(const char *sub)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "cd %s && rm -rf -- *.out runs.log .mproc .ninja_log .ninja_deps .snakemake", sub);
    sh(cmd);
}

/* full, noop and one for one tool on the DAG (dir/dag). */
static void measure(const char *variant, char **argv)
{
    int n = width * layers;
    clean("dag");
    sh("echo first > dag/in0.txt");
    bench_emit("graph.full", variant, (double)n / run_in(argv, "dag"), "jobs/s");
    check_outputs("dag", layers);
    bench_emit("graph.noop", variant, run_in(argv, "dag"), "s");
    sh("sleep 0.01; echo second > dag/in0.txt"); /* newer, and other contents */
    bench_emit("graph.one", variant, run_in(argv, "dag"), "s");
    check_outputs("dag", layers);
    clean("dag");
}

/* Jobs named in dir/res/runs.log, counted by job; returns the lines. */
static int read_log(int *count, int n)
{
    memset(count, 0, (size_t)n * sizeof *count);
    char path[400];
    snprintf(path, sizeof path, "%s/res/runs.log", dir);
    FILE *f = fopen(path, "r");
    int lines = 0, j;
    if (f == NULL)
        return 0;
    while (fscanf(f, "j%d\n", &j) == 1) {
        lines++;
        if (j >= 0 && j < n)
            count[j]++;
    }
    fclose(f);
    return lines;
}

/* graph.resume for one tool: kill the runner once half the jobs logged, run again; the
 * jobs that had completed (their output written) and ran again. */
static void resume(const char *variant, char **argv, int nl)
{
    int n = width * nl;
    int *before = calloc((size_t)n, sizeof *before), *after = calloc((size_t)n, sizeof *after);
    char *done = calloc((size_t)n, 1);
    if (before == NULL || after == NULL || done == NULL)
        bench_die("no memory");
    clean("res");
    sh("echo first > res/in0.txt");
    pid_t pid = start(argv, "res");
    while (read_log(before, n) < n / 2)
        nap(0.002);
    kill(pid, SIGKILL);
    int st;
    (void)waitpid(pid, &st, 0);
    nap(0.3); /* what outlives the runner (make's, ninja's jobs) finishes */
    read_log(before, n);
    for (int j = 0; j < n; j++) { /* completed: its output is there and whole */
        char path[400], line[64] = "", want[64];
        snprintf(path, sizeof path, "%s/res/j%d.out", dir, j);
        snprintf(want, sizeof want, "j%d\n", j);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fgets(line, sizeof line, f) == NULL)
                line[0] = '\0';
            fclose(f);
        }
        done[j] = before[j] > 0 && strcmp(line, want) == 0;
    }
    run_in(argv, "res");
    check_outputs("res", nl);
    read_log(after, n);
    int redone = 0;
    for (int j = 0; j < n; j++)
        redone += done[j] && after[j] > before[j];
    bench_emit("graph.resume", variant, redone, "jobs");
    clean("res");
    free(before);
    free(after);
    free(done);
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
    if (s != NULL && atof(s) > 0 && atof(s) < 1) {
        layers = (int)(layers * atof(s)) > 4 ? (int)(layers * atof(s)) : 4;
        flat = (int)(flat * atof(s)) > 100 ? (int)(flat * atof(s)) : 100;
    }
    int res_layers = layers < 40 ? layers : 40, sm_layers = layers < 10 ? layers : 10;
    char mproc[4096];
    bench_mproc_cli(mproc, sizeof mproc);
    if (!mkdtemp(dir))
        bench_die("mkdtemp: %s", strerror(errno));
    fflush(NULL);
    write_dag("dag", layers, 0);
    write_dag("res", res_layers, 1);
    write_flat();
    int has_make = have("make"), has_ninja = have("ninja");
    char *m[] = {mproc, "make", "-j2", NULL}, *mk[] = {"make", "-s", "-j2", NULL},
         *nj[] = {"ninja", "-j2", NULL};
    measure("mproc", m);
    if (has_make)
        measure("make", mk);
    if (has_ninja)
        measure("ninja", nj);
    bench_emit("graph.noop", "limit", 0.2, "s"); /* the absolute bound */
    if (have("snakemake")) { /* 500 jobs of the DAG: Snakemake takes 30-50 ms a job */
        write_dag("sm", sm_layers, 0);
        char *sk[] = {"snakemake", "--cores", "2", "--quiet", NULL};
        bench_emit("graph.full", "snakemake", (double)(width * sm_layers) / run_in(sk, "sm"),
                   "jobs/s");
        check_outputs("sm", sm_layers);
        sh("rm -rf sm");
    }
    bench_emit("graph.true", "mproc", (double)flat / run_in(m, "flat"), "jobs/s");
    sh("rm -rf flat/.mproc");
    if (has_make)
        bench_emit("graph.true", "make", (double)flat / run_in(mk, "flat"), "jobs/s");
    if (has_ninja)
        bench_emit("graph.true", "ninja", (double)flat / run_in(nj, "flat"), "jobs/s");
    sh("rm -rf flat");
    resume("mproc", m, res_layers);
    bench_emit("graph.resume", "limit", 2, "jobs"); /* the jobs in flight at the kill */
    if (has_make)
        resume("make", mk, res_layers);
    if (has_ninja)
        resume("ninja", nj, res_layers);
    sh("rm -rf res dag");
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
    if (rmdir(dir) != 0)
        bench_die("rmdir %s: %s", dir, strerror(errno));
    return 0;
}
