/* tests/test_graph.c - task graphs (mproc/graph.h): bad graphs refused with the jobs
 * named, upstream before downstream, parallel independent jobs, failures blocking only
 * what is downstream, retries, time limits, outputs passed downstream, deep graphs. */
#include "harness.h"

#include "mproc/graph.h"

#include "graph_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void tmpdir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/mproc-test-graph-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static mproc_graph *graph(void)
{
    mproc_graph *g = NULL;
    assert_ok(mproc_graph_new(&g));
    return g;
}

static void add_cmd(mproc_graph *g, const char *name, const char *cmd, const char *const *deps,
                    size_t ndeps)
{
    assert_ok(
        mproc_graph_add(g, name, &(mproc_job_opts){.command = cmd, .deps = deps, .ndeps = ndeps}));
}

static int status_of(mproc_graph *g, const char *name)
{
    return mproc_graph_status(g, name, NULL, NULL);
}

/* ---- bad graphs ---------------------------------------------------------------------- */

static void test_bad_graphs(void **state)
{
    (void)state;
    mproc_graph *g = graph();
    add_cmd(g, "a", "true", NULL, 0);
    add_cmd(g, "a", "true", NULL, 0);
    assert_code(mproc_graph_check(g), -EINVAL);
    assert_non_null(strstr(mproc_graph_error(g), "two jobs are named 'a'"));
    assert_code(mproc_graph_run(g, NULL), -EINVAL); /* nothing runs */
    assert_int_equal(status_of(g, "a"), MPROC_JOB_TODO);
    mproc_graph_free(g);

    g = graph();
    add_cmd(g, "b", "true", (const char *[]){"nope"}, 1);
    assert_code(mproc_graph_check(g), -EINVAL);
    assert_non_null(strstr(mproc_graph_error(g), "'b' depends on 'nope', which is not a job"));
    mproc_graph_free(g);

    g = graph(); /* x needs y needs z needs x, and w hangs below the cycle */
    add_cmd(g, "w", "true", (const char *[]){"x"}, 1);
    add_cmd(g, "x", "true", (const char *[]){"y"}, 1);
    add_cmd(g, "y", "true", (const char *[]){"z"}, 1);
    add_cmd(g, "z", "true", (const char *[]){"x"}, 1);
    add_cmd(g, "free", "true", NULL, 0);
    assert_code(mproc_graph_run(g, NULL), -EINVAL);
    const char *e = mproc_graph_error(g);
    assert_non_null(strstr(e, "cycle"));
    /* the cycle, whichever job it is told from, and not w */
    assert_true(strstr(e, "x -> y -> z -> x") != NULL || strstr(e, "y -> z -> x -> y") != NULL ||
                strstr(e, "z -> x -> y -> z") != NULL);
    assert_null(strstr(e, "w"));
    assert_int_equal(status_of(g, "free"), MPROC_JOB_TODO);
    mproc_graph_free(g);

    g = graph(); /* a job that needs itself */
    add_cmd(g, "self", "true", (const char *[]){"self"}, 1);
    assert_code(mproc_graph_check(g), -EINVAL);
    assert_non_null(strstr(mproc_graph_error(g), "self -> self"));
    mproc_graph_free(g);

    g = graph();
    assert_code(mproc_graph_add(g, "", &(mproc_job_opts){.command = "true"}), -EINVAL);
    assert_code(mproc_graph_add(g, NULL, &(mproc_job_opts){.command = "true"}), -EINVAL);
    assert_code(mproc_graph_add(g, "n", NULL), -EINVAL);
    assert_code(mproc_graph_add(g, "n", &(mproc_job_opts){0}), -EINVAL);
    assert_code(mproc_graph_add(
                    g, "n", &(mproc_job_opts){.command = "true", .argv = (char *[]){"true", NULL}}),
                -EINVAL);
    assert_code(mproc_graph_add(g, "n", &(mproc_job_opts){.command = "true", .timeout = -1}),
                -EINVAL);
    assert_code(mproc_graph_add(g, "n", &(mproc_job_opts){.command = "true", .ndeps = 1}), -EINVAL);
    assert_code(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = -1}), -EINVAL);
    assert_code(mproc_graph_status(g, "missing", NULL, NULL), -ENOENT);
    assert_code(mproc_graph_new(NULL), -EINVAL);
    mproc_graph_free(g);
    mproc_graph_free(NULL);
}

/* ---- order, parallelism, failures ---------------------------------------------------- */

/* A diamond of shell jobs appending to a log: top before both middles, bottom last. */
static void test_order(void **state)
{
    (void)state;
    char dir[256];
    tmpdir(dir, sizeof dir);
    char log[300], cmd[4][400];
    snprintf(log, sizeof log, "%s/log", dir);
    const char *names[] = {"top", "left", "right", "bottom"};
    for (int i = 0; i < 4; i++)
        snprintf(cmd[i], sizeof cmd[i], "echo %s >> %s", names[i], log);
    mproc_graph *g = graph();
    add_cmd(g, "bottom", cmd[3], (const char *[]){"left", "right"}, 2);
    add_cmd(g, "left", cmd[1], (const char *[]){"top"}, 1);
    add_cmd(g, "right", cmd[2], (const char *[]){"top"}, 1);
    add_cmd(g, "top", cmd[0], NULL, 0);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2}), 0);
    char text[256] = "";
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_true(strncmp(text, "top\n", 4) == 0);
    assert_true(strcmp(text + n - 7, "bottom\n") == 0);
    assert_non_null(strstr(text, "left\n"));
    assert_non_null(strstr(text, "right\n"));
    mproc_graph_counts c;
    assert_ok(mproc_graph_counts_get(g, &c));
    assert_int_equal(c.done, 4);
    /* a second run has nothing to do (in memory, done stays done) */
    assert_int_equal(mproc_graph_run(g, NULL), 0);
    f = fopen(log, "r");
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_int_equal(n, strlen("top\nleft\nright\nbottom\n"));
    mproc_graph_free(g);
    rmdir_all(dir);
}

