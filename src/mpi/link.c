/* src/mpi/link.c - libmproc-mpi: the pool's link (src/pool/link.h) over MPI.
 *
 * DESIGN. Linking libmproc-mpi registers this link from a constructor; mproc_init then
 * joins the job when the process was started by mpirun (Open MPI's environment says so):
 * MPI_Init_thread with MPI_THREAD_MULTIPLE (the pool's supervisor sends while its relay
 * thread receives), rank 0 the master, every other rank a host (host h is rank h + 1).
 * A process outside a job never initialises MPI.
 *
 * Messages are MPI point-to-point messages of bytes on MPI_COMM_WORLD, the link's tag
 * as the MPI tag; a chunk of a map is one message, so large inputs travel by MPI's own
 * transfers (shared memory between ranks of a node, TCP between nodes).
 *
 * Lost hosts. Open MPI 4 has no fault tolerance: a rank that dies leaves the others'
 * MPI calls to it hanging or failing at random, and mpirun then kills the whole job
 * unless it runs with --enable-recovery. So the link does not learn of a death through
 * MPI: at the join, each host opens a TCP connection to the master (its address and a
 * random token sent by MPI), which the kernel closes when the host's process dies, and
 * which keepalive probes break within about 10 s when its machine is gone; `watch` gives
 * that socket. Sends never wait on a peer whose socket says it is gone (MPI_Isend, then
 * MPI_Test while watching it). With ULFM (Open MPI 5's fault-tolerant MPI), a send to a
 * dead rank would fail with MPI_ERR_PROC_FAILED, MPI_Comm_shrink would give the pool a
 * communicator of the survivors, and a lost rank could be replaced (MPI_Comm_spawn)
 * instead of breaking the pool; mproc/mpi.h says so.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <mpi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mproc/error.h"
#include "pool/link.h"

#define MAX_ADDRS 16
#define CONNECT_MS 5000
#define ACCEPT_NS INT64_C(60000000000)
#define TAG_HELLO 3

static MPI_Comm comm = MPI_COMM_NULL;
static int role = LINK_NONE;
static int nhosts;
static int base = 1;          /* master: host h is rank h + base of comm (1 in the world; 0 in
                                 the intercommunicator with spawned hosts) */
static bool ours;             /* MPI_Init was ours (so is MPI_Finalize) */
static int *watch_fds;        /* master: one per host; host: [0], the master */
static _Atomic int64_t *last; /* per peer: the last message to or from it (contact) */
static struct who {           /* master: each host, for messages */
    int pid;
    char node[48];
} * who;

struct hello { /* master to each host, by MPI */
    uint64_t token;
    uint16_t port;
    uint16_t naddrs;
    uint32_t addrs[MAX_ADDRS]; /* IPv4, network order */
};

struct knock { /* host to master, on the TCP connection */
    uint64_t token;
    int32_t host;
    int32_t pid;
    char node[48];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int rank_of(int h)
{
    return role == LINK_MASTER ? h + base : 0;
}

static void keepalive(int fd)
{
    int on = 1, idle = 5, intvl = 1, cnt = 5;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static bool full_io(int fd, void *buf, size_t len, bool out)
{
    unsigned char *b = buf;
    while (len > 0) {
        ssize_t k = out ? send(fd, b, len, MSG_NOSIGNAL) : recv(fd, b, len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        b += k;
        len -= (size_t)k;
    }
    return true;
}

/* Master: listen, tell every host where, take one connection from each. */
static int watch_master(void)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t sl = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 128) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
        goto fail;
    struct hello hi = {.port = ntohs(sa.sin_port)};
    if (getrandom(&hi.token, sizeof hi.token, 0) != (ssize_t)sizeof hi.token)
        goto fail;
    struct ifaddrs *ifs = NULL, *i;
    if (getifaddrs(&ifs) == 0) {
        for (i = ifs; i != NULL && hi.naddrs < MAX_ADDRS; i = i->ifa_next)
            if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET)
                hi.addrs[hi.naddrs++] = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
        freeifaddrs(ifs);
    }
    if (hi.naddrs == 0)
        hi.addrs[hi.naddrs++] = htonl(INADDR_LOOPBACK);
    for (int h = 0; h < nhosts; h++)
        if (MPI_Send(&hi, sizeof hi, MPI_BYTE, rank_of(h), TAG_HELLO, comm) != MPI_SUCCESS)
            goto fail;
    int64_t deadline = now_ns() + ACCEPT_NS;
    for (int got = 0; got < nhosts;) {
        struct pollfd p = {.fd = ls, .events = POLLIN};
        int64_t left = (deadline - now_ns()) / 1000000;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            goto fail;
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct knock k;
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, CONNECT_MS) <= 0 || !full_io(fd, &k, sizeof k, false) ||
            k.token != hi.token || k.host < 0 || k.host >= nhosts || watch_fds[k.host] >= 0) {
            close(fd); /* not one of ours */
            continue;
        }
        keepalive(fd);
        watch_fds[k.host] = fd;
        who[k.host].pid = k.pid;
        memcpy(who[k.host].node, k.node, sizeof who[k.host].node);
        who[k.host].node[sizeof who[k.host].node - 1] = '\0';
        got++;
    }
    close(ls);
    return 0;
