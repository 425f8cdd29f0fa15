/* src/sys/spawn.c - the spawn core: fork a function, or execute a program.
 *
 * DESIGN. Every child of the library is created here (docs/design.md, "One spawn core").
 * The rules, in the order they apply:
 *
 *  1. Everything is prepared before the child exists: argument vectors and PATH candidates
 *     (the caller's job), the exec-error pipe and the child's stack (ours). Between fork and
 *     exec the child calls only async-signal-safe functions and allocates nothing: another
 *     thread of the parent may have held the malloc lock when the child was created.
 *  2. All signals are blocked in the calling thread around the fork. No handler of the
 *     caller runs in the child before it is set up, and none runs in this thread between
 *     fork and pidfd_open. Another thread's SIGCHLD handler that reaps with waitpid(-1) still
 *     can: an exec child's pidfd therefore comes with the clone itself (CLONE_PIDFD), so it
 *     is held before the child can end. A fn child is made by glibc's fork (its atfork
 *     handlers are what makes malloc safe in the child), which cannot hand out a pidfd:
 *     so where SIGCHLD is ignored (the kernel reaps) or handled (a handler may reap), the
 *     fn child first waits for a byte on a pipe that the parent writes once pidfd_open
 *     holds it: the child cannot end before it is held. With SIGCHLD at its default
 *     nobody else reaps, and no pipe is made. The parent restores its mask before
 *     returning; the child restores it right before running fn or calling execve.
 *  3. Two ways to create the child, one setup (setup() below):
 *     - fn: fork(). The child needs its own copy of memory; glibc's fork runs the atfork
 *       handlers, so fn may use malloc and stdio. Stdio is flushed before forking
 *       (fflush(NULL)), or output still buffered in the parent would be written twice, once
 *       by each process; after fn returns the child flushes again and _exits with fn's value
 *       & 255 (exit() would run the parent's atexit handlers in the child).
 *     - exec: clone(CLONE_VM | CLONE_VFORK) on a small stack of its own, as posix_spawn does.
 *       No page tables are copied, so starting a program from a large parent costs what it
 *       costs from a small one (on a 2-CPU VM: fork+exec of /bin/true from a 200 MiB parent
 *       3.4 ms, this way 0.7 ms). Until execve the child shares the parent's memory, so it
 *       writes nothing but its own stack (and errno, which the parent thread, suspended,
 *       does not read), uses syscalls rather than glibc calls that trust the thread pointer
 *       (kill(getpid()), never raise()), and sets every caught signal back to SIG_DFL before
 *       it restores the mask, so no handler of the parent can run in it on shared data.
 *  4. Exec failure comes back through a close-on-exec pipe: the child writes errno and
 *     _exits(127); a successful execve closes the pipe. CLONE_VFORK suspends the parent until
 *     the child has done one or the other, so when clone returns a non-blocking read is
 *     exact, and it cannot hang on a copy of the write end that a concurrent fork in
 *     another thread took. On failure the child is reaped (waitpid on its pid) before
 *     returning, so a failed spawn leaves nothing.
 *  5. A daemon child sets PR_SET_PDEATHSIG(SIGKILL), then compares getppid() with the
 *     parent's pid recorded before the fork: if the parent died in between, the death signal
 *     will never come, so the child kills itself. The kernel sends the death signal when the
 *     *thread* that created the child exits, even if the rest of the process lives on.
 *  6. fn children get no report pipe, to keep start+join as cheap as fork+waitpid: their
 *     setup (pdeathsig, setsid or setpgid on a fresh child, dup2 of fds the parent checked)
 *     cannot fail in practice; a step that does fail makes the child _exit(127) before fn.
 *
 * Exec children also get SIGPIPE and SIGXFSZ back to SIG_DFL when the parent ignores them
 * (as Python's subprocess does): programs in a pipeline expect a closed pipe to end them.
 */
#include "internal.h"

#include "sys/spawn.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { CHILD_STACK = 64 * 1024 };

/* The exec child's stack: one per spawning thread, kept for the thread's life and unmapped
 * when it exits. CLONE_VFORK suspends the thread until the child has exec'd or exited, so
 * the stack is free again when clone returns. A stack mapped and unmapped per spawn cost a
 * page fault per page touched and a TLB flush each time: a tenth of mproc make's own time
 * on 10,000 trivial jobs. Where the key cannot be made, each spawn maps its own. */
static __thread void *tls_stack;
static pthread_key_t stack_key;
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;
static int stack_key_ok;

static void stack_release(void *stack)
{
    munmap(stack, CHILD_STACK);
}

static void stack_key_make(void)
{
    stack_key_ok = pthread_key_create(&stack_key, stack_release) == 0;
}