/* Independent jobs run at once: two jobs that each wait for the other's file. */
static void test_parallel(void **state)
{
    (void)state;
    char dir[256];
    tmpdir(dir, sizeof dir);
    char a[700], b[700];
    snprintf(a, sizeof a,
             "touch %s/a; for i in $(seq 500); do [ -e %s/b ] && exit 0; sleep 0.01; "
             "done; exit 1",
             dir, dir);
    snprintf(b, sizeof b,
             "touch %s/b; for i in $(seq 500); do [ -e %s/a ] && exit 0; sleep 0.01; "
             "done; exit 1",
             dir, dir);
    mproc_graph *g = graph();
    add_cmd(g, "a", a, NULL, 0);
    add_cmd(g, "b", b, NULL, 0);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2}), 0);
    mproc_graph_free(g);
    rmdir_all(dir);
}

/* A failure blocks what is downstream of it only; the rest runs; the count says so. */
static void test_failure_blocks_downstream(void **state)
{
    (void)state;
    mproc_graph *g = graph();
    add_cmd(g, "bad", "echo oops; exit 3", NULL, 0);
    add_cmd(g, "child", "true", (const char *[]){"bad"}, 1);
    add_cmd(g, "grandchild", "true", (const char *[]){"child"}, 1);
    add_cmd(g, "good", "echo fine", NULL, 0);
    add_cmd(g, "after_good", "true", (const char *[]){"good"}, 1);
    add_cmd(g, "both", "true", (const char *[]){"good", "bad"}, 2);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 1}), 4);
    int code;
    const char *msg;
    assert_int_equal(mproc_graph_status(g, "bad", &code, &msg), MPROC_JOB_FAILED);
    assert_int_equal(code, 3);
    assert_string_equal(msg, "exited with status 3");
    const void *out;
    size_t len;
    assert_code(mproc_graph_output(g, "bad", &out, &len), -MPROC_ESTATE);
    assert_int_equal(mproc_graph_status(g, "child", NULL, &msg), MPROC_JOB_BLOCKED);
    assert_string_equal(msg, "blocked: 'bad' failed");
    assert_int_equal(status_of(g, "grandchild"), MPROC_JOB_BLOCKED);
    assert_int_equal(status_of(g, "both"), MPROC_JOB_BLOCKED);
    assert_int_equal(status_of(g, "good"), MPROC_JOB_DONE);
    assert_int_equal(status_of(g, "after_good"), MPROC_JOB_DONE);
    assert_ok(mproc_graph_output(g, "good", &out, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(out, "fine\n", 5);
    assert_string_equal(mproc_job_status_name(MPROC_JOB_BLOCKED), "blocked");
    assert_string_equal(mproc_job_status_name(MPROC_JOB_RUNNING), "in progress");
    mproc_graph_free(g);

    /* stop at the first failure: nothing new starts, the rest stays todo */
    g = graph();
    add_cmd(g, "bad", "exit 1", NULL, 0);
    add_cmd(g, "later", "true", NULL, 0);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 1, .stop_on_failure = 1}),
                     2);
    assert_int_equal(status_of(g, "later"), MPROC_JOB_TODO);
    mproc_graph_free(g);
}

/* Retries: a job that fails twice then succeeds, with two retries, is done. */
static void test_retries_and_time_limit(void **state)
{
    (void)state;
    char dir[256];
    tmpdir(dir, sizeof dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "echo x >> %s/n; [ $(wc -l < %s/n) -ge 3 ]", dir, dir);
    mproc_graph *g = graph();
    assert_ok(mproc_graph_add(g, "flaky", &(mproc_job_opts){.command = cmd, .retries = 2}));
    char slow[600]; /* a shell whose child outlives it unless the whole group is killed */
    snprintf(slow, sizeof slow, "sleep 30 >/dev/null 2>&1 & echo $! > %s/pid; wait", dir);
    assert_ok(mproc_graph_add(g, "slow", &(mproc_job_opts){.command = slow, .timeout = 0.2}));
    assert_ok(mproc_graph_add(
        g, "argv", &(mproc_job_opts){.argv = (char *[]){"printf", "%s-%s", "a b", "c", NULL}}));
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 3}), 1);
    /* the slow job's shell and its sleep were killed as one group: nothing of it runs on
       (this test process is a subreaper, so the orphaned sleep is ours to reap) */
    char path[300];
    snprintf(path, sizeof path, "%s/pid", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    for (double end = mproc_test_now() + 5; mproc_test_pid_alive(pid) && mproc_test_now() < end;)
        mproc_test_sleep(0.01); /* SIGKILL is delivered soon, not at once */
    assert_false(mproc_test_pid_alive(pid));
    assert_int_equal(mproc_test_reap_all(5.0), 0);
    assert_int_equal(status_of(g, "flaky"), MPROC_JOB_DONE);
    int code;
    const char *msg;
    assert_int_equal(mproc_graph_status(g, "slow", &code, &msg), MPROC_JOB_FAILED);
    assert_code(code, -MPROC_ETIMELIMIT);
    assert_non_null(strstr(msg, "time limit"));
    const void *out;
    size_t len;
    assert_ok(mproc_graph_output(g, "argv", &out, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(out, "a b-c", 5);
    mproc_graph_free(g);
    rmdir_all(dir);
}

/* ---- function jobs ------------------------------------------------------------------- */

/* Sums its input (8-byte ints) with the outputs of its dependencies (framed). */
static int sum_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    const unsigned char *p = in;
    int64_t total = 0;
    size_t at = 0;
    if (in_len >= 8) { /* own input: one int */
        int64_t x;
        memcpy(&x, p, 8);
        total += x;
        at = 8;
    }
    while (at + 8 <= in_len) { /* u64 length, then an int64 */
        uint64_t len = 0;
        for (int b = 0; b < 8; b++)
            len |= (uint64_t)p[at + (size_t)b] << (8 * b);
        at += 8;
        if (len != 8 || at + 8 > in_len)
            return mproc_task_fail(t, -EPROTO, "bad framing");
        int64_t x;
        memcpy(&x, p + at, 8);
        total += x;
        at += 8;
    }
    memcpy(out, &total, sizeof total);
    *out_len = sizeof total;
    return 0;
}

static int fail_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return mproc_task_fail(t, -EDOM, "no such luck");
}

