/* cli/make.c - `mproc make`: a jobs file (cli/jobsfile.c) run as a task graph with its
 * state next to the file (docs/make.md).
 *
 * DESIGN. The file is parsed whole before anything runs (a syntax error names
 * FILE:LINE:COLUMN and nothing runs), turned into an mproc_graph (each job's run: lines
 * become one `sh -c` script that stops at the first failing line), and the commands run
 * in the file's directory, where the state lives (.mproc/state.db). Everything about
 * what runs, what is up to date and what survives a kill is the graph library's; this
 * file is the command line around it.
 */
#include "cli.h"
#include "jobsfile.h"
#include "output.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef MPROC_CLI_GRAPH
#include "mproc/cpu.h"
#include "mproc/error.h"
#include "mproc/graph.h"
#endif

void cli_make_usage(FILE *f)
{
    fputs("usage: mproc make [-j N] [-f FILE] [-n | --dry-run] [--graph]\n"
          "                  [--keep-going | --halt RULE] [--retries N] [--timeout S]\n"
          "                  [--joblog FILE]\n"
          "                  [--bar | --eta] [TARGET...]\n"
          "                  [--slurm] [--slurm-cpus N] [--slurm-mem SIZE] [--slurm-time T]\n"
          "                  [--salloc OPTS]\n"
          "       mproc make [-f FILE] --status | --clean [SEL...] | --details JOB | --stats\n"
          "Runs the jobs of FILE (default: ./Jobfile) that are not up to date, upstream first,\n"
          "N at once (default: usable CPUs); with TARGETs, those and what they need.\n"
          "  -n, --dry-run   say what would run and why; run nothing\n"
          "  --status [SEL...]  each job's status (done, failed, blocked, todo) and why\n"
          "  --clean [SEL...]   forget the selected jobs' state: they run next time\n"
          "  --details JOB      a job's status, command, dependencies, message, output\n"
          "  --stats            counts by status\n"
          "                  SEL: job names, shell globs, status words; none: every job\n"
          "  --graph         the graph as Graphviz DOT, coloured by status\n"
          "  --halt RULE     when to stop, as mproc run: soon,fail=1 (start nothing new after\n"
          "                  the first failure), now,fail=1 (and end the jobs running),\n"
          "                  now|soon,fail|success|done=N or N%\n"
          "  --retries N     run a failed job again up to N times (where it says none)\n"
          "  --timeout S     a job's time limit in seconds (where it says none)\n"
          "  --joblog FILE   a line per job that ran, in GNU parallel's format (+FILE appends)\n"
          "  --bar, --eta    a progress line on stderr (with every job: no TARGETs)\n"
          "  --slurm         each job a Slurm job step (srun) of the allocation mproc runs in;\n"
          "                  -j defaults to its CPUs; --slurm-cpus, --slurm-mem, --slurm-time:\n"
          "                  what each step asks for; --salloc OPTS: ask for an allocation\n"
          "The state is FILE's directory's .mproc/state.db; see docs/make.md.\n",
          f);
}

#ifndef MPROC_CLI_GRAPH

int cmd_make(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("make: this mproc was built without SQLite, which mproc make needs "
              "(install libsqlite3-dev and build again)");
    return CLI_EXIT_ERROR;
}

#else

enum { STATE_LS = 1, STATE_CLEAN, STATE_DETAILS, STATE_STATS }; /* --status ... --stats */

/* The whole file, NUL-terminated. NULL and errno on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
                errno = EIO;
            }
            break;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

enum { SIMPLE_WORDS = 64 };

/* A run: line that needs no shell, split into words in buf (argv, NULL-terminated), as
 * GNU make runs such a recipe line (and mproc run its commands): only plain words
 * (cli_safe_char, and = past the first word) and a first word that is not a shell
 * builtin or keyword.
 * Anything else (quotes, $, redirections, globs, ~, ;, |...) goes to sh. 1, or 0. */
