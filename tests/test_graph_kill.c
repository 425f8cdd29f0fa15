/* tests/test_graph_kill.c - a task graph with a state survives kills at random moments.
 *
 * A random DAG of 1,000 jobs, each recording that it ran to completion. The runner is
 * SIGKILLed at a random moment and run again, 100 times, then run to the end: every job
 * completed at least once, more than once only if it was in flight at a kill (at most
 * 2 run at once, so the extra completions are at most 2 per kill), the state passes
 * PRAGMA integrity_check, and every output equals a clean run's. Then one job's command
 * changes and the loop goes again: exactly that job and what is below it complete again.
 * The same with a random pool worker SIGKILLed instead of the runner (function jobs).
 *
 * The DAG comes from a fixed seed (MPROC_TEST_SEED overrides it); the moments of the
 * kills are random: the assertions hold at any moment.
 */
#include "harness.h"

#include "mproc/graph.h"

#include "graph_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { NJOBS = 1000, KILLS = 100, CHANGE_KILLS = 20, MAX_DEPS = 3, AT_ONCE = 2 };

/* The DAG: job i depends on up to MAX_DEPS distinct earlier jobs. */
struct dag {
    int ndeps[NJOBS];
    int deps[NJOBS][MAX_DEPS];
    int changed; /* the job whose work changed (-1: none) */
};

static void make_dag(struct dag *d)
{
    const char *env = getenv("MPROC_TEST_SEED");
    unsigned seed = env != NULL ? (unsigned)strtoul(env, NULL, 10) : 20261205u;
    fprintf(stderr, "# DAG seed %u (MPROC_TEST_SEED)\n", seed);
    for (int i = 0; i < NJOBS; i++) {
        d->ndeps[i] = i < 8 ? 0 : (int)((unsigned)rand_r(&seed) % (MAX_DEPS + 1));
        for (int k = 0; k < d->ndeps[i]; k++) {
            int dep;
            bool again;
            do {
                dep = (int)((unsigned)rand_r(&seed) % (unsigned)i);
                again = false;
                for (int m = 0; m < k; m++)
                    again = again || d->deps[i][m] == dep;
            } while (again);
            d->deps[i][k] = dep;
        }
    }
    d->changed = -1;
}

/* Which jobs are job c or below it. */
static void below(const struct dag *d, int c, bool *mark)
{
    for (int i = 0; i < NJOBS; i++) { /* deps point to earlier jobs: one pass in order */
        mark[i] = i == c;
        for (int k = 0; k < d->ndeps[i] && !mark[i]; k++)
            mark[i] = mark[d->deps[i][k]];
    }
}

static void names(const struct dag *d, int i, char buf[MAX_DEPS][16], const char *dep_names[])
{
    for (int k = 0; k < d->ndeps[i]; k++) {
        snprintf(buf[k], 16, "j%d", d->deps[i][k]);
        dep_names[k] = buf[k];
    }
}

/* Command jobs: job i writes dir/o<i>, a checksum of its number and its dependencies'
 * outputs, then appends "j<i>" to dir/runs. */
static mproc_graph *command_graph(const struct dag *d, const char *dir)
{
    mproc_graph *g = NULL;
    assert_ok(mproc_graph_new(&g));
    for (int i = 0; i < NJOBS; i++) {
        char name[16], buf[MAX_DEPS][16], cmd[2048], out[300], cat[700] = "";
        const char *dep_names[MAX_DEPS];
        names(d, i, buf, dep_names);
        for (int k = 0; k < d->ndeps[i]; k++)
            snprintf(cat + strlen(cat), sizeof cat - strlen(cat), " %s/o%d", dir, d->deps[i][k]);
        snprintf(name, sizeof name, "j%d", i);
        snprintf(out, sizeof out, "%s/o%d", dir, i);
        snprintf(cmd, sizeof cmd, "{ echo %d%s;%s%s; } | cksum > %s; echo j%d >> %s/runs", i,
                 i == d->changed ? " changed" : "", d->ndeps[i] ? " cat" : " true",
                 d->ndeps[i] ? cat : "", out, i, dir);
        const char *outs[] = {out};
        assert_ok(mproc_graph_add(g, name,
                                  &(mproc_job_opts){.command = cmd,
                                                    .deps = dep_names,
                                                    .ndeps = (size_t)d->ndeps[i],
                                                    .outputs = outs,
                                                    .noutputs = 1}));
    }
    return g;
}

/* A function job: its output is a hash of its input (its number, the outputs of what it
 * depends on); it appends "j<i>" to the runs file (named in its input) as it ends. */
struct fn_in {
    int32_t job;
    int32_t changed;
    char runs[300];
};

