/* src/sys/forkserver.c - the fork server: a clean process that forks children on request.
 *
 * DESIGN. A fork of a program with threads copies every lock another thread held at that
 * moment (inside malloc, stdio, the program's own mutexes): a child that takes one waits
 * forever. The server is this program executed afresh (/proc/self/exe, the caller's
 * environment plus MPROC_FORKSERVER=<fd>), which mproc_init turns into the server before
 * main() has done anything: one thread, no locks held, nothing of the caller's heap. Its
 * forks are what the forkserver start method gives a pool as workers.
 *
 * One SOCK_SEQPACKET socket joins the two (messages keep their bounds and carry
 * descriptors):
 *   server -> caller  HELLO once it serves; FORKED (pid, or -errno) with the child's pidfd
 *                     attached; EXITED (pid, status) after it reaped a child.
 *   caller -> server  a request: the descriptors the child is to have and the numbers it
 *                     is to have them at (SCM_RIGHTS).
 * The children are the server's (it reaps them, through a signalfd for SIGCHLD, and says
 * their status), so the caller watches each through the pidfd sent along: held before the
 * child could end, it names that process whatever happens to its pid. A child dies with
 * the server (PR_SET_PDEATHSIG, by the spawn core), and the server ends when the caller's
 * end of the socket closes: when the caller's process has ended (at exit() the caller
 * ends and reaps it itself). A child of the caller forked later does not share the server
 * (the atfork handler forgets it there).
 *
 * Who waits for whom: a caller thread holds the client's mutex from its request to its
 * answer; EXITED messages read meanwhile are kept (the last 256) for
 * mproc__forkserver_status.
 */
#include "internal.h"

#include "sys/forkserver.h"
#include "sys/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define FS_MAGIC 0x3153464du /* "MFS1" */
#define HELLO_LIMIT_S 10.0
#define KEPT 256

enum { MSG_HELLO = 1, MSG_FORKED, MSG_EXITED };

struct request {
    uint32_t magic;
    uint32_t n;
    int32_t at[MPROC__FORKSERVER_FDS];
};

struct reply {
    uint32_t magic;
    uint32_t kind;
    int32_t pid;
    int32_t code; /* FORKED: 0 or -errno; EXITED: the status */
};

/* ---- passing descriptors ---------------------------------------------------------------- */

static int send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MPROC__FORKSERVER_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    ssize_t r;
    do
        r = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (size_t)r == len ? 0 : -EPROTO;
}

/* One message into buf (its length in *len; 0: the other end closed) and the descriptors
 * it carried (close-on-exec) into fds, their count in *nfds. */
static int recv_fds(int sock, void *buf, size_t cap, size_t *len, int *fds, size_t *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MPROC__FORKSERVER_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t r;
    do
        r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*nfds < MPROC__FORKSERVER_FDS)
                fds[(*nfds)++] = fd;
            else
                mproc__sys_close(fd);
        }
    }
    *len = (size_t)r;
    if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        for (size_t i = 0; i < *nfds; i++)
            mproc__sys_close(fds[i]);
        *nfds = 0;
        return -EPROTO;
    }
    return 0;
}

/* ---- the server ------------------------------------------------------------------------- */

struct child {
    int fds[MPROC__FORKSERVER_FDS];
    int at[MPROC__FORKSERVER_FDS];
    size_t n;
    int (*run)(int boot);
};

/* In the child: each descriptor to its number, then run. The server is one thread, so the
 * child may do anything here. */
