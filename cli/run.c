/* cli/run.c - the scheduler of `mproc run`: start jobs, collect their output, end them.
 *
 * DESIGN: one thread, one poll(2) loop, no SIGCHLD. Each running job holds three
 * descriptors that the loop polls together: its pidfd (mproc_process_fd, readable
 * when the job's process ends) and the read ends of its stdout and stderr pipes
 * (non-blocking, close-on-exec). A signal to mproc (SIGINT, SIGTERM) only writes a
 * byte into a self-pipe, the loop's first descriptor; SIGPIPE has an empty handler so
 * a write to a vanished reader returns EPIPE (handlers, unlike SIG_IGN, are reset by
 * exec, so the jobs still get the default dispositions).
 *
 * A job ends when its pidfd fires, not when its pipes close: a background grandchild
 * (`sleep 100 &`) may hold them open for ever. At that moment everything the job
 * wrote is in the pipes, so they are drained and closed. Every job leads its own
 * process group (MPROC_PROCESS_SETPGID), so a timeout or a forwarded signal reaches
 * its grandchildren too; and when a job is ended by us (timeout, Ctrl-C, halt,
 * EPIPE) its group is SIGKILLed after its leader ends but BEFORE the leader is
 * reaped: an unreaped zombie keeps the group id from being reused, so the kill can
 * only hit that job's own leftovers.
 *
 * Memory stays bounded for any number of input lines: the input is read one tuple
 * per started job; a job is freed when its output is printed, and what a job prints
 * is held in a spool (spool.c: 64 KiB of memory per stream, then an unlinked
 * temporary file), so a job printing gigabytes costs disk, not memory. With --keep-order,
 * finished jobs wait for the earlier ones, and no new job starts while WINDOW jobs
 * are waiting or running, so a slow first job cannot make the backlog grow without
 * bound.
 *
 * Inside `make -jN` (jobserver.c) a job beyond the first starts only on a token from
 * make's jobserver: the loop polls the jobserver while a job waits for one, returns
 * a token as soon as no job runs on it, and returns them all on the way out.
 *
 * Signals: the first SIGINT/SIGTERM/SIGHUP/SIGQUIT stops starting jobs and forwards the
 * signal to every running job's group; the second SIGKILLs them. When the last job has
 * ended mproc re-raises the signal on itself (so its parent sees it killed by SIGINT).
 * SIGTSTP (Ctrl-Z) stops the jobs' groups and then mproc itself; once continued, mproc
 * continues them.
 *
 * The input is polled like the rest: a slow pipe never holds back output, reaping or
 * signals (input.c). Jobs get /dev/null as stdin, as with GNU parallel.
 */
#include <mproc.h>

#include "cli.h"
#include "output.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h> /* INFINITY, isinf: macros, no libm */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { KILL_GRACE_MS = 1000, DRAIN_MAX = 1 << 20 };

typedef struct job {
    unsigned long seq;
    cli_tuple *args;
    char *cmd;   /* the shell command line (joblog, dry run) */
    char *tag;   /* --tag prefix, or NULL */
    int attempt; /* 1-based */
    mproc_process *proc;
    pid_t pid;
    int fd[2];       /* read ends of the stdout and stderr pipes; -1 when closed */
    spool out[2];    /* captured stdout and stderr (memory, then a temporary file) */
    size_t received; /* stdout bytes (the joblog's Receive) */
    double start_real, start_mono;
    double deadline; /* monotonic; 0: none */
    double kill_at;  /* monotonic: SIGKILL the group then; 0: none */
    int killed;      /* we ended it: kill its group before reaping */
    int halt_killed; /* ended by --halt now: it never completed, so it is neither
                        printed nor logged (a --resume runs it again), as in parallel */
    int timed_out;
    int done;
    int exitval, sig;
    unsigned long slot; /* 1-based while running */
    /* --slurm: what srun said (slurm.c), and its standard error's unfinished line */
    cli_slurm_step step;
    char line[1024];
    size_t nline;
} job;