static void add_fn(mproc_graph *g, const char *name, mproc_task_fn fn, int64_t x,
                   const char *const *deps, size_t ndeps)
{
    assert_ok(mproc_graph_add(
        g, name,
        &(mproc_job_opts){
            .fn = fn, .input = &x, .input_len = sizeof x, .deps = deps, .ndeps = ndeps}));
}

static void test_fn_outputs_flow_downstream(void **state)
{
    (void)state;
    mproc_graph *g = graph();
    add_fn(g, "one", sum_task, 1, NULL, 0);
    add_fn(g, "two", sum_task, 2, NULL, 0);
    add_fn(g, "three", sum_task, 3, (const char *[]){"one", "two"}, 2); /* 3 + 1 + 2 */
    add_cmd(g, "shell", "true", (const char *[]){"three"}, 1);
    add_fn(g, "top", sum_task, 100, (const char *[]){"three", "shell", "one"}, 3); /* +6+1 */
    add_fn(g, "bad", fail_task, 0, NULL, 0);
    add_fn(g, "under_bad", sum_task, 0, (const char *[]){"bad"}, 1);
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2}), 2);
    const void *out;
    size_t len;
    int64_t v;
    assert_ok(mproc_graph_output(g, "three", &out, &len));
    assert_int_equal(len, 8);
    memcpy(&v, out, 8);
    assert_int_equal(v, 6);
    assert_ok(mproc_graph_output(g, "top", &out, &len));
    memcpy(&v, out, 8);
    assert_int_equal(v, 107);
    int code;
    const char *msg;
    assert_int_equal(mproc_graph_status(g, "bad", &code, &msg), MPROC_JOB_FAILED);
    assert_code(code, -EDOM);
    assert_string_equal(msg, "no such luck");
    assert_int_equal(status_of(g, "under_bad"), MPROC_JOB_BLOCKED);
    mproc_graph_free(g);
}

/* ---- size -------------------------------------------------------------------------------- */

static int nop_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in;
    (void)in_len;
    (void)out;
    *out_len = 0;
    return 0;
}

/* A chain of 100,000 jobs checks and runs without recursion; a 100,000-long cycle is
 * found and told (its message cut to fit). */
static void test_deep_chain(void **state)
{
    (void)state;
    enum { N = 100000 };
    mproc_graph *g = graph();
    char name[32], prev[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "j%d", i);
        const char *dep = prev;
        assert_ok(mproc_graph_add(g, name,
                                  &(mproc_job_opts){.fn = nop_task, .deps = &dep, .ndeps = i > 0}));
        memcpy(prev, name, sizeof name);
    }
    assert_ok(mproc_graph_check(g));
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2}), 0);
    mproc_graph_counts c;
    assert_ok(mproc_graph_counts_get(g, &c));
    assert_int_equal(c.done, N);
    mproc_graph_free(g);

    g = graph(); /* the same chain closed into a ring */
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "j%d", i);
        snprintf(prev, sizeof prev, "j%d", (i + N - 1) % N);
        const char *dep = prev;
        assert_ok(mproc_graph_add(g, name,
                                  &(mproc_job_opts){.command = "true", .deps = &dep, .ndeps = 1}));
    }
    assert_code(mproc_graph_check(g), -EINVAL);
    assert_non_null(strstr(mproc_graph_error(g), "a cycle of dependencies: j0 -> j99999 -> "));
    mproc_graph_free(g);
}

/* ---- state ------------------------------------------------------------------------------ */

static size_t count_lines(const char *path, const char *word)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (word == NULL || (strncmp(line, word, strlen(word)) == 0 && line[strlen(word)] == '\n'))
            n++;
    fclose(f);
    return n;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A little pipeline in dir: src -> (upper, count) -> report, and an unrelated job; each
 * job appends its name to dir/runs when it runs. */
static mproc_graph *pipeline(const char *dir)
{
    static char cmd[5][1400], in[5][300], out[5][300];
    snprintf(in[0], sizeof in[0], "%s/src.txt", dir);
    snprintf(out[1], sizeof out[1], "%s/upper.txt", dir);
    snprintf(out[2], sizeof out[2], "%s/count.txt", dir);
    snprintf(out[3], sizeof out[3], "%s/report.txt", dir);
    snprintf(cmd[1], sizeof cmd[1], "echo upper >> %s/runs; tr a-z A-Z < %s > %s", dir, in[0],
             out[1]);
    snprintf(cmd[2], sizeof cmd[2], "echo count >> %s/runs; wc -l < %s > %s", dir, in[0], out[2]);
    snprintf(cmd[3], sizeof cmd[3], "echo report >> %s/runs; cat %s %s > %s", dir, out[1], out[2],
             out[3]);
    snprintf(cmd[4], sizeof cmd[4], "echo other >> %s/runs", dir);
    mproc_graph *g = graph();
    const char *src[] = {in[0]};
    assert_ok(mproc_graph_add(g, "upper",
                              &(mproc_job_opts){.command = cmd[1],
                                                .inputs = src,
                                                .ninputs = 1,
                                                .outputs = (const char *[]){out[1]},
                                                .noutputs = 1}));
    assert_ok(mproc_graph_add(g, "count",
                              &(mproc_job_opts){.command = cmd[2],
                                                .inputs = src,
                                                .ninputs = 1,
                                                .outputs = (const char *[]){out[2]},
                                                .noutputs = 1}));
    assert_ok(mproc_graph_add(g, "report",
                              &(mproc_job_opts){.command = cmd[3],
                                                .deps = (const char *[]){"upper", "count"},
                                                .ndeps = 2,
                                                .outputs = (const char *[]){out[3]},
                                                .noutputs = 1}));
    assert_ok(mproc_graph_add(g, "other", &(mproc_job_opts){.command = cmd[4]}));
    return g;
}

