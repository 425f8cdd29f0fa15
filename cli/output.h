/* cli/output.h - output writing and the job log (cli/output.c). */
#ifndef MPROC_CLI_OUTPUT_H
#define MPROC_CLI_OUTPUT_H

#include <stddef.h>

typedef struct cli_out {
    int broken; /* a write failed; nothing more is written */
    int error;  /* its errno: EPIPE (the reader left: end quietly by SIGPIPE) or another
                   one (a full disk, /dev/full: an error of mproc, said by its user) */
} cli_out;

/* Write all of p to fd (EINTR and short writes retried). 0 or -errno (then o->broken
 * and o->error). */
int out_write(cli_out *o, int fd, const char *p, size_t n);
/* Write a piece of a job's text, each line prefixed by tag when tag is not NULL.
 * *bol: the piece starts a line (1 at the start of a job's text); updated. 0 or -errno. */
int out_emit_stream(cli_out *o, int fd, const char *tag, const char *p, size_t n, int *bol);

/* The file a --joblog argument names ("+FILE": FILE, appended to). */
const char *joblog_path(const char *spec);
/* Open the job log ("+FILE", or append != 0, appends: --resume) and write the header
 * unless appending to a non-empty file. 0 and *fd, or -1 after printing why. */
int joblog_open(const char *spec, int append, int *fd);
/* The sequence numbers a job log marks as done, for --resume (every logged job) and
 * --resume-failed (the jobs logged with exit value 0 and no signal), as GNU parallel
 * reads them. A missing file marks nothing. A line without its newline is ignored.
 * Held as a sorted array: memory follows the lines read, whatever their numbers. */
typedef struct joblog_done {
    unsigned long *seq;
    size_t n, cap;
} joblog_done;
/* 0, or -1 after printing why (unreadable file, out of memory). */
int joblog_read_done(const char *spec, int failed_only, joblog_done *d);
int joblog_is_done(const joblog_done *d, unsigned long seq);
void joblog_done_release(joblog_done *d);

/* One line in GNU parallel's format, written with a single write(2). A write that does
 * not go through whole (a full disk) is undone (the file is cut back to where the line
 * began), so the log never holds a torn line. 0 or -errno. */
int joblog_write(int fd, unsigned long seq, const char *host, double start, double runtime,
                 size_t received, int exitval, int sig, const char *cmd);

#endif