fail:
    if (ls >= 0)
        close(ls);
    return -EHOSTUNREACH;
}

/* Host: connect to the master by one of its addresses. */
static int watch_host(int host)
{
    struct hello hi;
    if (MPI_Recv(&hi, sizeof hi, MPI_BYTE, 0, TAG_HELLO, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
        hi.naddrs > MAX_ADDRS)
        return -EPROTO;
    struct knock k = {.token = hi.token, .host = host, .pid = (int32_t)getpid()};
    (void)gethostname(k.node, sizeof k.node - 1);
    for (int a = 0; a < hi.naddrs; a++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_in sa = {
            .sin_family = AF_INET, .sin_port = htons(hi.port), .sin_addr.s_addr = hi.addrs[a]};
        if (fd < 0)
            continue;
        int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof err;
        if ((rc == 0 || (errno == EINPROGRESS && poll(&p, 1, CONNECT_MS) == 1)) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
            (void)fcntl(fd, F_SETFL, 0); /* blocking again for the knock */
            if (full_io(fd, &k, sizeof k, true)) {
                keepalive(fd);
                watch_fds[0] = fd;
                return 0;
            }
        }
        close(fd);
    }
    return -EHOSTUNREACH;
}

/* There are n hosts (master) or one master (host): room to note them. */
static int hosts_known(int n)
{
    nhosts = n;
    watch_fds = calloc((size_t)n + 1, sizeof *watch_fds);
    who = calloc((size_t)n + 1, sizeof *who);
    last = calloc((size_t)n + 1, sizeof *last);
    if (watch_fds == NULL || who == NULL || last == NULL)
        return -ENOMEM;
    for (int h = 0; h <= n; h++)
        watch_fds[h] = -1;
    return 0;
}

static bool in_job(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL ||
           getenv("PMI_RANK") != NULL;
}

static int mpi_join(int *argc, char ***argv)
{
    if (!in_job())
        return LINK_NONE;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
            return -MPROC_ENOTSUP;
        ours = true;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_MULTIPLE)
        return -MPROC_ENOTSUP; /* the supervisor and the relay call MPI at once */
    MPI_Comm parent;
    MPI_Comm_get_parent(&parent);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (parent != MPI_COMM_NULL) { /* spawned by a master (MPI_Comm_spawn): a host */
        comm = parent;
        role = LINK_HOST;
    } else {
        comm = MPI_COMM_WORLD;
        role = rank == 0 ? LINK_MASTER : LINK_HOST;
    }
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int rc = hosts_known(role == LINK_MASTER ? size - 1 : 1);
    if (rc == 0)
        rc = role == LINK_MASTER ? watch_master()
                                 : watch_host(parent != MPI_COMM_NULL ? rank : rank - 1);
    return rc < 0 ? rc : role;
}