static int hash_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    struct fn_in own;
    memcpy(&own, in, sizeof own);
    uint64_t h = 1469598103934665603u;
    for (size_t k = 0; k < in_len; k++)
        h = (h ^ ((const unsigned char *)in)[k]) * 1099511628211u;
    struct timespec nap = {0, 2 * 1000 * 1000}; /* 2 ms: time for workers to be killed */
    nanosleep(&nap, NULL);
    memcpy(out, &h, sizeof h);
    *out_len = sizeof h;
    int fd = open(own.runs, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return mproc_task_fail(t, -errno, "cannot open the runs file");
    char line[32];
    int n = snprintf(line, sizeof line, "j%d\n", (int)own.job);
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    return w == n ? 0 : mproc_task_fail(t, -EIO, "cannot write the runs file");
}

static mproc_graph *fn_graph(const struct dag *d, const char *dir)
{
    mproc_graph *g = NULL;
    assert_ok(mproc_graph_new(&g));
    for (int i = 0; i < NJOBS; i++) {
        char name[16], buf[MAX_DEPS][16];
        const char *dep_names[MAX_DEPS];
        names(d, i, buf, dep_names);
        snprintf(name, sizeof name, "j%d", i);
        struct fn_in in = {.job = i, .changed = i == d->changed};
        snprintf(in.runs, sizeof in.runs, "%s/runs", dir);
        assert_ok(mproc_graph_add(g, name,
                                  &(mproc_job_opts){.fn = hash_task,
                                                    .input = &in,
                                                    .input_len = sizeof in,
                                                    .deps = dep_names,
                                                    .ndeps = (size_t)d->ndeps[i],
                                                    .retries = 1000})); /* worker kills */
    }
    return g;
}

struct runner_arg {
    const struct dag *d;
    const char *dir;
    bool fn;
};

static int run_graph(void *arg)
{
    const struct runner_arg *a = arg;
    char st[300];
    snprintf(st, sizeof st, "%s/state.db", a->dir);
    mproc_graph *g = a->fn ? fn_graph(a->d, a->dir) : command_graph(a->d, a->dir);
    int rc = mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = AT_ONCE, .state = st});
    mproc_job_info in; /* what went wrong, for the test's log */
    for (size_t i = 0; rc != 0 && mproc_graph_job(g, i, &in) == 0; i++)
        if (in.status == MPROC_JOB_FAILED)
            fprintf(stderr, "# %s failed: %s\n", in.name, in.msg);
    if (rc < 0)
        fprintf(stderr, "# run: %s\n", mproc_graph_error(g));
    mproc_graph_free(g);
    return rc == 0 ? 0 : 1;
}

/* Completions by job, from the runs file. */
static void count_runs(const char *dir, int *count)
{
    memset(count, 0, NJOBS * sizeof *count);
    char path[300];
    snprintf(path, sizeof path, "%s/runs", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    int i;
    while (fscanf(f, "j%d\n", &i) == 1)
        if (i >= 0 && i < NJOBS)
            count[i]++;
    fclose(f);
}

static double rand_between(unsigned *seed, double lo, double hi)
{
    return lo + (hi - lo) * (double)rand_r(seed) / (double)RAND_MAX;
}

/* SIGKILL the runner at a random moment, `kills` times; then one run to the end. */
static void kill_runner_loop(struct runner_arg *a, int kills, unsigned *seed)
{
    for (int k = 0; k < kills; k++) {
        pid_t pid = mproc_test_fork(run_graph, a);
        mproc_test_sleep(rand_between(seed, 0.002, 0.06));
        kill(pid, SIGKILL);
        (void)mproc_test_wait(pid, 10);
        /* nothing of it runs on: its jobs' groups and its guard end at once */
        assert_int_equal(mproc_test_reap_all(5.0), 0);
    }
    pid_t pid = mproc_test_fork(run_graph, a);
    assert_int_equal(mproc_test_wait(pid, 120), 0);
}

/* Each job completed once more than in `before` if marked (else not at all), give or
 * take what was in flight at a kill: at most AT_ONCE per kill in all. */
static void check_counts(const int *before, const int *after, const bool *marked, int kills)
{
    int extra = 0;
    for (int i = 0; i < NJOBS; i++) {
        int ran = after[i] - before[i];
        if (marked[i])
            assert_true(ran >= 1);
        extra += marked[i] ? ran - 1 : ran;
    }
    assert_true(extra >= 0 && extra <= kills * AT_ONCE);
}

static void compare_outputs(const char *dir, const char *clean)
{
    for (int i = 0; i < NJOBS; i++) {
        char p1[300], p2[300], b1[64] = "", b2[64] = "";
        snprintf(p1, sizeof p1, "%s/o%d", dir, i);
        snprintf(p2, sizeof p2, "%s/o%d", clean, i);
        FILE *f1 = fopen(p1, "r"), *f2 = fopen(p2, "r");
        assert_non_null(f1);
        assert_non_null(f2);
        assert_non_null(fgets(b1, sizeof b1, f1));
        assert_non_null(fgets(b2, sizeof b2, f2));
        fclose(f1);
        fclose(f2);
        assert_string_equal(b1, b2);
    }
}

static void test_runner_killed_loop(void **state)
{
    (void)state;
    static struct dag d;
    make_dag(&d);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    char dir[] = "/tmp/mproc-test-gkill-XXXXXX", clean[] = "/tmp/mproc-test-gclean-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(clean));
    static int before[NJOBS], after[NJOBS];
    static bool all[NJOBS], marked[NJOBS];
    for (int i = 0; i < NJOBS; i++)
        all[i] = true;
    struct runner_arg a = {&d, dir, false};
    count_runs(dir, before);
    kill_runner_loop(&a, KILLS, &seed);
    count_runs(dir, after);
    check_counts(before, after, all, KILLS);
    assert_int_equal(integrity_in(dir), 0);
    /* a change: one job's command; it and what is below it run again, nothing else */
    d.changed = NJOBS / 3;
    below(&d, d.changed, marked);
    memcpy(before, after, sizeof before);
    kill_runner_loop(&a, CHANGE_KILLS, &seed);
    count_runs(dir, after);
    check_counts(before, after, marked, CHANGE_KILLS);
    assert_int_equal(integrity_in(dir), 0);
    /* the outputs are a clean run's (no state, never killed) */
    mproc_graph *g = command_graph(&d, clean);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = AT_ONCE}), 0);
    mproc_graph_free(g);
    compare_outputs(dir, clean);
    rmdir_all(dir);
    rmdir_all(clean);
}

