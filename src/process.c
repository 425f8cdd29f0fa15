/* src/process.c - Process: run a function or a program in a child (mproc/process.h).
 *
 * DESIGN. A process object is a small state machine, NEW -> RUNNING -> ENDED, around the
 * spawn core (src/sys/spawn.c), which creates every child. Once started, the object holds
 * the child's pid and a pidfd; the pidfd is what we wait on and signal, so a pid reused
 * after the child is reaped can never be hit by mistake, and we never call waitpid(-1) or
 * install a signal handler: other children of the program are none of our business.
 *
 * Reaping happens in whichever call first sees the child gone (join, is_alive, exitcode,
 * free); the exit code is kept and the pidfd stays open until free, so mproc_process_fd()
 * never returns a closed or reused fd number.
 *
 * Waiting: join without a deadline blocks in waitid(P_PIDFD) (one syscall, as waitpid);
 * with one, it polls the pidfd until the deadline and then reaps without blocking.
 *
 * Spawning a program: the PATH search is done here, in the parent, by building every
 * candidate path; the child execve()s them in order with execvp's rules, so it neither
 * allocates nor reads the environment after the fork.
 *
 * A process object is not thread-safe: calls on one object must not overlap. Different
 * objects may be used from different threads.
 */
#include "internal.h"

#include <unistd.h>

#include "fnref.h"
#include "launch.h"
#include "sys/spawn.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

enum state { NEW, RUNNING, ENDED };

struct mproc_process {
    mproc_process_fn fn; /* NULL for a spawned program */
    void *arg;
    unsigned flags;
    mproc_start_method start;  /* how the child starts (resolved) */
    struct process_boot *boot; /* forkserver, spawn: the message the child boots from */
    enum state state;
    pid_t pid;
    int pidfd;
    int exitcode;  /* once ENDED: the exit status, or minus the signal */
    pid_t starter; /* the process that started it (set at start, for the child's facts) */
    struct mproc_process *reg_prev, *reg_next; /* the started ones: active_children */
    pid_t owner;                               /* the process whose registry holds it (0: none) */
    char name[];
};

/* ---- who this process is (current_process, parent_process) ------------------------------ */

/* Facts about `pid`: a process that fork() copies outside mproc (not through
 * mproc_process_start or a pool) inherits them but is not `pid`, and is told nothing of
 * a parent (it gets "MainProcess", as a process mproc did not start). */
static struct {
    pid_t pid;
    const char *name;
    bool daemon;
    pid_t parent;
    const char *parent_name;
} self;

/* The name of process pid by the facts held here (its own, or those a fork copied) */
static const char *name_of(pid_t pid)
{
    return self.pid == pid && self.name != NULL ? self.name : "MainProcess";
}

void mproc__self_enter(const char *name, bool daemon, pid_t parent)
{
    const char *parent_name = name_of(parent); /* the facts this child was forked with */
    self.pid = getpid();
    self.name = name;
    self.daemon = daemon;
    self.parent = parent;
    self.parent_name = parent_name;
}

int mproc_current_process(mproc_self *out)
{
    if (out == NULL)
        return -EINVAL;
    bool ours = self.pid == getpid();
    *out = (mproc_self){.name = name_of(getpid()),
                        .pid = getpid(),
                        .daemon = ours && self.daemon,
                        .parent_pid = ours ? self.parent : 0,
                        .parent_name = ours ? self.parent_name : NULL};
    return 0;
}

int mproc_parent_alive(void)
{
    if (self.pid != getpid() || self.parent == 0)
        return -MPROC_ESTATE;
    return getppid() == self.parent; /* when it ends, the kernel hands us to another */
}

/* ---- the children this process started (active_children) --------------------------------- */