static int run_state(mproc_graph *g, const char *state)
{
    return mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2, .state = state});
}

/* A re-run does only what changed, and a job whose output comes out the same stops the
 * rebuild below it. */
static void test_state_reruns_what_changed(void **state)
{
    (void)state;
    char dir[256], st[300], runs[300], src[300];
    tmpdir(dir, sizeof dir);
    snprintf(st, sizeof st, "%s/state.db", dir);
    snprintf(runs, sizeof runs, "%s/runs", dir);
    snprintf(src, sizeof src, "%s/src.txt", dir);
    write_file(src, "one\ntwo\n");
    mproc_graph *g = pipeline(dir);
    assert_int_equal(run_state(g, st), 0);
    assert_int_equal(count_lines(runs, NULL), 4);
    mproc_graph_free(g);

    g = pipeline(dir); /* a new process would do the same: nothing is kept in memory */
    assert_int_equal(run_state(g, st), 0);
    assert_int_equal(count_lines(runs, NULL), 4); /* nothing ran */
    mproc_graph_counts c;
    assert_ok(mproc_graph_counts_get(g, &c));
    assert_int_equal(c.up_to_date, 4);
    const void *out;
    size_t len;
    assert_ok(mproc_graph_output(g, "report", &out, &len)); /* its output, from the state */
    mproc_graph_free(g);

    write_file(src, "uno\ndos\n"); /* same line count: count's output is the same */
    g = pipeline(dir);
    assert_int_equal(run_state(g, st), 0);
    assert_int_equal(count_lines(runs, "upper"), 2);
    assert_int_equal(count_lines(runs, "count"), 2);  /* its input changed */
    assert_int_equal(count_lines(runs, "report"), 2); /* upper's output changed */
    assert_int_equal(count_lines(runs, "other"), 1);
    mproc_graph_free(g);

    /* both inputs changed, both outputs the same: report, below them, is not run */
    write_file(src, "UNO\nDOS\n");
    g = pipeline(dir);
    assert_int_equal(run_state(g, st), 0);
    assert_int_equal(count_lines(runs, "upper"), 3);
    assert_int_equal(count_lines(runs, "count"), 3);
    assert_int_equal(count_lines(runs, "report"), 2);
    mproc_graph_free(g);

    /* an output file gone: its job runs again; its output is the same, so report does not */
    char upper[300];
    snprintf(upper, sizeof upper, "%s/upper.txt", dir);
    assert_int_equal(unlink(upper), 0);
    g = pipeline(dir);
    assert_int_equal(run_state(g, st), 0);
    assert_int_equal(count_lines(runs, "upper"), 4);
    assert_int_equal(count_lines(runs, "report"), 2);
    mproc_graph_free(g);

    /* a new job runs alone: what was there is up to date */
    g = pipeline(dir);
    assert_ok(mproc_graph_add(g, "extra", &(mproc_job_opts){.command = "true"}));
    assert_int_equal(run_state(g, st), 0);
    assert_int_equal(count_lines(runs, NULL), 10); /* only extra ran: it logs nothing */
    mproc_graph_free(g);
    rmdir_all(dir);
}

/* Function jobs: their outputs come back from the state on a re-run, for their users. */
static void test_state_function_jobs(void **state)
{
    (void)state;
    char dir[256], st[300];
    tmpdir(dir, sizeof dir);
    snprintf(st, sizeof st, "%s/state.db", dir);
    for (int round = 0; round < 2; round++) {
        mproc_graph *g = graph();
        add_fn(g, "one", sum_task, 1, NULL, 0);
        add_fn(g, "two", sum_task, round == 0 ? 2 : 5, NULL, 0); /* changed in round 1 */
        add_fn(g, "three", sum_task, 3, (const char *[]){"one", "two"}, 2);
        assert_int_equal(run_state(g, st), 0);
        const void *out;
        size_t len;
        int64_t v;
        assert_ok(mproc_graph_output(g, "three", &out, &len));
        memcpy(&v, out, 8);
        assert_int_equal(v, round == 0 ? 6 : 9);
        mproc_graph_counts c;
        assert_ok(mproc_graph_counts_get(g, &c));
        assert_int_equal(c.up_to_date, round == 0 ? 0 : 1); /* one */
        mproc_graph_free(g);
    }
    rmdir_all(dir);
}

/* ---- a runner killed at any moment ---------------------------------------------------------- */

enum { KILL_JOBS = 120 };

struct kill_arg {
    const char *dir, *state;
};

