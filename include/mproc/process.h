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
 *     and installs no signal handler. A child is reaped by join / is_alive / exitcode
 *     (whichever first sees it ended) or by free.
 *  3. mproc_process_free() on a child that still runs kills it (SIGKILL) and reaps it,
 *     so freeing never leaves a zombie or an orphan.
 *  4. A child started with MPROC_PROCESS_DAEMON dies (SIGKILL) when its parent dies,
 *     by any cause including SIGKILL. Non-daemon children outlive a dead parent,
 *     as in Python. The kernel (PR_SET_PDEATHSIG) ties this to the *thread* that
 *     started the child: when that thread exits, the daemon child is killed although
 *     the process lives on (unless the thread ended before the child was set up: then
 *     the child follows the thread that adopted it). Start daemon children from a
 *     thread that lives as long as they should (the main thread, or the pool's own).
 *  5. A forked child gets a copy of the parent's memory; handles (this object
 *     included) are the parent's and must not be joined from the child.
 *
 * The forked child (mproc_process_start):
 *  - runs fn(arg) with the parent's signal mask and handlers, then flushes stdio
 *    (fflush(NULL)) and ends with _exit(fn's return value & 255): no atexit handlers
 *    run (they are the parent's). fn may call exit() or _exit() itself.
 *  - start flushes the parent's stdio (fflush(NULL)) before forking, so output still
 *    buffered is not written twice, once by each process.
 *  - in a parent with several threads, only the calling thread exists in the child;
 *    a lock another thread held at the fork stays held there (as with any fork).
 *
 * The executed program (mproc_process_spawn):
 *  - inherits the caller's signal mask and ignored signals, except SIGPIPE and SIGXFSZ,
 *    which are set back to their defaults (as Python's subprocess does); every caught
 *    signal starts at its default, as execve does.
 *  - inherits the caller's fds that are not close-on-exec; every fd of the library is
 *    close-on-exec, so it sees none of them.
 *  - is started without copying the parent's page tables (clone with CLONE_VM |
 *    CLONE_VFORK, like posix_spawn), so a large parent spawns as fast as a small one.
 *
 * Threads: calls on one object must not overlap; different objects may be used from
 * different threads at the same time. None of these functions is async-signal-safe.
 * If the program ignores SIGCHLD, or reaps children with waitpid(-1) itself, the kernel
 * or that code takes the exit status: join then returns -ECHILD and the exit code is 255.
 * A child is held (a pidfd) before it can end, so such a program never makes a start
 * fail: a spawned program gets its pidfd with its creation, and a function child of a
 * program whose SIGCHLD is not at its default waits, before it runs, until the start
 * holds it (one pipe per start, in such programs only).
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include "mproc/common.h"
#include "mproc/init.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_process mproc_process;

/* A child's target. Its return value & 255 is the child's exit status. */
typedef int (*mproc_process_fn)(void *arg);

enum mproc_process_flags {
    MPROC_PROCESS_DAEMON = 1u << 0, /* die with the parent (see lifetime rule 4) */
    MPROC_PROCESS_SETSID = 1u << 1, /* child leads a new session and process group */
    MPROC_PROCESS_SETPGID = 1u << 2 /* child leads a new process group */
};

typedef struct mproc_process_opts {
    const char *name;         /* Python's Process.name; NULL: "Process-N" (N counts up from 1) */
    unsigned flags;           /* enum mproc_process_flags */
    mproc_start_method start; /* 0: the process-wide default (mproc/init.h). forkserver
                                 and spawn: the child is this program started afresh (it
                                 must call mproc_init first in main()); fn travels by
                                 reference, arg as arg_size bytes copied into the child;
                                 it shares no memory with the caller, keeps the caller's
                                 descriptors that are not close-on-exec (spawn) or none
                                 above 2 (forkserver), and a fork server's child always
                                 dies with the server, which ends with the caller */
    size_t arg_size;          /* forkserver, spawn: bytes at arg (a non-NULL arg with 0
                                 here is -EINVAL; at most 1 GiB); fork: ignored */
} mproc_process_opts;

/* Options of mproc_process_spawn(). The zero value inherits everything. */
typedef struct mproc_spawn_opts {
    const char *name;  /* as above; NULL: argv[0] */
    unsigned flags;    /* enum mproc_process_flags */
    char *const *envp; /* environment; NULL: the caller's */
    const char *cwd;   /* working directory; NULL: the caller's. A relative program
                        * path is found from this directory. */
    int stdin_fd;      /* fd to become the child's 0; 0 (or below): inherit */
    int stdout_fd;     /* fd to become the child's 1; 0 (or below): inherit */
    int stderr_fd;     /* fd to become the child's 2; 0 (or below): inherit.
                        * The fds stay the caller's (close your copy after spawning);
                        * swaps such as stdout_fd = 2, stderr_fd = 1 work. */
    int search_path;   /* nonzero: look argv[0] up in the caller's PATH like execvp
                        * (when it holds no '/'; PATH unset: /bin:/usr/bin). Unlike
                        * execvp, a file without a #! line is -ENOEXEC, never run by sh. */
} mproc_spawn_opts;

/* Create a process object that will run fn(arg) in a forked child. Nothing starts yet.
 * opts may be NULL. The name is copied; arg is passed as is (the child sees its copy).
 * Errors: -EINVAL (NULL out or fn, unknown flags), -ENOMEM. */
MPROC_API int mproc_process_new(mproc_process **out, mproc_process_fn fn, void *arg,
                                const mproc_process_opts *opts);

/* Fork the child and run the target. 0, or: -MPROC_ESTATE (already started),
 * -EAGAIN (process limit), -ENOMEM, -EMFILE (no fd left for the pidfd), -EINVAL (NULL).
 * A failed start leaves no child and the object unstarted (start may be tried again). */
MPROC_API int mproc_process_start(mproc_process *p);

/* Create and start a child that executes argv[0] with argv (NULL-terminated; the vector
 * and opts are only read during the call). On success *out is a started process.
 * Returns 0 once the program has been executed; if exec fails the child is reaped
 * and the exec's error comes back here (-ENOENT, -EACCES, -ENOEXEC, ...), never as a
 * child exiting 127; so does a failed chdir to cwd (-ENOENT, -ENOTDIR, ...).
 * Errors also: -EINVAL (NULL or empty argv, unknown flags, a redirected fd that is not
 * open), -EAGAIN, -ENOMEM, -EMFILE. A failed spawn leaves no child and sets no *out. */
MPROC_API int mproc_process_spawn(mproc_process **out, char *const argv[],
                                  const mproc_spawn_opts *opts);

/* Wait for the child to end, at most timeout seconds (0: do not wait; MPROC_FOREVER:
 * no limit). 0 when it has ended (and is reaped), -ETIMEDOUT, -MPROC_ESTATE (not
 * started), -EINVAL (NULL, negative or NaN timeout), -ECHILD (its status was taken by
 * someone else: see above). Safe to call again after it ended. */
MPROC_API int mproc_process_join(mproc_process *p, double timeout);

/* 1 if the child runs, 0 if it ended (reaping it) or was never started, -EINVAL for NULL. */
MPROC_API int mproc_process_is_alive(mproc_process *p);

/* Python's exitcode: 1 and *code set when the child has ended (reaping it): its exit
 * status, or minus the signal number that killed it. 0 while it runs or before start
 * (*code untouched). -EINVAL for NULL p or code. */
MPROC_API int mproc_process_exitcode(mproc_process *p, int *code);

/* The child's pid (> 0; kept after it ended), or -MPROC_ESTATE before start, -EINVAL
 * for NULL. */
MPROC_API pid_t mproc_process_pid(const mproc_process *p);

/* The process's name (owned by p; never NULL for a valid p; NULL for NULL). */
MPROC_API const char *mproc_process_name(const mproc_process *p);

/* A pidfd that becomes readable when the child ends, for poll/epoll (owned by p, open
 * until mproc_process_free; close-on-exec); -MPROC_ESTATE before start, -EINVAL for NULL.
 * Polling it does not reap the child: call join, is_alive or exitcode. */
MPROC_API int mproc_process_fd(const mproc_process *p);

/* Send SIGTERM (terminate) or SIGKILL (kill); mproc_process_signal sends any signal
 * (0 only checks). 0 if sent or the child already ended; -MPROC_ESTATE before start;
 * -EINVAL (NULL, a signal number out of range). */
MPROC_API int mproc_process_terminate(mproc_process *p);
MPROC_API int mproc_process_kill(mproc_process *p);
MPROC_API int mproc_process_signal(mproc_process *p, int sig);

/* Release the object. A child still running is SIGKILLed and reaped first. NULL is a no-op. */
MPROC_API void mproc_process_free(mproc_process *p);

/* Python's active_children(): the children this process started (mproc_process_start
 * or _spawn) that still run, not yet freed; a child that ended counts no more, joined
 * or not (nothing is reaped here: join, is_alive and exitcode still see its end).
 * Fills out[0..cap) with their handles (still owned by whoever started them) and returns
 * how many run, which may exceed cap (out may be NULL when cap is 0). In a forked child,
 * its parent's children are not its own. -EINVAL (NULL out with cap > 0).
 * Thread-safe (also against start and free in other threads). */
MPROC_API int mproc_active_children(mproc_process **out, size_t cap);

/* Python's current_process() and parent_process(), as plain facts. */
typedef struct mproc_self {
    const char *name;        /* "MainProcess"; in a child started by mproc_process_start,
                                that Process's name; in a pool worker "PoolWorker-N" */
    pid_t pid;               /* getpid() */
    int daemon;              /* started with MPROC_PROCESS_DAEMON (pool workers are) */
    pid_t parent_pid;        /* the process that started this one; 0 when mproc did not
                                start it (Python's parent_process() is None) */
    const char *parent_name; /* that process's own name then; NULL when none */
} mproc_self;

/* Fill *out (its strings live as long as the process). 0, -EINVAL for NULL. */
MPROC_API int mproc_current_process(mproc_self *out);

/* Python's parent_process().is_alive(): 1 while the process that started this one runs,
 * 0 once it ended (this process was then handed to another parent), -MPROC_ESTATE when
 * mproc did not start this process. */
MPROC_API int mproc_parent_alive(void);

#ifdef __cplusplus
}
#endif

#endif
