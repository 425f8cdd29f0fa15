/* src/graph/run.c - running a task graph (see mproc/graph.h).
 *
 * DESIGN. One thread, the caller's, runs the graph: a job is ready when every job it
 * depends on is done; up to `jobs` run at once. Function jobs go to an mproc_pool (made
 * for the run when there is one to run) with apply_async; the result's callback (in the
 * pool's supervisor thread) writes the job's slot number into a pipe, so the runner
 * learns of it in the same poll() as of command jobs. A command job is spawned with its
 * standard output and error on one pipe the runner reads as it comes (nothing blocks on a
 * full pipe), and its pidfd tells of its end; a job past its time limit is killed. A
 * failed job runs again up to its retries; then it counts as failed and every job
 * downstream of it is blocked (a walk over the reverse edges with an explicit stack, no
 * recursion), while unrelated jobs go on, unless the run stops at the first failure.
 *
 * Who waits for whom: the runner sleeps only in poll(), over the completion pipe, each
 * command's output pipe and pidfd, with the earliest time limit as deadline. A running job
 * always ends (its process is killed at its limit or when the run fails), so the run ends.
 */
#include "graph/graph.h"

#include "mproc/cpu.h"
#include "mproc/error.h"
#include "mproc/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Like the mproc command, this library stands on mproc's public API and libc only. */

#define NO_DEADLINE INT64_MAX

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* now + seconds, saturating (a timeout of 1e300 s is no deadline). */
static int64_t deadline_after(double seconds)
{
    double ns = seconds * 1e9;
    int64_t now = now_ns();
    return ns >= (double)(NO_DEADLINE - now) ? NO_DEADLINE : now + (int64_t)ns;
}

static void close_fd(int fd)
{
    if (fd >= 0)
        (void)close(fd);
}