typedef struct sched {
    const cli_run_opts *o;
    cli_template *tpl;
    cli_input *in;
    cli_out out;
    job **slots;
    long running;
    job **ring; /* --keep-order: jobs not yet printed, in input order */
    size_t rcap, rhead, rcount;
    job *pending; /* made but not started: the system was short of processes */
    unsigned long next_seq;
    int input_done;
    int stopping;
    int stop_sig; /* the signal that stopped us */
    int nsignals;
    int halted;
    int halt_status;
    unsigned long failed, succeeded, finished;
    int joblog_fd;
    joblog_done done; /* --resume: the seqs to skip */
    cli_progress prog;
    cli_jobserver js;
    int js_wait;            /* a job waits for a jobserver token: poll for one */
    int input_wait;         /* the next input record has not arrived: poll the input */
    unsigned long total;    /* jobs made (== the total once input_done) */
    unsigned long all_jobs; /* --halt X%: every job, counted before the first starts */
    int spool_said;         /* a spool error was reported (once is enough) */
    int slurm_said;         /* --slurm: a step could not start (said once) */
    int devnull;
    int fatal;
} sched;

static int sig_wfd = -1;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (sig != SIGPIPE && sig_wfd >= 0) {
        ssize_t w = write(sig_wfd, &b, 1);
        (void)w;
    }
    errno = saved;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void job_free(job *j)
{
    if (!j)
        return;
    for (int k = 0; k < 2; k++) {
        if (j->fd[k] >= 0)
            close(j->fd[k]);
        spool_release(&j->out[k]);
    }
    mproc_process_free(j->proc);
    free(j->args);
    free(j->cmd);
    free(j->tag);
    free(j);
}

/* Signal a running job's whole process group (its leader not yet reaped). */
static void job_signal(job *j, int sig)
{
    if (j->pid > 0)
        kill(-j->pid, sig);
}

static char *make_tag(const cli_tuple *a)
{
    char *b = NULL;
    size_t l = 0, c = 0;
    int rc = cli_buf_add(&b, &l, &c, "", 0);
    for (size_t k = 0; k < a->n && rc == 0; k++) {
        if (k)
            rc = cli_buf_add(&b, &l, &c, " ", 1);
        if (rc == 0)
            rc = cli_buf_add(&b, &l, &c, a->v[k], strlen(a->v[k]));
    }
    if (rc == 0)
        rc = cli_buf_add(&b, &l, &c, "\t", 1);
    if (rc < 0) {
        free(b);
        return NULL;
    }
    return b;
}

static int transient(int rc)
{
    return rc == -EAGAIN || rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE;
}

/* Start (or restart) j in slot `slot`. 0, 1 when the system is short of resources
 * and the job should wait, or -1 on a fatal error (printed). */
static int job_start(sched *s, job *j, unsigned long slot)
{
    const cli_run_opts *o = s->o;
    int pfd[2][2] = {{-1, -1}, {-1, -1}};
    int capture = o->output != CLI_OUT_UNGROUP;
    free(j->cmd);
    j->cmd = cli_template_shell(s->tpl, j->args, j->seq, slot);
    if (!j->cmd) {
        cli_error("out of memory");
        return -1;
    }
    if (capture) {
        for (int k = 0; k < 2; k++) {
            if (pipe2(pfd[k], O_CLOEXEC) < 0) {
                int e = errno;
                for (int m = 0; m < k; m++) {
                    close(pfd[m][0]);
                    close(pfd[m][1]);
                }
                if (transient(-e) && s->running > 0)
                    return 1;
                cli_error("run: cannot create a pipe: %s", strerror(e));
                return -1;
            }
            fcntl(pfd[k][0], F_SETFL, O_NONBLOCK);
        }
    }
    mproc_spawn_opts so = {
        .flags = MPROC_PROCESS_SETPGID,
        /* GNU parallel's rule: a job's stdin is empty. Our stdin is the argument
           source, or a terminal (a job reading it from its own process group would be
           stopped by SIGTTIN), or a pipe the first job would swallow whole. */
        .stdin_fd = s->devnull,
        .stdout_fd = capture ? pfd[0][1] : 0,
        .stderr_fd = capture ? pfd[1][1] : 0,
        .search_path = 1,
    };
    char **dargv = NULL;
    int rc = 0;
    j->step = (cli_slurm_step){0};
    j->halt_killed = 0;
    j->nline = 0;
    if (o->slurm) { /* a step of the allocation: srun runs the shell command */
        char **sv = cli_slurm_argv(&o->slurm_res, j->cmd);
        rc = sv != NULL ? mproc_process_spawn(&j->proc, sv, &so) : -ENOMEM;
        free(sv);
    } else if ((rc = cli_template_direct(s->tpl, j->args, j->seq, slot, &dargv)) == 0 && dargv) {
        rc = mproc_process_spawn(&j->proc, dargv, &so);
        free(dargv);
        /* Not executable as a program (missing, a builtin, a script without #!):
         * the shell gives the same result a shell user expects, 127 included. */
        if (rc < 0 && !transient(rc))
            rc = 1;
    } else {
        rc = rc < 0 ? rc : 1;
    }
    if (rc == 1) {
        char *shargv[] = {"/bin/sh", "-c", j->cmd, NULL};
        so.search_path = 0;
        rc = mproc_process_spawn(&j->proc, shargv, &so);
    }
    if (capture) {
        close(pfd[0][1]);
        close(pfd[1][1]);
    }
    if (rc < 0) {
        if (capture) {
            close(pfd[0][0]);
            close(pfd[1][0]);
        }
        j->proc = NULL;
        if (transient(rc) && s->running > 0)
            return 1;
        cli_error("run: cannot start a job: %s", mproc_strerror(rc));
        return -1;
    }
    j->fd[0] = pfd[0][0];
    j->fd[1] = pfd[1][0];
    j->pid = mproc_process_pid(j->proc);
    j->slot = slot;
    j->start_real = real_now();
    j->start_mono = mono_now();
    j->deadline = o->timeout > 0 ? j->start_mono + o->timeout : 0;
    j->kill_at = 0;
    j->timed_out = 0;
    j->killed = 0;
    s->slots[slot - 1] = j;
    s->running++;
    return 0;
}