/* The runner's children that are pool workers (not the test's). */
static int workers_of(pid_t runner, pid_t *out, int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)runner);
    DIR *tasks = opendir(path);
    if (tasks == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL && n < cap) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[400];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)runner, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (f == NULL)
            continue;
        int pid;
        while (n < cap && fscanf(f, "%d", &pid) == 1)
            out[n++] = pid;
        fclose(f);
    }
    closedir(tasks);
    return n;
}

static void test_worker_killed_loop(void **state)
{
    (void)state;
    static struct dag d;
    make_dag(&d);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    char dir[] = "/tmp/mproc-test-gwkill-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static int before[NJOBS], after[NJOBS];
    static bool all[NJOBS];
    for (int i = 0; i < NJOBS; i++)
        all[i] = true;
    struct runner_arg a = {&d, dir, true};
    pid_t runner = mproc_test_fork(run_graph, &a);
    int kills = 0;
    while (kills < KILLS && mproc_test_pid_alive(runner)) {
        mproc_test_sleep(rand_between(&seed, 0.0005, 0.01));
        pid_t w[64];
        int n = workers_of(runner, w, 64);
        if (n > 0 && kill(w[(unsigned)rand_r(&seed) % (unsigned)n], SIGKILL) == 0)
            kills++;
    }
    assert_int_equal(mproc_test_wait(runner, 120), 0); /* every job done, by retries */
    assert_true(kills > 10);                           /* the loop did kill, while the run ran */
    count_runs(dir, after);
    memset(before, 0, sizeof before);
    check_counts(before, after, all, kills);
    assert_int_equal(integrity_in(dir), 0);
    /* the outputs the state kept are a clean run's */
    char st[300];
    snprintf(st, sizeof st, "%s/state.db", dir);
    mproc_graph *g = fn_graph(&d, dir), *c = fn_graph(&d, dir);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = AT_ONCE, .state = st}), 0);
    mproc_graph_counts counts;
    assert_ok(mproc_graph_counts_get(g, &counts));
    assert_int_equal(counts.up_to_date, NJOBS); /* nothing ran again */
    assert_int_equal(mproc_graph_run(c, &(mproc_graph_run_opts){.jobs = AT_ONCE}), 0);
    for (int i = 0; i < NJOBS; i++) {
        char name[16];
        snprintf(name, sizeof name, "j%d", i);
        const void *o1, *o2;
        size_t l1, l2;
        assert_ok(mproc_graph_output(g, name, &o1, &l1));
        assert_ok(mproc_graph_output(c, name, &o2, &l2));
        assert_int_equal(l1, l2);
        assert_memory_equal(o1, o2, l1);
    }
    mproc_graph_free(g);
    mproc_graph_free(c);
    rmdir_all(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_runner_killed_loop),
        MPROC_TEST(test_worker_killed_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
