/* src/launch.c - start this program afresh as a process that boots from a message.
 *
 * DESIGN. A process of the spawn or forkserver start method is this program again: it
 * runs main() from the start and becomes what it was started for in mproc_init, from a
 * message the starter wrote into a memfd (src/start/init.c reads MPROC_BOOT, the message's
 * first word says which boot takes it). Here is how the process comes to be:
 *   - spawn: the spawn core executes /proc/self/exe (the running program's own file,
 *     even if it was replaced on disk since) with the caller's environment plus
 *     MPROC_BOOT=<fd>; the descriptors to keep pass exec at their numbers;
 *   - forkserver: the fork server (src/sys/forkserver.c) forks a child with those
 *     descriptors at those numbers and the message; no exec, no environment change.
 * A fork server's child is not ours: its pidfd tells when it ends, the server its status.
 */
#include "internal.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fnref.h"
#include "launch.h"

#include "sys/forkserver.h"
#include "sys/spawn.h"

#define STATUS_WAIT_S 5.0 /* for the fork server to say a status */

int mproc__launch_message(const void *msg, size_t len)
{
    int fd = mproc__sys_memfd("mproc-boot");
    if (fd < 0)
        return fd;
    const unsigned char *b = msg;
    for (size_t done = 0; done < len;) {
        ssize_t r = pwrite(fd, b + done, len - done, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? -errno : -EIO;
            mproc__sys_close(fd);
            return rc;
        }
        done += (size_t)r;
    }
    return fd;
}

bool mproc__launch_same_build(const unsigned char *id, size_t len)
{
    unsigned char own[MPROC__BUILD_MAX];
    size_t own_len = mproc__fnref_main_build(own, sizeof own);
    return len == own_len && memcmp(id, own, len) == 0;
}

void *mproc__launch_read(int boot, size_t min, size_t *len)
{
    struct stat st;
    if (fstat(boot, &st) < 0 || st.st_size < (off_t)min ||
        st.st_size > (off_t)(MPROC__BOOT_ARG_MAX + (1u << 20))) /* an argument and the rest */
        return NULL;
    size_t n = (size_t)st.st_size;
    unsigned char *m = mproc__malloc(n);
    for (size_t done = 0; m != NULL && done < n;) {
        ssize_t r = pread(boot, m + done, n - done, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            mproc__free(m);
            return NULL;
        }
        done += (size_t)r;
    }
    *len = n;
    return m;
}

static int spawn_exec(int boot, const int *keep, size_t nkeep, bool daemon, pid_t *pid, int *pidfd)
{
    int pass[MPROC__FORKSERVER_FDS];
    if (nkeep + 1 > MPROC__FORKSERVER_FDS)
        return -EMFILE;
    if (nkeep > 0)
        memcpy(pass, keep, nkeep * sizeof *keep);
    pass[nkeep] = boot;
    return mproc__sys_spawn_self(MPROC__BOOT_ENV, boot, pass, nkeep + 1,
                                 daemon ? MPROC_PROCESS_DAEMON : 0, pid, pidfd);
}

int mproc__launch(mproc_start_method m, int boot, const int *keep, size_t nkeep, bool daemon,
                  pid_t *pid, int *pidfd)
{
    if (m == MPROC_START_SPAWN)
        return spawn_exec(boot, keep, nkeep, daemon, pid, pidfd);
    if (m != MPROC_START_FORKSERVER || nkeep + 1 > MPROC__FORKSERVER_FDS)
        return -EINVAL;
    int fds[MPROC__FORKSERVER_FDS], at[MPROC__FORKSERVER_FDS];
    for (size_t i = 0; i < nkeep; i++)
        fds[i] = at[i] = keep[i];
    fds[nkeep] = boot;
    at[nkeep] = -1;
    return mproc__forkserver_fork(fds, at, nkeep + 1, pid, pidfd);
}

int mproc__launch_reap(mproc_start_method m, pid_t pid, int pidfd, bool block, int *code)
{
    if (m != MPROC_START_FORKSERVER)
        return mproc__sys_reap(pidfd, block, code);
    /* One whose server died before it is reparented: to us where this process is a child
       subreaper (a service manager's, a test harness's), and then ours to reap. */
    int rc = mproc__sys_reap(pidfd, false, code);
    if (rc == 1)
        return 1;
    rc = mproc__sys_poll1(pidfd, POLLIN, block ? MPROC__NO_DEADLINE : 0);
    if (rc <= 0)
        return rc;
    int64_t deadline = mproc__deadline_after(mproc__sys_now_ns(), STATUS_WAIT_S);
    return mproc__forkserver_status(pid, deadline, code) == 1 ? 1 : -ECHILD;
}
