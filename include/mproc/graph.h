/* mproc/graph.h - task graphs: jobs with dependencies, run in parallel, upstream first.
 *
 * compmake's parmake and Ruffus's pipeline_run, in C. Add jobs, each with a unique name,
 * the names of the jobs it depends on, and its work: a task function (mproc_task_fn, the
 * pool's) with input bytes, run on an mproc_pool (so crash isolation and time limits are
 * the pool's), or a command run by /bin/sh -c (or an argv run directly), its standard
 * output and error captured. Then run the graph: a job runs once everything it depends on
 * is done; independent jobs run in parallel, up to N at once; a failed job's dependents
 * are not run (they are "blocked") while unrelated jobs go on, unless the run is told to
 * stop at the first failure.
 *
 * How outputs flow downstream (compmake passes results downstream): a function job's
 * input is its own input bytes followed by the outputs of its function-job dependencies,
 * in the order the dependencies were declared, each as an 8-byte little-endian length
 * then the bytes:
 *
 *     input bytes | u64 len(dep 1 output) | dep 1 output | u64 len(dep 2) | ...
 *
 * A command job's dependencies only order it (it reads what its upstream jobs wrote to
 * files). mproc_graph_output gives any done job's output (a function job's output bytes,
 * a command job's captured standard output and error).
 *
 * Bad graphs are errors before anything runs (mproc_graph_check, also done by run), with
 * a message naming the jobs (mproc_graph_error): a name used twice, a dependency on a job
 * that does not exist, a cycle ("a -> b -> c -> a"). Nothing is recursive: graphs of any
 * depth work (a chain of 100,000 jobs is tested).
 *
 * State: with a state file (mproc_graph_run_opts.state, SQLite), each job's outcome is
 * recorded as it arrives, with the fingerprint it was built from: a hash of its work (the
 * command text or argv; for a function, mproc_task_id: its module, offset and build), its
 * input bytes, its input files' contents (or size and time, files_by_mtime) and the
 * output hashes of the jobs it depends on. A later run skips a job whose fingerprint is
 * unchanged and whose output files exist (its output comes from the state); a change
 * runs that job, and what is downstream only if its output changed: a job whose output
 * comes out byte-identical stops the rebuild below it. A run killed at any instant loses
 * nothing that finished: the next run redoes only what was in flight. One run at a time
 * per state file (a second gets -EBUSY); a damaged file (-MPROC_ECORRUPT), one from a
 * newer mproc (-EPROTO), one that cannot be written (-EACCES) or a full disk (-ENOSPC) is
 * an error with a message, never a silent fresh start.
 *
 * The library never prints: results are codes (mproc_strerror) and the graph's status.
 * Not thread-safe: one thread builds and runs a graph.
 */
#ifndef MPROC_GRAPH_H
#define MPROC_GRAPH_H

#include "mproc/common.h"
#include "mproc/pool.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_graph mproc_graph;
struct mproc_job_info;

/* A job's status, with compmake's words (mproc_job_status_name). */
typedef enum mproc_job_status {
    MPROC_JOB_TODO = 0,    /* not run yet */
    MPROC_JOB_RUNNING = 1, /* in progress */
    MPROC_JOB_DONE = 2,    /* finished successfully */
    MPROC_JOB_FAILED = 3,  /* finished with a failure (its code and message are kept) */
    MPROC_JOB_BLOCKED = 4  /* not run: a job it depends on failed or was blocked */
} mproc_job_status;

/* What a job does, and what it depends on. Exactly one of fn, command and argv. */
typedef struct mproc_job_opts {
    const char *const *deps; /* names of the jobs it depends on (copied) */
    size_t ndeps;
    mproc_task_fn fn;  /* a function job: run on the graph's pool */
    const void *input; /* its input bytes (copied) */
    size_t input_len;
    size_t output_cap;         /* the most output bytes it may produce; 0: 64 KiB */
    const char *command;       /* a command job: /bin/sh -c command (copied) */
    char *const *argv;         /* or an argv, run directly, found in PATH (copied) */
    const char *const *inputs; /* files it reads (copied): their contents are part of its
                              fingerprint (with a state) */
    size_t ninputs;
    const char *const *outputs; /* files it writes (copied): a command that succeeds without
                                   writing one fails; a job whose outputs are gone runs again
                                   (with a state) */
    size_t noutputs;
    double timeout;        /* seconds; 0: none. Past it the job fails (-MPROC_ETIMELIMIT) */
    unsigned retries;      /* times a failed job runs again before it counts as failed */
    char *const *launcher; /* a command job's own launcher (copied), in place of the run's
                              (mproc_graph_run_opts.launcher); NULL: the run's */
} mproc_job_opts;