static void *child_stack(void)
{
    if (tls_stack != NULL)
        return tls_stack;
    void *s = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED)
        return s;
    (void)pthread_once(&stack_once, stack_key_make);
    if (stack_key_ok && pthread_setspecific(stack_key, s) == 0)
        tls_stack = s; /* kept: stack_release unmaps it at the thread's exit */
    return s;
}

/* Code that runs in the child before exec. It may run on the parent's memory, on a stack that
 * AddressSanitizer does not know, in frames that never return: no ASan instrumentation, or
 * the redzones it poisons would stay poisoned in the (shared) shadow memory. */
#define CHILD __attribute__((no_sanitize_address))

struct ctx {
    const struct mproc__spawn *s;
    char *const *envp; /* the environment to execute with, resolved in the parent */
    sigset_t mask;     /* the caller's signal mask, restored in the child */
    pid_t parent;      /* the parent's pid before the fork (daemons only) */
    int report;        /* write end of the exec-error pipe; -1 for fn children */
    int hold[2];       /* fn children of a process that reaps (see rule 2): the child
                          waits for a byte on hold[0] before it runs; else -1 */
};

/* The calls every child makes go to the kernel directly: in a forked child, a libc
 * function its parent never called is bound on first use, and the binding reads the
 * loader's symbol tables, pages this new process has not mapped yet (measured: 9 of the
 * 46 page faults of a pool worker's start and exit). */
CHILD static _Noreturn void child_exit(int code)
{
    for (;;)
        syscall(SYS_exit_group, code);
}

/* The child's setup, common to both kinds. 0, or the errno of the step that failed. */
CHILD static int setup(const struct ctx *c)
{
    const struct mproc__spawn *s = c->s;
    if (s->flags & MPROC_PROCESS_DAEMON) {
        if (syscall(SYS_prctl, PR_SET_PDEATHSIG, (unsigned long)SIGKILL, 0UL, 0UL, 0UL) < 0)
            return errno;
        if ((pid_t)syscall(SYS_getppid) != c->parent) /* the parent is gone already: no
                                                         signal will come */
            kill(getpid(), SIGKILL);
    }
    if (s->flags & MPROC_PROCESS_SETSID) {
        if (setsid() < 0)
            return errno;
    } else if (s->flags & MPROC_PROCESS_SETPGID) {
        if (setpgid(0, 0) < 0)
            return errno;
    }

    /* Redirection. A source that is itself one of 0..2 (stdout_fd = 2 with stderr_fd = 1)
     * would be overwritten by an earlier dup2, so such sources are first copied above 2. */
    int src[3];
    bool lifted[3] = {false, false, false};
    for (int t = 0; t < 3; t++) {
        src[t] = s->fds[t];
        if (src[t] >= 0 && src[t] < 3 && src[t] != t) {
            src[t] = fcntl(src[t], F_DUPFD_CLOEXEC, 3);
            if (src[t] < 0)
                return errno;
            lifted[t] = true;
        }
    }
    for (int t = 0; t < 3; t++) {
        if (src[t] < 0)
            continue;
        if (src[t] == t) { /* already in place: only make sure it survives exec */
            int fl = fcntl(t, F_GETFD);
            if (fl < 0 || ((fl & FD_CLOEXEC) && fcntl(t, F_SETFD, fl & ~FD_CLOEXEC) < 0))
                return errno;
        } else if (dup2(src[t], t) < 0) { /* dup2's copy is never close-on-exec */
            return errno;
        }
    }
    for (int t = 0; t < 3; t++)
        if (lifted[t])
            close(src[t]);

    for (size_t i = 0; c->report >= 0 && i < s->npass; i++) {
        int fl = fcntl(s->pass[i], F_GETFD);
        if (fl < 0 || ((fl & FD_CLOEXEC) && fcntl(s->pass[i], F_SETFD, fl & ~FD_CLOEXEC) < 0))
            return errno;
    }

    if (s->cwd != NULL && chdir(s->cwd) < 0)
        return errno;
    return 0;
}

/* Every caught signal back to SIG_DFL (execve would do it too, but the child shares the
 * parent's memory until then), and SIGPIPE and SIGXFSZ too when ignored. */
