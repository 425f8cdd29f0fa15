/* bench/net.c - Listener and Client: a round trip, and a connection with its handshake.
 *
 * One repetition of each figure, mproc first, then its C anchor:
 *   net.rtt      us per round trip of an 8-byte message over a connection from
 *                mproc_client_new to an mproc_listener at an abstract Unix address, with
 *                a key (the handshake outside the timed region); a forked child echoes
 *                | raw: a connected Unix stream socketpair, write/read 8 bytes
 *   net.connect  us per connection: mproc_client_new with a key (connect, both
 *                challenges) and the listener's accept, until the first message is back
 *                | raw: connect + accept + one 8-byte round trip, no key
 * The Python anchor (multiprocessing.connection Listener/Client with an authkey, the
 * same patterns) is bench/py_net.py. Every answer is checked.
 * Usage: net   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 */
#include "bench.h"

#ifdef BENCH_NO_NET
int main(void)
{
    fprintf(stderr, "net: built without libcrypto (no libmproc-net)\n");
    return 77;
}
#else

#include <sys/socket.h>
#include <sys/un.h>

#include "mproc/error.h"
#include "mproc/listener.h"

static const char KEY[] = "bench key";

static mproc_net_opts keyed(void)
{
    return (mproc_net_opts){.authkey = KEY, .authkey_len = sizeof KEY - 1};
}

/* ---- mproc ----------------------------------------------------------------------------- */

static void echo(mproc_conn *c)
{
    for (;;) {
        uint64_t v;
        size_t len;
        int rc = mproc_conn_recv_into(c, &v, sizeof v, &len, MPROC_FOREVER);
        if (rc == -MPROC_EEOF)
            break;
        if (rc < 0 || len != sizeof v)
            _exit(1);
        v++;
        if (mproc_conn_send(c, &v, sizeof v, MPROC_FOREVER) < 0)
            _exit(1);
    }
    mproc_conn_free(c);
}

static void ask(mproc_conn *c, uint64_t i)
{
    BENCH_OK(mproc_conn_send(c, &i, sizeof i, MPROC_FOREVER));
    uint64_t v = 0;
    size_t len = 0;
    BENCH_OK(mproc_conn_recv_into(c, &v, sizeof v, &len, MPROC_FOREVER));
    if (len != sizeof v || v != i + 1)
        bench_die("net: answer %llu to %llu", (unsigned long long)v, (unsigned long long)i);
}

/* The child connects `conns` times (echoing on each until the parent hangs up). */
static double run_mproc(uint64_t n, uint64_t conns, double *connect_us)
{
    mproc_net_opts o = keyed();
    mproc_listener *l;
    BENCH_OK(mproc_listener_new(&l, "unix:", &o));
    char address[200];
    snprintf(address, sizeof address, "%s", mproc_listener_address(l));
    pid_t pid = bench_fork();
    if (pid == 0) {
        for (uint64_t k = 0; k < conns + 1; k++) {
            mproc_conn *c;
            if (mproc_client_new(&c, address, &o, 10) < 0)
                _exit(1);
            echo(c);
        }
        _exit(0);
    }
    mproc_conn *c;
    BENCH_OK(mproc_listener_accept(l, &c, 10));
    ask(c, 0); /* warm-up */
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++)
        ask(c, i);
    double rtt = (bench_now() - t0) / (double)n * 1e6;
    mproc_conn_free(c);
    t0 = bench_now();
    for (uint64_t k = 0; k < conns; k++) {
        BENCH_OK(mproc_listener_accept(l, &c, 10));
        ask(c, k);
        mproc_conn_free(c);
    }
    *connect_us = (bench_now() - t0) / (double)conns * 1e6;
    bench_reap(pid, "net client");
    mproc_listener_free(l);
    return rtt;
}

/* ---- raw: plain Unix stream sockets -------------------------------------------------------- */

static void raw_ask(int fd, uint64_t i)
{
    uint64_t v;
    if (write(fd, &i, sizeof i) != (ssize_t)sizeof i ||
        read(fd, &v, sizeof v) != (ssize_t)sizeof v || v != i + 1)
        bench_die("raw: answer to %llu", (unsigned long long)i);
}

static void raw_echo(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
        v++;
        if (write(fd, &v, sizeof v) != (ssize_t)sizeof v)
            _exit(1);
    }
    close(fd);
}

static double run_raw(uint64_t n, uint64_t conns, double *connect_us)
{
    int sv[2];
    BENCH_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    BENCH_SYS(bind(lfd, (struct sockaddr *)&sa, sizeof(sa_family_t))); /* autobind */
    BENCH_SYS(listen(lfd, 128));
    socklen_t slen = sizeof sa;
    BENCH_SYS(getsockname(lfd, (struct sockaddr *)&sa, &slen));
    pid_t pid = bench_fork();
    if (pid == 0) {
        close(sv[0]);
        raw_echo(sv[1]);
        for (uint64_t k = 0; k < conns; k++) {
            int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, (struct sockaddr *)&sa, slen) < 0)
                _exit(1);
            raw_echo(fd);
        }
        _exit(0);
    }
    close(sv[1]);
    raw_ask(sv[0], 0);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++)
        raw_ask(sv[0], i);
    double rtt = (bench_now() - t0) / (double)n * 1e6;
    close(sv[0]);
    t0 = bench_now();
    for (uint64_t k = 0; k < conns; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            bench_die("raw: accept");
        raw_ask(fd, k);
        close(fd);
    }
    *connect_us = (bench_now() - t0) / (double)conns * 1e6;
    bench_reap(pid, "raw client");
    close(lfd);
    return rtt;
}

int main(void)
{
    uint64_t n = bench_scaled(20000, 100), conns = bench_scaled(2000, 20);
    double mc, rc;
    double m = run_mproc(n, conns, &mc), r = run_raw(n, conns, &rc);
    bench_emit("net.rtt", "mproc", m, "us");
    bench_emit("net.rtt", "raw", r, "us");
    bench_emit("net.connect", "mproc", mc, "us");
    bench_emit("net.connect", "raw", rc, "us");
    return 0;
}
#endif