/* A list under a mutex. A fork child's copy is not its own: the atfork child handler
 * empties it (and takes the mutex afresh, which another thread may have held at the
 * fork), and each entry names the process whose list it is in. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static mproc_process *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_prepare(void)
{
    pthread_mutex_lock(&reg_mu);
}

static void reg_parent(void)
{
    pthread_mutex_unlock(&reg_mu);
}

static void reg_child(void)
{
    pthread_mutex_init(&reg_mu, NULL);
    reg_head = NULL;
}

static void reg_init(void)
{
    (void)pthread_atfork(reg_prepare, reg_parent, reg_child);
}

static void reg_add(mproc_process *p)
{
    pthread_once(&reg_once, reg_init);
    pthread_mutex_lock(&reg_mu);
    p->owner = getpid();
    p->reg_prev = NULL;
    p->reg_next = reg_head;
    if (reg_head != NULL)
        reg_head->reg_prev = p;
    reg_head = p;
    pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(mproc_process *p)
{
    if (p->owner != getpid())
        return; /* never listed, or listed in the parent this process was forked from */
    pthread_mutex_lock(&reg_mu);
    if (p->reg_prev != NULL)
        p->reg_prev->reg_next = p->reg_next;
    else
        reg_head = p->reg_next;
    if (p->reg_next != NULL)
        p->reg_next->reg_prev = p->reg_prev;
    p->owner = 0;
    pthread_mutex_unlock(&reg_mu);
}

int mproc_active_children(mproc_process **out, size_t cap)
{
    if (out == NULL && cap > 0)
        return -EINVAL;
    pthread_once(&reg_once, reg_init);
    pthread_mutex_lock(&reg_mu);
    size_t n = 0;
    for (mproc_process *p = reg_head; p != NULL; p = p->reg_next) {
        /* its pidfd (open until free, which unlists it first) is readable once it ended:
           read without touching the object, which another thread may be joining */
        if (mproc__sys_poll1(p->pidfd, POLLIN, 0) != 0)
            continue;
        if (n < cap)
            out[n] = p;
        n++;
    }
    pthread_mutex_unlock(&reg_mu);
    return n > INT_MAX ? INT_MAX : (int)n;
}

enum { ALL_FLAGS = MPROC_PROCESS_DAEMON | MPROC_PROCESS_SETSID | MPROC_PROCESS_SETPGID };

/* Python numbers its processes Process-1, Process-2, ... per parent. */
static atomic_uint counter;

static mproc_process *alloc_process(const char *name, unsigned flags)
{
    char fallback[32];
    if (name == NULL) {
        snprintf(fallback, sizeof fallback, "Process-%u", atomic_fetch_add(&counter, 1) + 1);
        name = fallback;
    }
    size_t len = strlen(name);
    mproc_process *p = mproc__malloc(sizeof *p + len + 1);
    if (p == NULL)
        return NULL;
    *p = (mproc_process){.flags = flags, .state = NEW, .pidfd = -1};
    memcpy(p->name, name, len + 1);
    return p;
}

/* ---- children that did not fork from us (forkserver, spawn) ----------------------------- */

/* What such a child boots from (in a memfd): it is this program started afresh, so the
 * target travels by reference and its argument as bytes; name, then argument, follow. */
struct process_boot {
    uint32_t magic; /* MPROC__PROCESS_BOOT_MAGIC */
    uint32_t size;  /* of the whole message */
    uint32_t build_len;
    uint32_t ref_len;
    unsigned char build[MPROC__BUILD_MAX]; /* the program's build-id */
    uint32_t flags;
    int32_t starter;
    uint32_t name_len; /* with its NUL */
    uint32_t pad;
    uint64_t arg_size;
    unsigned char ref[MPROC__FNREF_MAX]; /* the target's reference */
};

