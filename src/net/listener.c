/* src/net/listener.c - Listener and Client: addresses, sockets, accept and connect.
 *
 * DESIGN. An address is a string (mproc/listener.h) parsed into one or more socket
 * addresses: a Unix path, an abstract name, or what getaddrinfo gives for a TCP host and
 * port (the listener binds the first that works; the client connects to the first that
 * answers). Once a stream socket is connected on both sides it becomes an mproc_conn
 * (mproc_conn_from_socket) and the handshake of src/net/auth.c runs on it; only a
 * connection that passed is handed to the caller.
 *
 * The listening socket is non-blocking: accept() comes after poll() said a peer waits,
 * and another process sharing the socket may have taken it in between. A peer that
 * fails the handshake is dropped and counted, and accept waits on for the next one, so
 * that one stranger cannot end a server's loop; each handshake has its own deadline,
 * so that one stranger cannot hold it for long either.
 *
 * The client connects without blocking, so that the timeout bounds the connect too (a
 * Unix socket whose backlog is full answers EAGAIN at once: it is tried again until the
 * deadline, as a blocking connect would wait).
 *
 * The socket file of a Unix listener is removed when the listener is freed, only if the
 * path still names the socket this listener made (its device and inode): a newer
 * listener at the same path keeps its file.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
    DEFAULT_BACKLOG = 128,
    MAX_KEY = 1024,
    ADDR_MAX = 160, /* the longest address string: "unix:" and 107 bytes, or TCP's */
};
#define DEFAULT_HANDSHAKE 10.0

struct mproc_listener {
    int fd;
    char address[ADDR_MAX]; /* as bound, for the clients */
    char *path;             /* the socket file made, or NULL */
    dev_t dev;              /* what path named when made */
    ino_t ino;
    struct mproc__net_key key;
    double handshake_timeout;
    size_t max_message;
    unsigned long refused;
};

/* ---- options and addresses ------------------------------------------------------------ */

struct opts {
    struct mproc__net_key key;
    int backlog;
    double handshake_timeout;
    size_t max_message;
};

static int read_opts(const mproc_net_opts *in, struct opts *o)
{
    mproc_net_opts z = in != NULL ? *in : (mproc_net_opts){0};
    o->key = (struct mproc__net_key){0};
    if ((z.authkey != NULL) != (z.authkey_len > 0) || z.authkey_len > MAX_KEY || z.backlog < 0 ||
        !(z.handshake_timeout >= 0)) /* NaN too */
        return -EINVAL;
    o->backlog = z.backlog > 0 ? z.backlog : DEFAULT_BACKLOG;
    o->handshake_timeout = z.handshake_timeout > 0 ? z.handshake_timeout : DEFAULT_HANDSHAKE;
    o->max_message = z.max_message;

    if (z.authkey_len > 0) {
        o->key.bytes = malloc(z.authkey_len);
        if (o->key.bytes == NULL)
            return -ENOMEM;
        memcpy(o->key.bytes, z.authkey, z.authkey_len);
        o->key.len = z.authkey_len;
    }
    return 0;
}

static void forget_key(struct mproc__net_key *key)
{
    if (key->bytes != NULL)
        explicit_bzero(key->bytes, key->len);
    free(key->bytes);
    *key = (struct mproc__net_key){0};
}

/* A Unix address: "" (the kernel picks an abstract name), "@name" or a path. */
static int unix_addr(const char *spec, struct sockaddr_un *sa, socklen_t *len)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(spec);
    if (n == 0) {
        *len = sizeof(sa_family_t); /* autobind */
        return 0;
    }
    if (n >= sizeof sa->sun_path)
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, spec, n);
    if (spec[0] == '@')
        sa->sun_path[0] = '\0'; /* the abstract namespace: no file, gone with the socket */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (spec[0] == '@' ? 0 : 1));
    return 0;
}

static int resolve_error(int rc)
{
    switch (rc) {
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return -errno;
    case EAI_SERVICE:
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
        return -EINVAL;
    default:
        return -EHOSTUNREACH; /* no such host, or the name service is down */
    }
}

/* "HOST:PORT" or "[V6]:PORT" into getaddrinfo's list (freed by freeaddrinfo). */
static int tcp_addrs(const char *spec, bool passive, struct addrinfo **res)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535)
        return -EINVAL;
    char host[256];
    size_t hlen = (size_t)(colon - spec);
    const char *h = spec;
    if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof host || (memchr(h, ':', hlen) != NULL && spec[0] != '['))
        return -EINVAL; /* an IPv6 address goes in brackets */
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    int rc = getaddrinfo(hlen > 0 ? host : NULL, colon + 1, &hints, res);
    return rc == 0 ? 0 : resolve_error(rc);
}