/* How a graph runs. The zero value: as many jobs at once as usable CPUs, keep going
 * after a failure. */
typedef struct mproc_graph_run_opts {
    int jobs;                   /* at most this many jobs at once; 0: mproc_cpu_usable() */
    int stop_on_failure;        /* nonzero: start nothing new after the first failure (the jobs
                               running finish; the rest stays todo) */
    const char *state;          /* an SQLite file that remembers what was built from what (see
                                   "State" above); NULL: the run keeps nothing */
    int files_by_mtime;         /* nonzero: an input file counts as changed when its size or
                               modification time changed, without reading it */
    const char *const *targets; /* run only these jobs and what they depend on; NULL (0):
                               every job */
    size_t ntargets;
    /* called in the running thread as each job ends (done, or failed for good; not for
       one found up to date or blocked), with its output: for printing it grouped as it
       comes, keeping a log. NULL: none. */
    void (*on_done)(const struct mproc_job_info *job, const void *out, size_t len, void *arg);
    void *arg;
    /* Job slots shared with other programs (GNU make's jobserver: mproc make). With
       slot_take set, one job at a time runs on the run's own slot and each further job
       running at once needs slot_take(slot_arg) to return 1 (0: none free now; the run
       polls slot_fd for input, then asks again); slot_give(slot_arg) returns one when it
       is no longer needed. Every slot taken is given back before run returns. `jobs`
       still caps the jobs at once. NULL: only `jobs` limits. */
    int (*slot_take)(void *arg);
    void (*slot_give)(void *arg);
    int slot_fd;
    void *slot_arg;
    /* An argv prefix every command job runs through (NULL-terminated; NULL: none): a
       job `cmd` runs as launcher... /bin/sh -c cmd (an argv job as launcher... argv...),
       e.g. srun's to run each job as a Slurm job step (mproc make --slurm), or a container
       runtime's. Not part of a job's fingerprint: where a job runs is not what it is built
       from. */
    char *const *launcher;
    /* Called in the running thread with a command job's captured output as the job ends,
       before anything else sees it (the state, its output hash, on_done): it may take
       bytes out (shrinking *len), e.g. lines a launcher adds (mproc make --slurm takes out
       the node a step reports). job: the job's position. Gets `arg`. NULL: none. */
    void (*out_filter)(size_t job, unsigned char *out, size_t *len, void *arg);
} mproc_graph_run_opts;

/* Counts by status, for progress (mproc_graph_counts). */
typedef struct mproc_graph_counts {
    size_t todo, running, done, failed, blocked;
    size_t up_to_date; /* of done: found up to date in the state, not run by the last run */
} mproc_graph_counts;

/* A new, empty graph. 0, -EINVAL (NULL), -ENOMEM. */
MPROC_API int mproc_graph_new(mproc_graph **out);
MPROC_API void mproc_graph_free(mproc_graph *g);

/* Add a job. The name is any non-empty string (copied); duplicates and unknown
 * dependencies are reported by check. 0, -EINVAL (NULL or empty name, not exactly one
 * kind of work, input NULL with a length), -ENOMEM. */
MPROC_API int mproc_graph_add(mproc_graph *g, const char *name, const mproc_job_opts *opts);

/* From on_done, during a run: start no new job; the run returns once the jobs running
 * end. With now nonzero, end those too (a command's process group gets SIGTERM, then
 * SIGKILL 0.2 s later; the pool of function jobs is terminated): they did not complete,
 * so they stay todo, are not passed to on_done and are not recorded, and the next run
 * does them. GNU parallel's --halt rules are built on this (mproc make --halt).
 * 0; -EINVAL (NULL); -MPROC_ESTATE outside a run. */
