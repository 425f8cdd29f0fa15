/* bench/pipe.c - round trip of an 8-byte message between two processes.
 *
 * One repetition of each figure (microseconds per round trip), mproc first, then raw:
 *   pipe.rtt          mproc_pipe_new() with default flags (duplex, as Python's Pipe())
 *                     | raw: two pipes, write 8 bytes / read 8 bytes, in C
 *                     | raw_socketpair: the same over one Unix socketpair (informative:
 *                       what Python's duplex Pipe() is made of)
 *   pipe.rtt.simplex  two MPROC_PIPE_SIMPLEX pipes (one per direction) | raw, measured again
 *
 * The parent sends i, a forked child answers i + 1, the parent checks every answer.
 * Usage: pipe [--rep]   (BENCH_SCALE=0.1 in the environment shrinks the counts)
 */
#include "bench.h"

#include <sys/socket.h>

#include "mproc/error.h"
#include "mproc/pipe.h"

static uint64_t scaled(uint64_t n)
{
    return bench_scaled(n, 16);
}

/* ---- mproc: tx/rx are the parent's ends; ctx/crx the child's ------------------------ */

static void echo(mproc_conn *rx, mproc_conn *tx, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        size_t len = 0;
        int rc = mproc_conn_recv_into(rx, &v, sizeof v, &len, MPROC_FOREVER);
        if (rc < 0 || len != sizeof v) {
            fprintf(stderr, "pipe echo: recv %d (%s), len %zu\n", rc, mproc_strerror(rc), len);
            _exit(1);
        }
        v++;
        rc = mproc_conn_send(tx, &v, sizeof v, MPROC_FOREVER);
        if (rc < 0) {
            fprintf(stderr, "pipe echo: send %d (%s)\n", rc, mproc_strerror(rc));
            _exit(1);
        }
    }
    _exit(0);
}

static double ping(mproc_conn *tx, mproc_conn *rx, uint64_t n)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        BENCH_OK(mproc_conn_send(tx, &i, sizeof i, MPROC_FOREVER));
        uint64_t v = 0;
        size_t len = 0;
        BENCH_OK(mproc_conn_recv_into(rx, &v, sizeof v, &len, MPROC_FOREVER));
        if (len != sizeof v || v != i + 1)
            bench_die("pipe: answer %llu to %llu", (unsigned long long)v, (unsigned long long)i);
    }
    return (bench_now() - t0) / (double)n * 1e6;
}

static double run_mproc_duplex(uint64_t n)
{
    mproc_conn *a, *b;
    BENCH_OK(mproc_pipe_new(&a, &b, 0));
    pid_t pid = bench_fork();
    if (pid == 0) {
        mproc_conn_free(a);
        echo(b, b, n);
    }
    mproc_conn_free(b);
    double us = ping(a, a, n);
    bench_reap(pid, "pipe echo");
    mproc_conn_free(a);
    return us;
}

static double run_mproc_simplex(uint64_t n)
{
    mproc_conn *down_rx, *down_tx, *up_rx, *up_tx; /* down: parent to child */
    BENCH_OK(mproc_pipe_new(&down_rx, &down_tx, MPROC_PIPE_SIMPLEX));
    BENCH_OK(mproc_pipe_new(&up_rx, &up_tx, MPROC_PIPE_SIMPLEX));
    pid_t pid = bench_fork();
    if (pid == 0) {
        mproc_conn_free(down_tx);
        mproc_conn_free(up_rx);
        echo(down_rx, up_tx, n);
    }
    mproc_conn_free(down_rx);
    mproc_conn_free(up_tx);
    double us = ping(down_tx, up_rx, n);
    bench_reap(pid, "pipe echo");
    mproc_conn_free(down_tx);
    mproc_conn_free(up_rx);
    return us;
}

/* ---- raw anchor: two pipes, 8-byte write/read --------------------------------------- */

static void xfer(int fd, void *buf, int out)
{
    ssize_t r;
    do
        r = out ? write(fd, buf, 8) : read(fd, buf, 8);
    while (r < 0 && errno == EINTR);
    if (r != 8)
        bench_die("raw pipe %s: %zd (%s)", out ? "write" : "read", r, strerror(errno));
}

/* socketpair_: one Unix socketpair used both ways instead of two pipes. */
static double run_raw(uint64_t n, int socketpair_)
{
    int down[2], up[2];
    if (socketpair_) {
        int sv[2];
        BENCH_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        /* parent writes and reads sv[0], child sv[1]; dup so the code below is shared */
        down[1] = sv[0];
        up[0] = dup(sv[0]);
        down[0] = sv[1];
        up[1] = dup(sv[1]);
        BENCH_SYS(up[0]);
        BENCH_SYS(up[1]);
    } else {
        BENCH_SYS(pipe2(down, O_CLOEXEC));
        BENCH_SYS(pipe2(up, O_CLOEXEC));
    }
    pid_t pid = bench_fork();
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v;
            xfer(down[0], &v, 0);
            v++;
            xfer(up[1], &v, 1);
        }
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = i;
        xfer(down[1], &v, 1);
        xfer(up[0], &v, 0);
        if (v != i + 1)
            bench_die("raw pipe: answer %llu to %llu", (unsigned long long)v,
                      (unsigned long long)i);
    }
    double us = (bench_now() - t0) / (double)n * 1e6;
    bench_reap(pid, "raw pipe echo");
    close(down[1]);
    close(up[0]);
    return us;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint64_t n = scaled(20000);
    bench_emit("pipe.rtt", "mproc", run_mproc_duplex(n), "us");
    bench_emit("pipe.rtt", "raw", run_raw(n, 0), "us");
    bench_emit("pipe.rtt", "raw_socketpair", run_raw(n, 1), "us");
    bench_emit("pipe.rtt.simplex", "mproc", run_mproc_simplex(n), "us");
    bench_emit("pipe.rtt.simplex", "raw", run_raw(n, 0), "us");
    return 0;
}