CHILD static void reset_signals(void)
{
    for (int sig = 1; sig < _NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
            continue; /* glibc refuses its own two signals (32, 33): leave them */
        if (sa.sa_handler == SIG_DFL ||
            (sa.sa_handler == SIG_IGN && sig != SIGPIPE && sig != SIGXFSZ))
            continue;
        sa.sa_handler = SIG_DFL;
        sa.sa_flags = 0;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
}

/* execve each candidate in turn, with execvp's rules. Returns only on failure: the errno. */
CHILD static int exec_paths(const struct ctx *c)
{
    int err = ENOENT;
    bool denied = false;
    for (const char *const *path = c->s->paths; *path != NULL; path++) {
        execve(*path, c->s->argv, c->envp);
        err = errno;
        switch (err) {
        case EACCES:
            denied = true;
            break;
        case ENOENT:
        case ENOTDIR:
        case ESTALE:
        case ENODEV:
        case ETIMEDOUT:
            break; /* not here: try the next directory */
        default:
            return err; /* found, but it cannot run: stop, as execvp does */
        }
    }
    return denied ? EACCES : err;
}

CHILD static int exec_child(void *arg)
{
    const struct ctx *c = arg;
    int err = setup(c);
    if (err == 0) {
        reset_signals();
        pthread_sigmask(SIG_SETMASK, &c->mask, NULL);
        err = exec_paths(c);
    }
    ssize_t put = write(c->report, &err, sizeof err); /* the pipe is empty: never short */
    (void)put;
    _exit(127);
}

/* Close the descriptors lo..hi (close_range, or one by one where the kernel lacks it). */
CHILD static void close_span(unsigned lo, unsigned hi)
{
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, lo, hi, 0) == 0)
        return;
    for (unsigned fd = lo; fd <= hi && fd < 65536; fd++)
        (void)close((int)fd);
}

/* Every descriptor above 2 but keep (ascending). */
CHILD static void close_all_but(const int *keep, size_t n)
{
    unsigned lo = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 3 || (unsigned)keep[i] < lo)
            continue;
        if ((unsigned)keep[i] > lo)
            close_span(lo, (unsigned)keep[i] - 1);
        lo = (unsigned)keep[i] + 1;
    }
    close_span(lo, ~0u);
}

static _Noreturn void fn_child(const struct ctx *c)
{
    if (c->hold[0] >= 0) { /* until the parent holds our pidfd: see rule 2 */
        char b;
        close(c->hold[1]);
        while (read(c->hold[0], &b, 1) < 0 && errno == EINTR) {
        }
        close(c->hold[0]);
    }
    if (setup(c) != 0)
        child_exit(127);
    if (c->s->close_others)
        close_all_but(c->s->keep, c->s->nkeep);
    pthread_sigmask(SIG_SETMASK, &c->mask, NULL);
    int ret = c->s->fn(c->s->arg);
    fflush(NULL);
    child_exit(ret & 255);
}

/* Reap a child we hold no pidfd for (a failed start). It has exited or been killed. */
static void reap_pid(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

int mproc__sys_spawn(const struct mproc__spawn *s, pid_t *pid, int *pidfd)
{
    assert(s != NULL && pid != NULL && pidfd != NULL);
    assert((s->fn == NULL) != (s->paths == NULL) && (s->fn != NULL || s->argv != NULL));
    for (int t = 0; t < 3; t++)
        if (s->fds[t] >= 0 && fcntl(s->fds[t], F_GETFD) < 0)
            return -EINVAL;
    int rc = MPROC__FAULT("sys.fork");
    if (rc < 0)
        return rc;

    struct ctx c = {.s = s,
                    .envp = s->envp != NULL ? s->envp : environ,
                    .parent = (s->flags & MPROC_PROCESS_DAEMON) ? getpid() : 0,
                    .report = -1,
                    .hold = {-1, -1}};
    int report[2] = {-1, -1};
    void *stack = MAP_FAILED;
    if (s->fn == NULL) {
        rc = mproc__sys_pipe(report, O_NONBLOCK);
        if (rc < 0)
            return rc;
        if (report[1] < 3) { /* 0..2 were closed: a redirection would overwrite it there */
            int fd = fcntl(report[1], F_DUPFD_CLOEXEC, 3);
            if (fd < 0) {
                rc = -errno;
                goto out;
            }
            mproc__sys_close(report[1]);
            report[1] = fd;
        }
        c.report = report[1];
        stack = child_stack();
        if (stack == MAP_FAILED) {
            rc = -errno;
            goto out;
        }
    } else {
        fflush(NULL); /* or the child would write the parent's buffered output again */
        /* a process that ignores SIGCHLD (the kernel reaps) or handles it (a handler may
           reap with waitpid(-1)) could lose a child that ends at once before pidfd_open
           holds it: there the child waits for the parent's word (rule 2). Nobody else
           pays for it. */
        struct sigaction sa;
        if (sigaction(SIGCHLD, NULL, &sa) == 0 &&
            ((sa.sa_flags & (SA_SIGINFO | SA_NOCLDWAIT)) || sa.sa_handler != SIG_DFL)) {
            rc = mproc__sys_pipe(c.hold, 0);
            if (rc < 0)
                return rc;
        }
    }

    mproc__sys_block_all(&c.mask);
    pid_t child;
    int early_pidfd = -1; /* exec children: the pidfd comes with the clone itself */
    if (s->fn != NULL) {
        mproc__sys_dl_hold(); /* see src/sys/dl.c */
        child = fork();
        if (child == 0) {
            mproc__sys_dl_child_reset();
            fn_child(&c);
        }
        mproc__sys_dl_release();
    } else {
        child = clone(exec_child, (char *)stack + CHILD_STACK,
                      CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &c, &early_pidfd);
        if (child < 0 && errno == EINVAL) { /* a kernel before 5.2: pidfd_open below */
            early_pidfd = -1;
            child = clone(exec_child, (char *)stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD,
                          &c);
        }
    }
    if (child < 0) {
        rc = -errno;
        goto restore;
    }
    if (s->fn == NULL) {
        /* The child has exec'd or failed by now (CLONE_VFORK): nothing to wait for. */
        int err = 0;
        if (read(report[0], &err, sizeof err) == (ssize_t)sizeof err) {
            reap_pid(child);
            mproc__sys_close(early_pidfd);
            rc = err > 0 ? -err : -MPROC_EEXEC;
            goto restore;
        }
    } else {
        (void)MPROC__FAULT("sys.spawn.forked"); /* a test stops here: the child may end */
        if ((s->flags & (MPROC_PROCESS_SETPGID | MPROC_PROCESS_SETSID)) == MPROC_PROCESS_SETPGID)
            setpgid(child, child); /* also here, so a killpg right after start reaches it */
    }
    if (early_pidfd >= 0) {
        rc = MPROC__FAULT("sys.pidfd_open"); /* the step that holds the child, either way */
        if (rc < 0)
            mproc__sys_close(early_pidfd);
        else
            rc = early_pidfd;
    } else {
        rc = mproc__sys_pidfd_open(child);
    }
    if (rc < 0) {
        kill(child, SIGKILL);
        reap_pid(child);
        goto restore;
    }
    *pid = child;
    *pidfd = rc;
    rc = 0;
    if (c.hold[1] >= 0) /* held now: let it go on */
        (void)mproc__sys_write_all(c.hold[1], "", 1);
restore:
    mproc__sys_restore_mask(&c.mask);
out:
    if (stack != MAP_FAILED && stack != tls_stack)
        munmap(stack, CHILD_STACK);
    mproc__sys_close(report[0]);
    mproc__sys_close(report[1]);
    mproc__sys_close(c.hold[0]);
    mproc__sys_close(c.hold[1]);
    return rc;
}

int mproc__sys_reap(int pidfd, bool block, int *code)
{
    siginfo_t si;
    for (;;) {
        si.si_pid = 0; /* WNOHANG leaves it 0 while the child runs */
        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | (block ? 0 : WNOHANG)) == 0)
            break;
        if (errno != EINTR)
            return -errno;
    }
    if (si.si_pid == 0)
        return 0;
    *code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    return 1;
}

