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
    size_t line;    /* where its header is */
};

struct cli_jobs {
    struct cli_job *v;
    size_t n;
};

/* Parse a jobs file's text (len bytes; file: its name for messages). 0, or -EINVAL with
 * "FILE:LINE:COLUMN: what was expected" in err, -ENOMEM. out is empty on failure. */
int cli_jobs_parse(const char *text, size_t len, const char *file, struct cli_jobs *out, char *err,
                   size_t errlen);
void cli_jobs_release(struct cli_jobs *j);
void cli_job_release(struct cli_job *b); /* one job's strings (it stays, empty) */

#endif
