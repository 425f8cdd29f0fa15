/* src/graph/main.c - a program that built a graph, as a command line (compmake's way).
 *
 * DESIGN. mproc_graph_main is the one part of the graph library that prints: it is the
 * program's command line, like the mproc command, and speaks to a person (results on
 * stdout, errors on stderr). Everything it does goes through the graph's own calls (run,
 * load) and the state file; a selection is resolved to job names first (globs with
 * fnmatch, status words from a load), so every command sees the same jobs.
 */
#include "graph/graph.h"

#include "mproc/cpu.h"
#include "mproc/error.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXIT_CAP 101 /* like mproc run (and GNU parallel): failures beyond are 101 */

static int usage(const char *prog, const char *why)
{
    fprintf(stderr,
            "%s: %s\n"
            "usage: %s [--state FILE] [--stop | --keep-going] [--retries N] [--timeout S]\n"
            "          [make [JOB...] | parmake [n=N] [JOB...] | ls [SEL...] | details JOB\n"
            "           | clean [SEL...] | stats]\n"
            "SEL: job names, shell globs over them, or status words (done, failed, blocked, "
            "todo)\n",
            prog, why, prog);
    return 2;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

static int status_word(const char *w)
{
    static const char *words[] = {"todo", "in progress", "done", "failed", "blocked"};
    for (int s = 0; s < 5; s++)
        if (strcmp(w, words[s]) == 0)
            return s;
    return -1;
}

/* Which jobs a selection picks: sel[i] for each job (a name, a glob or a status word;
 * none: all). A name or glob that matches nothing is an error (said). */
static int select_jobs(const mproc_graph *g, char **sel, int nsel, bool *pick, const char *prog)
{
    for (size_t i = 0; i < g->n; i++)
        pick[i] = nsel == 0;
    for (int k = 0; k < nsel; k++) {
        int word = status_word(sel[k]);
        bool any = false;
        for (size_t i = 0; i < g->n; i++) {
            bool m =
                word >= 0 ? g->jobs[i].status == word : fnmatch(sel[k], g->jobs[i].name, 0) == 0;
            if (m)
                pick[i] = any = true;
        }
        if (!any && word < 0) {
            fprintf(stderr, "%s: no job matches '%s'\n", prog, sel[k]);
            return -ENOENT;
        }
    }
    return 0;
}

static void print_job(const struct gjob *j)
{
    if (mproc__gjob_msg(j)[0] != '\0')
        printf("%-30s %-12s %s\n", j->name, mproc_job_status_name(j->status), mproc__gjob_msg(j));
    else
        printf("%-30s %s\n", j->name, mproc_job_status_name(j->status));
}

static void print_details(const mproc_graph *g, const struct gjob *j)
{
    printf("job:      %s\nstatus:   %s\n", j->name, mproc_job_status_name(j->status));
    if (mproc__gjob_msg(j)[0] != '\0')
        printf("message:  %s\n", mproc__gjob_msg(j));
    if (j->status == MPROC_JOB_FAILED)
        printf("code:     %d\n", j->code);
    if (j->kind == GJOB_FN) {
        printf("work:     a function, %zu input bytes\n", j->input_len);
    } else {
        printf("work:    ");
        if (j->kind == GJOB_SHELL)
            printf(" %s", j->command);
        else
            for (size_t k = 0; j->argv[k] != NULL; k++)
                printf(" %s", j->argv[k]);
        printf("\n");
    }
    printf("needs:   ");
    for (size_t k = 0; k < j->ndeps; k++)
        printf(" %s (%s)", g->jobs[j->deps[k]].name,
               mproc_job_status_name(g->jobs[j->deps[k]].status));
    printf("%s\n", j->ndeps == 0 ? " nothing" : "");
    for (size_t k = 0; k < j->ninputs; k++)
        printf("input:    %s\n", j->inputs[k]);
    for (size_t k = 0; k < j->noutputs; k++)
        printf("output:   %s\n", j->outputs[k]);
    if (j->status == MPROC_JOB_DONE && j->kind != GJOB_FN && j->out_len > 0) {
        printf("captured: %zu bytes\n", j->out_len);
        fwrite(j->out, 1, j->out_len, stdout);
        if (j->out[j->out_len - 1] != '\n')
            printf("\n");
    } else if (j->status == MPROC_JOB_DONE) {
        printf("output:   %zu bytes\n", j->out_len);
    }
}

/* The default state file: .mproc/<program>.db (the directory made if missing). */
static int default_state(const char *prog, char *buf, size_t n)
{
    if (mkdir(".mproc", 0755) < 0 && errno != EEXIST)
        return -errno;
    int len = snprintf(buf, n, ".mproc/%s.db", base_name(prog));
    return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

int mproc_graph_main(mproc_graph *g, int argc, char **argv)
{
    const char *prog = argc > 0 && argv[0] != NULL ? base_name(argv[0]) : "graph";
    if (g == NULL || argc < 0 || (argc > 0 && argv == NULL))
        return usage(prog, "no graph or no arguments");
    const char *state = NULL;
    mproc_graph_run_opts ro = {0};
    unsigned retries = 0;
    double timeout = 0;
    bool set_retries = false, set_timeout = false;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        char *end;
        if (strcmp(argv[a], "--state") == 0 && a + 1 < argc) {
            state = argv[++a];
        } else if (strcmp(argv[a], "--stop") == 0) {
            ro.stop_on_failure = 1;
        } else if (strcmp(argv[a], "--keep-going") == 0) {
            ro.stop_on_failure = 0;
        } else if (strcmp(argv[a], "--retries") == 0 && a + 1 < argc) {
            unsigned long v = strtoul(argv[++a], &end, 10);
            if (*end != '\0' || argv[a][0] == '-' || v > 1000000)
                return usage(prog, "--retries takes a count");
            retries = (unsigned)v;
            set_retries = true;
        } else if (strcmp(argv[a], "--timeout") == 0 && a + 1 < argc) {
            timeout = strtod(argv[++a], &end);
            if (*end != '\0' || !(timeout > 0))
                return usage(prog, "--timeout takes seconds > 0");
            set_timeout = true;
        } else {
            return usage(prog, "unknown option");
        }
    }
    const char *cmd = a < argc ? argv[a++] : "make";
    char path[4096];
    if (state == NULL) {
        int rc = default_state(prog, path, sizeof path);
        if (rc < 0) {
            fprintf(stderr, "%s: cannot make .mproc/: %s\n", prog, mproc_strerror(rc));
            return 1;
        }
        state = path;
    }
    for (size_t i = 0; i < g->n; i++) { /* the options fill in what a job does not say */
        if (set_retries && g->jobs[i].retries == 0)
            g->jobs[i].retries = retries;
        if (set_timeout && g->jobs[i].timeout == 0)
            g->jobs[i].timeout = timeout;
    }
    int rc = mproc_graph_check(g);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, mproc_graph_error(g));
        return 2;
    }
    bool run = strcmp(cmd, "make") == 0 || strcmp(cmd, "parmake") == 0;
    if (strcmp(cmd, "parmake") == 0) {
        ro.jobs = mproc_cpu_usable();
        if (a < argc && strncmp(argv[a], "n=", 2) == 0) {
            char *end;
            long v = strtol(argv[a] + 2, &end, 10);
            if (*end != '\0' || v < 1 || v > 1024)
                return usage(prog, "n= takes a count from 1 to 1024");
            ro.jobs = (int)v;
            a++;
        }
    } else if (run) {
        ro.jobs = 1;
    }
    if (run) {
        ro.state = state;
        ro.targets = (const char *const *)(argv + a);
        ro.ntargets = (size_t)(argc - a);
        rc = mproc_graph_run(g, &ro);
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", prog, mproc_graph_error(g));
            return rc == -ENOENT ? 2 : 1;
        }
        mproc_graph_counts c;
        (void)mproc_graph_counts_get(g, &c);
        for (size_t i = 0; i < g->n; i++)
            if (g->jobs[i].status == MPROC_JOB_FAILED || g->jobs[i].status == MPROC_JOB_BLOCKED)
                print_job(&g->jobs[i]);
        printf("%zu done (%zu up to date), %zu failed, %zu blocked, %zu todo\n", c.done,
               c.up_to_date, c.failed, c.blocked, c.todo);
        return rc > EXIT_CAP ? EXIT_CAP : rc;
    }
    bool known = strcmp(cmd, "ls") == 0 || strcmp(cmd, "details") == 0 ||
                 strcmp(cmd, "clean") == 0 || strcmp(cmd, "stats") == 0;
    if (!known)
        return usage(prog, "unknown command");
    if (strcmp(cmd, "details") == 0 && argc - a != 1)
        return usage(prog, "details takes one job");
    rc = mproc_graph_load(g, state);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, mproc_graph_error(g));
        return 1;
    }
    if (strcmp(cmd, "stats") == 0) {
        mproc_graph_counts c;
        (void)mproc_graph_counts_get(g, &c);
        printf("%zu jobs: %zu done, %zu failed, %zu blocked, %zu todo\n", g->n, c.done, c.failed,
               c.blocked, c.todo);
        return 0;
    }
    bool *pick = calloc(g->n ? g->n : 1, sizeof *pick);
    if (pick == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    rc = select_jobs(g, argv + a, argc - a, pick, prog);
    if (rc == 0 && strcmp(cmd, "details") == 0) {
        size_t i = mproc__graph_find(g, argv[a]);
        if (i == SIZE_MAX) {
            fprintf(stderr, "%s: no job is named '%s'\n", prog, argv[a]);
            rc = -ENOENT;
        } else {
            print_details(g, &g->jobs[i]);
        }
    } else if (rc == 0 && strcmp(cmd, "ls") == 0) {
        for (size_t i = 0; i < g->n; i++)
            if (pick[i])
                print_job(&g->jobs[i]);
    } else if (rc == 0) { /* clean */
        struct gstate *st;
        rc = mproc__state_open(&st, state, g->err, sizeof g->err);
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", prog, g->err);
        } else {
            size_t n = 0;
            for (size_t i = 0; i < g->n && rc == 0; i++)
                if (pick[i]) {
                    rc = mproc__state_forget(st, g->jobs[i].name);
                    n += rc == 0;
                }
            mproc__state_close(st);
            if (rc < 0)
                fprintf(stderr, "%s: could not forget a job: %s\n", prog, mproc_strerror(rc));
            else
                printf("forgot %zu job%s: %s next time\n", n, n == 1 ? "" : "s",
                       n == 1 ? "it runs" : "they run");
        }
    }
    free(pick);
    return rc == -ENOENT ? 2 : rc < 0 ? 1 : 0;
}