static int child_main(void *arg)
{
    struct child *c = arg;
    int top = 3, lifted[MPROC__FORKSERVER_FDS];
    for (size_t i = 0; i + 1 < c->n; i++)
        if (c->at[i] + 1 > top)
            top = c->at[i] + 1;
    for (size_t i = 0; i < c->n; i++) { /* above every target first: none overwrites another */
        lifted[i] = fcntl(c->fds[i], F_DUPFD_CLOEXEC, top);
        if (lifted[i] < 0)
            return 127;
        close(c->fds[i]);
    }
    for (size_t i = 0; i + 1 < c->n; i++) {
        if (dup2(lifted[i], c->at[i]) < 0) /* dup2's copy is not close-on-exec */
            return 127;
        close(lifted[i]);
    }
    return c->run(lifted[c->n - 1]);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void serve_request(int sock, const struct request *rq, int *fds, size_t nfds,
                          int (*run)(int))
{
    struct reply rp = {.magic = FS_MAGIC, .kind = MSG_FORKED, .pid = 0, .code = -EPROTO};
    int pidfd = -1;
    bool ok = rq->magic == FS_MAGIC && rq->n == nfds && nfds > 0 && nfds <= MPROC__FORKSERVER_FDS;
    for (size_t i = 0; ok && i + 1 < nfds; i++)
        ok = rq->at[i] >= 0;
    if (ok) {
        struct child c = {.n = nfds, .run = run};
        memcpy(c.fds, fds, nfds * sizeof *fds);
        memcpy(c.at, rq->at, nfds * sizeof *rq->at);
        int keep[MPROC__FORKSERVER_FDS];
        memcpy(keep, fds, nfds * sizeof *fds);
        qsort(keep, nfds, sizeof *keep, cmp_int);
        struct mproc__spawn sp = {.fn = child_main,
                                  .arg = &c,
                                  .fds = {-1, -1, -1},
                                  .flags = MPROC_PROCESS_DAEMON,
                                  .close_others = true,
                                  .keep = keep,
                                  .nkeep = nfds};
        pid_t pid;
        rp.code = mproc__sys_spawn(&sp, &pid, &pidfd);
        rp.pid = rp.code == 0 ? pid : 0;
    }
    for (size_t i = 0; i < nfds; i++)
        mproc__sys_close(fds[i]);
    (void)send_fds(sock, &rp, sizeof rp, &pidfd, pidfd >= 0 ? 1 : 0);
    mproc__sys_close(pidfd);
}

static void reap_children(int sock)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        struct reply rp = {.magic = FS_MAGIC,
                           .kind = MSG_EXITED,
                           .pid = pid,
                           .code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st)};
        (void)send_fds(sock, &rp, sizeof rp, NULL, 0);
    }
}

int mproc__forkserver_serve(int sock, int (*run)(int boot))
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    (void)signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would have the kernel reap */
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        return 1;
    struct reply hello = {.magic = FS_MAGIC, .kind = MSG_HELLO, .pid = getpid()};
    if (send_fds(sock, &hello, sizeof hello, NULL, 0) < 0)
        return 1;
    for (;;) {
        struct pollfd pf[2] = {{.fd = sock, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (pf[1].revents != 0) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                ;
            reap_children(sock);
        }
        if (pf[0].revents != 0) {
            struct request rq;
            int fds[MPROC__FORKSERVER_FDS];
            size_t len, nfds;
            int rc = recv_fds(sock, &rq, sizeof rq, &len, fds, &nfds);
            if (rc == -EPROTO)
                continue;
            if (rc < 0 || len == 0)
                return 0; /* the caller is gone: so are we (our children follow) */
            if (len != sizeof rq) {
                for (size_t i = 0; i < nfds; i++)
                    mproc__sys_close(fds[i]);
                continue;
            }
            serve_request(sock, &rq, fds, nfds, run);
        }
    }
}

/* ---- the caller's side ------------------------------------------------------------------ */

static pthread_mutex_t client_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t client_once = PTHREAD_ONCE_INIT;
static int client_sock = -1;
static int server_pidfd = -1;
static struct {
    pid_t pid;
    int code;
} kept[KEPT];
static unsigned kept_next;
static pid_t server_pid;

/* In a child forked from this process: the server is the parent's, not ours. */
static void forget_in_child(void)
{
    pthread_mutex_init(&client_mu, NULL);
    if (client_sock >= 0)
        (void)close(client_sock);
    if (server_pidfd >= 0)
        (void)close(server_pidfd);
    client_sock = server_pidfd = -1;
    server_pid = 0;
    kept_next = 0;
    memset(kept, 0, sizeof kept);
}

static void stop_at_exit(void)
{
    mproc__forkserver_stop();
}

static void client_setup(void)
{
    (void)pthread_atfork(NULL, NULL, forget_in_child);
    /* at exit(), the server is ended and reaped here, not left to whoever adopts it */
    (void)atexit(stop_at_exit);
}

static void server_gone(void)
{
    mproc__sys_close(client_sock);
    client_sock = -1;
    if (server_pidfd >= 0) {
        int code;
        (void)mproc__sys_pidfd_kill(server_pidfd, SIGKILL);
        (void)mproc__sys_reap(server_pidfd, true, &code);
        mproc__sys_close(server_pidfd);
        server_pidfd = -1;
    }
    server_pid = 0;
}

void mproc__forkserver_stop(void)
{
    pthread_mutex_lock(&client_mu);
    if (client_sock >= 0)
        server_gone();
    pthread_mutex_unlock(&client_mu);
}

pid_t mproc__forkserver_pid(void)
{
    pthread_mutex_lock(&client_mu);
    pid_t pid = server_pid;
    pthread_mutex_unlock(&client_mu);
    return pid;
}

static void keep_status(pid_t pid, int code)
{
    kept[kept_next % KEPT].pid = pid;
    kept[kept_next % KEPT].code = code;
    kept_next++;
}

/* Read one message by the deadline; an EXITED one is kept. 0 and *rp (and *fd: a
 * descriptor it carried, or -1), -ETIMEDOUT, or -EPROTO (the server is gone). */