/* Read what is available on a job's pipe k. Returns 1 at EOF (closed), 0 otherwise. */
/* A job's output could not be held (a full or unwritable $TMPDIR): said once, and the
 * run stops. */
static void spool_failed(sched *s, int rc)
{
    if (!s->spool_said)
        cli_error("run: cannot hold a job's output in a temporary file in '%s': %s", spool_dir(),
                  strerror(-rc));
    s->spool_said = 1;
    s->fatal = 1;
}

/* Append n bytes to a spool. 0 or -errno. */
static int spool_append(spool *sp, const char *data, size_t n)
{
    while (n > 0) {
        char *p;
        size_t room;
        int rc = spool_room(sp, &p, &room);
        if (rc < 0)
            return rc;
        size_t c = room < n ? room : n;
        memcpy(p, data, c);
        spool_commit(sp, c);
        data += c;
        n -= c;
    }
    return 0;
}

/* --slurm: a step's standard error, line by line: srun's lines and the host marker are
 * read (cli_slurm_line), the job's own go to its spool. At EOF (data NULL) the unfinished
 * line is the job's. 0 or -errno. */
static int slurm_stderr(job *j, const char *data, size_t n)
{
    int rc = 0;
    if (data == NULL) {
        if (j->nline > 0 && !cli_slurm_line(&j->step, j->line, j->nline))
            rc = spool_append(&j->out[1], j->line, j->nline);
        j->nline = 0;
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        j->line[j->nline++] = data[i];
        if (data[i] == '\n' || j->nline == sizeof j->line) { /* a long line: the job's */
            if (data[i] != '\n' || !cli_slurm_line(&j->step, j->line, j->nline))
                rc = spool_append(&j->out[1], j->line, j->nline);
            j->nline = 0;
        }
    }
    return rc;
}