static mproc_graph *logging_graph(const char *dir)
{
    mproc_graph *g = graph();
    char name[32], cmd[400], prev[32] = "";
    for (int i = 0; i < KILL_JOBS; i++) {
        snprintf(name, sizeof name, "j%d", i);
        snprintf(cmd, sizeof cmd, "sleep 0.005; echo %s >> %s/runs", name, dir);
        const char *dep = prev;
        /* a wide graph with some chains: each job after the 10th depends on one earlier */
        if (i >= 10)
            snprintf(prev, sizeof prev, "j%d", (i * 7) % i);
        assert_ok(mproc_graph_add(
            g, name, &(mproc_job_opts){.command = cmd, .deps = &dep, .ndeps = i >= 10}));
    }
    return g;
}

static int run_logging(void *arg)
{
    const struct kill_arg *k = arg;
    mproc_graph *g = logging_graph(k->dir);
    int rc = run_state(g, k->state);
    mproc_graph_free(g);
    return rc == 0 ? 0 : 1;
}

/* SIGKILL the runner at several moments, run again each time: in the end every job ran,
 * and more than once only if it was in flight at a kill (2 at a time), the state intact. */
static void test_state_survives_kill(void **state)
{
    (void)state;
    char dir[256], st[300], runs[300];
    tmpdir(dir, sizeof dir);
    snprintf(st, sizeof st, "%s/state.db", dir);
    snprintf(runs, sizeof runs, "%s/runs", dir);
    struct kill_arg k = {dir, st};
    int kills = 0;
    for (size_t at = 15; at < KILL_JOBS; at += 25) {
        pid_t pid = mproc_test_fork(run_logging, &k);
        while (count_lines(runs, NULL) < at && mproc_test_pid_alive(pid))
            mproc_test_sleep(0.001);
        kill(pid, SIGKILL);
        (void)mproc_test_wait(pid, 10);
        assert_int_equal(mproc_test_reap_all(5.0), 0); /* its jobs' shells, orphaned */
        kills++;
    }
    mproc_graph *g = logging_graph(dir);
    assert_int_equal(run_state(g, st), 0);
    mproc_graph_free(g);
    size_t total = count_lines(runs, NULL);
    assert_true(total >= KILL_JOBS);
    assert_true(total <= KILL_JOBS + (size_t)kills * 2); /* at most what was in flight */
    for (int i = 0; i < KILL_JOBS; i++) {
        char name[32];
        snprintf(name, sizeof name, "j%d", i);
        size_t n = count_lines(runs, name);
        assert_true(n >= 1 && n <= 1 + (size_t)kills);
    }
    assert_int_equal(integrity(st), 0);
    /* and one more run does nothing */
    g = logging_graph(dir);
    assert_int_equal(run_state(g, st), 0);
    mproc_graph_free(g);
    assert_int_equal(count_lines(runs, NULL), total);
    rmdir_all(dir);
}

/* Nothing of a run outlives its runner: SIGKILL it while a job's shell waits for a child
 * of its own (its own process group): the shell and the child end too. */
static int run_sleeper(void *arg)
{
    const char *dir = arg;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "touch %s/started; sleep 30; true", dir);
    mproc_graph *g = graph();
    add_cmd(g, "sleeper", cmd, NULL, 0);
    add_cmd(g, "other", "sleep 30; true", NULL, 0);
    int rc = mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2});
    mproc_graph_free(g);
    return rc;
}

static void test_runner_killed_leaves_nothing(void **state)
{
    (void)state;
    char dir[256], started[300];
    tmpdir(dir, sizeof dir);
    snprintf(started, sizeof started, "%s/started", dir);
    pid_t pid = mproc_test_fork(run_sleeper, dir);
    for (double end = mproc_test_now() + 10; access(started, F_OK) != 0;) {
        assert_true(mproc_test_now() < end);
        mproc_test_sleep(0.005);
    }
    mproc_test_sleep(0.05); /* the sleeps have started */
    kill(pid, SIGKILL);
    (void)mproc_test_wait(pid, 10);
    /* the jobs' shells and sleeps, and the guard, all end well within the grace period
       (they would sleep 30 s): reap_all reports what it had to kill itself */
    assert_int_equal(mproc_test_reap_all(5.0), 0);
    rmdir_all(dir);
}

/* A launcher that needs a while to end on SIGTERM (as srun does to cancel its step on a
 * busy cluster) gets that while when its runner is killed: the guard waits before SIGKILL.
 * The launcher here: a shell that runs the job in the background and, on SIGTERM, takes
 * 2 s to clean up, then says so. */
static int run_slow_to_end(void *arg)
{
    const char *dir = arg;
    char script[700];
    snprintf(script, sizeof script,
             "trap 'sleep 2; touch %s/ended; exit 0' TERM; \"$@\" & wait; wait", dir);
    char *const launcher[] = {"sh", "-c", script, "sh", NULL};
    char cmd[600];
    snprintf(cmd, sizeof cmd, "touch %s/started; sleep 30", dir);
    mproc_graph *g = graph();
    add_cmd(g, "slow", cmd, NULL, 0);
    int rc = mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 1, .launcher = launcher});
    mproc_graph_free(g);
    return rc;
}

static void test_runner_killed_job_ends_in_its_time(void **state)
{
    (void)state;
    char dir[256], started[300], ended[300];
    tmpdir(dir, sizeof dir);
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(ended, sizeof ended, "%s/ended", dir);
    pid_t pid = mproc_test_fork(run_slow_to_end, dir);
    for (double end = mproc_test_now() + 10; access(started, F_OK) != 0;) {
        assert_true(mproc_test_now() < end);
        mproc_test_sleep(0.005);
    }
    mproc_test_sleep(0.05); /* the trap is set, the sleep started */
    kill(pid, SIGKILL);
    (void)mproc_test_wait(pid, 10);
    assert_int_equal(mproc_test_reap_all(8.0), 0); /* it ended on its own, within the grace */
    assert_int_equal(access(ended, F_OK), 0);      /* after its 2 s of cleaning up */
    rmdir_all(dir);
}

