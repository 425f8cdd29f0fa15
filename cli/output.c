/* cli/output.c - writing the jobs' output and the job log of `mproc run`.
 *
 * DESIGN: mproc is the only writer of its standard output and error while jobs
 * run (grouped and line-buffered modes: the jobs write into pipes that mproc
 * reads), so one job's text never lands inside another's: a grouped job is written
 * whole, a line-buffered job one complete line at a time. Every write goes through
 * out_write(), which retries EINTR and short writes and turns EPIPE (the reader went
 * away: `mproc run ... | head -1`) into a flag the scheduler sees, never a crash.
 * A job-log line is formatted in memory and written with one write(2) on an
 * O_APPEND descriptor, so a killed mproc never leaves a torn line.
 */
#include <mproc.h>

#include "cli.h"
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int out_write(cli_out *o, int fd, const char *p, size_t n)
{
    if (o->broken)
        return -EPIPE;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                /* A non-blocking stdout we inherited: wait until it drains. */
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
                continue;
            }
            int e = errno;
            o->broken = 1;
            o->error = e;
            return -e;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int out_emit_stream(cli_out *o, int fd, const char *tag, const char *p, size_t n, int *bol)
{
    if (n == 0)
        return 0;
    if (!tag) {
        *bol = p[n - 1] == '\n';
        return out_write(o, fd, p, n);
    }
    /* Tag each line start; batch the tagged text in 64 KiB writes. */
    char *b = NULL;
    size_t l = 0, c = 0;
    size_t tl = strlen(tag);
    int rc = 0;
    while (n > 0 && rc == 0) {
        const char *nl = memchr(p, '\n', n);
        size_t ll = nl ? (size_t)(nl - p) + 1 : n;
        if (*bol)
            rc = cli_buf_add(&b, &l, &c, tag, tl);
        if (rc == 0)
            rc = cli_buf_add(&b, &l, &c, p, ll);
        *bol = nl != NULL;
        p += ll;
        n -= ll;
        if (rc == 0 && l >= 1 << 16) {
            rc = out_write(o, fd, b, l);
            l = 0;
        }
    }
    if (rc == 0 && l > 0)
        rc = out_write(o, fd, b, l);
    free(b);
    return rc;
}

const char *joblog_path(const char *spec)
{
    return spec[0] == '+' ? spec + 1 : spec;
}

int joblog_open(const char *spec, int append, int *fd_out)
{
    const char *path = joblog_path(spec);
    append = append || spec[0] == '+';
    /* Read-write: appending checks the last byte (pread) */
    int flags =
        (append ? O_RDWR : O_WRONLY) | O_CREAT | O_CLOEXEC | O_APPEND | (append ? 0 : O_TRUNC);
    int fd;
    do {
        fd = open(path, flags, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        cli_error("run: cannot write --joblog '%s': %s", path, strerror(errno));
        return -1;
    }
    cli_out tmp = {0};
    if (append) {
        /* Appending after a line some other writer left unfinished would glue our
         * first line to it: end that line first. */
        char last;
        off_t size = lseek(fd, 0, SEEK_END);
        if (size > 0 && pread(fd, &last, 1, size - 1) == 1 && last != '\n')
            out_write(&tmp, fd, "\n", 1);
    }
    static const char header[] =
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";
    off_t end = lseek(fd, 0, SEEK_END);
    if (!tmp.broken && (!append || end == 0))
        out_write(&tmp, fd, header, sizeof header - 1);
    if (tmp.broken) {
        cli_error("run: cannot write --joblog '%s': %s", path, strerror(tmp.error));
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

static int done_add(joblog_done *d, unsigned long seq)
{
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 64;
        unsigned long *nb = realloc(d->seq, nc * sizeof *nb);
        if (!nb)
            return -1;
        d->seq = nb;
        d->cap = nc;
    }
    d->seq[d->n++] = seq;
    return 0;
}

static int cmp_seq(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

int joblog_is_done(const joblog_done *d, unsigned long seq)
{
    return d->n > 0 && bsearch(&seq, d->seq, d->n, sizeof *d->seq, cmp_seq) != NULL;
}

void joblog_done_release(joblog_done *d)
{
    free(d->seq);
    memset(d, 0, sizeof *d);
}

/* Field k (0-based) of a tab-separated line as a number; -1 when absent or not one. */
static long field_num(const char *line, size_t len, int k)
{
    const char *p = line, *end = line + len;
    for (int i = 0; i < k; i++) {
        const char *t = memchr(p, '\t', (size_t)(end - p));
        if (!t)
            return -1;
        p = t + 1;
    }
    long v = 0;
    const char *q = p;
    while (q < end && *q >= '0' && *q <= '9') {
        if (v > 100000000000L)
            return -1;
        v = v * 10 + (*q - '0');
        q++;
    }
    if (q == p || (q < end && *q != '\t'))
        return -1;
    return v;
}

int joblog_read_done(const char *spec, int failed_only, joblog_done *d)
{
    const char *path = joblog_path(spec);
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        cli_error("run: cannot read --joblog '%s': %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    errno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break; /* torn: not ours (we write whole lines) */
        size_t len = (size_t)n - 1;
        long seq = field_num(line, len, 0);
        if (seq <= 0)
            continue; /* the header, or a line we do not understand */
        if (failed_only) {
            long ev = field_num(line, len, 6), sg = field_num(line, len, 7);
            if (ev != 0 || sg != 0)
                continue;
        }
        if (done_add(d, (unsigned long)seq) < 0) {
            cli_error("out of memory");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        cli_error("run: cannot read --joblog '%s': %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && d->n > 1)
        qsort(d->seq, d->n, sizeof *d->seq, cmp_seq);
    free(line);
    fclose(f);
    if (rc < 0)
        joblog_done_release(d);
    return rc;
}

int joblog_write(int fd, unsigned long seq, const char *host, double start, double runtime,
                 size_t received, int exitval, int sig, const char *cmd)
{
    char head[420];
    int hl = snprintf(head, sizeof head, "%lu\t%s\t%.3f\t%10.3f\t0\t%zu\t%d\t%d\t", seq,
                      host != NULL && host[0] != '\0' ? host : ":", start, runtime, received,
                      exitval, sig);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return -EINVAL;
    size_t cl = strlen(cmd);
    size_t n = (size_t)hl + cl + 1;
    char *line = malloc(n);
    if (!line)
        return -ENOMEM;
    memcpy(line, head, (size_t)hl);
    /* Newlines would break the one-line-per-job format; GNU parallel writes NUL. */
    for (size_t i = 0; i < cl; i++)
        line[(size_t)hl + i] = cmd[i] == '\n' ? '\0' : cmd[i];
    line[n - 1] = '\n';
    off_t before = lseek(fd, 0, SEEK_END); /* O_APPEND: where this line will begin */
    ssize_t w;
    do {
        w = write(fd, line, n);
    } while (w < 0 && errno == EINTR);
    free(line);
    if (w >= 0 && (size_t)w == n)
        return 0;
    int e = w < 0 ? errno : ENOSPC; /* a short write: the disk filled up */
    if (w > 0 && before >= 0) {
        /* Undo the torn part. Should even this fail, the error is still reported and the
           run stops; --resume ignores a last line without its newline. */
        int t;
        do {
            t = ftruncate(fd, before);
        } while (t < 0 && errno == EINTR);
    }
    return -e;
}