/* Master without hosts (a program started on its own, or by mpirun -np 1): start n of
 * them, this program again, by MPI_Comm_spawn (MPI is initialised here if it was not).
 * Open MPI refuses to start more processes than the machine has CPUs unless told to
 * oversubscribe, which a pool does by design (more workers than CPUs is a choice). Their
 * ranks are 0..n-1 of their own world; host h is rank h. */
static int spawn_hosts(int n, char *msg, size_t len)
{
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        (void)setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
        /* and a worker that dies must not take this process with it (the pool reports
           it: the same promise as under mpirun --enable-recovery) */
        (void)setenv("OMPI_MCA_orte_enable_recovery", "1", 0);
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
            goto refused;
        ours = true;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_MULTIPLE)
        goto refused;
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return -errno;
    exe[k] = '\0';
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    MPI_Comm ic;
    if (MPI_Comm_spawn(exe, MPI_ARGV_NULL, n, MPI_INFO_NULL, 0, MPI_COMM_SELF, &ic,
                       MPI_ERRCODES_IGNORE) != MPI_SUCCESS) {
        if (msg != NULL)
            snprintf(msg, len,
                     "MPROC_START_MPI: MPI_Comm_spawn could not start %d workers (under "
                     "mpirun, give it --oversubscribe or more slots)",
                     n);
        return -MPROC_EEXEC;
    }
    comm = ic;
    base = 0;
    role = LINK_MASTER;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int rc = hosts_known(n);
    if (rc == 0)
        rc = watch_master();
    return rc < 0 ? rc : n;
refused:
    if (msg != NULL)
        snprintf(msg, len,
                 "MPROC_START_MPI: MPI could not be initialised with MPI_THREAD_MULTIPLE");
    return -MPROC_ENOTSUP;
}

static int mpi_hosts(int want, char *msg, size_t n)
{
    if (want == -1)
        return role == LINK_MASTER ? nhosts : 0;
    if (role == LINK_HOST)
        return -EINVAL;
    if (nhosts == 0) { /* on its own: start the workers (as mpi4py.futures does) */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        return spawn_hosts(want > 0 ? want : cpus > 0 ? (int)cpus : 1, msg, n);
    }
    if (want > nhosts) {
        if (msg != NULL)
            snprintf(msg, n,
                     "MPROC_START_MPI: %d workers asked for; the MPI job has %d ranks "
                     "besides this one",
                     want, nhosts);
        return -EINVAL;
    }
    return want == 0 ? nhosts : want;
}

/* Sends in flight: a copy of each message until MPI is done with it. No send waits for
 * its receiver: the master's supervisor sending a chunk to a host that is itself sending
 * results to the master's relay, which waits for the supervisor to make room for them,
 * would be a cycle. */
struct out {
    struct out *next;
    MPI_Request req;
    unsigned char data[];
};
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static struct out *outs;