static int read_reply(int64_t deadline, struct reply *rp, int *fd)
{
    *fd = -1;
    struct pollfd pf[2] = {{.fd = client_sock, .events = POLLIN},
                           {.fd = server_pidfd, .events = POLLIN}};
    int r = mproc__sys_poll(pf, 2, deadline);
    if (r < 0)
        return r;
    if (r == 0)
        return -ETIMEDOUT;
    if (pf[0].revents == 0)
        return -EPROTO; /* the server ended with nothing left to say */
    int fds[MPROC__FORKSERVER_FDS];
    size_t len, nfds;
    int rc = recv_fds(client_sock, rp, sizeof *rp, &len, fds, &nfds);
    bool ok = rc == 0 && len == sizeof *rp && rp->magic == FS_MAGIC;
    for (size_t i = ok && rp->kind == MSG_FORKED ? 1 : 0; i < nfds; i++)
        mproc__sys_close(fds[i]); /* only a FORKED reply carries one: its child's pidfd */
    if (!ok)
        return -EPROTO;
    if (rp->kind == MSG_EXITED)
        keep_status(rp->pid, rp->code);
    else if (rp->kind == MSG_FORKED && nfds > 0)
        *fd = fds[0];
    return 0;
}

static int start_server(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    /* Not tied to the thread that starts it (it may be short-lived): the server ends
       when the caller's end of the socket closes. */
    pid_t pid;
    int rc = mproc__sys_spawn_self(MPROC__FORKSERVER_ENV, sv[1], &sv[1], 1, 0, &pid, &server_pidfd);
    mproc__sys_close(sv[1]);
    if (rc < 0) {
        mproc__sys_close(sv[0]);
        server_pidfd = -1;
        return rc;
    }
    client_sock = sv[0];
    server_pid = pid;
    struct reply rp;
    int fd;
    int64_t deadline = mproc__deadline_after(mproc__sys_now_ns(), HELLO_LIMIT_S);
    rc = read_reply(deadline, &rp, &fd);
    mproc__sys_close(fd);
    if (rc < 0 || rp.kind != MSG_HELLO) {
        server_gone(); /* it never reached mproc_init, or ran main() past it */
        return -MPROC_ENOINIT;
    }
    return 0;
}

int mproc__forkserver_start(void)
{
    (void)pthread_once(&client_once, client_setup);
    pthread_mutex_lock(&client_mu);
    int rc = client_sock < 0 ? start_server() : 0;
    pthread_mutex_unlock(&client_mu);
    return rc;
}

int mproc__forkserver_fork(const int *fds, const int *at, size_t n, pid_t *pid, int *pidfd)
{
    if (n == 0 || n > MPROC__FORKSERVER_FDS)
        return -EINVAL;
    (void)pthread_once(&client_once, client_setup);
    struct request rq = {.magic = FS_MAGIC, .n = (uint32_t)n};
    for (size_t i = 0; i < n; i++)
        rq.at[i] = at[i];
    pthread_mutex_lock(&client_mu);
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) { /* a server that died is started again */
        if (client_sock < 0 && (rc = start_server()) < 0)
            break;
        rc = send_fds(client_sock, &rq, sizeof rq, fds, n);
        if (rc < 0) {
            server_gone();
            rc = -EPROTO;
            continue;
        }
        struct reply rp;
        int fd;
        do
            rc = read_reply(MPROC__NO_DEADLINE, &rp, &fd);
        while (rc == 0 && rp.kind == MSG_EXITED);
        if (rc < 0 || rp.kind != MSG_FORKED || (rp.code == 0 && fd < 0)) {
            mproc__sys_close(fd);
            server_gone();
            rc = -EPROTO;
            continue;
        }
        rc = rp.code;
        if (rc == 0) {
            *pid = rp.pid;
            *pidfd = fd;
        }
        break;
    }
    pthread_mutex_unlock(&client_mu);
    return rc;
}

int mproc__forkserver_status(pid_t pid, int64_t deadline, int *code)
{
    pthread_mutex_lock(&client_mu);
    int rc = -EPROTO;
    for (;;) {
        unsigned from = kept_next > KEPT ? kept_next - KEPT : 0;
        for (unsigned i = from; i < kept_next; i++) {
            if (kept[i % KEPT].pid == pid) {
                *code = kept[i % KEPT].code;
                kept[i % KEPT].pid = 0;
                pthread_mutex_unlock(&client_mu);
                return 1;
            }
        }
        if (client_sock < 0)
            break;
        struct reply rp;
        int fd;
        rc = read_reply(deadline, &rp, &fd);
        mproc__sys_close(fd);
        if (rc == -EPROTO)
            server_gone();
        if (rc < 0)
            break;
    }
    pthread_mutex_unlock(&client_mu);
    return rc;
}
