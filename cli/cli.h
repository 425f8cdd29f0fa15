/* cli/cli.h - what the files of the mproc command share (not a library header).
 *
 * The command is a client of the public API only (<mproc.h>); this header ties its
 * own files together: option parsing (args.c), argument sources (input.c),
 * replacement strings and quoting (template.c), the scheduler (run.c) and the
 * dispatch and usage texts (main.c).
 *
 * Exit statuses follow GNU parallel: the number of failed jobs (1-100), 101 for
 * more, CLI_EXIT_ERROR (255) for an error of mproc itself (bad option, bad syntax,
 * unreadable input file, out of memory).
 */
#ifndef MPROC_CLI_H
#define MPROC_CLI_H

#include <stddef.h>
#include <stdio.h>

enum { CLI_EXIT_ERROR = 255, CLI_EXIT_MAX_FAILED = 101 };

/* ---- usage.c ---------------------------------------------------------------- */

/* Set: the texts below print nothing (the fuzz target). */
extern int cli_quiet;

/* Print "mproc: <message>" on stderr (printf format). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The one-line error of bad usage, then the usage of the subcommand, on stderr. Returns 255. */
int cli_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_run_usage(FILE *f);
void cli_main_usage(FILE *f);
void cli_make_usage(FILE *f);
int cmd_make(int argc, char **argv); /* cli/make.c */

/* ---- args.c: the options of `mproc run` --------------------------------------- */

enum cli_source_kind {
    CLI_SRC_LIST, /* ::: a b c (strings borrowed from argv) */
    CLI_SRC_FILE  /* :::: FILE, -a FILE ("-" is standard input) */
};

typedef struct cli_source {
    enum cli_source_kind kind;
    char **items; /* CLI_SRC_LIST: the words */
    size_t n;
    const char *path; /* CLI_SRC_FILE */
} cli_source;

enum cli_output_mode { CLI_OUT_GROUP, CLI_OUT_LINE, CLI_OUT_UNGROUP };
enum cli_halt_when { CLI_HALT_NEVER, CLI_HALT_NOW, CLI_HALT_SOON };
enum cli_halt_on { CLI_HALT_FAIL, CLI_HALT_SUCCESS, CLI_HALT_DONE };

/* ---- halt.c: GNU parallel's --halt rules (mproc run, mproc make) ---------------- */

typedef struct cli_halt {
    int when;     /* enum cli_halt_when */
    int on;       /* enum cli_halt_on */
    double value; /* a count, or a percentage when percent */
    int percent;
} cli_halt;

/* The counts a rule looks at, the job that just ended included. */
typedef struct cli_halt_counts {
    unsigned long failed, succeeded, finished;
    unsigned long all; /* every job of the run (for N%) */
} cli_halt_counts;

/* --halt's value: "now,fail=1", "soon,success=20%", "now,done=3", GNU's 0, 1, 2. 0 or -1. */
int cli_halt_parse(const char *s, cli_halt *h);
/* A job ended with exitval and sig (both 0: it succeeded): 1 when the run halts now,
 * with *status the exit status it will have; else 0. */
int cli_halt_reached(const cli_halt *h, const cli_halt_counts *c, int exitval, int sig,
                     int *status);
/* The exit status for `failed` failures: the count (101 for more than 100), or with
 * percent, the percentage of `of` jobs, rounded up. */
int cli_failed_status(unsigned long failed, int percent, unsigned long of);

/* What each step asks of Slurm (--slurm-cpus, --slurm-mem, --slurm-time): srun's
 * --cpus-per-task, --mem and --time (0 / NULL: Slurm's defaults). */
typedef struct cli_slurm_res {
    long cpus;
    const char *mem, *time;
} cli_slurm_res;

typedef struct cli_run_opts {
    char **cmd; /* the command words (borrowed from argv), ncmd may be 0 */
    size_t ncmd;
    cli_source *src; /* argument sources; none: standard input */
    size_t nsrc;
    long jobs;               /* resolved job slots, >= 1 */
    char delim;              /* '\n', or '\0' with -0 */
    int keep_order;          /* -k */
    int tag;                 /* --tag */
    int dry_run;             /* --dry-run */
    int progress;            /* --bar, --eta: CLI_PROGRESS_* */
    int output;              /* enum cli_output_mode */
    const char *joblog;      /* --joblog FILE ("+FILE" appends) */
    int resume;              /* --resume: skip the jobs the joblog has; 2: --resume-failed */
    double timeout;          /* --timeout seconds; 0: none */
    int retries;             /* --retries N: attempts in all, >= 1 */
    cli_halt halt;           /* --halt */
    int slurm;               /* --slurm: each job a step of the Slurm allocation (slurm.c) */
    cli_slurm_res slurm_res; /* --slurm-cpus, --slurm-mem, --slurm-time */
    const char *salloc;      /* --salloc OPTS: outside an allocation, ask for one */
    int argc;                /* the arguments of `run` as given (for --salloc) */
    char **argv;
} cli_run_opts;