static int simple_argv(const char *line, char *buf, size_t n, char **argv)
{
    size_t len = strlen(line);
    if (len + 1 > n)
        return 0;
    memcpy(buf, line, len + 1);
    size_t argc = 0;
    for (char *p = buf; *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (argc + 1 >= SIMPLE_WORDS)
            return 0;
        argv[argc++] = p;
        for (; *p != '\0' && *p != ' ' && *p != '\t'; p++) {
            if (!cli_safe_char(*p) && !(*p == '=' && argc > 1))
                return 0;
        }
    }
    argv[argc] = NULL;
    if (argc == 0)
        return 0;
    return !cli_is_builtin(argv[0], strlen(argv[0]));
}

/* What the parser hands each job to (add_job). */
struct adding {
    mproc_graph *g;
    unsigned retries; /* --retries, --timeout: for jobs that set none */
    double timeout;
    size_t n;          /* jobs added */
    int graph_rc;      /* mproc_graph_add failed: its code (mproc_graph_error says) */
    int slurm;         /* --slurm: a job's cpus:, mem:, time: make it a launcher of its own */
    cli_slurm_res res; /* --slurm-cpus, --slurm-mem, --slurm-time: for jobs that set none */
};

/* Add a parsed job to the graph as the parser reads it, then release it: a file of
 * 100,000 jobs is never held parsed whole beside its graph. */
static int add_job(struct cli_job *b, void *arg)
{
    struct adding *ad = arg;
    /* one plain command runs without a shell, as make runs it (a shell costs a millisecond
       a job); else the run: lines as one sh script that stops at the first line that
       fails */
    char words[4096], *argv[SIMPLE_WORDS];
    bool direct = b->nrun == 1 && simple_argv(b->run[0], words, sizeof words, argv);
    size_t len = 8;
    for (size_t k = 0; k < b->nrun; k++)
        len += strlen(b->run[k]) + 1;
    char *script = direct ? NULL : malloc(len);
    int rc = 0;
    if (!direct && script == NULL) {
        rc = -ENOMEM;
    } else if (!direct) {
        strcpy(script, "set -e\n");
        for (size_t k = 0; k < b->nrun; k++) {
            strcat(script, b->run[k]);
            strcat(script, "\n");
        }
    }
    mproc_job_opts o = {.command = script,
                        .argv = direct ? argv : NULL,
                        .deps = (const char *const *)b->deps,
                        .ndeps = b->ndeps,
                        .inputs = (const char *const *)b->in,
                        .ninputs = b->nin,
                        .outputs = (const char *const *)b->out,
                        .noutputs = b->nout,
                        .retries = b->retries != 0 ? b->retries : ad->retries,
                        .timeout = b->timeout != 0 ? b->timeout : ad->timeout};
    char **launcher = NULL; /* its own srun words: what its step asks for */
    if (rc == 0 && ad->slurm && (b->cpus != 0 || b->mem != NULL || b->time != NULL)) {
        cli_slurm_res res = {b->cpus != 0 ? b->cpus : ad->res.cpus,
                             b->mem != NULL ? b->mem : ad->res.mem,
                             b->time != NULL ? b->time : ad->res.time};
        if ((launcher = cli_slurm_launcher(&res, 1, 0)) == NULL)
            rc = -ENOMEM;
        o.launcher = launcher;
    }
    if (rc == 0 && (rc = mproc_graph_add(ad->g, b->name, &o)) < 0)
        ad->graph_rc = rc;
    ad->n += rc == 0;
    free(launcher);
    free(script);
    cli_job_release(b);
    return rc;
}

static const char *dot_colour(int status)
{
    switch (status) {
    case MPROC_JOB_DONE:
        return "palegreen";
    case MPROC_JOB_FAILED:
        return "salmon";
    case MPROC_JOB_BLOCKED:
        return "orange";
    default:
        return "white";
    }
}

/* A DOT string: quotes and backslashes escaped. */
static void dot_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

/* As each job ends: its output, whole (grouped), a line on stderr if it failed, and its
 * joblog line. */