static int job_read(sched *s, job *j, int k, size_t limit)
{
    if (k == 1 && s->o->slurm) {
        size_t total = 0;
        while (j->fd[k] >= 0 && total < limit) {
            char buf[4096];
            ssize_t n = read(j->fd[k], buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            int rc = slurm_stderr(j, n > 0 ? buf : NULL, n > 0 ? (size_t)n : 0);
            if (rc < 0) {
                spool_failed(s, rc);
                return 0;
            }
            if (n <= 0) {
                close(j->fd[k]);
                j->fd[k] = -1;
                return 1;
            }
            total += (size_t)n;
            if (s->o->output == CLI_OUT_LINE && !s->o->keep_order) {
                cli_progress_clear(&s->prog);
                spool_emit_lines(&j->out[k], &s->out, k + 1, j->tag);
            }
        }
        return 0;
    }
    size_t total = 0;
    while (j->fd[k] >= 0 && total < limit) {
        char *p;
        size_t room;
        int rc = spool_room(&j->out[k], &p, &room);
        if (rc < 0) {
            spool_failed(s, rc);
            return 0;
        }
        ssize_t n = read(j->fd[k], p, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            close(j->fd[k]);
            j->fd[k] = -1;
            return 1;
        }
        spool_commit(&j->out[k], (size_t)n);
        total += (size_t)n;
        if (k == 0)
            j->received += (size_t)n;
        if (s->o->output == CLI_OUT_LINE && !s->o->keep_order) {
            cli_progress_clear(&s->prog);
            spool_emit_lines(&j->out[k], &s->out, k + 1, j->tag);
        }
    }
    return 0;
}

static void job_print(sched *s, job *j)
{
    if (spool_size(&j->out[0]) || spool_size(&j->out[1]))
        cli_progress_clear(&s->prog);
    for (int k = 0; k < 2; k++)
        spool_emit(&j->out[k], &s->out, k + 1, j->tag);
}

static void print_ready(sched *s)
{
    while (s->rcount > 0) {
        job *j = s->ring[s->rhead];
        if (!j->done)
            break;
        job_print(s, j);
        job_free(j);
        s->ring[s->rhead] = NULL;
        s->rhead = (s->rhead + 1) % s->rcap;
        s->rcount--;
    }
}

static void stop_all(sched *s, int sig)
{
    for (long i = 0; i < s->o->jobs; i++) {
        job *j = s->slots[i];
        if (!j)
            continue;
        j->killed = 1;
        job_signal(j, sig);
        if (sig != SIGKILL && !j->kill_at)
            j->kill_at = mono_now() + KILL_GRACE_MS / 1000.0;
    }
}

/* --halt (halt.c): after each job. One job enough to halt ends the run with that job's
 * status; a halt now ends the jobs running (they never completed: see halt_killed). */
static void check_halt(sched *s, const job *j)
{
    const cli_run_opts *o = s->o;
    if (o->halt.when == CLI_HALT_NEVER || s->halted)
        return;
    cli_halt_counts c = {s->failed, s->succeeded, s->finished, s->all_jobs};
    if (!cli_halt_reached(&o->halt, &c, j->exitval, j->sig, &s->halt_status))
        return;
    s->halted = 1;
    s->stopping = 1;
    if (o->halt.when == CLI_HALT_NOW) {
        for (long i = 0; i < o->jobs; i++)
            if (s->slots[i])
                s->slots[i]->halt_killed = 1;
        stop_all(s, SIGTERM);
    }
}

/* --slurm: a step that Slurm cancelled (scancel, the allocation ended), or that never
 * started (no node: srun could not make it, the allocation is gone), did not complete:
 * like a job --halt now ended, it is neither printed nor logged, so --resume in a new
 * allocation runs it. A step that never started stops the run: the rest would not start
 * either. */
static void slurm_incomplete(sched *s, job *j)
{
    int never = j->step.host[0] == '\0' && (j->exitval != 0 || j->sig != 0);
    if (!never && !j->step.cancelled)
        return;
    j->halt_killed = 1;
    if (j->exitval == 0 && j->sig == 0)
        j->exitval = 1; /* it counts as failed */
    if (never && !s->slurm_said) {
        cli_error("--slurm: a job step could not start (%s): starting no more; the jobs that "
                  "did not complete are not logged, so --resume in a new allocation runs them",
                  j->step.why[0] ? j->step.why : "has the allocation ended?");
        s->slurm_said = 1;
    }
    if (never)
        s->stopping = 1;
}

/* The job's process ended: collect, maybe retry, log, print. */
static void job_finish(sched *s, job *j)
{
    for (int k = 0; k < 2; k++)
        if (j->fd[k] >= 0)
            job_read(s, j, k, DRAIN_MAX);
    if (j->killed || j->timed_out)
        job_signal(j, SIGKILL); /* leftovers of a job we ended; leader still unreaped */
    int code = 0;
    if (mproc_process_exitcode(j->proc, &code) != 1)
        code = -SIGKILL; /* cannot happen: the pidfd said it ended */
    j->exitval = code >= 0 ? code : 0;
    j->sig = code < 0 ? -code : 0;
    if (s->o->slurm && j->step.sig != 0 && code == 128 + j->step.sig) { /* srun's way */
        j->exitval = 0;
        j->sig = j->step.sig;
    }
    if (s->o->slurm && !j->killed && !j->timed_out)
        slurm_incomplete(s, j);
    if (j->timed_out)
        j->exitval = -1;
    mproc_process_free(j->proc);
    j->proc = NULL;
    for (int k = 0; k < 2; k++) {
        if (j->fd[k] >= 0) {
            close(j->fd[k]);
            j->fd[k] = -1;
        }
    }
    s->slots[j->slot - 1] = NULL;
    s->running--;
    unsigned long slot = j->slot;
    j->pid = 0;

    int failed = j->exitval != 0 || j->sig != 0;
    int rc;
    if (failed && j->attempt < s->o->retries && !s->stopping) {
        j->attempt++;
        spool_reset(&j->out[0]);
        spool_reset(&j->out[1]);
        j->received = 0;
        rc = job_start(s, j, slot);
        if (rc == 0)
            return;
        if (rc < 0)
            s->fatal = 1;
        /* Out of processes for now: give up retrying and report this attempt. */
    }
    if (j->halt_killed) { /* never completed: neither printed nor logged */
        spool_reset(&j->out[0]);
        spool_reset(&j->out[1]);
    } else if (s->joblog_fd >= 0) {
        rc = joblog_write(s->joblog_fd, j->seq, j->step.host, j->start_real,
                          mono_now() - j->start_mono, j->received, j->exitval, j->sig, j->cmd);
        if (rc < 0 && !s->fatal) {
            /* A job finished but not logged would run again at --resume: stop now. */
            cli_error("run: cannot write --joblog '%s': %s", joblog_path(s->o->joblog),
                      strerror(-rc));
            s->fatal = 1;
        }
    }
    s->finished++;
    if (failed)
        s->failed++;
    else
        s->succeeded++;
    j->done = 1;
    check_halt(s, j);
    if (!s->o->keep_order) {
        job_print(s, j);
        job_free(j);
    } else {
        print_ready(s);
    }
    cli_progress_draw(&s->prog, s->finished, s->total, s->input_done, !s->prog.shown);
}

/* Make the next job from the input. 1 and *out, 0 at the end, -1 on error,
 * CLI_INPUT_WAIT when the input has no next record yet. */
static int job_make(sched *s, job **out)
{
    cli_tuple *t;
    int rc;
    for (;;) {
        rc = cli_input_next(s->in, &t);
        if (rc == 0 || rc == CLI_INPUT_WAIT)
            return rc;
        if (rc != 1)
            return -1;
        /* --resume: a job the log has is skipped but keeps its number. */
        if (!s->o->resume || s->o->dry_run || !joblog_is_done(&s->done, s->next_seq + 1))
            break;
        s->next_seq++;
        free(t);
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        free(t);
        cli_error("out of memory");
        return -1;
    }
    j->fd[0] = j->fd[1] = -1;
    j->out[0] = j->out[1] = (spool)SPOOL_INIT;
    j->args = t;
    j->seq = ++s->next_seq;
    s->total++;
    j->attempt = 1;
    if (s->o->tag && !(j->tag = make_tag(t))) {
        job_free(j);
        cli_error("out of memory");
        return -1;
    }
    *out = j;
    return 1;
}

static int dry_run(sched *s)
{
    for (;;) {
        job *j;
        int rc = job_make(s, &j);
        if (rc == CLI_INPUT_WAIT) { /* nothing else to do meanwhile */
            struct pollfd p = {.fd = cli_input_fd(s->in), .events = POLLIN};
            (void)poll(&p, 1, -1);
            continue;
        }
        if (rc <= 0)
            return rc < 0 ? CLI_EXIT_ERROR : 0;
        unsigned long slot = (unsigned long)((j->seq - 1) % (unsigned long)s->o->jobs) + 1;
        j->cmd = cli_template_shell(s->tpl, j->args, j->seq, slot);
        if (!j->cmd) {
            job_free(j);
            cli_error("out of memory");
            return CLI_EXIT_ERROR;
        }
        out_write(&s->out, 1, j->cmd, strlen(j->cmd));
        out_write(&s->out, 1, "\n", 1);
        job_free(j);
        if (s->out.broken)
            return 0;
    }
}

/* Start jobs while there are free slots and input. */
static void fill_slots(sched *s)
{
    const cli_run_opts *o = s->o;
    s->js_wait = 0;
    s->input_wait = 0;
    while (!s->stopping && !s->fatal && s->running < o->jobs) {
        if (o->keep_order && !s->pending && s->rcount >= s->rcap)
            return;
        if (s->running >= 1 && s->js.serial)
            return;
        /* Inside make: one job on our implicit slot, each other one on a token. */
        if (s->js.active && s->running >= 1 + (long)s->js.ntok) {
            if (!s->pending && s->input_done)
                return;
            if (!cli_jobserver_take(&s->js)) {
                s->js_wait = 1;
                return;
            }
        }
        job *j = s->pending;
        s->pending = NULL;
        if (!j) {
            if (s->input_done)
                return;
            int rc = job_make(s, &j);
            if (rc == CLI_INPUT_WAIT) {
                /* A token taken for this job stays with us until the loop hands back
                   the surplus. */
                s->input_wait = 1;
                return;
            }
            if (rc <= 0) {
                s->input_done = 1;
                if (rc < 0)
                    s->fatal = 1;
                return;
            }
            if (o->keep_order) {
                s->ring[(s->rhead + s->rcount) % s->rcap] = j;
                s->rcount++;
            }
        }
        unsigned long slot = 0;
        for (long i = 0; i < o->jobs; i++) {
            if (!s->slots[i]) {
                slot = (unsigned long)i + 1;
                break;
            }
        }
        int rc = job_start(s, j, slot);
        if (rc == 1) {
            s->pending = j;
            return;
        }
        if (rc < 0) {
            s->fatal = 1;
            if (!o->keep_order)
                job_free(j);
            else
                j->done = 1; /* freed with the ring */
            return;
        }
    }
}

/* Signal every running job's group. */
static void signal_jobs(sched *s, int sig)
{
    for (long k = 0; k < s->o->jobs; k++)
        if (s->slots[k])
            job_signal(s->slots[k], sig);
}

/* Ctrl-Z: the jobs stop with us (they lead process groups of their own, so the
 * terminal's SIGTSTP reaches only us), and continue when we do (fg, bg: SIGCONT).
 * Time spent stopped does not count against --timeout. */
static void suspend(sched *s)
{
    signal_jobs(s, SIGTSTP);
    cli_progress_clear(&s->prog);
    double t0 = mono_now();
    raise(SIGSTOP);
    double stopped = mono_now() - t0;
    signal_jobs(s, SIGCONT);
    for (long k = 0; k < s->o->jobs; k++) {
        job *j = s->slots[k];
        if (j && j->deadline)
            j->deadline += stopped;
        if (j && j->kill_at)
            j->kill_at += stopped;
    }
}

static void handle_signals(sched *s, int rfd)
{
    unsigned char b[16];
    ssize_t n;
    while ((n = read(rfd, b, sizeof b)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            int sig = b[i];
            if (sig == SIGTSTP) {
                suspend(s);
                continue;
            }
            if (sig == SIGCONT) { /* continued after a SIGSTOP we could not see */
                signal_jobs(s, SIGCONT);
                continue;
            }
            s->nsignals++;
            s->stopping = 1;
            if (!s->stop_sig)
                s->stop_sig = sig;
            if (s->nsignals == 1) {
                /* --slurm: srun takes a first SIGINT as "print the status"; SIGTERM is what
                   makes it end its step */
                int fwd = s->o->slurm ? SIGTERM : sig;
                for (long k = 0; k < s->o->jobs; k++) {
                    if (s->slots[k]) {
                        s->slots[k]->killed = 1;
                        job_signal(s->slots[k], fwd);
                    }
                }
            } else {
                stop_all(s, SIGKILL);
            }
        }
    }
}

static void check_timers(sched *s, double now)
{
    for (long i = 0; i < s->o->jobs; i++) {
        job *j = s->slots[i];
        if (!j)
            continue;
        if (j->deadline && now >= j->deadline && !j->timed_out) {
            j->timed_out = 1;
            job_signal(j, SIGTERM);
            j->kill_at = now + KILL_GRACE_MS / 1000.0;
        }
        if (j->kill_at && now >= j->kill_at) {
            job_signal(j, SIGKILL);
            j->kill_at = 0;
        }
    }
}

static int poll_timeout_ms(sched *s, double now)
{
    double next = INFINITY;
    for (long i = 0; i < s->o->jobs; i++) {
        job *j = s->slots[i];
        if (!j)
            continue;
        if (j->deadline && !j->timed_out && j->deadline < next)
            next = j->deadline;
        if (j->kill_at && j->kill_at < next)
            next = j->kill_at;
    }
    if (isinf(next))
        return -1;
    double ms = (next - now) * 1000.0 + 1.0; /* round up: never wake before the deadline */
    return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static int loop(sched *s, int sig_rfd)
{
    long nj = s->o->jobs;
    struct pollfd *pf = calloc((size_t)(3 + 3 * nj), sizeof *pf);
    if (!pf) {
        cli_error("out of memory");
        return -1;
    }
    for (;;) {
        fill_slots(s);
        /* Tokens beyond the jobs running on them go back to make at once. */
        while (s->js.ntok > 0 && (long)s->js.ntok > s->running - 1)
            cli_jobserver_give(&s->js);
        if (s->out.broken && !s->stopping) {
            s->stopping = 1;
            stop_all(s, SIGTERM);
        }
        if (s->fatal && !s->stopping) {
            s->stopping = 1;
            stop_all(s, SIGTERM);
        }
        if (s->running == 0 && (s->stopping || (s->input_done && !s->pending)))
            break;
        pf[0] = (struct pollfd){.fd = sig_rfd, .events = POLLIN};
        for (long i = 0; i < nj; i++) {
            job *j = s->slots[i];
            struct pollfd *p = pf + 1 + 3 * i;
            p[0] = (struct pollfd){.fd = j ? mproc_process_fd(j->proc) : -1, .events = POLLIN};
            p[1] = (struct pollfd){.fd = j ? j->fd[0] : -1, .events = POLLIN};
            p[2] = (struct pollfd){.fd = j ? j->fd[1] : -1, .events = POLLIN};
        }
        int tmo = poll_timeout_ms(s, mono_now());
        if (s->o->progress && (tmo < 0 || tmo > 200))
            tmo = 200; /* keep the rate and the ETA moving */
        pf[1 + 3 * nj] =
            (struct pollfd){.fd = s->js_wait ? cli_jobserver_fd(&s->js) : -1, .events = POLLIN};
        pf[2 + 3 * nj] = (struct pollfd){
            .fd = s->input_wait && !s->stopping ? cli_input_fd(s->in) : -1, .events = POLLIN};
        int n = poll(pf, (nfds_t)(3 + 3 * nj), tmo);
        if (n < 0 && errno != EINTR) {
            cli_error("run: poll: %s", strerror(errno));
            free(pf);
            return -1;
        }
        if (n > 0) {
            if (pf[0].revents)
                handle_signals(s, sig_rfd);
            for (long i = 0; i < nj; i++) {
                job *j = s->slots[i];
                struct pollfd *p = pf + 1 + 3 * i;
                if (!j)
                    continue;
                for (int k = 0; k < 2; k++)
                    if (p[1 + k].revents && j->fd[k] >= 0)
                        job_read(s, j, k, DRAIN_MAX);
                if (p[0].revents)
                    job_finish(s, j);
            }
        }
        check_timers(s, mono_now());
        cli_progress_draw(&s->prog, s->finished, s->total, s->input_done, 0);
    }
    free(pf);
    return 0;
}

int cli_run(const cli_run_opts *o)
{
    if (o->slurm && !o->dry_run && getenv("SLURM_JOB_ID") == NULL && o->salloc != NULL)
        return cli_slurm_salloc(o->salloc, o->argc, o->argv) < 0 ? CLI_EXIT_ERROR : 0;
    if (o->slurm && !o->dry_run && cli_slurm_ready() < 0)
        return CLI_EXIT_ERROR;
    sched s = {.o = o, .joblog_fd = -1, .devnull = -1, .js = {.rfd = -1, .wfd = -1}};
    int status = CLI_EXIT_ERROR;
    int sp[2] = {-1, -1};
    /* SIGINT, SIGTERM, SIGHUP (the terminal closed) and SIGQUIT (Ctrl-\\) end the run
       alike: nothing may be orphaned. Those and SIGTSTP are left ignored when we were
       started with them ignored (nohup, a background job of a script), as make and
       the shells do. SIGPIPE gets a handler that does nothing (EPIPE instead). */
    enum { NSIGS = 7 };
    struct sigaction old[NSIGS];
    int sigs[NSIGS] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGPIPE};
    int installed = 0;

    int rc = cli_template_new(&s.tpl, o->cmd, o->ncmd, o->nsrc);
    if (rc < 0) {
        cli_error("out of memory");
        return CLI_EXIT_ERROR;
    }
    if (cli_input_open(&s.in, o) != 0)
        goto out;
    if (o->dry_run) {
        status = dry_run(&s);
        goto out;
    }
    s.slots = calloc((size_t)o->jobs, sizeof *s.slots);
    if (o->keep_order) {
        /* The finished jobs that wait for an earlier one may each hold two spool
         * files: keep their number within the descriptors left after the running
         * jobs' (3 each, 2 more for their spools) and some for ourselves. */
        size_t extra = (size_t)o->jobs > 64 ? (size_t)o->jobs : 64;
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
            long left = ((long)rl.rlim_cur - 32 - 5 * o->jobs) / 2;
            if (left < 1)
                left = 1;
            if ((size_t)left < extra)
                extra = (size_t)left;
        }
        s.rcap = (size_t)o->jobs + extra;
        s.ring = calloc(s.rcap, sizeof *s.ring);
    }
    if (!s.slots || (o->keep_order && !s.ring)) {
        cli_error("out of memory");
        goto out;
    }
    if (o->resume && joblog_read_done(o->joblog, o->resume == 2, &s.done) < 0)
        goto out;
    if (o->joblog && joblog_open(o->joblog, o->resume, &s.joblog_fd) < 0)
        goto out;
    if (o->halt.when != CLI_HALT_NEVER && o->halt.percent &&
        cli_input_preload(s.in, &s.all_jobs) < 0) /* N% of all the jobs: count them first */
        goto out;
    s.devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s.devnull < 0) {
        cli_error("run: cannot open /dev/null: %s", strerror(errno));
        goto out;
    }
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) {
        cli_error("run: cannot create a pipe: %s", strerror(errno));
        goto out;
    }
    sig_wfd = sp[1];
    for (int i = 0; i < NSIGS; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, &old[i]);
        if (old[i].sa_handler == SIG_IGN && sigs[i] != SIGPIPE && sigs[i] != SIGCONT)
            sigaction(sigs[i], &old[i], NULL);
    }
    installed = 1;

    cli_jobserver_open(&s.js, getenv("MAKEFLAGS"));
    cli_progress_start(&s.prog, o->progress);
    rc = loop(&s, sp[0]);
    cli_progress_end(&s.prog, s.finished, s.total, s.input_done);
    if (rc < 0)
        goto out;
    if (s.fatal) {
        status = CLI_EXIT_ERROR;
    } else if (s.halted) {
        status = s.halt_status;
    } else {
        /* a --halt N% that never halted: the share of the jobs run, as GNU parallel */
        status = cli_failed_status(s.failed, o->halt.when != CLI_HALT_NEVER && o->halt.percent,
                                   s.finished);
    }

