/* examples/graph_pipeline.c - a pipeline as a task graph, with its own command line.
 *
 * Ruffus's and compmake's tutorials in C: eight "slow" computations, a summary that needs
 * them all, and a report written by a shell command once the summary is there. Build the
 * graph, then hand the command line to mproc_graph_main:
 *
 *   ./graph_pipeline parmake n=4   run what is not up to date, 4 at a time
 *   ./graph_pipeline ls            what is done, and what would run and why
 *   ./graph_pipeline details sum   one job
 *   ./graph_pipeline clean 'square_*' && ./graph_pipeline make
 *
 * The state lives in .mproc/graph_pipeline.db: a second `make` runs nothing, and a run
 * interrupted with Ctrl-C (or kill -9) goes on where it stopped. PIPELINE_FAIL=3 in the
 * environment makes square_3 fail, to see what is blocked.
 */
#define _DEFAULT_SOURCE /* usleep */
#include <mproc/graph.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A "slow" computation: the square of its input, after a little sleep. */
static int square(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    int64_t x;
    if (in_len < sizeof x)
        return mproc_task_fail(t, -EINVAL, "expected an int64");
    memcpy(&x, in, sizeof x);
    const char *fail = getenv("PIPELINE_FAIL");
    if (fail != NULL && atoll(fail) == x)
        return mproc_task_fail(t, -EDOM, "square_%lld was told to fail", (long long)x);
    usleep(20000);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

/* The sum of its dependencies' outputs: each comes as an 8-byte length, then the bytes. */
static int sum(mproc_task *t, const void *in, size_t in_len, void *out, size_t *out_len)
{
    const unsigned char *p = in;
    int64_t total = 0;
    for (size_t at = 0; at + 8 <= in_len;) {
        uint64_t len = 0;
        for (int b = 0; b < 8; b++)
            len |= (uint64_t)p[at + (size_t)b] << (8 * b);
        at += 8;
        int64_t x;
        if (len != sizeof x || at + len > in_len)
            return mproc_task_fail(t, -EPROTO, "unexpected input");
        memcpy(&x, p + at, sizeof x);
        total += x;
        at += len;
    }
    int n = snprintf(out, *out_len, "sum of squares: %lld\n", (long long)total);
    *out_len = (size_t)n;
    return 0;
}

int main(int argc, char **argv)
{
    mproc_graph *g;
    if (mproc_graph_new(&g) != 0)
        return 1;
    const char *names[8];
    char buf[8][16];
    for (int i = 0; i < 8; i++) {
        int64_t x = i;
        snprintf(buf[i], sizeof buf[i], "square_%d", i);
        names[i] = buf[i];
        mproc_graph_add(g, buf[i],
                        &(mproc_job_opts){.fn = square, .input = &x, .input_len = sizeof x});
    }
    mproc_graph_add(g, "sum", &(mproc_job_opts){.fn = sum, .deps = names, .ndeps = 8});
    mproc_graph_add(g, "report",
                    &(mproc_job_opts){.command = "date > report.txt; echo report written",
                                      .deps = (const char *[]){"sum"},
                                      .ndeps = 1,
                                      .outputs = (const char *[]){"report.txt"},
                                      .noutputs = 1});
    int rc = mproc_graph_main(g, argc, argv);
    const void *out;
    size_t len;
    if (argc < 2 && mproc_graph_output(g, "sum", &out, &len) == 0)
        fwrite(out, 1, len, stdout);
    mproc_graph_free(g);
    return rc;
}
