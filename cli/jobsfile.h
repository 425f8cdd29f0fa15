/* cli/jobsfile.h - the jobs file of `mproc make` (cli/jobsfile.c, docs/make.md). */
#ifndef MPROC_CLI_JOBSFILE_H
#define MPROC_CLI_JOBSFILE_H

#include <stddef.h>

struct cli_job {
    char *name;
    char **deps, **in, **out, **run; /* NULL-terminated (or NULL when empty) */
    size_t ndeps, nin, nout, nrun;
    unsigned retries;
    double timeout; /* 0: none */
    long cpus;      /* cpus:, mem:, time: what its Slurm step asks for (--slurm) */
    char *mem, *time;
    size_t line; /* where its header is */
};

/* Called with each job as soon as it is whole (its next job begins, or the file ends),
 * in file order: the job is the callee's (cli_job_release it). A nonzero return stops
 * the parse, which returns it. So a file of 100,000 jobs is never held parsed whole. */
typedef int (*cli_job_fn)(struct cli_job *job, void *arg);

/* Parse a jobs file's text (len bytes; file: its name for messages), calling on_job for
 * each job. 0, or -EINVAL with "FILE:LINE:COLUMN: what was expected" in err (the jobs
 * before the error were passed: nothing may run until the parse returns 0), -ENOMEM, or
 * what on_job returned. */
int cli_jobs_parse(const char *text, size_t len, const char *file, cli_job_fn on_job, void *arg,
                   char *err, size_t errlen);
void cli_job_release(struct cli_job *b); /* one job's strings */

#endif
