/* src/sys/forkserver.h - the fork server: a clean process that forks children on request
 * (src/sys/forkserver.c). The forkserver start method of the pool uses it. */
#ifndef MPROC_SYS_FORKSERVER_H
#define MPROC_SYS_FORKSERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The environment variable that makes a process started from /proc/self/exe the server
 * (its value: the number of its end of the socket); mproc_init reads it. */
#define MPROC__FORKSERVER_ENV "MPROC_FORKSERVER"

/* The most descriptors one request hands over. */
#define MPROC__FORKSERVER_FDS 64

/* Caller's side. Ask the server (started on the first call: this program executed afresh,
 * which turns into the server in mproc_init; -MPROC_ENOINIT when it never got there) for a
 * child: it gets fds[i] at number at[i] (no two alike; 0-2 as well, where the caller
 * has them there) and run(boot), boot
 * being its copy of fds[n - 1] (at[n - 1] is ignored: any free number), whose return is
 * the child's exit status. The child is the server's, not ours: *pidfd (ours, close-on-exec)
 * tells when it ends, mproc__forkserver_status what its status was. Thread-safe. 0, or
 * -errno / -MPROC_ENOINIT / -EPROTO (the server answered nonsense or went away). */
int mproc__forkserver_fork(const int *fds, const int *at, size_t n, pid_t *pid, int *pidfd);

/* The exit status of a child the server made, which has ended (its pidfd is readable):
 * 1 and *code (exit status, or minus the signal), or -ETIMEDOUT when the server did not
 * say it by the deadline (monotonic ns), or -EPROTO (the server is gone). */
int mproc__forkserver_status(pid_t pid, int64_t deadline, int *code);

/* Start the server now if none runs (mproc_init, for a program whose start method is
 * forkserver from the start: the server is then started while the program is young).
 * 0, or the error of starting it (a later request tries again). */
int mproc__forkserver_start(void);

/* The server's pid, or 0 when none runs (tests tell it from the children they check). */
pid_t mproc__forkserver_pid(void);

/* Stop the server (if one runs) and reap it; the next fork request starts another. Its
 * children die with it. For tests, which must leave no process behind. */
void mproc__forkserver_stop(void);

/* Server's side: serve on sock until the other end closes; each child runs run(boot fd).
 * Returns the server's exit status. */
int mproc__forkserver_serve(int sock, int (*run)(int boot));

#endif
