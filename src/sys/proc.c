/* src/sys/proc.c - process primitives: pidfd, parent-death signal, signal masks. */
#include "internal.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int mproc__sys_pidfd_open(pid_t pid)
{
    int rc = MPROC__FAULT("sys.pidfd_open");
    if (rc < 0)
        return rc;
    /* pidfds are always close-on-exec. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

int mproc__sys_pidfd_kill(int pidfd, int sig)
{
    long rc = syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
    return rc < 0 ? -errno : 0;
}

int mproc__sys_set_pdeathsig(int sig)
{
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) < 0 ? -errno : 0;
}

void mproc__sys_block_all(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

void mproc__sys_restore_mask(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}