out:
    if (s.out.broken && s.out.error != EPIPE) { /* a full disk, /dev/full: ours, not the jobs' */
        cli_error("run: cannot write the output: %s", strerror(s.out.error));
        status = CLI_EXIT_ERROR;
    }
    if (installed) {
        for (int i = 0; i < NSIGS; i++)
            sigaction(sigs[i], &old[i], NULL);
        sig_wfd = -1;
    }
    for (long i = 0; s.slots && i < o->jobs; i++) {
        if (s.slots[i]) { /* only after a fatal error: end what still runs */
            job_signal(s.slots[i], SIGKILL);
            if (!o->keep_order)
                job_free(s.slots[i]);
        }
    }
    cli_jobserver_close(&s.js); /* every token back, whatever ended us */
    for (size_t i = 0; s.ring && i < s.rcount; i++)
        job_free(s.ring[(s.rhead + i) % s.rcap]);
    if (s.pending && !o->keep_order)
        job_free(s.pending);
    free(s.ring);
    free(s.slots);
    if (sp[0] >= 0) {
        close(sp[0]);
        close(sp[1]);
    }
    if (s.devnull >= 0)
        close(s.devnull);
    if (s.joblog_fd >= 0)
        close(s.joblog_fd);
    joblog_done_release(&s.done);
    cli_input_close(s.in);
    cli_template_free(s.tpl);
    if (s.out.broken && s.out.error == EPIPE) {
        /* The reader of our output left: end as a filter does, by SIGPIPE. */
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
    }
    if (s.stop_sig) {
        signal(s.stop_sig, SIG_DFL);
        raise(s.stop_sig);
        return 128 + s.stop_sig;
    }
    return status;
}