MPROC_API int mproc_graph_stop(mproc_graph *g, int now);

/* Validate: 0, or -EINVAL with mproc_graph_error saying what and naming the jobs. */
MPROC_API int mproc_graph_check(mproc_graph *g);

/* The message of the last failed call on g ("" if none). Owned by g. */
MPROC_API const char *mproc_graph_error(const mproc_graph *g);

/* Run every job not done yet (check first). Returns 0 when all are done, the number of
 * jobs that failed or were blocked (> 0), or a negative code (the graph is bad:
 * -EINVAL; -ENOMEM; a pool could not start). */
MPROC_API int mproc_graph_run(mproc_graph *g, const mproc_graph_run_opts *opts);

/* What a run would do, without running anything: each job's status as the state file
 * says (done: up to date; failed: failed last time and unchanged since; blocked: below a
 * failure; todo: it would run, its message says why: new, changed, an output missing, or
 * upstream). Takes the state's lock for the time of the call. 0 or the codes of run. */
MPROC_API int mproc_graph_load(mproc_graph *g, const char *state);

/* Your program as a command line, like compmake's: build the graph, then
 * `return mproc_graph_main(g, argc, argv);`. Commands (argv[1], default "make"):
 *   make [JOB...]            run (one job at a time) what is not up to date
 *   parmake [n=N] [JOB...]   the same, N at once (default: usable CPUs)
 *   ls [SEL...]              each job's status (and why it would run)
 *   details JOB              a job's status, work, dependencies, message and output
 *   clean [SEL...]           forget the selected jobs (they run next time)
 *   stats                    counts by status
 * A selection (SEL) is job names, shell globs over them ("fit_*"), or status words
 * (done, failed, blocked, todo); none: every job. Options before the command:
 * --state FILE (default: .mproc/<program>.db, the directory made if missing),
 * --keep-going (default) or --stop (at the first failure), --retries N, --timeout S
 * (per job, where the job sets none). Prints to stdout (results) and stderr (errors);
 * returns the exit status: 0 when every wanted job is done, else the number of jobs
 * failed or blocked (at most 101); 2 for a usage error. */
MPROC_API int mproc_graph_main(mproc_graph *g, int argc, char **argv);

/* Counts by status. 0 or -EINVAL. */
MPROC_API int mproc_graph_counts_get(const mproc_graph *g, mproc_graph_counts *c);

/* A job's status (>= 0, mproc_job_status), or -ENOENT (no such job), -EINVAL. With
 * code not NULL: its failure code (0 unless failed); msg not NULL: its failure message
 * ("" if none; owned by g). */
MPROC_API int mproc_graph_status(const mproc_graph *g, const char *name, int *code,
                                 const char **msg);

/* A done job's output: a function job's output bytes, a command job's captured output
 * (standard output and error, as written). *data is owned by g. 0, -ENOENT,
 * -MPROC_ESTATE (not done), -EINVAL. */
MPROC_API int mproc_graph_output(const mproc_graph *g, const char *name, const void **data,
                                 size_t *len);

/* A job, by its position (the order of mproc_graph_add): for listing a graph. */
typedef struct mproc_job_info {
    const char *name;
    int status;              /* mproc_job_status */
    int code;                /* failed: its code */
    const char *msg;         /* failed or blocked: why; todo after a load: why it would run */
    int up_to_date;          /* done from the state, not run by the last run */
    const char *const *deps; /* the names of the jobs it depends on */
    size_t ndeps;
    size_t index;        /* its position (the order of mproc_graph_add) */
    double started;      /* when its last try began (seconds since the epoch; 0: never) */
    double runtime;      /* seconds it took */
    int signal;          /* a command killed by a signal: that signal; else 0 */
    const char *command; /* a command job's command (an argv job's program); NULL for a
                        function */
    char *const *argv;   /* an argv job's argv (NULL-terminated); NULL for the others */
} mproc_job_info;

/* The i-th job: 0 and *info (its strings owned by g), -ENOENT past the last, -EINVAL. */
MPROC_API int mproc_graph_job(const mproc_graph *g, size_t i, mproc_job_info *info);

/* "todo", "in progress", "done", "failed", "blocked"; "?" for anything else. */
MPROC_API const char *mproc_job_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif
