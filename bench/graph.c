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
 * The mproc command is <this program's dir>/../cli/mproc (or $MPROC_CLI). Anchors that are
 * not installed are left out (Ruffus and Snakemake are not measured yet).
 */
#include "bench.h"

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
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            bench_die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("%s: status 0x%x", argv[0], (unsigned)st);
    return bench_now() - t0;
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
    clean();
    sh("rm -f Jobfile Makefile build.ninja in0.txt");
    if (rmdir(dir) != 0)
        bench_die("rmdir %s: %s", dir, strerror(errno));
    return 0;
}