static struct process_boot *boot_message(const mproc_process *p, mproc_process_fn fn,
                                         const void *arg, size_t arg_size, int *rc)
{
    size_t name_len = strlen(p->name) + 1;
    size_t size = sizeof(struct process_boot) + name_len + arg_size;
    struct process_boot *b;
    if (arg_size > MPROC__BOOT_ARG_MAX || (b = mproc__calloc(1, size)) == NULL) {
        *rc = arg_size > MPROC__BOOT_ARG_MAX ? -EINVAL : -ENOMEM;
        return NULL;
    }
    size_t len;
    *rc = mproc__fnref_encode((void (*)(void))fn, b->ref, sizeof b->ref, &len);
    if (*rc < 0) {
        mproc__free(b);
        return NULL;
    }
    b->magic = MPROC__PROCESS_BOOT_MAGIC;
    b->size = (uint32_t)size;
    b->ref_len = (uint32_t)len;
    b->build_len = (uint32_t)mproc__fnref_main_build(b->build, sizeof b->build);
    b->flags = p->flags;
    b->name_len = (uint32_t)name_len;
    b->arg_size = arg_size;
    memcpy(b + 1, p->name, name_len);
    if (arg_size > 0)
        memcpy((unsigned char *)(b + 1) + name_len, arg, arg_size);
    return b;
}

int mproc__process_boot_run(int boot)
{
    size_t size;
    struct process_boot *b = mproc__launch_read(boot, sizeof *b, &size);
    if (b == NULL || b->size != size || b->build_len > MPROC__BUILD_MAX ||
        b->ref_len > MPROC__FNREF_MAX)
        return 127;
    void (*fn)(void);
    if (!mproc__launch_same_build(b->build, b->build_len) || b->name_len == 0 ||
        (uint64_t)b->name_len + b->arg_size != size - sizeof *b ||
        mproc__fnref_decode(b->ref, b->ref_len, &fn) < 0)
        return 127; /* another build of the program: nothing here can be trusted */
    mproc__sys_close(boot);
    if ((b->flags & MPROC_PROCESS_SETSID) ? setsid() < 0
                                          : (b->flags & MPROC_PROCESS_SETPGID) && setpgid(0, 0) < 0)
        return 127;
    const char *name = (const char *)(b + 1); /* b lives as long as this process */
    name = name[b->name_len - 1] == '\0' ? name : "Process";
    mproc__self_enter(name, (b->flags & MPROC_PROCESS_DAEMON) != 0, b->starter);
    void *arg = b->arg_size > 0 ? (unsigned char *)(b + 1) + b->name_len : NULL;
    return ((mproc_process_fn)fn)(arg);
}

