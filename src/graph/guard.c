/* src/graph/guard.c - the guard: nothing of a run outlives its runner.
 *
 * A command job runs in a process group of its own (so a time limit ends its whole tree).
 * The price: when the runner dies at once (SIGKILL, an OOM kill, Ctrl-C on a runner that
 * does not catch it), nothing would end those groups: the jobs' shells die with the
 * runner (their death signal), but the shells' children would run on, writing outputs
 * that the next run then writes again. The guard is a small process, forked at the first
 * command job, that knows the groups running: the runner tells it each group as the job
 * starts and before it reaps the job's leader (so the group's number cannot be reused in
 * between), through a socket whose other end only the runner holds. When the socket
 * reaches end of file, the runner is gone or done: the guard ends every group it still
 * knows (SIGTERM, then SIGKILL what is left GRACE_TICKS x 50 ms later: a launcher such
 * as srun ends its step elsewhere on SIGTERM, and on a busy cluster that can take more
 * than a second; a job killed before its step was cancelled leaves the step running)
 * and exits. It ignores the signals a terminal or a session sends (INT, QUIT,
 * HUP, TERM, TSTP) so that it is there to clean up; it holds no other descriptor, so it keeps no
 * pipe of the caller's open.
 */
#include "graph/graph.h"

#include "mproc/process.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum {
    GUARD_MAX = 4096, /* groups at once: the runner's jobs (at most 1024) */
    GRACE_TICKS = 100 /* of 50 ms: 5 s between SIGTERM and SIGKILL (see the top) */
};

struct gguard {
    mproc_process *proc;
    int fd; /* the runner's end */
};

/* The guard process: a fork of the runner, so only async-signal-safe calls, no malloc. */
static int guard_main(void *arg)
{
    int fd = *(int *)arg;
    static const int quiet[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGTSTP, SIGPIPE};
    for (size_t k = 0; k < sizeof quiet / sizeof quiet[0]; k++)
        (void)signal(quiet[k], SIG_IGN);
    if (fd != 3 && (dup2(fd, 3) < 0 || close(fd) < 0))
        return 1;
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
        for (int k = 4; k < 1024; k++)
            (void)close(k);
    for (int k = 0; k < 3; k++) /* nothing of the runner's: 0-2 on /dev/null */
        (void)close(k);
    pid_t groups[GUARD_MAX];
    size_t n = 0;
    int32_t rec[64];
    for (;;) {
        ssize_t got = read(3, rec, sizeof rec);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (size_t k = 0; k < (size_t)got / sizeof rec[0]; k++) {
            if (rec[k] > 0 && n < GUARD_MAX) {
                groups[n++] = rec[k];
            } else if (rec[k] < 0) {
                for (size_t i = 0; i < n; i++)
                    if (groups[i] == -rec[k]) {
                        groups[i] = groups[--n];
                        break;
                    }
            }
        }
    }
    /* SIGTERM first, as a time limit or a halt would: a job's launcher (srun) ends what it
   started elsewhere (its step) on it; SIGKILL what is left after the grace */
    for (size_t i = 0; i < n; i++)
        (void)kill(-groups[i], SIGTERM);
    for (int tick = 0; tick < GRACE_TICKS; tick++) {
        bool any = false;
        for (size_t i = 0; i < n && !any; i++)
            any = kill(-groups[i], 0) == 0;
        if (!any)
            return 0;
        struct timespec t = {0, 50 * 1000 * 1000};
        (void)nanosleep(&t, NULL);
    }
    for (size_t i = 0; i < n; i++)
        (void)kill(-groups[i], SIGKILL);
    return 0;
}

int mproc__guard_start(struct gguard **out)
{
    struct gguard *gd = calloc(1, sizeof *gd);
    if (gd == NULL)
        return -ENOMEM;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = -errno;
        free(gd);
        return e;
    }
    int child_fd = sv[1];
    int rc = mproc_process_new(&gd->proc, guard_main, &child_fd,
                               &(mproc_process_opts){.name = "mproc-graph-guard"});
    if (rc == 0)
        rc = mproc_process_start(gd->proc);
    close(sv[1]);
    if (rc < 0) {
        mproc_process_free(gd->proc);
        close(sv[0]);
        free(gd);
        return rc;
    }
    gd->fd = sv[0];
    *out = gd;
    return 0;
}

/* One record; a guard that is gone (killed by someone) just protects nothing. */
static void tell_guard(struct gguard *gd, int32_t rec)
{
    if (gd == NULL)
        return;
    ssize_t n;
    do {
        n = send(gd->fd, &rec, sizeof rec, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
}

void mproc__guard_add(struct gguard *gd, pid_t group)
{
    tell_guard(gd, (int32_t)group);
}

void mproc__guard_forget(struct gguard *gd, pid_t group)
{
    tell_guard(gd, -(int32_t)group);
}

void mproc__guard_stop(struct gguard *gd)
{
    if (gd == NULL)
        return;
    close(gd->fd); /* end of file: it kills what it still knows (nothing, after a run) */
    (void)mproc_process_join(gd->proc, MPROC_FOREVER);
    mproc_process_free(gd->proc);
    free(gd);
}