/* Parse argv of `mproc run` (argv[0] is "run"). Returns 0, 1 when help was printed
 * (exit 0), or CLI_EXIT_ERROR after printing the error and the usage. o->src is
 * allocated: release with cli_run_opts_release(). */
int cli_run_parse(cli_run_opts *o, int argc, char **argv);
void cli_run_opts_release(cli_run_opts *o);

/* Parse a -j value ("N", "N%", "+N", "-N", "0") against `usable` CPUs and the most
 * slots this process can hold (`most`, used for 0). 0 and *out set, or -1. */
int cli_parse_jobs(const char *s, long usable, long most, long *out);

/* ---- input.c: the stream of argument tuples ------------------------------------ */

typedef struct cli_input cli_input;

/* One job's arguments: n strings, all in one allocation (free(t) releases all). */
typedef struct cli_tuple {
    size_t n;
    char *v[]; /* n pointers, then the strings */
} cli_tuple;

/* Open the sources of o. The first source is read lazily (a file or standard input
 * of any length costs bounded memory); the others are read whole, as the cartesian
 * product revisits them. 0, or CLI_EXIT_ERROR after printing why. */
int cli_input_open(cli_input **out, const cli_run_opts *o);
/* The next tuple: 1 and *t (caller frees), 0 at the end, CLI_EXIT_ERROR on a read error,
 * CLI_INPUT_WAIT when the next record has not arrived yet: poll cli_input_fd() for
 * POLLIN and ask again. Never blocks (a slow pipe must not hold back the scheduler). */
enum { CLI_INPUT_WAIT = 2 };
int cli_input_next(cli_input *in, cli_tuple **t);
/* Read the streamed source whole now (for --halt N%, which needs the number of jobs
 * before the first starts, as GNU parallel does): *total is that number. 0, or
 * CLI_EXIT_ERROR after printing why. */
int cli_input_preload(cli_input *in, unsigned long *total);
/* The descriptor to poll after CLI_INPUT_WAIT; -1 when there is none. */
int cli_input_fd(const cli_input *in);
/* 1 when the jobs read arguments from our standard input. */
int cli_input_uses_stdin(const cli_input *in);
void cli_input_close(cli_input *in);

/* ---- template.c: replacement strings, quoting, the command of a job ------------ */

typedef struct cli_template cli_template;

/* A character that means nothing to sh (letters, digits, _ . / , : + @ % -): a word of
 * them runs the same without a shell. */
int cli_safe_char(char c);
/* Is the word w (n bytes) a shell builtin or keyword (a program of that name would
 * not do the same, or there is none)? */
int cli_is_builtin(const char *w, size_t n);

/* Compile the command words (joined by spaces, as GNU parallel does). 0 or -ENOMEM. */
int cli_template_new(cli_template **out, char **words, size_t n, size_t nsrc);
void cli_template_free(cli_template *t);

/* The shell command line of a job: replacement strings replaced by the quoted
 * arguments, or the quoted arguments appended when the template has none.
 * seq is {#}, slot is {%}. A malloc'd string, or NULL when out of memory. */
char *cli_template_shell(const cli_template *t, const cli_tuple *a, unsigned long seq,
                         unsigned long slot);

/* The argv to execute directly (no shell) when that gives the same result as the
 * shell command line, else NULL in *argv with 0 returned. The vector and its strings
 * are one allocation (free(*argv)). 0, or -ENOMEM. */
int cli_template_direct(const cli_template *t, const cli_tuple *a, unsigned long seq,
                        unsigned long slot, char ***argv);

/* Append s to *buf quoted for /bin/sh (unchanged when it needs no quoting).
 * The buffer is a malloc'd string of length *len and capacity *cap. 0 or -ENOMEM. */
int cli_shell_quote(char **buf, size_t *len, size_t *cap, const char *s);

/* The replacement string `kind` ("", ".", "/", "//", "/.") applied to one argument,
 * appended to the buffer unquoted. 0 or -ENOMEM. */
int cli_replace_one(char **buf, size_t *len, size_t *cap, const char *arg, const char *kind);

/* Append n bytes to a growable buffer. 0 or -ENOMEM. */
int cli_buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

/* ---- progress.c: --bar and --eta ------------------------------------------------ */

enum { CLI_PROGRESS_OFF, CLI_PROGRESS_BAR, CLI_PROGRESS_ETA };

