/* mproc/process.h - run a function or a program in a child process.
 *
 * Python's multiprocessing.Process, in C: create with a target function and its
 * argument, start (fork), join with a timeout, is_alive, exitcode, terminate, kill.
 * Programs are started through the same spawn core (mproc_process_spawn), with exec
 * failures reported to the caller as errors rather than as a child exiting 127.
 *
 * Lifetime rules:
 *  1. mproc_process_new() creates the object; nothing runs until mproc_process_start().
 *  2. The library reaps only its own children, by pidfd; it never calls waitpid(-1)
 *     and installs no signal handler. A child is reaped by join / is_alive / exitcode.
 *  3. mproc_process_free() on a child that still runs kills it (SIGKILL) and reaps it,
 *     so freeing never leaves a zombie or an orphan.
 *  4. A child started with MPROC_PROCESS_DAEMON dies (SIGKILL) when its parent dies,
 *     by any cause including SIGKILL. Non-daemon children outlive a dead parent,
 *     as in Python.
 *  5. A forked child gets a copy of the parent's memory; handles (this object
 *     included) are the parent's and must not be joined from the child.
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include "mproc/common.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_process mproc_process;

/* A child's target. Its return value is the child's exit status (0..255). */
typedef int (*mproc_process_fn)(void *arg);

enum mproc_process_flags {
    MPROC_PROCESS_DAEMON = 1u << 0, /* die with the parent */
    MPROC_PROCESS_SETSID = 1u << 1, /* child leads a new session and process group */
    MPROC_PROCESS_SETPGID = 1u << 2 /* child leads a new process group */
};

typedef struct mproc_process_opts {
    const char *name; /* Python's Process.name; NULL: "Process-N" */
    unsigned flags;   /* enum mproc_process_flags */
} mproc_process_opts;

/* Options of mproc_process_spawn(). The zero value inherits everything. */
typedef struct mproc_spawn_opts {
    const char *name;         /* as above; NULL: argv[0] */
    unsigned flags;           /* enum mproc_process_flags */
    char *const *envp;        /* environment; NULL: the caller's */
    const char *cwd;          /* working directory; NULL: the caller's */
    int stdin_fd;             /* fd to become the child's 0; 0 (or below): inherit */
    int stdout_fd;            /* fd to become the child's 1; 0 (or below): inherit */
    int stderr_fd;            /* fd to become the child's 2; 0 (or below): inherit */
    int search_path;          /* nonzero: look argv[0] up in PATH like execvp */
} mproc_spawn_opts;

/* Create a process object that will run fn(arg) in a forked child. Nothing starts yet.
 * opts may be NULL. The name is copied. Errors: -EINVAL (NULL out or fn), -ENOMEM. */
MPROC_API int mproc_process_new(mproc_process **out, mproc_process_fn fn, void *arg,
                                const mproc_process_opts *opts);

/* Fork the child and run the target. 0, or: -MPROC_ESTATE (already started),
 * -EAGAIN (process limit), -ENOMEM, -EINVAL (NULL). A failed start leaves no child. */
MPROC_API int mproc_process_start(mproc_process *p);

/* Create and start a child that executes argv[0] with argv (NULL-terminated).
 * Returns 0 once the program has been executed; if exec fails the child is reaped
 * and the exec's error comes back here (-ENOENT, -EACCES, ...), never as a child
 * exiting 127. Errors also: -EINVAL (NULL or empty argv, bad fd), -EAGAIN, -ENOMEM. */
MPROC_API int mproc_process_spawn(mproc_process **out, char *const argv[],
                                  const mproc_spawn_opts *opts);

/* Wait for the child to end, at most timeout seconds (MPROC_FOREVER: no limit).
 * 0 when it has ended (and is reaped), -ETIMEDOUT, -MPROC_ESTATE (not started),
 * -EINVAL (NULL, negative or NaN timeout). Safe to call again after it ended. */
MPROC_API int mproc_process_join(mproc_process *p, double timeout);

/* 1 if the child runs, 0 if it ended (reaping it) or was never started, -EINVAL for NULL. */
MPROC_API int mproc_process_is_alive(mproc_process *p);

/* Python's exitcode: 1 and *code set when the child has ended: its exit status, or minus
 * the signal number that killed it. 0 while it runs or before start (*code untouched).
 * -EINVAL for NULL. */
MPROC_API int mproc_process_exitcode(mproc_process *p, int *code);

/* The child's pid (> 0), or -MPROC_ESTATE before start, -EINVAL for NULL. */
MPROC_API pid_t mproc_process_pid(const mproc_process *p);

/* The process's name (owned by p; never NULL for a valid p). */
MPROC_API const char *mproc_process_name(const mproc_process *p);

/* A pidfd that becomes readable when the child ends, for poll/epoll (owned by p);
 * -MPROC_ESTATE before start. */
MPROC_API int mproc_process_fd(const mproc_process *p);

/* Send SIGTERM (terminate) or SIGKILL (kill); mproc_process_signal sends any signal.
 * 0 if sent or the child already ended; -MPROC_ESTATE before start; -EINVAL. */
MPROC_API int mproc_process_terminate(mproc_process *p);
MPROC_API int mproc_process_kill(mproc_process *p);
MPROC_API int mproc_process_signal(mproc_process *p, int sig);

/* Release the object. A child still running is SIGKILLed and reaped first. NULL is a no-op. */
MPROC_API void mproc_process_free(mproc_process *p);

#ifdef __cplusplus
}
#endif

#endif