char **mproc__sys_env_with(const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - entry) + 1 : strlen(entry);
    size_t n = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        n++;
    char **out = mproc__calloc(n + 2, sizeof *out);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        if (strncmp(*e, entry, name_len) != 0)
            out[k++] = *e;
    out[k++] = (char *)entry;
    out[k] = NULL;
    return out;
}

void mproc__sys_close_all_but(const int *keep, size_t n)
{
    close_all_but(keep, n);
}

static const char *const self_paths[] = {"/proc/self/exe", NULL};

/* NAME=fd added to the environment (into entry), and an argument vector naming the
 * program as it was invoked. NULL: no memory. */
static char **self_env(const char *name, int fd, char *entry, size_t cap, char **argv)
{
    snprintf(entry, cap, "%s=%d", name, fd);
    argv[0] = program_invocation_name != NULL ? program_invocation_name : (char *)"mproc";
    argv[1] = NULL;
    return mproc__sys_env_with(entry);
}

int mproc__sys_spawn_self(const char *name, int fd, const int *pass, size_t npass, unsigned flags,
                          pid_t *pid, int *pidfd)
{
    char entry[96], *argv[2];
    char **envp = self_env(name, fd, entry, sizeof entry, argv);
    if (envp == NULL)
        return -ENOMEM;
    struct mproc__spawn sp = {.paths = self_paths,
                              .argv = argv,
                              .envp = envp,
                              .fds = {-1, -1, -1},
                              .flags = flags,
                              .pass = pass,
                              .npass = npass};
    int rc = mproc__sys_spawn(&sp, pid, pidfd);
    mproc__free(envp);
    return rc;
}

int mproc__sys_exec_self(const char *name, int fd, const int *pass, size_t npass)
{
    for (size_t i = 0; i < npass; i++) {
        int fl = fcntl(pass[i], F_GETFD);
        if (fl < 0 || fcntl(pass[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
            return -errno;
    }
    char entry[96], *argv[2];
    char **envp = self_env(name, fd, entry, sizeof entry, argv);
    if (envp == NULL)
        return -ENOMEM;
    execve(self_paths[0], argv, envp);
    int rc = -errno;
    mproc__free(envp);
    return rc;
}