struct make_out {
    int joblog;           /* fd, or -1 */
    int log_rc;           /* the first joblog write that failed */
    size_t n;             /* jobs in the file */
    mproc_graph *g;       /* for the progress line's counts */
    cli_progress bar;     /* --bar, --eta (off: mode 0) */
    unsigned long wanted; /* jobs the run is about (the total of the line) */
    cli_halt halt;        /* --halt */
    cli_halt_counts hc;   /* what --halt looks at */
    int halted;           /* --halt's rule was met: the run's exit status is halt_status */
    int halt_status;
    char **hosts; /* --slurm: the node each job ran on (the joblog's Host), or NULL */
};

/* Jobs ended, up to date, failed or blocked: done for the progress line. */
static unsigned long jobs_settled(const mproc_graph *g)
{
    mproc_graph_counts c;
    if (mproc_graph_counts_get(g, &c) < 0)
        return 0;
    return (unsigned long)(c.done + c.failed + c.blocked);
}

/* The joblog's Command of a job: its script's lines (after "set -e") joined by "; ". */
static void command_line(const char *script, char *buf, size_t n)
{
    const char *p = strncmp(script, "set -e\n", 7) == 0 ? script + 7 : script;
    size_t o = 0;
    for (; *p != '\0' && o + 3 < n; p++) {
        if (*p == '\n') {
            if (p[1] == '\0')
                break;
            buf[o++] = ';';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
}

/* --slurm: a job's output without the line its step wrote naming its node (kept for the
 * joblog's Host). */
static void take_host(size_t job, unsigned char *out, size_t *len, void *arg)
{
    struct make_out *mo = arg;
    char host[256];
    if (mo->hosts != NULL && cli_slurm_take_host((char *)out, len, host, sizeof host)) {
        free(mo->hosts[job]);
        mo->hosts[job] = strdup(host); /* NULL without memory: the joblog says ':' */
    }
}

/* As a job ends: its output and joblog line, the progress line, and --halt's rule. */
/* The joblog's Command of a job run without a shell: its words joined by spaces. */
static void join_words(char *const *argv, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t k = 0; argv[k] != NULL && o + 1 < n; k++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", k ? " " : "", argv[k]);
}

static void job_ended(const mproc_job_info *job, const void *out, size_t len, void *arg)
{
    struct make_out *mo = arg;
    int failed = job->status == MPROC_JOB_FAILED;
    int sig = failed ? job->signal : 0;
    int exitval = !failed ? 0 : sig != 0 ? 0 : job->code > 0 ? job->code : 1;
    cli_progress_clear(&mo->bar); /* a job's output never mixes with the line */
    if (len > 0)
        (void)fwrite(out, 1, len, stdout);
    fflush(stdout);
    if (failed)
        fprintf(stderr, "mproc make: %s: failed: %s\n", job->name, job->msg);
    if (mo->joblog >= 0 && mo->log_rc == 0) {
        char cmd[4096];
        if (job->argv != NULL)
            join_words(job->argv, cmd, sizeof cmd);
        else
            command_line(job->command != NULL ? job->command : job->name, cmd, sizeof cmd);
        mo->log_rc = joblog_write(mo->joblog, job->index + 1,
                                  mo->hosts != NULL ? mo->hosts[job->index] : NULL, job->started,
                                  job->runtime, len, exitval, sig, cmd);
    }
    if (mo->bar.mode != CLI_PROGRESS_OFF) /* counting is a walk over the jobs */
        cli_progress_draw(&mo->bar, jobs_settled(mo->g), mo->wanted, 1, 0);
    mo->hc.failed += (unsigned long)failed;
    mo->hc.succeeded += (unsigned long)!failed;
    mo->hc.finished++;
    if (!mo->halted && cli_halt_reached(&mo->halt, &mo->hc, exitval, sig, &mo->halt_status)) {
        mo->halted = 1;
        (void)mproc_graph_stop(mo->g, mo->halt.when == CLI_HALT_NOW);
    }
}

struct make_flags {
    int dry, status, graph, bar;
    cli_halt halt;
    long jobs;
    const char *joblog;
    int slurm; /* --slurm: each job a step of the allocation (slurm.c) */
    cli_slurm_res res;
};

static int run_graph(mproc_graph *g, int rc, struct make_out *mo, const char *file,
                     const char *state, struct make_flags f, char **targets, size_t ntargets);

int cmd_make(int argc, char **argv)
{
    const char *file = "Jobfile", *joblog = NULL;
    long jobs = 0;
    int dry = 0, status = 0, graph = 0, bar = CLI_PROGRESS_OFF;
    cli_halt halt = {.when = CLI_HALT_NEVER};
    unsigned retries = 0;
    double timeout = 0;
    int slurm = 0;
    cli_slurm_res res = {0};
    const char *salloc = NULL;
    int a = 1;
    for (; a < argc && argv[a][0] == '-' && argv[a][1] != '\0'; a++) {
        const char *o = argv[a];
        char *end;
        if (strcmp(o, "--") == 0) {
            a++;
            break;
        } else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            cli_make_usage(stdout);
            return 0;
        } else if ((strcmp(o, "-j") == 0 || strcmp(o, "--jobs") == 0 ||
                    (strncmp(o, "-j", 2) == 0 && o[2] != '\0')) &&
                   (o[2] != '\0' && o[1] == 'j' ? true : a + 1 < argc)) {
            jobs = strtol(o[1] == 'j' && o[2] != '\0' ? o + 2 : argv[++a], &end, 10);
            if (*end != '\0' || jobs < 1 || jobs > 1024)
                return cli_usage_error("make", "make: -j takes a count from 1 to 1024");
        } else if ((strcmp(o, "-f") == 0 || strcmp(o, "--file") == 0) && a + 1 < argc) {
            file = argv[++a];
        } else if (strcmp(o, "-n") == 0 || strcmp(o, "--dry-run") == 0) {
            dry = 1;
        } else if (strcmp(o, "--status") == 0 || strcmp(o, "--ls") == 0) {
            status = STATE_LS;
        } else if (strcmp(o, "--clean") == 0) {
            status = STATE_CLEAN;
        } else if (strcmp(o, "--details") == 0) {
            status = STATE_DETAILS;
        } else if (strcmp(o, "--stats") == 0) {
            status = STATE_STATS;
        } else if (strcmp(o, "--graph") == 0) {
            graph = 1;
        } else if (strcmp(o, "--joblog") == 0 && a + 1 < argc) {
            joblog = argv[++a];
        } else if (strcmp(o, "--bar") == 0) {
            bar = CLI_PROGRESS_BAR;
        } else if (strcmp(o, "--eta") == 0) {
            bar = CLI_PROGRESS_ETA;
        } else if (strcmp(o, "--halt") == 0 || strncmp(o, "--halt=", 7) == 0) {
            const char *v = o[6] == '=' ? o + 7 : a + 1 < argc ? argv[++a] : "";
            if (cli_halt_parse(v, &halt) < 0)
                return cli_usage_error("make", "make: bad --halt '%s'", v);
        } else if (strcmp(o, "--keep-going") == 0 || strcmp(o, "-k") == 0) {
            halt.when = CLI_HALT_NEVER;
        } else if (strcmp(o, "--retries") == 0 && a + 1 < argc) {
            unsigned long v = strtoul(argv[++a], &end, 10);
            if (*end != '\0' || argv[a][0] == '-' || v > 1000000)
                return cli_usage_error("make", "make: --retries takes a count");
            retries = (unsigned)v;
        } else if (strcmp(o, "--timeout") == 0 && a + 1 < argc) {
            timeout = strtod(argv[++a], &end);
            if (*end != '\0' || !(timeout > 0))
                return cli_usage_error("make", "make: --timeout takes seconds > 0");
        } else if (strcmp(o, "--slurm") == 0) {
            slurm = 1;
        } else if (strcmp(o, "--slurm-cpus") == 0 && a + 1 < argc) {
            res.cpus = strtol(argv[++a], &end, 10);
            if (*end != '\0' || res.cpus < 1 || res.cpus > 100000)
                return cli_usage_error("make", "make: bad --slurm-cpus '%s'", argv[a]);
            slurm = 1;
        } else if (strcmp(o, "--slurm-mem") == 0 && a + 1 < argc) {
            if (!cli_slurm_mem_ok(argv[++a]))
                return cli_usage_error("make", "make: bad --slurm-mem '%s' (e.g. 500M, 4G)",
                                       argv[a]);
            res.mem = argv[a];
            slurm = 1;
        } else if (strcmp(o, "--slurm-time") == 0 && a + 1 < argc) {
            if (!cli_slurm_time_ok(argv[++a]))
                return cli_usage_error("make", "make: bad --slurm-time '%s' (e.g. 30, 1:00:00)",
                                       argv[a]);
            res.time = argv[a];
            slurm = 1;
        } else if (strcmp(o, "--salloc") == 0 && a + 1 < argc) {
            salloc = argv[++a];
            slurm = 1;
        } else {
            return cli_usage_error("make", "make: unknown option '%s'", o);
        }
    }
    int runs = !dry && !status && !graph; /* the state's commands run nothing */
    if (slurm && runs && getenv("SLURM_JOB_ID") == NULL && salloc != NULL)
        return cli_slurm_salloc(salloc, argc, argv) < 0 ? CLI_EXIT_ERROR : 0;
    if (slurm && runs && cli_slurm_ready() < 0)
        return CLI_EXIT_ERROR;
    if (slurm && jobs == 0)
        jobs = cli_slurm_slots(&res);
    size_t len;
    char *text = read_file(file, &len);
    if (text == NULL) {
        cli_error("make: cannot read %s: %s", file, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    mproc_graph *g = NULL;
    int rc = mproc_graph_new(&g);
    struct adding ad = {.g = g, .retries = retries, .timeout = timeout, .slurm = slurm, .res = res};
    char err[600];
    if (rc == 0)
        rc = cli_jobs_parse(text, len, file, add_job, &ad, err, sizeof err);
    free(text);
    if (rc < 0) {
        if (ad.graph_rc < 0)
            cli_error("make: %s: %s", file,
                      mproc_graph_error(g)[0] ? mproc_graph_error(g) : mproc_strerror(rc));
        else
            cli_error("%s", g == NULL ? mproc_strerror(rc) : err);
        mproc_graph_free(g);
        return CLI_EXIT_ERROR;
    }
    /* the commands run, and the state lives, in the file's directory */
    char *dir_copy = strdup(file);
    if (dir_copy == NULL || chdir(dirname(dir_copy)) < 0 ||
        (mkdir(".mproc", 0755) < 0 && errno != EEXIST)) {
        cli_error("make: cannot use the directory of %s: %s", file, strerror(errno));
        free(dir_copy);
        mproc_graph_free(g);
        return CLI_EXIT_ERROR;
    }
    free(dir_copy);
    const char *state = ".mproc/state.db";
    struct make_out mo = {.joblog = -1, .n = ad.n};
    int result =
        run_graph(g, 0, &mo, file, state,
                  (struct make_flags){dry, status, graph, bar, halt, jobs, joblog, slurm, res},
                  argv + a, (size_t)(argc - a));
    mproc_graph_free(g);
    return result;
}

static int slot_take(void *arg)
{
    return cli_jobserver_take(arg);
}

static void slot_give(void *arg)
{
    cli_jobserver_give(arg);
}

/* Without a jobserver from make, be one (as GNU make -jN is): a pipe holding N - 1
 * tokens, named in MAKEFLAGS in make 4.3's way (--jobserver-auth=R,W, descriptors the
 * jobs inherit), so that a `make` or `mproc run` in a job takes its extra slots from the
 * same N; mproc make takes its own from it like any client. *jobs: N (0: usable CPUs, made
 * explicit). 0, or -1 and errno. */
static int serve_jobs(long *jobs, int fds[2])
{
    const char *mf = getenv("MAKEFLAGS");
    if (mf != NULL && (strstr(mf, "--jobserver-auth=") || strstr(mf, "--jobserver-fds=")))
        return 0; /* a client of make's */
    if (*jobs == 0)
        *jobs = mproc_cpu_usable();
    if (*jobs <= 1)
        return 0;
    if (pipe(fds) < 0) /* inherited by the jobs: not close-on-exec */
        return -1;
    char tokens[1024];
    memset(tokens, '+', sizeof tokens);
    size_t n = (size_t)*jobs - 1; /* <= 1023: fits the pipe without blocking */
    ssize_t w;
    do {
        w = write(fds[1], tokens, n);
    } while (w < 0 && errno == EINTR);
    char flags[4200];
    int len = snprintf(flags, sizeof flags, "%s -j%ld --jobserver-auth=%d,%d", mf ? mf : "", *jobs,
                       fds[0], fds[1]);
    if (w != (ssize_t)n || len < 0 || (size_t)len >= sizeof flags ||
        setenv("MAKEFLAGS", flags, 1) < 0) {
        int e = w < 0 ? errno : E2BIG;
        close(fds[0]);
        close(fds[1]);
        fds[0] = fds[1] = -1;
        errno = e;
        return -1;
    }
    return 0;
}

/* --status, --clean, --details, --stats: mproc_graph_main's ls, clean, details and stats
 * on the state next to the jobs file, with its selections (names, globs, status words). */
static int state_command(mproc_graph *g, const char *state, int which, char **sel, size_t nsel)
{
    static const char *cmds[] = {"", "ls", "clean", "details", "stats"};
    if ((which == STATE_DETAILS && nsel != 1) || (which == STATE_STATS && nsel != 0))
        return cli_usage_error("make", which == STATE_DETAILS ? "make: --details takes one job"
                                                              : "make: --stats takes no jobs");
    char **av = calloc(nsel + 5, sizeof *av);
    if (av == NULL) {
        cli_error("make: out of memory");
        return CLI_EXIT_ERROR;
    }
    av[0] = "mproc make";
    av[1] = "--state";
    av[2] = (char *)state;
    av[3] = (char *)cmds[which];
    for (size_t k = 0; k < nsel; k++)
        av[4 + k] = sel[k];
    fflush(stdout);
    int rc = mproc_graph_main(g, (int)nsel + 4, av);
    free(av);
    return rc == 0 ? 0 : CLI_EXIT_ERROR; /* 1: the state; 2: a selection or usage */
}

/* The rest of mproc make, once the graph is built (rc: how that went). */
static int run_graph(mproc_graph *g, int rc, struct make_out *mo, const char *file,
                     const char *state, struct make_flags f, char **targets, size_t ntargets)
{
    int dry = f.dry, graph = f.graph;
    if (rc == 0 && f.status != 0) /* the state's commands: compmake's, as the library has them */
        return state_command(g, state, f.status, targets, ntargets);
    long jobs = f.jobs;
    const char *joblog = f.joblog;
    if (rc == 0)
        rc = mproc_graph_check(g);
    if (rc < 0) {
        cli_error("make: %s: %s", file,
                  g != NULL && mproc_graph_error(g)[0] ? mproc_graph_error(g) : mproc_strerror(rc));
        return CLI_EXIT_ERROR;
    }
    size_t n = 0;
    if (dry || graph) {
        rc = mproc_graph_load(g, state);
        if (rc < 0) {
            cli_error("make: %s", mproc_graph_error(g));
            return CLI_EXIT_ERROR;
        }
        if (graph)
            printf("digraph jobs {\n  node [style=filled];\n");
        mproc_job_info in;
        for (size_t i = 0; mproc_graph_job(g, i, &in) == 0; i++) {
            const char *name = in.name, *msg = in.msg;
            int st = in.status;
            if (graph) {
                printf("  ");
                dot_str(name);
                printf(" [fillcolor=%s, tooltip=", dot_colour(st));
                dot_str(mproc_job_status_name(st));
                printf("];\n");
                for (size_t k = 0; k < in.ndeps; k++) {
                    printf("  ");
                    dot_str(in.deps[k]);
                    printf(" -> ");
                    dot_str(name);
                    printf(";\n");
                }
            } else if (st != MPROC_JOB_DONE) {
                printf("%s: %s\n", name,
                       st == MPROC_JOB_FAILED ? "would run: it failed before" : msg);
                n++;
            }
        }
        if (graph)
            printf("}\n");
        else if (dry)
            printf("%zu job%s would run\n", n, n == 1 ? "" : "s");
        return 0;
    }
    if (joblog != NULL && joblog_open(joblog, 0, &mo->joblog) < 0)
        return CLI_EXIT_ERROR;
    mo->g = g;
    mo->wanted = (unsigned long)mo->n;
    mo->halt = f.halt;
    mo->hc.all = mo->wanted; /* --halt N%: of the jobs in the file */
    if (ntargets == 0)
        cli_progress_start(&mo->bar, f.bar);
    else
        cli_progress_start(&mo->bar, CLI_PROGRESS_OFF); /* the total is not known up front */
    cli_progress_draw(&mo->bar, 0, mo->wanted, 1, 1);
    /* job slots: make's jobserver when make runs us, else one of our own for the make -j
   (and mproc run) inside the jobs */
    cli_jobserver js;
    int served[2] = {-1, -1};
    if (!f.slurm && serve_jobs(&jobs, served) < 0) { /* not across nodes */
        cli_error("make: cannot make the jobserver: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    cli_jobserver_open(&js, getenv("MAKEFLAGS"));
    if (js.serial)
        jobs = 1;           /* named but unusable: what make's own sub-makes do */
    char **launcher = NULL; /* --slurm: each job through srun, a step of the allocation */
    if (f.slurm && (launcher = cli_slurm_launcher(&f.res, 1, 0)) == NULL) {
        cli_error("make: out of memory");
        cli_jobserver_close(&js);
        return CLI_EXIT_ERROR;
    }
    mproc_graph_run_opts ro = {.jobs = (int)jobs,
                               .on_done = job_ended,
                               .arg = mo,
                               .slot_take = js.active ? slot_take : NULL,
                               .slot_give = js.active ? slot_give : NULL,
                               .slot_fd = cli_jobserver_fd(&js),
                               .slot_arg = &js,
                               .state = state,
                               .targets = (const char *const *)targets,
                               .ntargets = ntargets,
                               .launcher = launcher,
                               .out_filter = f.slurm ? take_host : NULL};
    if (f.slurm)
        mo->hosts = calloc(mo->n ? mo->n : 1, sizeof *mo->hosts);
    rc = mproc_graph_run(g, &ro);
    free(launcher);
    for (size_t k = 0; mo->hosts != NULL && k < mo->n; k++)
        free(mo->hosts[k]);
    free(mo->hosts);
    mo->hosts = NULL;
    cli_jobserver_close(&js);
    for (int k = 0; k < 2; k++)
        if (served[k] >= 0)
            close(served[k]);
    if (rc < 0) {
        cli_error("make: %s", mproc_graph_error(g));
        return CLI_EXIT_ERROR;
    }
    cli_progress_end(&mo->bar, jobs_settled(g), mo->wanted, 1);
    /* what a failure blocked, once everything has ended */
    mproc_job_info in;
    for (size_t i = 0; mproc_graph_job(g, i, &in) == 0; i++)
        if (in.status == MPROC_JOB_BLOCKED)
            fprintf(stderr, "mproc make: %s: blocked: %s\n", in.name, in.msg);
    if (mo->joblog >= 0) {
        close(mo->joblog);
        if (mo->log_rc < 0) {
            cli_error("make: the joblog could not be written: %s", strerror(-mo->log_rc));
            return CLI_EXIT_ERROR;
        }
    }
    fflush(stdout);
    if (mo->halted) /* --halt's rule was met: its status, as mproc run and GNU parallel */
        return mo->halt_status;
    return rc > CLI_EXIT_MAX_FAILED ? CLI_EXIT_MAX_FAILED : rc;
}

#endif