int mproc_process_new(mproc_process **out, mproc_process_fn fn, void *arg,
                      const mproc_process_opts *opts)
{
    mproc_process_opts o = opts != NULL ? *opts : (mproc_process_opts){0};
    if (out == NULL || fn == NULL || (o.flags & ~(unsigned)ALL_FLAGS) != 0)
        return -EINVAL;
    if (o.start == MPROC_START_DEFAULT) {
        o.start = mproc_get_start_method();
        if (o.start == MPROC_START_MPI) /* a pool's way: a process object is local */
            o.start = MPROC_START_FORK;
    }
    if (mproc_start_method_name(o.start) == NULL || o.start == MPROC_START_MPI ||
        (o.start != MPROC_START_FORK && (arg != NULL) != (o.arg_size > 0)))
        return -EINVAL; /* a pointer means nothing in another program image */
    if (o.start != MPROC_START_FORK && mproc__boot_pending())
        return -MPROC_ENOINIT;
    mproc_process *p = alloc_process(o.name, o.flags);
    if (p == NULL)
        return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->start = o.start;
    if (o.start != MPROC_START_FORK) {
        int rc;
        p->boot = boot_message(p, fn, arg, o.arg_size, &rc);
        if (p->boot == NULL) {
            mproc__free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

/* Start p's child as s describes. A failed start leaves p NEW and no child behind. */
static int start(mproc_process *p, const struct mproc__spawn *s)
{
    int rc = MPROC__FAULT("process.start");
    if (rc < 0)
        return rc;
    p->starter = getpid();
    if (p->boot != NULL) { /* forkserver, spawn: a new image boots from the message */
        p->boot->starter = p->starter;
        int fd = mproc__launch_message(p->boot, p->boot->size);
        if (fd < 0)
            return fd;
        rc = mproc__launch(p->start, fd, NULL, 0, (p->flags & MPROC_PROCESS_DAEMON) != 0, &p->pid,
                           &p->pidfd);
        mproc__sys_close(fd);
    } else {
        rc = mproc__sys_spawn(s, &p->pid, &p->pidfd);
    }
    if (rc < 0)
        return rc;
    p->state = RUNNING;
    reg_add(p);
    return 0;
}

/* A function child's first steps: who it is, then its target. */
static int child_main(void *arg)
{
    mproc_process *p = arg;
    mproc__self_enter(p->name, (p->flags & MPROC_PROCESS_DAEMON) != 0, p->starter);
    return p->fn(p->arg);
}

int mproc_process_start(mproc_process *p)
{
    if (p == NULL)
        return -EINVAL;
    if (p->state != NEW)
        return -MPROC_ESTATE;
    struct mproc__spawn s = {.fn = child_main, .arg = p, .fds = {-1, -1, -1}, .flags = p->flags};
    return start(p, &s);
}

/* execvp's search in the parent: argv0 joined to every PATH entry (an empty entry is the
 * working directory), as one allocation holding the NULL-terminated vector and its strings.
 * A name with a slash is its own single candidate. */
static char **path_candidates(const char *argv0, bool search)
{
    const char *path = NULL;
    if (search && strchr(argv0, '/') == NULL) {
        path = getenv("PATH");
        if (path == NULL)
            path = "/bin:/usr/bin"; /* glibc's execvp default */
    }
    size_t n = 1, len = strlen(argv0);
    if (path != NULL)
        for (const char *c = path; *c != '\0'; c++)
            n += *c == ':';
    size_t bytes = (n + 1) * sizeof(char *) + (path != NULL ? strlen(path) + 1 : 0) + n * (len + 3);
    char **v = mproc__malloc(bytes);
    if (v == NULL)
        return NULL;
    char *buf = (char *)(v + n + 1);
    if (path == NULL) {
        v[0] = memcpy(buf, argv0, len + 1);
        v[1] = NULL;
        return v;
    }
    const char *dir = path;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(dir, ':');
        size_t dlen = end != NULL ? (size_t)(end - dir) : strlen(dir);
        v[i] = buf;
        if (dlen == 0) {
            memcpy(buf, "./", 2);
            buf += 2;
        } else {
            memcpy(buf, dir, dlen);
            buf += dlen;
            *buf++ = '/';
        }
        memcpy(buf, argv0, len + 1);
        buf += len + 1;
        dir = end != NULL ? end + 1 : dir + dlen;
    }
    /* Drop the absolute candidates that do not exist: the child's execve would only fail
     * on them with ENOENT/ENOTDIR and go on, and a failed execve costs far more than an
     * access() here (a PATH of a dozen entries made every spawn of `true` try 9 of them).
     * Relative ones are left to the child, whose working directory may differ. If none
     * remains, the first is kept so the child reports ENOENT as execvp would. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool absent =
            v[i][0] == '/' && access(v[i], F_OK) < 0 && (errno == ENOENT || errno == ENOTDIR);
        if (!absent)
            v[kept++] = v[i];
    }
    if (kept == 0)
        kept = 1; /* v[0] is still the first candidate */
    v[kept] = NULL;
    return v;
}

int mproc_process_spawn(mproc_process **out, char *const argv[], const mproc_spawn_opts *opts)
{
    mproc_spawn_opts o = opts != NULL ? *opts : (mproc_spawn_opts){0};
    if (out == NULL || argv == NULL || argv[0] == NULL || argv[0][0] == '\0' ||
        (o.flags & ~(unsigned)ALL_FLAGS) != 0)
        return -EINVAL;
    char **paths = path_candidates(argv[0], o.search_path != 0);
    if (paths == NULL)
        return -ENOMEM;
    mproc_process *p = alloc_process(o.name != NULL ? o.name : argv[0], o.flags);
    if (p == NULL) {
        mproc__free(paths);
        return -ENOMEM;
    }
    struct mproc__spawn s = {
        .paths = (const char *const *)paths,
        .argv = argv,
        .envp = o.envp,
        .cwd = o.cwd,
        .fds = {o.stdin_fd > 0 ? o.stdin_fd : -1, o.stdout_fd > 0 ? o.stdout_fd : -1,
                o.stderr_fd > 0 ? o.stderr_fd : -1},
        .flags = o.flags,
    };
    int rc = start(p, &s);
    mproc__free(paths);
    if (rc < 0) {
        mproc__free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* Reap the child if it has ended (block: wait for it). 1 ended, 0 running, or -errno. */
static int reap(mproc_process *p, bool block)
{
    if (p->state == ENDED)
        return 1;
    int code;
    int rc = mproc__launch_reap(p->start, p->pid, p->pidfd, block, &code);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        if (rc != -ECHILD)
            return rc;
        code = 255; /* reaped behind our back (waitpid(-1), SIGCHLD ignored): status lost */
    }
    p->state = ENDED;
    p->exitcode = code;
    return rc;
}

int mproc_process_join(mproc_process *p, double timeout)
{
    int64_t deadline;
    if (p == NULL || mproc__deadline(timeout, &deadline) < 0)
        return -EINVAL;
    if (p->state != RUNNING)
        return p->state == NEW ? -MPROC_ESTATE : 0;
    if (deadline == MPROC__NO_DEADLINE) {
        int rc = reap(p, true);
        return rc < 0 ? rc : 0;
    }
    for (;;) {
        int rc = mproc__sys_poll1(p->pidfd, POLLIN, deadline);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            rc = reap(p, false);
            if (rc != 0)
                return rc < 0 ? rc : 0;
        }
        if (mproc__remaining_ns(deadline) == 0)
            return -ETIMEDOUT;
    }
}

int mproc_process_is_alive(mproc_process *p)
{
    if (p == NULL)
        return -EINVAL;
    if (p->state == RUNNING)
        reap(p, false);
    return p->state == RUNNING;
}

int mproc_process_exitcode(mproc_process *p, int *code)
{
    if (p == NULL || code == NULL)
        return -EINVAL;
    if (p->state == RUNNING)
        reap(p, false);
    if (p->state != ENDED)
        return 0;
    *code = p->exitcode;
    return 1;
}

pid_t mproc_process_pid(const mproc_process *p)
{
    if (p == NULL)
        return -EINVAL;
    return p->state == NEW ? -MPROC_ESTATE : p->pid;
}

const char *mproc_process_name(const mproc_process *p)
{
    return p != NULL ? p->name : NULL;
}

int mproc_process_fd(const mproc_process *p)
{
    if (p == NULL)
        return -EINVAL;
    return p->state == NEW ? -MPROC_ESTATE : p->pidfd;
}

int mproc_process_signal(mproc_process *p, int sig)
{
    if (p == NULL || sig < 0 || sig >= _NSIG)
        return -EINVAL;
    if (p->state == NEW)
        return -MPROC_ESTATE;
    if (p->state == ENDED)
        return 0;
    int rc = mproc__sys_pidfd_kill(p->pidfd, sig);
    return rc == -ESRCH ? 0 : rc; /* it ended and waits to be reaped */
}

int mproc_process_terminate(mproc_process *p)
{
    return mproc_process_signal(p, SIGTERM);
}

int mproc_process_kill(mproc_process *p)
{
    return mproc_process_signal(p, SIGKILL);
}

void mproc_process_free(mproc_process *p)
{
    if (p == NULL)
        return;
    reg_remove(p);
    if (p->state == RUNNING && reap(p, false) == 0) {
        mproc__sys_pidfd_kill(p->pidfd, SIGKILL);
        reap(p, true);
    }
    mproc__sys_close(p->pidfd);
    mproc__free(p->boot);
    mproc__free(p);
}