/* What an address string names: a Unix spec (after "unix:"), or a TCP one. */
static int classify(const char *address, const char **unix_spec, const char **tcp_spec)
{
    *unix_spec = *tcp_spec = NULL;
    if (address == NULL)
        return -EINVAL;
    if (strncmp(address, "unix:", 5) == 0)
        *unix_spec = address + 5;
    else if (strncmp(address, "tcp:", 4) == 0)
        *tcp_spec = address + 4;
    else if (strchr(address, '/') != NULL)
        *unix_spec = address;
    else if (strchr(address, ':') != NULL)
        *tcp_spec = address;
    else
        return -EINVAL;
    return 0;
}

/* The address a bound socket has, as a string for the clients. */
static void describe(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    out[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *sa = (const struct sockaddr_un *)&ss;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        if (n > 0 && sa->sun_path[0] == '\0') /* abstract: the name is n - 1 bytes */
            snprintf(out, cap, "unix:@%.*s", (int)(n - 1), sa->sun_path + 1);
        else
            snprintf(out, cap, "unix:%.*s", (int)strnlen(sa->sun_path, n), sa->sun_path);
        return;
    }
    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sa = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sa->sin_addr, host, sizeof host);
        snprintf(out, cap, "tcp:%s:%u", host, ntohs(sa->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof host);
        snprintf(out, cap, "tcp:[%s]:%u", host, ntohs(sa->sin6_port));
    }
}

static void no_delay(int fd, int family)
{
    int one = 1; /* a message is written whole: waiting to merge it only adds latency */
    if (family == AF_INET || family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- the listener ----------------------------------------------------------------------- */

static int64_t deadline_after(double timeout)
{
    if (timeout > 9e9) /* MPROC_FOREVER, or near enough */
        return INT64_MAX;
    return mproc__net_now_ns() + (int64_t)(timeout * 1e9);
}

static int bind_listen(int family, const struct sockaddr *sa, socklen_t len, int backlog)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (family != AF_UNIX) /* a restarted server can take its port back at once */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int listen_at(mproc_listener *l, const char *address, int backlog)
{
    const char *unix_spec, *tcp_spec;
    int rc = classify(address, &unix_spec, &tcp_spec);
    if (rc < 0)
        return rc;
    if (unix_spec != NULL) {
        struct sockaddr_un sa;
        socklen_t len;
        if ((rc = unix_addr(unix_spec, &sa, &len)) < 0)
            return rc;
        if ((l->fd = bind_listen(AF_UNIX, (struct sockaddr *)&sa, len, backlog)) < 0)
            return l->fd;
        struct stat st;
        if (len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0] != '\0') {
            if (stat(sa.sun_path, &st) == 0 && (l->path = strdup(sa.sun_path)) != NULL) {
                l->dev = st.st_dev;
                l->ino = st.st_ino;
            } else {
                int err = l->path == NULL ? -ENOMEM : -errno;
                (void)unlink(sa.sun_path);
                return err;
            }
        }
        return 0;
    }
    struct addrinfo *res;
    if ((rc = tcp_addrs(tcp_spec, true, &res)) < 0)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai != NULL && rc < 0; ai = ai->ai_next) {
        rc = bind_listen(ai->ai_family, ai->ai_addr, ai->ai_addrlen, backlog);
        if (rc >= 0)
            l->fd = rc;
    }
    freeaddrinfo(res);
    return rc < 0 ? rc : 0;
}

int mproc_listener_new(mproc_listener **out, const char *address, const mproc_net_opts *opts)
{
    if (out == NULL || address == NULL)
        return -EINVAL;
    mproc_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    l->fd = -1;
    struct opts o;
    int rc = read_opts(opts, &o);
    if (rc == 0)
        rc = listen_at(l, address, o.backlog);
    if (rc < 0) {
        forget_key(&o.key);
        mproc_listener_free(l);
        return rc;
    }
    l->key = o.key;
    l->handshake_timeout = o.handshake_timeout;
    l->max_message = o.max_message;
    describe(l->fd, l->address, sizeof l->address);
    *out = l;
    return 0;
}

const char *mproc_listener_address(const mproc_listener *l)
{
    return l != NULL ? l->address : "";
}

int mproc_listener_fd(const mproc_listener *l)
{
    return l != NULL ? l->fd : -EINVAL;
}

unsigned long mproc_listener_refused(const mproc_listener *l)
{
    return l != NULL ? l->refused : 0;
}