/* read() retried on EINTR: bytes, 0 at EOF, or -errno. */
static ssize_t read_some(int fd, void *buf, size_t n)
{
    ssize_t r;
    do {
        r = read(fd, buf, n);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

#define OUT_MAX ((size_t)64 << 20) /* captured output kept per command job */

/* A running job. */
struct slot {
    size_t job;
    bool used;
    /* function job */
    mproc_result *res;
    /* command job */
    mproc_process *proc;
    int out_fd;         /* the read end of its output pipe, -1 at EOF */
    bool exited;        /* its pidfd said so */
    bool killed;        /* we killed it at its time limit */
    bool halted;        /* ended by mproc_graph_stop(now): it goes back to todo */
    int64_t deadline;   /* NO_DEADLINE: none */
    unsigned char *buf; /* captured output */
    size_t len, cap;
};

struct runner {
    mproc_graph *g;
    int max;
    bool stop_on_failure, stopping;
    mproc_pool *pool;
    int done_pipe[2]; /* the pool's callbacks write a slot number */
    struct slot *slots;
    size_t *ready; /* a stack of ready jobs */
    size_t nready;
    size_t running;
    size_t failed;     /* failed or blocked */
    struct gstate *st; /* the state file, or NULL */
    bool by_mtime;     /* input files: size and time, not contents */
    int state_rc;      /* a write to the state failed: the run stops with it */
    void (*on_done)(const mproc_job_info *job, const void *out, size_t len, void *arg);
    void *arg;
    /* shared job slots (mproc_graph_run_opts.slot_take): held beyond the run's own one */
    int (*slot_take)(void *arg);
    void (*slot_give)(void *arg);
    int slot_fd;
    void *slot_arg;
    size_t slots_held;
    bool slot_wait;        /* a ready job waits for a slot: poll slot_fd */
    struct gguard *guard;  /* started with the first command job (guard.c) */
    char *const *launcher; /* mproc_graph_run_opts.launcher */
    void (*out_filter)(size_t job, unsigned char *out, size_t *len, void *arg);
    bool guard_tried;
};

/* Tell the caller that job i ended (mproc_graph_run_opts.on_done). */
static void tell(struct runner *r, size_t i)
{
    if (r->on_done == NULL)
        return;
    mproc_job_info info;
    if (mproc_graph_job(r->g, i, &info) == 0)
        r->on_done(&info, r->g->jobs[i].out, r->g->jobs[i].out_len, r->arg);
}

static void fail_job(struct runner *r, size_t i, int code, const char *msg);
static void try_failed(struct runner *r, size_t i, int code, const char *msg);

/* ---- fingerprints and the state ------------------------------------------------------------ */

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A file into a hash: its path, then its size and contents (or its size and time). A file
 * that cannot be read hashes as missing, so it differs from any file there. */
static void hash_file(struct gh *h, const char *path, bool by_mtime)
{
    mproc__gh_str(h, path, strlen(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        mproc__gh_u64(h, UINT64_MAX); /* missing */
        close_fd(fd);
        return;
    }
    mproc__gh_u64(h, (uint64_t)sb.st_size);
    if (by_mtime) {
        mproc__gh_u64(h, (uint64_t)sb.st_mtim.tv_sec);
        mproc__gh_u64(h, (uint64_t)sb.st_mtim.tv_nsec);
        close(fd);
        return;
    }
    unsigned char buf[16384];
    ssize_t n;
    while ((n = read_some(fd, buf, sizeof buf)) > 0)
        mproc__gh_add(h, buf, (size_t)n);
    if (n < 0)
        mproc__gh_u64(h, UINT64_MAX - 1); /* unreadable: never equal to what was read */
    close(fd);
}

/* What j is built from (see mproc/graph.h), in three parts kept apart so that a run can
 * say which one changed: its work (the command or the function, and its output names),
 * its inputs (input bytes and files), and the output hashes of what it depends on (all
 * done now). The fingerprint is the hash of the three. */
static void fingerprint(const struct runner *r, struct gjob *j)
{
    struct gh h;
    mproc__gh_init(&h);
    mproc__gh_str(&h, "mproc-graph-work-1", 18);
    mproc__gh_u64(&h, (uint64_t)j->kind);
    if (j->kind == GJOB_FN) {
        mproc__gh_str(&h, j->task_id, j->task_id_len);
    } else { /* the argv it runs (a command: sh -c command) */
        char *sh_argv[] = {"/bin/sh", "-c", j->command, NULL};
        char **argv = j->kind == GJOB_SHELL ? sh_argv : j->argv;
        size_t argc = 0;
        while (argv[argc] != NULL)
            argc++;
        mproc__gh_u64(&h, argc);
        for (size_t k = 0; k < argc; k++)
            mproc__gh_str(&h, argv[k], strlen(argv[k]));
    }
    mproc__gh_u64(&h, j->noutputs);
    for (size_t k = 0; k < j->noutputs; k++)
        mproc__gh_str(&h, j->outputs[k], strlen(j->outputs[k]));
    mproc__gh_end(&h, j->parts[0]);

    mproc__gh_init(&h);
    mproc__gh_str(&h, j->input, j->input_len);
    mproc__gh_u64(&h, j->ninputs);
    for (size_t k = 0; k < j->ninputs; k++)
        hash_file(&h, j->inputs[k], r->by_mtime);
    mproc__gh_end(&h, j->parts[1]);

    mproc__gh_init(&h);
    mproc__gh_u64(&h, j->ndeps);
    for (size_t k = 0; k < j->ndeps; k++)
        mproc__gh_add(&h, r->g->jobs[j->deps[k]].out_hash, GH_LEN);
    mproc__gh_end(&h, j->parts[2]);

    mproc__gh_init(&h);
    mproc__gh_add(&h, j->parts, sizeof j->parts);
    mproc__gh_end(&h, j->fp);
}

/* What j's dependents see of it: its output bytes and its output files' contents. Equal
 * to last time's: nothing below it needs to run again. */
static void hash_outputs(struct gjob *j)
{
    struct gh h;
    mproc__gh_init(&h);
    mproc__gh_str(&h, j->out != NULL ? j->out : (const unsigned char *)"", j->out_len);
    for (size_t k = 0; k < j->noutputs; k++)
        hash_file(&h, j->outputs[k], false);
    mproc__gh_end(&h, j->out_hash);
}

static bool outputs_exist(const struct gjob *j)
{
    for (size_t k = 0; k < j->noutputs; k++)
        if (access(j->outputs[k], F_OK) != 0)
            return false;
    return true;
}

/* Record j's outcome; a state that cannot be written stops the run (said in g->err). */
static void record(struct runner *r, const struct gjob *j)
{
    if (r->st == NULL || r->state_rc < 0)
        return;
    int rc =
        mproc__state_put(r->st, j->name, j, j->started, wall_now(), r->g->err, sizeof r->g->err);
    if (rc < 0) {
        r->state_rc = rc;
        r->stopping = true;
    }
}

/* Is j, whose dependencies are done, up to date in the state? Then it is done now, with
 * the output it had. */
static bool up_to_date(struct runner *r, struct gjob *j)
{
    if (r->st == NULL)
        return false;
    fingerprint(r, j);
    struct grow row;
    int rc = mproc__state_get(r->st, j->name, &row);
    if (rc < 0) {
        mproc__graph_say(r->g, "state: cannot read the record of '%s': %s", j->name,
                         mproc_strerror(rc));
        r->state_rc = rc;
        r->stopping = true;
        return false;
    }
    bool ok = rc == 1 && row.status == MPROC_JOB_DONE && row.has_fp &&
              memcmp(row.fp, j->fp, GH_LEN) == 0 && outputs_exist(j);
    if (ok) {
        free(j->out);
        j->out = row.out;
        j->out_len = row.out_len;
        row.out = NULL;
        memcpy(j->out_hash, row.out_hash, GH_LEN);
        j->up_to_date = true;
    }
    free(row.out);
    free(row.msg);
    return ok;
}

/* ---- readiness ----------------------------------------------------------------------------- */

static void job_done(struct runner *r, size_t i)
{
    struct gjob *j = &r->g->jobs[i];
    j->status = MPROC_JOB_DONE;
    for (size_t k = 0; k < j->nusers; k++) {
        struct gjob *u = &r->g->jobs[j->users[k]];
        if (--u->waiting == 0 && u->status == MPROC_JOB_TODO && u->wanted)
            r->ready[r->nready++] = j->users[k];
    }
}

/* Block every job downstream of i (not i itself), with an explicit stack. */
static void block_users(struct runner *r, size_t i)
{
    mproc_graph *g = r->g;
    size_t *stack = malloc((g->n ? g->n : 1) * sizeof *stack), n = 0;
    if (stack == NULL) { /* no memory for the walk: they stay todo, the run says so */
        r->stopping = true;
        return;
    }
    stack[n++] = i;
    while (n > 0) {
        const struct gjob *j = &g->jobs[stack[--n]];
        for (size_t k = 0; k < j->nusers; k++) {
            struct gjob *u = &g->jobs[j->users[k]];
            if (u->status != MPROC_JOB_TODO)
                continue;
            u->status = MPROC_JOB_BLOCKED;
            free(u->msg);
            size_t ml = strlen(g->jobs[i].name) + 64;
            u->msg = malloc(ml);
            if (u->msg != NULL)
                snprintf(u->msg, ml, "blocked: '%s' failed", g->jobs[i].name);
            r->failed++;
            stack[n++] = j->users[k];
        }
    }
    free(stack);
}

static void fail_job(struct runner *r, size_t i, int code, const char *msg)
{
    struct gjob *j = &r->g->jobs[i];
    j->status = MPROC_JOB_FAILED;
    j->code = code;
    free(j->msg);
    size_t ml = strlen(msg) + 1;
    j->msg = malloc(ml);
    if (j->msg != NULL)
        memcpy(j->msg, msg, ml);
    j->ended = wall_now();
    record(r, j);
    tell(r, i);
    r->failed++;
    block_users(r, i);
    if (r->stop_on_failure)
        r->stopping = true;
}

/* Job i's try succeeded: a command must have written its declared outputs; then it is
 * done, recorded, and what waits for it may run. */
static void succeeded(struct runner *r, size_t i)
{
    struct gjob *j = &r->g->jobs[i];
    for (size_t k = 0; k < j->noutputs; k++)
        if (access(j->outputs[k], F_OK) != 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "succeeded but did not write its output '%s'", j->outputs[k]);
            try_failed(r, i, -ENOENT, msg);
            return;
        }
    j->status = MPROC_JOB_DONE;
    j->ended = wall_now();
    if (r->st != NULL) {
        hash_outputs(j);
        record(r, j);
    }
    tell(r, i);
    job_done(r, i);
}

/* A try of job i ended without success: again, while it has retries, else failed. */
static void try_failed(struct runner *r, size_t i, int code, const char *msg)
{
    struct gjob *j = &r->g->jobs[i];
    if (j->tries <= j->retries && !r->stopping) {
        j->status = MPROC_JOB_TODO;
        r->ready[r->nready++] = i;
        return;
    }
    fail_job(r, i, code, msg);
}

/* ---- starting -------------------------------------------------------------------------------- */

static void on_result(mproc_result *res, void *arg)
{
    (void)res;
    struct runner *r = arg;
    /* which slot: the runner finds it by its result (a few slots); the byte only wakes */
    unsigned char b = 1;
    ssize_t n;
    do {
        n = write(r->done_pipe[1], &b, 1);
    } while (n < 0 && errno == EINTR);
}

/* A function job's input: its own bytes, then each function dependency's output as an
 * 8-byte little-endian length and the bytes (see mproc/graph.h). */
static unsigned char *fn_input(const mproc_graph *g, const struct gjob *j, size_t *len)
{
    size_t n = j->input_len;
    for (size_t k = 0; k < j->ndeps; k++) {
        const struct gjob *d = &g->jobs[j->deps[k]];
        if (d->kind == GJOB_FN)
            n += 8 + d->out_len;
    }
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return NULL;
    if (j->input_len > 0)
        memcpy(buf, j->input, j->input_len);
    size_t at = j->input_len;
    for (size_t k = 0; k < j->ndeps; k++) {
        const struct gjob *d = &g->jobs[j->deps[k]];
        if (d->kind != GJOB_FN)
            continue;
        for (int b = 0; b < 8; b++)
            buf[at + (size_t)b] = (unsigned char)((uint64_t)d->out_len >> (8 * b));
        if (d->out_len > 0)
            memcpy(buf + at + 8, d->out, d->out_len);
        at += 8 + d->out_len;
    }
    *len = n;
    return buf;
}

static int start_fn(struct runner *r, struct slot *s, struct gjob *j)
{
    size_t len;
    unsigned char *in = fn_input(r->g, j, &len);
    if (in == NULL)
        return -ENOMEM;
    mproc_call_opts o = {.timeout = j->timeout > 0 ? j->timeout : 0,
                         .callback = on_result,
                         .error_callback = on_result,
                         .cb_arg = r};
    int rc = -MPROC_EBROKEN;
    for (int fresh = 0; fresh < 2 && rc == -MPROC_EBROKEN; fresh++) {
        if (r->pool == NULL)
            rc = mproc_pool_new(&r->pool, &(mproc_pool_opts){.workers = r->max});
        if (r->pool != NULL)
            rc = mproc_pool_apply_async(r->pool, j->fn, in, len, &o, &s->res);
        if (rc == -MPROC_EBROKEN) {
            /* the pool broke: its workers died faster than its restart budget allows. The
               jobs it held failed a try (each retried as its retries allow: they bound a
               job that kills its worker every time); what starts now gets a fresh pool */
            mproc_pool_free(r->pool);
            r->pool = NULL;
        }
    }
    free(in);
    return rc;
}

static int start_cmd(struct runner *r, struct slot *s, const struct gjob *j)
{
    if (!r->guard_tried) { /* best effort: a run without one still runs */
        r->guard_tried = true;
        (void)mproc__guard_start(&r->guard);
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    /* its own process group: a time limit kills the job's whole tree (a shell's children);
       the leader dies with the runner, the rest of the group by the guard */
    char *sh_argv[] = {"/bin/sh", "-c", j->command, NULL};
    char **argv = j->kind == GJOB_SHELL ? sh_argv : j->argv, **full = NULL;
    char *const *launcher = j->launcher != NULL ? j->launcher : r->launcher;
    if (launcher != NULL) { /* the launcher's words, then the job's argv */
        size_t nl = 0, na = 0;
        while (launcher[nl] != NULL)
            nl++;
        while (argv[na] != NULL)
            na++;
        full = malloc((nl + na + 1) * sizeof *full);
        if (full == NULL) {
            close_fd(fds[0]);
            close_fd(fds[1]);
            return -ENOMEM;
        }
        memcpy(full, launcher, nl * sizeof *full);
        memcpy(full + nl, argv, (na + 1) * sizeof *full);
        argv = full;
    }
    int rc = mproc_process_spawn(
        &s->proc, argv,
        /* a launcher (srun) is not killed outright with the runner: the guard's SIGTERM
           lets it end what it started elsewhere first */
        &(mproc_spawn_opts){.flags = MPROC_PROCESS_SETPGID |
                                     (launcher != NULL ? 0u : MPROC_PROCESS_DAEMON),
                            .stdout_fd = fds[1],
                            .stderr_fd = fds[1],
                            .search_path = j->kind == GJOB_ARGV || full != NULL});
    free(full);
    close_fd(fds[1]);
    if (rc < 0) {
        close_fd(fds[0]);
        return rc;
    }
    mproc__guard_add(r->guard, mproc_process_pid(s->proc));
    (void)fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    s->out_fd = fds[0];
    s->deadline = NO_DEADLINE;
    if (j->timeout > 0)
        s->deadline = deadline_after(j->timeout);
    return 0;
}

/* Start ready jobs while there is room. A job found up to date in the state is done at
 * once, even when the run stops or every slot is busy: that runs nothing. */
static void start_ready(struct runner *r)
{
    if (r->g->stop)
        r->stopping = true;
    while (r->nready > 0) {
        size_t i = r->ready[r->nready - 1];
        struct gjob *j = &r->g->jobs[i];
        if (j->tries == 0 && !j->looked) {
            j->looked = true;
            if (up_to_date(r, j)) {
                r->nready--;
                job_done(r, i); /* its users may now be ready, or up to date too */
                continue;
            }
        }
        if (r->stopping || r->running >= (size_t)r->max)
            break;
        /* a job beyond the run's own slot needs a shared one (the make jobserver) */
        if (r->slot_take != NULL && r->running >= 1 + r->slots_held) {
            if (r->slot_take(r->slot_arg) != 1) {
                r->slot_wait = true;
                break;
            }
            r->slots_held++;
        }
        r->nready--;
        struct slot *s = NULL;
        for (int k = 0; k < r->max && s == NULL; k++)
            if (!r->slots[k].used)
                s = &r->slots[k];
        *s = (struct slot){.job = i, .used = true, .out_fd = -1};
        j->status = MPROC_JOB_RUNNING;
        j->tries++;
        j->started = wall_now();
        j->signal = 0;
        int rc = j->kind == GJOB_FN ? start_fn(r, s, j) : start_cmd(r, s, j);
        if (rc < 0) {
            s->used = false;
            char msg[160];
            snprintf(msg, sizeof msg, "could not start: %s", mproc_strerror(rc));
            try_failed(r, i, rc, msg);
            continue;
        }
        r->running++;
    }
}

/* Give shared slots back down to `keep` (a job ended; the run ends: 0). */
static void give_slots(struct runner *r, size_t keep)
{
    while (r->slots_held > keep) {
        r->slot_give(r->slot_arg);
        r->slots_held--;
    }
}

/* ---- finishing ------------------------------------------------------------------------------ */

static void end_slot(struct runner *r, struct slot *s)
{
    s->used = false;
    r->running--;
    if (r->slot_take != NULL)
        give_slots(r, r->running > 0 ? r->running - 1 : 0);
}

/* A job ended by mproc_graph_stop(now): it did not complete, so it is todo again (the next
 * run does it), neither recorded nor told. */
static void halted_job(struct runner *r, size_t i)
{
    struct gjob *j = &r->g->jobs[i];
    j->status = MPROC_JOB_TODO;
    free(j->msg);
    j->msg = NULL;
    j->why = "halted: the run stopped while it ran";
}

/* mproc_graph_stop(now): end every job running. A command's group gets SIGTERM now and
 * SIGKILL at its deadline, 0.2 s on (wait_events); the pool is terminated, which ends
 * its results as cancelled. */
static void halt_running(struct runner *r)
{
    int64_t kill_at = now_ns() + 200 * 1000000;
    bool fn = false;
    for (int k = 0; k < r->max; k++) {
        struct slot *s = &r->slots[k];
        if (!s->used || s->halted)
            continue;
        s->halted = true;
        if (s->res != NULL) {
            fn = true;
            continue;
        }
        if (!s->exited)
            (void)kill(-mproc_process_pid(s->proc), SIGTERM);
        if (s->deadline > kill_at)
            s->deadline = kill_at;
    }
    if (fn)
        (void)mproc_pool_terminate(r->pool);
}

static void finish_fn(struct runner *r, struct slot *s)
{
    struct gjob *j = &r->g->jobs[s->job];
    const void *data;
    size_t len;
    int rc = mproc_result_output(s->res, &data, &len);
    if (rc == 0 && len > j->output_cap) {
        rc = -EMSGSIZE;
    }
    if (rc == 0) {
        free(j->out);
        j->out = malloc(len ? len : 1);
        if (j->out == NULL) {
            rc = -ENOMEM;
        } else {
            if (len > 0) /* an empty output may have no bytes to point at */
                memcpy(j->out, data, len);
            j->out_len = len;
        }
    }
    const char *m = rc == -EMSGSIZE ? "output larger than the job's output_cap"
                    : rc == -ENOMEM ? "no memory for the output"
                                    : mproc_result_message(s->res);
    char msg[320];
    snprintf(msg, sizeof msg, "%s", m != NULL && m[0] != '\0' ? m : mproc_strerror(rc));
    mproc_result_free(s->res);
    s->res = NULL;
    size_t i = s->job;
    bool halted = s->halted;
    end_slot(r, s);
    if (halted)
        halted_job(r, i);
    else if (rc == 0)
        succeeded(r, i);
    else
        try_failed(r, i, rc, msg);
}

/* Read what the command wrote (all there is now). */
static void read_output(struct slot *s)
{
    for (;;) {
        if (s->len == s->cap) {
            if (s->cap >= OUT_MAX) { /* keep the start; drain the rest */
                unsigned char sink[4096];
                ssize_t n = read_some(s->out_fd, sink, sizeof sink);
                if (n > 0)
                    continue;
                if (n == 0) {
                    close_fd(s->out_fd);
                    s->out_fd = -1;
                }
                return;
            }
            size_t cap = s->cap ? s->cap * 2 : 4096;
            unsigned char *b = realloc(s->buf, cap);
            if (b == NULL) {
                s->cap = OUT_MAX; /* drain from now on */
                continue;
            }
            s->buf = b;
            s->cap = cap;
        }
        ssize_t n = read_some(s->out_fd, s->buf + s->len, s->cap - s->len);
        if (n > 0) {
            s->len += (size_t)n;
            continue;
        }
        if (n == 0 || n != -EAGAIN) {
            close_fd(s->out_fd);
            s->out_fd = -1;
        }
        return;
    }
}

static void finish_cmd(struct runner *r, struct slot *s)
{
    struct gjob *j = &r->g->jobs[s->job];
    int code = 0;
    (void)mproc_process_join(s->proc, MPROC_FOREVER);
    (void)mproc_process_exitcode(s->proc, &code);
    mproc_process_free(s->proc);
    s->proc = NULL;
    free(j->out);
    j->out = s->buf;
    j->out_len = s->len;
    s->buf = NULL;
    if (r->out_filter != NULL && j->out != NULL)
        r->out_filter(s->job, j->out, &j->out_len, r->arg);
    size_t i = s->job;
    bool killed = s->killed;
    bool halted = s->halted;
    end_slot(r, s);
    if (halted) {
        halted_job(r, i);
        return;
    }
    if (code == 0) {
        succeeded(r, i);
        return;
    }
    char msg[160];
    j->signal = code < 0 ? -code : killed ? 9 : 0;
    if (killed)
        snprintf(msg, sizeof msg, "ran past its time limit of %g s (killed)", j->timeout);
    else if (code < 0)
        snprintf(msg, sizeof msg, "killed by signal %d", -code);
    else
        snprintf(msg, sizeof msg, "exited with status %d", code);
    try_failed(r, i, killed ? -MPROC_ETIMELIMIT : code < 0 ? 128 - code : code, msg);
}

/* ---- the loop -------------------------------------------------------------------------------- */

/* Has the job's leader ended? Then the guard forgets its group before the leader is
 * reaped (after that, the group's number could be another's). */
static bool leader_ended(struct runner *r, struct slot *s)
{
    struct pollfd p = {.fd = mproc_process_fd(s->proc), .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    mproc__guard_forget(r->guard, mproc_process_pid(s->proc));
    return mproc_process_is_alive(s->proc) == 0;
}

static void wait_events(struct runner *r)
{
    struct pollfd pfd[2 + 2 * 1024];
    size_t n = 0;
    pfd[n++] = (struct pollfd){.fd = r->done_pipe[0], .events = POLLIN};
    if (r->slot_wait) { /* a shared slot may come free (a job that starts will wake us) */
        pfd[n++] = (struct pollfd){.fd = r->slot_fd, .events = POLLIN};
        r->slot_wait = false;
    }
    int64_t deadline = NO_DEADLINE;
    for (int k = 0; k < r->max; k++) {
        struct slot *s = &r->slots[k];
        if (!s->used || s->proc == NULL)
            continue;
        if (s->out_fd >= 0)
            pfd[n++] = (struct pollfd){.fd = s->out_fd, .events = POLLIN};
        if (!s->exited)
            pfd[n++] = (struct pollfd){.fd = mproc_process_fd(s->proc), .events = POLLIN};
        if (s->deadline < deadline && !s->killed)
            deadline = s->deadline;
    }
    int64_t left = deadline == NO_DEADLINE ? -1 : deadline - now_ns();
    int ms = left < 0                      ? (deadline == NO_DEADLINE ? -1 : 0)
             : left / 1000000 >= INT32_MAX ? INT32_MAX
                                           : (int)((left + 999999) / 1000000);
    if (poll(pfd, (nfds_t)n, ms) < 0 && errno != EINTR)
        (void)0; /* ENOMEM: look at everything anyway, and poll again */
    if (pfd[0].revents != 0) {
        unsigned char sink[256];
        while (read_some(r->done_pipe[0], sink, sizeof sink) > 0) {
        }
    }
    int64_t now = now_ns();
    for (int k = 0; k < r->max; k++) {
        struct slot *s = &r->slots[k];
        if (!s->used)
            continue;
        if (s->res != NULL) {
            if (mproc_result_ready(s->res) == 1)
                finish_fn(r, s);
            continue;
        }
        if (s->out_fd >= 0)
            read_output(s);
        if (!s->exited && leader_ended(r, s))
            s->exited = true;
        if (!s->exited && !s->killed && now >= s->deadline) {
            s->killed = true;
            (void)kill(-mproc_process_pid(s->proc), SIGKILL); /* its process group */
            (void)mproc_process_kill(s->proc);
        }
        if (s->exited && s->out_fd < 0)
            finish_cmd(r, s);
    }
}

/* Prepare the run: what is not done is todo; ready: todo with every dependency done. */
static void prepare(struct runner *r)
{
    mproc_graph *g = r->g;
    for (size_t i = 0; i < g->n; i++) {
        struct gjob *j = &g->jobs[i];
        j->looked = false;
        j->why = NULL;
        if (j->status != MPROC_JOB_DONE) {
            j->status = MPROC_JOB_TODO;
            j->tries = 0;
            free(j->msg);
            j->msg = NULL;
            j->code = 0;
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        struct gjob *j = &g->jobs[i];
        j->waiting = 0;
        for (size_t k = 0; k < j->ndeps; k++)
            j->waiting += g->jobs[j->deps[k]].status != MPROC_JOB_DONE;
        if (j->status == MPROC_JOB_TODO && j->waiting == 0 && j->wanted)
            r->ready[r->nready++] = i;
    }
    /* the stack runs the last pushed first: reverse, so jobs start in the order added */
    for (size_t a = 0, b = r->nready; a + 1 < b; a++, b--) {
        size_t t = r->ready[a];
        r->ready[a] = r->ready[b - 1];
        r->ready[b - 1] = t;
    }
}

int mproc_graph_run(mproc_graph *g, const mproc_graph_run_opts *o)
{
    if (g == NULL || (o != NULL && (o->jobs < 0 || o->jobs > 1024 ||
                                    (o->slot_take == NULL) != (o->slot_give == NULL))))
        return -EINVAL;
    int rc = mproc_graph_check(g);
    if (rc < 0)
        return rc;
    struct runner r = {.g = g,
                       .stop_on_failure = o != NULL && o->stop_on_failure,
                       .by_mtime = o != NULL && o->files_by_mtime,
                       .on_done = o != NULL ? o->on_done : NULL,
                       .slot_take = o != NULL ? o->slot_take : NULL,
                       .slot_give = o != NULL ? o->slot_give : NULL,
                       .slot_fd = o != NULL ? o->slot_fd : -1,
                       .slot_arg = o != NULL ? o->slot_arg : NULL,
                       .launcher = o != NULL ? o->launcher : NULL,
                       .out_filter = o != NULL ? o->out_filter : NULL,
                       .arg = o != NULL ? o->arg : NULL};
    r.max = o != NULL && o->jobs > 0 ? o->jobs : mproc_cpu_usable();
    if (r.max < 1)
        r.max = 1;
    if (r.max > 1024)
        r.max = 1024; /* wait_events polls two fds per slot */
    r.slots = calloc((size_t)r.max, sizeof *r.slots);
    r.ready = malloc((g->n ? g->n : 1) * sizeof *r.ready);
    r.done_pipe[0] = r.done_pipe[1] = -1;
    rc = r.slots == NULL || r.ready == NULL               ? -ENOMEM
         : pipe2(r.done_pipe, O_CLOEXEC | O_NONBLOCK) < 0 ? -errno
                                                          : 0;
    if (rc < 0)
        mproc__graph_say(g, "could not start the run: %s", mproc_strerror(rc));
    else if (o != NULL && o->state != NULL) /* says what went wrong itself */
        rc = mproc__state_open(&r.st, o->state, g->err, sizeof g->err);
    if (rc == 0)
        rc = mproc__graph_want(g, o != NULL ? o->targets : NULL, o != NULL ? o->ntargets : 0);
    if (rc == 0)
        prepare(&r);
    g->stop = 0;
    g->running = true;
    if (rc == 0) {
        start_ready(&r);
        while (r.running > 0) {
            if (g->stop == 2)
                halt_running(&r);
            wait_events(&r);
            start_ready(&r);
        }
    }
    g->running = false;
    if (r.slot_take != NULL)
        give_slots(&r, 0); /* held by a job that could not start */
    mproc__guard_stop(r.guard);
    if (r.pool != NULL) {
        (void)mproc_pool_close(r.pool);
        (void)mproc_pool_join(r.pool, MPROC_FOREVER);
        mproc_pool_free(r.pool);
    }
    close_fd(r.done_pipe[0]);
    close_fd(r.done_pipe[1]);
    free(r.slots);
    free(r.ready);
    mproc__state_close(r.st);
    if (rc < 0)
        return rc;
    if (r.state_rc < 0)
        return r.state_rc; /* the state could not be written (or read): g->err says */
    size_t left = r.failed;
    for (size_t i = 0; i < g->n; i++) /* stopped at a failure: what never ran counts too */
        left += g->jobs[i].status == MPROC_JOB_TODO && g->jobs[i].wanted;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int mproc_graph_stop(mproc_graph *g, int now)
{
    if (g == NULL)
        return -EINVAL;
    if (!g->running)
        return -MPROC_ESTATE;
    int want = now ? 2 : 1;
    if (g->stop < want)
        g->stop = want;
    return 0;
}

/* ---- what a run would do --------------------------------------------------------------------- */

int mproc_graph_load(mproc_graph *g, const char *state)
{
    if (g == NULL || state == NULL)
        return -EINVAL;
    int rc = mproc_graph_check(g);
    if (rc < 0)
        return rc;
    struct runner r = {.g = g};
    size_t *order = malloc((g->n ? g->n : 1) * sizeof *order);
    size_t *left = malloc((g->n ? g->n : 1) * sizeof *left);
    rc = order == NULL || left == NULL ? -ENOMEM
                                       : mproc__state_open(&r.st, state, g->err, sizeof g->err);
    if (rc < 0) {
        free(order);
        free(left);
        return rc;
    }
    size_t tail = mproc__graph_order(g, order, left); /* upstream first (checked: all) */
    free(left);
    for (size_t at = 0; at < tail && rc == 0; at++) {
        struct gjob *j = &g->jobs[order[at]];
        free(j->msg);
        j->msg = NULL;
        j->why = NULL;
        j->code = 0;
        j->up_to_date = false;
        const char *why = NULL;
        bool deps_done = true, deps_failed = false;
        for (size_t k = 0; k < j->ndeps; k++) {
            int s = g->jobs[j->deps[k]].status;
            deps_done = deps_done && s == MPROC_JOB_DONE;
            deps_failed = deps_failed || s == MPROC_JOB_FAILED || s == MPROC_JOB_BLOCKED;
        }
        if (!deps_done) {
            j->status = deps_failed ? MPROC_JOB_BLOCKED : MPROC_JOB_TODO;
            why = deps_failed ? "blocked: a job it depends on failed"
                              : "upstream: a job it depends on will run";
        } else {
            fingerprint(&r, j);
            struct grow row;
            int got = mproc__state_get(r.st, j->name, &row);
            if (got < 0) {
                rc = got;
                mproc__graph_say(g, "state: cannot read the record of '%s'", j->name);
                break;
            }
            bool same = got == 1 && row.has_fp && memcmp(row.fp, j->fp, GH_LEN) == 0;
            if (got == 0) {
                j->status = MPROC_JOB_TODO;
                why = "new: never run";
            } else if (!same) {
                j->status = MPROC_JOB_TODO;
                /* which part changed, where the row keeps them */
                static const char *what[] = {"its command changed", "an input changed",
                                             "an upstream output changed"};
                char buf[128] = "changed: ";
                bool any = false;
                for (int part = 0; part < 3 && row.has_parts; part++)
                    if (memcmp(row.parts[part], j->parts[part], GH_LEN) != 0) {
                        if (any)
                            strcat(buf, ", ");
                        strcat(buf, what[part]);
                        any = true;
                    }
                if (!any)
                    strcat(buf, "its work, inputs or upstream outputs");
                why = buf;
                size_t ml = strlen(why) + 1;
                j->msg = malloc(ml);
                if (j->msg != NULL)
                    memcpy(j->msg, why, ml);
                why = NULL;
            } else if (row.status == MPROC_JOB_FAILED) {
                j->status = MPROC_JOB_FAILED;
                j->code = row.code;
                j->msg = row.msg;
                row.msg = NULL;
            } else if (!outputs_exist(j)) {
                j->status = MPROC_JOB_TODO;
                why = "an output file is missing";
            } else {
                j->status = MPROC_JOB_DONE;
                j->up_to_date = true;
                free(j->out);
                j->out = row.out;
                j->out_len = row.out_len;
                row.out = NULL;
                memcpy(j->out_hash, row.out_hash, GH_LEN);
                j->started = row.started;
            }
            free(row.out);
            free(row.msg);
        }
        j->why = why; /* a constant: no memory per job */
    }
    mproc__state_close(r.st);
    free(order);
    return rc;
}