/* Free the copies of the sends that completed. true: none is left. */
static bool progress(void)
{
    pthread_mutex_lock(&out_mu);
    for (struct out **pp = &outs; *pp != NULL;) {
        int done = 0;
        if (MPI_Test(&(*pp)->req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
            struct out *o = *pp;
            *pp = o->next;
            free(o);
        } else {
            pp = &(*pp)->next;
        }
    }
    bool none = outs == NULL;
    pthread_mutex_unlock(&out_mu);
    return none;
}

/* A receiver sleeps in poll() on its watch socket once nothing came for a while (the
 * relays: src/pool/host.c, src/pool/remote.c, 100 us): a message sent more than
 * WAKE_AFTER_NS after the last one to the same peer is followed by a byte there, which
 * wakes it. Only sends count: what came from the peer says nothing of the peer's thread
 * that receives (the master's relay, not its supervisor). Shorter than the receivers'
 * spin with room for the message's way across. */
#define WAKE_AFTER_NS INT64_C(40000)

static void wake(int h)
{
    int i = role == LINK_MASTER ? h : 0;
    int64_t now = now_ns();
    if (now - atomic_exchange(&last[i], now) > WAKE_AFTER_NS && watch_fds[i] >= 0)
        (void)send(watch_fds[i], "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int mpi_send(int h, int tag, const void *buf, size_t len)
{
    if (len > INT32_MAX)
        return -EMSGSIZE;
    (void)progress();
    struct out *o = malloc(sizeof *o + len);
    if (o == NULL)
        return -ENOMEM;
    memcpy(o->data, buf, len);
    int done = 0;
    if (MPI_Isend(o->data, (int)len, MPI_BYTE, rank_of(h), tag, comm, &o->req) != MPI_SUCCESS) {
        free(o);
        return -EPIPE;
    }
    for (int k = 0; k < 32 && !done; k++) /* a small one goes at once (eagerly) */
        if (MPI_Test(&o->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            break;
    if (done) {
        free(o);
    } else {
        pthread_mutex_lock(&out_mu);
        o->next = outs;
        outs = o;
        pthread_mutex_unlock(&out_mu);
    }
    wake(h);

    return 0;
}

static bool mpi_sending(void)
{
    return !progress();
}

static int mpi_drain(int h)
{
    int fd = watch_fds != NULL ? watch_fds[role == LINK_MASTER ? h : 0] : -1;
    char b[64];
    for (;;) {
        ssize_t k = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (k > 0)
            continue;
        if (k < 0 && errno == EINTR)
            continue;
        return k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -EPIPE;
    }
}

static int mpi_probe(int *h, int *tag, size_t *len)
{
    (void)progress();
    int flag = 0, count = 0;
    MPI_Status st;
    if (MPI_Iprobe(role == LINK_MASTER ? MPI_ANY_SOURCE : 0, MPI_ANY_TAG, comm, &flag, &st) !=
        MPI_SUCCESS)
        return -EIO;
    if (!flag)
        return 0;
    if (MPI_Get_count(&st, MPI_BYTE, &count) != MPI_SUCCESS || count < 0)
        return -EIO;
    *h = role == LINK_MASTER ? st.MPI_SOURCE - base : 0;
    *tag = st.MPI_TAG;
    *len = (size_t)count;
    return 1;
}

static int mpi_recv(int h, int tag, void *buf, size_t len)
{
    if (MPI_Recv(buf, (int)len, MPI_BYTE, rank_of(h), tag, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return -EIO;
    return 0;
}

static int mpi_watch(int h)
{
    return watch_fds != NULL ? watch_fds[role == LINK_MASTER ? h : 0] : -1;
}

static void mpi_name_host(int h, char *buf, size_t n)
{
    if (role == LINK_MASTER && h >= 0 && h < nhosts)
        snprintf(buf, n, "%s %d (pid %d on %s)", base == 0 ? "spawned rank" : "rank", h + base,
                 who[h].pid, who[h].node);
    else
        snprintf(buf, n, "rank %d", rank_of(h));
}

static void mpi_leave(int status, bool damaged)
{
    if (!ours && role != LINK_HOST) /* the program's own MPI: it finalises it */
        return;
    if (damaged) /* MPI cannot end a job cleanly once a rank is lost: it ends it */
        MPI_Abort(MPI_COMM_WORLD, status != 0 ? status : 1);
    else {
        for (int64_t end = now_ns() + INT64_C(10000000000); !progress() && now_ns() < end;)
            sched_yield();       /* what was sent is received (the peers take all until L_EXIT) */
        (void)MPI_Barrier(comm); /* no process finalises while another may still send */
        MPI_Finalize();          /* the sockets close with the process, after every rank is done */
    }
}

static const struct mproc__link_ops mpi_link = {.name = "MPI",
                                                .join = mpi_join,
                                                .hosts = mpi_hosts,
                                                .send = mpi_send,
                                                .probe = mpi_probe,
                                                .recv = mpi_recv,
                                                .watch = mpi_watch,
                                                .drain = mpi_drain,
                                                .sending = mpi_sending,
                                                .name_host = mpi_name_host,
                                                .leave = mpi_leave};

__attribute__((constructor)) static void register_link(void)
{
    mproc__link_register(&mpi_link);
}