/* ---- bad state files ----------------------------------------------------------------------- */

static void test_state_refused(void **state)
{
    (void)state;
    char dir[256], st[300], runs[300];
    tmpdir(dir, sizeof dir);
    snprintf(st, sizeof st, "%s/state.db", dir);
    snprintf(runs, sizeof runs, "%s/runs", dir);

    /* in use: another run holds the lock */
    int fd = open(st, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    mproc_graph *g = pipeline(dir);
    assert_code(run_state(g, st), -EBUSY);
    assert_non_null(strstr(mproc_graph_error(g), "in use by another run"));
    close(fd);
    mproc_graph_free(g);
    assert_int_equal(count_lines(runs, NULL), 0);
    unlink(st);

    /* not a database: refused, and left as it was */
    write_file(st, "this is not a database, it is a text file that is long enough to matter\n");
    g = pipeline(dir);
    assert_code(run_state(g, st), -MPROC_ECORRUPT);
    assert_non_null(strstr(mproc_graph_error(g), "damaged or not an mproc state"));
    mproc_graph_free(g);
    assert_int_equal(count_lines(runs, NULL), 0);
    assert_int_equal(count_lines(st, NULL), 1);
    unlink(st);

    /* a newer schema */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(st, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    g = pipeline(dir);
    assert_code(run_state(g, st), -EPROTO);
    assert_non_null(strstr(mproc_graph_error(g), "newer mproc"));
    mproc_graph_free(g);
    assert_int_equal(count_lines(runs, NULL), 0);

    /* a state of schema 1 (no fingerprint parts) is brought up to date, not refused */
    unlink(st);
    assert_int_equal(sqlite3_open(st, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE jobs(name TEXT PRIMARY KEY, status INTEGER NOT "
                                  "NULL, fingerprint BLOB, out_hash BLOB, started REAL, ended "
                                  "REAL, code INTEGER, msg TEXT, output BLOB);"
                                  "PRAGMA user_version=1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    write_file(runs, "");
    char src[300];
    snprintf(src, sizeof src, "%s/src.txt", dir);
    write_file(src, "a\n");
    g = pipeline(dir);
    assert_int_equal(run_state(g, st), 0);
    mproc_graph_free(g);
    assert_int_equal(count_lines(runs, NULL), 4);
    unlink(runs);

    /* a directory where the file should be */
    g = pipeline(dir);
    assert_true(run_state(g, dir) < 0);
    assert_true(strlen(mproc_graph_error(g)) > 0);
    mproc_graph_free(g);
    rmdir_all(dir);
}

/* ---- a full disk and a read-only state, in a mount namespace of their own ------------------ */

enum { SKIP_NO_NS = 77 };

/* A job whose output is 200 KiB: kept in the state, so a 1 MiB disk fills up. */
static int big_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in;
    (void)in_len;
    memset(out, 'x', 200 << 10);
    *out_len = 200 << 10;
    return 0;
}

static int private_tmpfs(const char *dir, const char *opts)
{
    if (unshare(CLONE_NEWNS) < 0)
        return errno == EPERM ? SKIP_NO_NS : 10;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return 11;
    if (mount("mproc-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return errno == EPERM ? SKIP_NO_NS : 12;
    return 0;
}

static int child_full_disk(void *arg)
{
    const char *dir = arg;
    int rc = private_tmpfs(dir, "size=1m");
    if (rc != 0)
        return rc;
    char st[300];
    snprintf(st, sizeof st, "%s/state.db", dir);
    mproc_graph *g;
    if (mproc_graph_new(&g) != 0)
        return 13;
    for (int i = 0; i < 12; i++) { /* 2.4 MB of outputs to keep */
        char name[16];
        snprintf(name, sizeof name, "big%d", i);
        if (mproc_graph_add(g, name, &(mproc_job_opts){.fn = big_task, .output_cap = 256 << 10}) !=
            0)
            return 14;
    }
    rc = mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 2, .state = st});
    int ok = rc == -ENOSPC && strstr(mproc_graph_error(g), "disk is full") != NULL;
    if (!ok)
        fprintf(stderr, "full disk: rc %d: %s\n", rc, mproc_graph_error(g));
    mproc_graph_free(g);
    return ok ? 0 : 15;
}

static int child_read_only(void *arg)
{
    const char *dir = arg;
    int rc = private_tmpfs(dir, "size=1m");
    if (rc != 0)
        return rc;
    char st[300];
    snprintf(st, sizeof st, "%s/state.db", dir);
    mproc_graph *g;
    if (mproc_graph_new(&g) != 0 ||
        mproc_graph_add(g, "a", &(mproc_job_opts){.command = "true"}) != 0)
        return 13;
    if (mproc_graph_run(g, &(mproc_graph_run_opts){.state = st}) != 0) /* a state there */
        return 14;
    if (mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
        return 15;
    mproc_graph_free(g);
    if (mproc_graph_new(&g) != 0 ||
        mproc_graph_add(g, "a", &(mproc_job_opts){.command = "true"}) != 0)
        return 16;
    rc = mproc_graph_run(g, &(mproc_graph_run_opts){.state = st});
    int ok = rc < 0 && strstr(mproc_graph_error(g), st) != NULL;
    if (!ok)
        fprintf(stderr, "read-only: rc %d: %s\n", rc, mproc_graph_error(g));
    mproc_graph_free(g);
    return ok ? 0 : 17;
}

static void test_state_full_disk_and_read_only(void **state)
{
    (void)state;
    char dir[256];
    tmpdir(dir, sizeof dir);
    int codes[2] = {mproc_test_exitcode(mproc_test_fork(child_full_disk, dir), 60),
                    mproc_test_exitcode(mproc_test_fork(child_read_only, dir), 60)};
    rmdir_all(dir);
    if (codes[0] == SKIP_NO_NS || codes[1] == SKIP_NO_NS) {
        print_message("no private mount namespace (needs root or CAP_SYS_ADMIN): skipped\n");
        skip();
    }
    assert_int_equal(codes[0], 0); /* a clear -ENOSPC, never a crash */
    assert_int_equal(codes[1], 0); /* a clear error naming the file */
}

/* A worker killed in a function job: that job fails (its worker died), runs again with a
 * retry, and the graph finishes. */
static int die_once(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in_len;
    char path[300];
    memcpy(path, in, sizeof path);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) { /* the first try: die */
        close(fd);
        raise(SIGKILL);
    }
    memcpy(out, "ok", 2);
    *out_len = 2;
    return 0;
}

static void test_fn_job_worker_killed(void **state)
{
    (void)state;
    char dir[256], path[300] = {0};
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/died", dir);
    for (int retries = 0; retries < 2; retries++) {
        unlink(path);
        mproc_graph *g = graph();
        assert_ok(mproc_graph_add(g, "dies",
                                  &(mproc_job_opts){.fn = die_once,
                                                    .input = path,
                                                    .input_len = sizeof path,
                                                    .retries = (unsigned)retries}));
        add_cmd(g, "after", "true", (const char *[]){"dies"}, 1);
        assert_int_equal(mproc_graph_run(g, NULL), retries == 0 ? 2 : 0);
        int code;
        assert_int_equal(mproc_graph_status(g, "dies", &code, NULL),
                         retries == 0 ? MPROC_JOB_FAILED : MPROC_JOB_DONE);
        if (retries == 0)
            assert_code(code, -MPROC_EDIED);
        mproc_graph_free(g);
    }
    rmdir_all(dir);
}

/* mproc_graph_stop from on_done: soon lets the running job finish and starts nothing;
 * now ends it (a shell that ignores SIGTERM gets SIGKILL) and it stays todo, untold and
 * unrecorded, so the next run does it. */
struct stop_arg {
    mproc_graph *g;
    int now;
    int told_slow; /* on_done saw the job that was running */
};

static void stop_on_fail(const mproc_job_info *job, const void *out, size_t len, void *arg)
{
    (void)out;
    (void)len;
    struct stop_arg *a = arg;
    if (strcmp(job->name, "slow") == 0)
        a->told_slow = 1;
    if (job->status == MPROC_JOB_FAILED)
        assert_ok(mproc_graph_stop(a->g, a->now));
}

static int sleep_task(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)t;
    (void)in;
    (void)in_len;
    (void)out;
    *out_len = 0;
    sleep(30);
    return 0;
}

static void test_stop(void **state)
{
    (void)state;
    char dir[256], db[300];
    tmpdir(dir, sizeof dir);
    snprintf(db, sizeof db, "%s/state.db", dir);
    for (int now = 0; now < 2; now++) {
        for (int fn = 0; fn < 2; fn++) {
            mproc_graph *g = graph();
            assert_code(mproc_graph_stop(g, 0), -MPROC_ESTATE); /* no run */
            assert_code(mproc_graph_stop(NULL, 0), -EINVAL);
            /* "slow" runs while "bad" fails; "never" is ready only after that */
            if (fn)
                assert_ok(mproc_graph_add(g, "slow",
                                          &(mproc_job_opts){.fn = now ? sleep_task : sum_task}));
            else
                add_cmd(g, "slow", now ? "trap '' TERM; sleep 30; true" : "sleep 0.3", NULL, 0);
            add_cmd(g, "bad", "sleep 0.05; exit 1", NULL, 0);
            add_cmd(g, "never", "true", (const char *[]){"bad2"}, 1);
            add_cmd(g, "bad2", "true", (const char *[]){"bad"}, 1);
            struct stop_arg a = {.g = g, .now = now};
            unlink(db);
            int left =
                mproc_graph_run(g, &(mproc_graph_run_opts){
                                       .jobs = 2, .on_done = stop_on_fail, .arg = &a, .state = db});
            int st = status_of(g, "slow");
            if (now) { /* ended, back to todo, not told */
                assert_int_equal(st, MPROC_JOB_TODO);
                assert_int_equal(a.told_slow, 0);
                assert_int_equal(left, 4); /* bad failed; slow todo; bad2, never blocked */
            } else {
                assert_int_equal(st, MPROC_JOB_DONE);
                assert_int_equal(a.told_slow, 1);
                assert_int_equal(left, 3);
            }
            assert_int_equal(status_of(g, "never"), MPROC_JOB_BLOCKED);
            assert_int_equal(mproc_test_reap_all(5.0), 0); /* nothing of it left running */
            /* the state did not record the halted job */
            assert_ok(mproc_graph_load(g, db));
            const char *msg;
            assert_int_equal(mproc_graph_status(g, "slow", NULL, &msg),
                             now ? MPROC_JOB_TODO : MPROC_JOB_DONE);
            if (now)
                assert_string_equal(msg, "new: never run");
            mproc_graph_free(g);
        }
    }
    rmdir_all(dir);
}

/* Shared job slots (the make jobserver's way): a pipe holding one token lets two jobs run
 * at once, no more; every token is back in the pipe when run returns. */
struct slots {
    int fd[2];
    int held, most, takes;
};

static int take_token(void *arg)
{
    struct slots *s = arg;
    char c;
    if (read(s->fd[0], &c, 1) != 1)
        return 0;
    s->takes++;
    if (++s->held > s->most)
        s->most = s->held;
    return 1;
}

static void give_token(void *arg)
{
    struct slots *s = arg;
    assert_int_equal(write(s->fd[1], "+", 1), 1);
    s->held--;
}

static void test_shared_slots(void **state)
{
    (void)state;
    struct slots s = {0};
    assert_int_equal(pipe2(s.fd, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(write(s.fd[1], "+", 1), 1);
    char dir[256], cmd[1200];
    tmpdir(dir, sizeof dir);
    /* each job counts itself in while it runs (mkdir is atomic: a name per job at once) */
    snprintf(cmd, sizeof cmd,
             "n=0; while ! mkdir %s/run.$n 2>/dev/null; do n=$((n+1)); done; "
             "sleep 0.1; rmdir %s/run.$n; echo $n",
             dir, dir);
    mproc_graph *g = graph();
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < 6; i++)
        add_cmd(g, names[i], cmd, NULL, 0);
    assert_code(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 4, .slot_take = take_token}),
                -EINVAL); /* take without give */
    assert_int_equal(mproc_graph_run(g, &(mproc_graph_run_opts){.jobs = 4,
                                                                .slot_take = take_token,
                                                                .slot_give = give_token,
                                                                .slot_fd = s.fd[0],
                                                                .slot_arg = &s}),
                     0);
    assert_int_equal(s.most, 1); /* one token: never more than one beyond the run's own */
    assert_true(s.takes >= 1);   /* and it was used */
    assert_int_equal(s.held, 0);
    for (size_t i = 0; i < 6; i++) { /* nobody saw two others running: at most 2 at once */
        const void *out;
        size_t len;
        assert_ok(mproc_graph_output(g, names[i], &out, &len));
        assert_true(len == 2 && (((const char *)out)[0] == '0' || ((const char *)out)[0] == '1'));
    }
    char c;
    assert_int_equal(read(s.fd[0], &c, 1), 1); /* the token is back */
    mproc_graph_free(g);
    close(s.fd[0]);
    close(s.fd[1]);
    rmdir_all(dir);
}

/* A launcher: every command job runs through it, and where a job runs is not part of
 * what it is built from (a run without it, then with it: nothing runs again). */
static void test_launcher(void **state)
{
    (void)state;
    char dir[256], db[300];
    tmpdir(dir, sizeof dir);
    snprintf(db, sizeof db, "%s/state.db", dir);
    char *const launcher[] = {"env", "LAUNCHED=yes", NULL};
    for (int round = 0; round < 3; round++) {
        mproc_graph *g = graph();
        add_cmd(g, "shell", "echo via ${LAUNCHED:-none}", NULL, 0);
        assert_ok(mproc_graph_add(
            g, "argv", &(mproc_job_opts){.argv = (char *[]){"printenv", "LAUNCHED", NULL}}));
        /* round 0: through the launcher, no state; 1: without it, with a state; 2: with
           both: up to date */
        mproc_graph_run_opts o = {
            .jobs = 2, .launcher = round != 1 ? launcher : NULL, .state = round != 0 ? db : NULL};
        assert_int_equal(mproc_graph_run(g, &o), round == 1 ? 1 : 0); /* printenv: unset */
        const void *out;
        size_t len;
        assert_ok(mproc_graph_output(g, "shell", &out, &len));
        const char *want = round == 1 ? "via none\n" : round == 0 ? "via yes\n" : "via none\n";
        assert_int_equal(len, strlen(want));
        assert_memory_equal(out, want, len); /* round 2: up to date, round 1's output */
        mproc_graph_counts c;
        assert_ok(mproc_graph_counts_get(g, &c));
        assert_int_equal(c.up_to_date, round == 2 ? 1 : 0);
        mproc_graph_free(g);
    }
    rmdir_all(dir);
}

/* out_filter sees a command job's output first: what it takes out is gone for everyone
 * after it (the output kept, on_done). */
static void drop_hash_lines(size_t job, unsigned char *out, size_t *len, void *arg)
{
    int *calls = arg;
    (*calls)++;
    (void)job;
    size_t w = 0;
    for (size_t r = 0; r < *len;) {
        size_t e = r;
        while (e < *len && out[e] != '\n')
            e++;
        e += e < *len;
        if (out[r] != '#') {
            memmove(out + w, out + r, e - r);
            w += e - r;
        }
        r = e;
    }
    *len = w;
}

static void test_out_filter(void **state)
{
    (void)state;
    mproc_graph *g = graph();
    add_cmd(g, "a", "echo one; echo '# launcher line'; echo two", NULL, 0);
    int calls = 0;
    assert_int_equal(
        mproc_graph_run(g, &(mproc_graph_run_opts){.out_filter = drop_hash_lines, .arg = &calls}),
        0);
    assert_int_equal(calls, 1);
    const void *out;
    size_t len;
    assert_ok(mproc_graph_output(g, "a", &out, &len));
    assert_int_equal(len, 8);
    assert_memory_equal(out, "one\ntwo\n", 8);
    mproc_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_bad_graphs),
        MPROC_TEST(test_order),
        MPROC_TEST(test_parallel),
        MPROC_TEST(test_failure_blocks_downstream),
        MPROC_TEST(test_retries_and_time_limit),
        MPROC_TEST(test_fn_outputs_flow_downstream),
        MPROC_TEST(test_deep_chain),
        MPROC_TEST(test_state_reruns_what_changed),
        MPROC_TEST(test_state_function_jobs),
        MPROC_TEST(test_state_survives_kill),
        MPROC_TEST(test_state_refused),
        MPROC_TEST(test_state_full_disk_and_read_only),
        MPROC_TEST(test_fn_job_worker_killed),
        MPROC_TEST(test_stop),
        MPROC_TEST(test_shared_slots),
        MPROC_TEST(test_runner_killed_leaves_nothing),
        MPROC_TEST(test_runner_killed_job_ends_in_its_time),
        MPROC_TEST(test_launcher),
        MPROC_TEST(test_out_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