/* Wait for the socket until the deadline: > 0 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        double left = mproc__net_left(deadline);
        int ms = deadline == INT64_MAX ? -1 : (int)(left * 1000 + 0.999);
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, ms);
        if (rc > 0)
            return rc;
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc == 0 && mproc__net_left(deadline) == 0)
            return 0;
    }
}

int mproc_listener_accept(mproc_listener *l, mproc_conn **out, double timeout)
{
    if (l == NULL || out == NULL || !(timeout >= 0))
        return -EINVAL;
    int64_t deadline = deadline_after(timeout);
    for (;;) {
        int rc = wait_fd(l->fd, POLLIN, deadline);
        if (rc == 0)
            return -ETIMEDOUT;
        if (rc < 0)
            return rc;
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue; /* taken by another process, or gone before we came */
            return -errno;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            no_delay(fd, ss.ss_family);
        mproc_conn *c;
        if ((rc = mproc_conn_from_socket(&c, fd)) < 0) {
            close(fd);
            return rc;
        }
        rc = mproc__net_serve(c, &l->key, deadline_after(l->handshake_timeout));
        if (rc == 0) {
            (void)mproc_conn_set_max(c, l->max_message);
            *out = c;
            return 0;
        }
        mproc_conn_free(c);
        l->refused++;
        if (rc == -ENOMEM)
            return rc;
    }
}

void mproc_listener_free(mproc_listener *l)
{
    if (l == NULL)
        return;
    if (l->path != NULL) {
        struct stat st;
        if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
            (void)unlink(l->path);
        free(l->path);
    }
    if (l->fd >= 0)
        close(l->fd);
    forget_key(&l->key);
    free(l);
}

/* ---- the client ------------------------------------------------------------------------- */

/* Connect without blocking past the deadline: the connected fd, or -errno. */
static int connect_to(int family, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    for (;;) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -errno;
        int rc = connect(fd, sa, len) == 0 ? 0 : -errno;
        if (rc == -EINPROGRESS) {
            rc = wait_fd(fd, POLLOUT, deadline);
            int err = 0;
            socklen_t elen = sizeof err;
            if (rc > 0)
                rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 ? -errno : -err;
            else if (rc == 0)
                rc = -ETIMEDOUT;
        }
        if (rc == 0) {
            no_delay(fd, family);
            return fd;
        }
        close(fd);
        if (rc != -EAGAIN) /* EAGAIN: a Unix listener's backlog is full; try again */
            return rc;
        if (mproc__net_left(deadline) == 0)
            return -ETIMEDOUT;
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
}

static int connect_address(const char *address, int64_t deadline)
{
    const char *unix_spec, *tcp_spec;
    int rc = classify(address, &unix_spec, &tcp_spec);
    if (rc < 0)
        return rc;
    if (unix_spec != NULL) {
        struct sockaddr_un sa;
        socklen_t len;
        if ((rc = unix_addr(unix_spec, &sa, &len)) < 0)
            return rc;
        if (unix_spec[0] == '\0')
            return -EINVAL; /* "the kernel picks" names no listener */
        return connect_to(AF_UNIX, (struct sockaddr *)&sa, len, deadline);
    }
    struct addrinfo *res;
    if ((rc = tcp_addrs(tcp_spec, false, &res)) < 0)
        return rc;
    rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai != NULL && rc < 0 && rc != -ETIMEDOUT; ai = ai->ai_next)
        rc = connect_to(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
    freeaddrinfo(res);
    return rc;
}

int mproc_client_new(mproc_conn **out, const char *address, const mproc_net_opts *opts,
                     double timeout)
{
    if (out == NULL || address == NULL || !(timeout >= 0))
        return -EINVAL;
    struct opts o;
    int rc = read_opts(opts, &o);
    if (rc < 0)
        return rc;
    int64_t deadline = deadline_after(timeout);
    int fd = connect_address(address, deadline);
    if (fd < 0) {
        forget_key(&o.key);
        return fd;
    }
    mproc_conn *c;
    if ((rc = mproc_conn_from_socket(&c, fd)) < 0) {
        close(fd);
        forget_key(&o.key);
        return rc;
    }
    int64_t hs = deadline_after(o.handshake_timeout);
    rc = mproc__net_answer(c, &o.key, hs < deadline ? hs : deadline);
    forget_key(&o.key);
    if (rc < 0) {
        mproc_conn_free(c);
        return rc;
    }
    (void)mproc_conn_set_max(c, o.max_message);
    *out = c;
    return 0;
}