typedef struct cli_progress {
    int mode; /* CLI_PROGRESS_* */
    double t0, last;
    int shown; /* the line is on the screen (erase it before other output) */
} cli_progress;

void cli_progress_start(cli_progress *p, int mode);
/* Redraw the line on stderr (at most every 0.1 s unless force). `known`: the total is
 * known (the input is exhausted). */
void cli_progress_draw(cli_progress *p, unsigned long done, unsigned long total, int known,
                       int force);
/* Erase the line if it is shown (before writing a job's output). */
void cli_progress_clear(cli_progress *p);
/* The last drawing, and a newline. */
void cli_progress_end(cli_progress *p, unsigned long done, unsigned long total, int known);
/* The text of the line into buf (n bytes), fitting `width` columns; its length. */
int cli_progress_format(char *buf, size_t n, int mode, int width, unsigned long done,
                        unsigned long total, int known, double elapsed);

/* ---- jobserver.c: job slots from GNU make's jobserver ---------------------------- */

typedef struct cli_jobserver {
    int active;   /* tokens come from make */
    int serial;   /* a jobserver was named but is unusable: one job at a time */
    int rfd, wfd; /* rfd: ours, non-blocking, close-on-exec; wfd: make's (or rfd) */
    int own_w;    /* wfd == rfd (the fifo) */
    char *tok;    /* the tokens we hold, to give back byte for byte */
    size_t ntok, cap;
} cli_jobserver;

/* Find the jobserver in MAKEFLAGS (NULL: none). Always 0; a named but unusable one
 * gives a warning on stderr and js->serial. */
int cli_jobserver_open(cli_jobserver *js, const char *makeflags);
/* Take one token without waiting: 1, or 0 when none is free (poll cli_jobserver_fd). */
int cli_jobserver_take(cli_jobserver *js);
/* Give the last token taken back. */
void cli_jobserver_give(cli_jobserver *js);
int cli_jobserver_fd(const cli_jobserver *js);
/* Give every token back and close. */
void cli_jobserver_close(cli_jobserver *js);

/* ---- slurm.c: jobs placed by Slurm (--slurm) ------------------------------------ */

/* What srun said about a step, read from its standard error (cli_slurm_line). */
typedef struct cli_slurm_step {
    char host[256]; /* the node it ran on ("" until known) */
    int sig;        /* the signal that ended its task, as srun named it (0: none) */
    int time_limit; /* Slurm cancelled it at its time limit */
    int cancelled;  /* Slurm cancelled it otherwise (scancel, the allocation ended) */
    char why[256];  /* srun's last line ("" if none): why a step could not start */
} cli_slurm_step;

/* 0 inside an allocation; else -1 with a message saying how to get one. */
int cli_slurm_ready(void);
/* The allocation's CPUs. */
long cli_slurm_cpus(void);
/* How many steps run at once by default: the allocation's CPUs shared by steps of
 * res->cpus each (at least 1). */
long cli_slurm_slots(const cli_slurm_res *res);
/* srun's words for a step of one task with res (with mark, then a shell that marks the
 * node first on the step's standard error and execs the words after), NULL-terminated,
 * with room for `more` words after them: one malloc'd block (free it alone), or NULL. */
char **cli_slurm_launcher(const cli_slurm_res *res, int mark, size_t more);
/* Take the node marker's line out of a step's output (len bytes; *len shrinks), its node
 * into host: 1, or 0 when there is none. */
int cli_slurm_take_host(char *out, size_t *len, char *host, size_t hostlen);
/* The srun argv that runs `/bin/sh -c shell_cmd` as a step of one task with res, the
 * node marked first on its standard error. One malloc'd block (free it alone; shell_cmd
 * is borrowed), or NULL. */
char **cli_slurm_argv(const cli_slurm_res *res, const char *shell_cmd);
/* Outside an allocation with --salloc OPTS: run argv (this mproc's, from "run") again under
 * `salloc OPTS`; returns only on failure (-1, said). */
int cli_slurm_salloc(const char *opts, int argc, char **argv);
/* Is v a Slurm memory size (digits, then K, M, G or T) / time (digits, ':' and '-')? */
int cli_slurm_mem_ok(const char *v);
int cli_slurm_time_ok(const char *v);
/* One line (n bytes, with its newline) of a step's standard error: 1 when it is srun's
 * or the host marker (read into st, not the job's output), 0 when it is the job's (or
 * Slurm's reason for ending it at a limit, which the job's output keeps). */
int cli_slurm_line(cli_slurm_step *st, const char *line, size_t n);

/* ---- run.c: the scheduler ------------------------------------------------------ */

/* Run every job of o; returns the exit status of `mproc run`. */
int cli_run(const cli_run_opts *o);

#endif
