/* src/sys/spawn.h - the spawn core: the one place where the library creates a process.
 *
 * Processes (mproc_process_start / _spawn), pool workers and the CLI all start their
 * children here, so the rules of forking are written down and kept in one place
 * (see the DESIGN block of spawn.c).
 */
#ifndef MPROC_SYS_SPAWN_H
#define MPROC_SYS_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

/* What the child does. Everything it needs is prepared by the caller before the call;
 * the spawn core allocates nothing the child could need, and the child calls only
 * async-signal-safe functions until it runs fn or executes the program.
 * All pointers are the caller's and need only stay valid during the call. */
struct mproc__spawn {
    /* Fork and run fn(arg), then fflush(NULL) and _exit(ret & 255). NULL: execute. */
    int (*fn)(void *arg);
    void *arg;
    /* Execute: the candidate paths of the program, NULL-terminated, tried in order with
     * execvp's rules (EACCES is remembered, ENOENT/ENOTDIR go on to the next); the caller
     * does the PATH search, so the child never allocates. */
    const char *const *paths;
    char *const *argv; /* execute: the argument vector, NULL-terminated */
    char *const *envp; /* execute: the environment; NULL: the caller's (environ) */
    const char *cwd;   /* NULL: inherit */
    int fds[3];        /* fds to become the child's 0, 1, 2; -1: inherit */
    unsigned flags;    /* MPROC_PROCESS_DAEMON | _SETSID | _SETPGID */
    /* fn children: close every descriptor above 2 but keep[0..nkeep) (ascending, no
     * duplicates), so the child holds nothing of the parent's it does not need. */
    bool close_others;
    const int *keep;
    size_t nkeep;
    /* execute: descriptors above 2 that stay open in the program (their close-on-exec
       flag is cleared in the child only). */
    const int *pass;
    size_t npass;
};

/* The caller's environment with one entry NAME=VALUE set (an entry of that name already
 * there is left out), as a NULL-terminated array for mproc__spawn.envp: the strings are
 * environ's and entry's (which must outlive its use); free the array alone. NULL: no
 * memory. Read environ while no other thread changes it (setenv is not thread-safe). */
char **mproc__sys_env_with(const char *entry);

/* Start this program afresh (/proc/self/exe: the running program's own file, even if it
 * was replaced on disk since) as a child, with NAME=fd added to the caller's environment
 * and pass[0..npass) open in it at their numbers: how spawned workers and the fork server
 * come to be (mproc_init reads the variable). flags: 0 or MPROC_PROCESS_DAEMON. Results
 * as mproc__sys_spawn's, or -ENOMEM. */
int mproc__sys_spawn_self(const char *name, int fd, const int *pass, size_t npass, unsigned flags,
                          pid_t *pid, int *pidfd);

/* The same in this process: execve, after clearing close-on-exec on pass[0..npass).
 * Returns only when it failed: -errno. */
int mproc__sys_exec_self(const char *name, int fd, const int *pass, size_t npass);

/* Close every descriptor above 2 but keep[0..n) (ascending). */
void mproc__sys_close_all_but(const int *keep, size_t n);

/* Start the child. Returns 0 with *pid and *pidfd (a close-on-exec pidfd owned by the
 * caller), or a negative code and no child at all (it was never created, or it was
 * reaped before returning):
 *   -EINVAL   an fd in fds[] is not open;
 *   -EAGAIN, -ENOMEM, -EMFILE, -ENFILE  from fork, pipe or pidfd_open;
 *   for an executed program, the errno of the failed step in the child: chdir's
 *   (-ENOENT, -ENOTDIR, -EACCES...), dup2's, or execve's (-ENOENT, -EACCES, -ENOEXEC...).
 * Fault points: "sys.fork" (before creating the child), "sys.pipe", "sys.pidfd_open".
 * Thread-safe; the calling thread's signal mask is restored before returning. */
int mproc__sys_spawn(const struct mproc__spawn *s, pid_t *pid, int *pidfd);

/* Reap the child behind pidfd if it has ended: 1 and *code (its exit status, or minus the
 * signal that killed it), 0 if it still runs (only when !block), or -errno (-ECHILD: it
 * was reaped by someone else, or SIGCHLD is ignored and the kernel discarded it).
 * block: wait for it to end. EINTR is retried. */
int mproc__sys_reap(int pidfd, bool block, int *code);

/* ---- the module walk (src/sys/dl.c) ---------------------------------------------- */

struct dl_phdr_info;

/* dl_iterate_phdr under the library's guard, which mproc__sys_spawn also holds while it
 * forks a function child: no child starts with the loader's lock held by one of our
 * threads. Returns what dl_iterate_phdr returns. */
int mproc__sys_dl_iterate(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data);
void mproc__sys_dl_hold(void);
void mproc__sys_dl_release(void);
void mproc__sys_dl_child_reset(void); /* in the child, right after fork */

#endif
