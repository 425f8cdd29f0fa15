/* tests/test_listener.c - Listener and Client: addresses, keys, strangers, timeouts.
 *
 * The listener runs in the test process, its clients in forked children (or the other
 * way round), as unrelated processes would. Strangers are raw sockets that speak
 * garbage, lie about lengths, or go silent: the listener must refuse them, count them
 * and go on serving the next client.
 */
#include "harness.h"

#include <mproc/listener.h>

#include <errno.h>
#include <endian.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char KEY[] = "a shared secret";
static const char OTHER_KEY[] = "another secret";

static mproc_net_opts keyed(const char *key)
{
    return (mproc_net_opts){.authkey = key, .authkey_len = strlen(key)};
}

/* ---- a client in a child: connects, echoes every message back, until EOF ----------- */

struct client_arg {
    const char *address;
    const char *key; /* NULL: none */
    int want;        /* the code mproc_client_new must give */
};

static int echo_client(void *p)
{
    struct client_arg *a = p;
    mproc_net_opts o = a->key != NULL ? keyed(a->key) : (mproc_net_opts){0};
    mproc_conn *c;
    int rc = mproc_client_new(&c, a->address, &o, 10);
    if (rc != a->want)
        return 10;
    if (rc < 0)
        return 0;
    for (;;) {
        void *buf;
        size_t len;
        rc = mproc_conn_recv(c, &buf, &len, 10);
        if (rc == -MPROC_EEOF)
            break;
        if (rc < 0)
            return 11;
        rc = mproc_conn_send(c, buf, len, 10);
        free(buf);
        if (rc < 0)
            return 12;
    }
    mproc_conn_free(c);
    return 0;
}

/* Send 0-byte, small and large messages on c and check each comes back whole. */
static void echo_round(mproc_conn *c)
{
    size_t sizes[] = {0, 1, 4088, 4089, 65536, (size_t)8 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *msg = malloc(sizes[i] + 1);
        assert_non_null(msg);
        for (size_t j = 0; j < sizes[i]; j++)
            msg[j] = (char)(j * 7 + i);
        assert_ok(mproc_conn_send(c, msg, sizes[i], 10));
        void *back;
        size_t len;
        assert_ok(mproc_conn_recv(c, &back, &len, 10));
        assert_int_equal(len, sizes[i]);
        assert_memory_equal(back, msg, sizes[i]);
        free(back);
        free(msg);
    }
}

/* A listener at address; a child client with client_key; the round trip. */
static void serve_one(const char *address, const char *key, const char *client_key)
{
    mproc_net_opts o = key != NULL ? keyed(key) : (mproc_net_opts){0};
    mproc_listener *l;
    assert_ok(mproc_listener_new(&l, address, &o));
    struct client_arg a = {mproc_listener_address(l), client_key, 0};
    pid_t pid = mproc_test_fork(echo_client, &a);
    mproc_conn *c;
    assert_ok(mproc_listener_accept(l, &c, 10));
    echo_round(c);
    mproc_conn_free(c);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    assert_int_equal(mproc_listener_refused(l), 0);
    mproc_listener_free(l);
}

static void test_unix_path(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/mproc-test-%d.sock", (int)getpid());
    serve_one(path, KEY, KEY);
    struct stat st;
    assert_int_equal(stat(path, &st), -1); /* the socket file went with the listener */

    char addr[80];
    snprintf(addr, sizeof addr, "unix:%s", path);
    serve_one(addr, NULL, NULL);
}

static void test_abstract_and_tcp(void **state)
{
    (void)state;
    serve_one("unix:", KEY, KEY); /* the kernel picks the name */
    serve_one("unix:@mproc-test-abstract", NULL, NULL);
    serve_one("tcp:127.0.0.1:0", KEY, KEY);
    serve_one("127.0.0.1:0", NULL, NULL);

    mproc_listener *l;
    assert_ok(mproc_listener_new(&l, "tcp:127.0.0.1:0", NULL));
    const char *addr = mproc_listener_address(l);
    assert_true(strncmp(addr, "tcp:127.0.0.1:", 14) == 0);
    assert_true(atoi(addr + 14) > 0); /* the port the kernel picked */
    mproc_listener *again;
    assert_code(mproc_listener_new(&again, addr, NULL), -EADDRINUSE);
    assert_true(mproc_listener_fd(l) >= 0);
    mproc_listener_free(l);
}

/* ---- keys ------------------------------------------------------------------------------- */

/* Accept with short waits until the listener has refused `want` peers in all (each wait
 * must give nothing), within 10 s: however slowly the peer's process starts. */
static void accept_until_refused(mproc_listener *l, unsigned long want)
{
    double t0 = mproc_test_now();
    while (mproc_listener_refused(l) < want && mproc_test_now() - t0 < 10) {
        mproc_conn *c;
        assert_code(mproc_listener_accept(l, &c, 0.1), -ETIMEDOUT);
    }
    assert_int_equal(mproc_listener_refused(l), want);
}

static void test_keys_refused(void **state)
{
    (void)state;
    mproc_net_opts o = keyed(KEY);
    o.handshake_timeout = 5;
    mproc_listener *l;
    assert_ok(mproc_listener_new(&l, "unix:", &o));
    const char *addr = mproc_listener_address(l);
    mproc_conn *c;

    /* another key, then no key: refused on both sides; the listener waits on */
    struct client_arg wrong = {addr, OTHER_KEY, -MPROC_EAUTH};
    pid_t pid = mproc_test_fork(echo_client, &wrong);
    accept_until_refused(l, 1);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);

    struct client_arg none = {addr, NULL, -MPROC_EAUTH};
    pid = mproc_test_fork(echo_client, &none);
    accept_until_refused(l, 2);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);

    /* the right key after them is served */
    struct client_arg right = {addr, KEY, 0};
    pid = mproc_test_fork(echo_client, &right);
    assert_ok(mproc_listener_accept(l, &c, 10));
    echo_round(c);
    mproc_conn_free(c);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    mproc_listener_free(l);

    /* a listener without a key proves nothing: a client with a key refuses it */
    assert_ok(mproc_listener_new(&l, "unix:", NULL));
    struct client_arg keyed_client = {mproc_listener_address(l), KEY, -MPROC_EAUTH};
    pid = mproc_test_fork(echo_client, &keyed_client);
    assert_ok(mproc_listener_accept(l, &c, 10)); /* it was let in, then hung up */
    void *buf;
    size_t len;
    assert_code(mproc_conn_recv(c, &buf, &len, 10), -MPROC_EEOF);
    mproc_conn_free(c);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    mproc_listener_free(l);
}

/* ---- strangers: raw sockets --------------------------------------------------------------- */

/* A raw connection to an abstract or path address "unix:..." (no handshake). */
static int raw_connect(const char *address)
{
    const char *spec = address + 5;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(spec);
    memcpy(sa.sun_path, spec, n);
    if (spec[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct stranger {
    int fd; /* connected by the parent, before it accepts */
    int kind;
};

enum { GARBAGE, HUGE_LENGTH, SILENT, HALF_HEADER, LONG_ANSWER, FLOOD };

static int stranger(void *p)
{
    struct stranger *s = p;
    int fd = s->fd;
    char buf[4096];
    uint64_t hdr;
    switch (s->kind) {
    case GARBAGE:
        memset(buf, 'x', sizeof buf);
        if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) != (ssize_t)sizeof buf)
            return 2;
        break;
    case HUGE_LENGTH: /* a length that would reserve 2^60 bytes */
        hdr = htole64((uint64_t)1 << 60);
        if (send(fd, &hdr, sizeof hdr, MSG_NOSIGNAL) != (ssize_t)sizeof hdr)
            return 2;
        break;
    case HALF_HEADER:
        if (send(fd, "abc", 3, MSG_NOSIGNAL) != 3)
            return 2;
        break;
    case LONG_ANSWER: /* a well-framed answer far longer than any digest */
        hdr = htole64(1000);
        memset(buf, 0, sizeof buf);
        memcpy(buf, &hdr, sizeof hdr);
        if (send(fd, buf, 8 + 1000, MSG_NOSIGNAL) != 8 + 1000)
            return 2;
        break;
    case FLOOD: /* megabytes, as fast as the listener takes them */
        memset(buf, 0xff, sizeof buf);
        for (int i = 0; i < 256; i++)
            if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) < 0)
                break; /* the listener hung up: as it should */
        break;
    case SILENT:
        break;
    }
    /* hold the connection until the listener drops it */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    for (int i = 0; i < 100; i++) {
        if (poll(&pf, 1, 100) > 0 && read(fd, buf, sizeof buf) <= 0)
            break;
    }
    close(fd);
    return 0;
}

static void test_strangers(void **state)
{
    (void)state;
    for (int with_key = 0; with_key < 2; with_key++) {
        mproc_net_opts o = with_key ? keyed(KEY) : (mproc_net_opts){0};
        o.handshake_timeout = 0.3;
        mproc_listener *l;
        assert_ok(mproc_listener_new(&l, "unix:", &o));
        const char *addr = mproc_listener_address(l);
        int kinds[] = {GARBAGE, HUGE_LENGTH, SILENT, HALF_HEADER, LONG_ANSWER, FLOOD};
        unsigned long refused = 0;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            struct stranger s = {raw_connect(addr), kinds[k]};
            assert_true(s.fd >= 0);
            pid_t pid = mproc_test_fork(stranger, &s);
            close(s.fd);
            mproc_conn *c;
            int rc = mproc_listener_accept(l, &c, 0.5);
            if (with_key) {
                /* refused within the handshake's bound, and counted */
                assert_code(rc, -ETIMEDOUT);
                assert_int_equal(mproc_listener_refused(l), ++refused);
            } else {
                /* no key: it is let in; what it sends is refused by the framing */
                assert_ok(rc);
                assert_ok(mproc_conn_set_max(c, 1 << 20));
                void *buf;
                size_t len;
                rc = mproc_conn_recv(c, &buf, &len, 0.3);
                if (!(rc == -EMSGSIZE || rc == -EPROTO || rc == -ETIMEDOUT || rc == -MPROC_EEOF ||
                      rc == 0))
                    fail_msg("kind %d: %s", kinds[k], mproc_errname(rc));
                assert_true(rc == -EMSGSIZE || rc == -EPROTO || rc == -ETIMEDOUT ||
                            rc == -MPROC_EEOF || (rc == 0 && len == 1000));
                if (rc == 0)
                    free(buf);
                mproc_conn_free(c);
            }
            assert_int_equal(mproc_test_exitcode(pid, 20), 0);
        }
        /* and a real client after all of them */
        struct client_arg a = {addr, with_key ? KEY : NULL, 0};
        pid_t pid = mproc_test_fork(echo_client, &a);
        mproc_conn *c;
        assert_ok(mproc_listener_accept(l, &c, 10));
        echo_round(c);
        mproc_conn_free(c);
        assert_int_equal(mproc_test_exitcode(pid, 10), 0);
        mproc_listener_free(l);
    }
}

/* A listener that answers nothing (an ordinary socket nobody accepts on): the client's
 * timeout holds. And a client of something that is not an mproc listener: -EPROTO. */
static void test_client_timeouts(void **state)
{
    (void)state;
    mproc_listener *l;
    assert_ok(mproc_listener_new(&l, "unix:", NULL));
    /* connect succeeds (the kernel queues it); the greeting never comes: nobody accepts */
    mproc_conn *c;
    double t0 = mproc_test_now();
    assert_code(mproc_client_new(&c, mproc_listener_address(l), NULL, 0.2), -ETIMEDOUT);
    assert_true(mproc_test_now() - t0 < 5);
    mproc_listener_free(l);

    /* nobody there at all */
    assert_code(mproc_client_new(&c, "unix:@mproc-test-nobody-here", NULL, 1), -ECONNREFUSED);
    assert_code(mproc_client_new(&c, "/nonexistent-dir/x.sock", NULL, 1), -ENOENT);
}

static int not_mproc(void *arg)
{
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return 1;
    uint64_t hdr = htole64(5);
    if (write(fd, &hdr, 8) != 8 || write(fd, "hello", 5) != 5)
        return 2;
    char b[64];
    while (read(fd, b, sizeof b) > 0) {
    }
    close(fd);
    return 0;
}

static void test_not_a_listener(void **state)
{
    (void)state;
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_ok(bind(lfd, (struct sockaddr *)&sa, sizeof(sa_family_t)));
    assert_ok(listen(lfd, 4));
    struct sockaddr_un got;
    socklen_t glen = sizeof got;
    assert_ok(getsockname(lfd, (struct sockaddr *)&got, &glen));
    char addr[64];
    snprintf(addr, sizeof addr, "unix:@%.*s",
             (int)(glen - offsetof(struct sockaddr_un, sun_path) - 1), got.sun_path + 1);
    pid_t pid = mproc_test_fork(not_mproc, &lfd);
    mproc_conn *c;
    assert_code(mproc_client_new(&c, addr, NULL, 5), -EPROTO);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    close(lfd);
}

/* ---- max_message, bad arguments, the socket file ------------------------------------------ */

static int send_big(void *p)
{
    struct client_arg *a = p;
    mproc_conn *c;
    if (mproc_client_new(&c, a->address, NULL, 10) != 0)
        return 1;
    static char big[2048];
    if (mproc_conn_send(c, "ok", 2, 10) != 0 || mproc_conn_send(c, big, sizeof big, 10) != 0)
        return 2;
    mproc_conn_free(c);
    return 0;
}

static void test_max_message(void **state)
{
    (void)state;
    mproc_listener *l;
    assert_ok(mproc_listener_new(&l, "unix:", &(mproc_net_opts){.max_message = 1024}));
    struct client_arg a = {mproc_listener_address(l), NULL, 0};
    pid_t pid = mproc_test_fork(send_big, &a);
    mproc_conn *c;
    assert_ok(mproc_listener_accept(l, &c, 10));
    char buf[16];
    size_t len;
    assert_ok(mproc_conn_recv_into(c, buf, sizeof buf, &len, 10));
    assert_int_equal(len, 2);
    void *big;
    assert_code(mproc_conn_recv(c, &big, &len, 10), -EMSGSIZE);
    assert_code(mproc_conn_recv(c, &big, &len, 10), -EMSGSIZE); /* it stays so */
    mproc_conn_free(c);
    assert_int_equal(mproc_test_exitcode(pid, 10), 0);
    mproc_listener_free(l);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    mproc_listener *l;
    mproc_conn *c;
    const char *bad[] = {"",
                         "nonsense",
                         "tcp:127.0.0.1",
                         "tcp:127.0.0.1:",
                         "tcp:127.0.0.1:99999",
                         "tcp:127.0.0.1:12a",
                         "tcp:::1:80",
                         "tcp:[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_code(mproc_listener_new(&l, bad[i], NULL), -EINVAL);
        assert_code(mproc_client_new(&c, bad[i], NULL, 1), -EINVAL);
    }
    assert_code(mproc_listener_new(NULL, "unix:", NULL), -EINVAL);
    assert_code(mproc_listener_new(&l, NULL, NULL), -EINVAL);
    assert_code(mproc_client_new(&c, "unix:", NULL, 1), -EINVAL);
    assert_code(mproc_client_new(&c, "unix:@x", NULL, -1), -EINVAL);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_code(mproc_listener_new(&l, longpath, NULL), -ENAMETOOLONG);
    assert_code(mproc_client_new(&c, longpath, NULL, 1), -ENAMETOOLONG);
    mproc_net_opts o = {.authkey = "k", .authkey_len = 0};
    assert_code(mproc_listener_new(&l, "unix:", &o), -EINVAL);
    o = (mproc_net_opts){.authkey = NULL, .authkey_len = 3};
    assert_code(mproc_listener_new(&l, "unix:", &o), -EINVAL);
    static char hugekey[2000];
    o = (mproc_net_opts){.authkey = hugekey, .authkey_len = sizeof hugekey};
    assert_code(mproc_client_new(&c, "unix:@x", &o, 1), -EINVAL);
    o = (mproc_net_opts){.handshake_timeout = -1};
    assert_code(mproc_listener_new(&l, "unix:", &o), -EINVAL);
    o = (mproc_net_opts){.backlog = -1};
    assert_code(mproc_listener_new(&l, "unix:", &o), -EINVAL);
    assert_ok(mproc_listener_new(&l, "unix:", NULL));
    assert_code(mproc_listener_accept(l, NULL, 1), -EINVAL);
    assert_code(mproc_listener_accept(l, &c, -1), -EINVAL);
    assert_code(mproc_listener_accept(l, &c, 0), -ETIMEDOUT);
    mproc_listener_free(l);
    mproc_listener_free(NULL);
    assert_int_equal(mproc_listener_refused(NULL), 0);
    assert_code(mproc_listener_fd(NULL), -EINVAL);

    /* a socket that is not a stream cannot carry our messages */
    int fds[2];
    assert_ok(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds));
    assert_code(mproc_conn_from_socket(&c, fds[0]), -EPROTOTYPE);
    close(fds[0]);
    close(fds[1]);
    int p[2];
    assert_ok(pipe(p));
    assert_code(mproc_conn_from_socket(&c, p[0]), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    assert_code(mproc_conn_from_socket(&c, -1), -EINVAL);
}

static void test_socket_file(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/mproc-test-file-%d.sock", (int)getpid());
    mproc_listener *l, *l2;
    assert_ok(mproc_listener_new(&l, path, NULL));
    assert_code(mproc_listener_new(&l2, path, NULL), -EADDRINUSE); /* never removes it */
    /* someone removed the file and a newer listener took the path: ours must not remove
     * the newer one's file */
    assert_ok(unlink(path));
    assert_ok(mproc_listener_new(&l2, path, NULL));
    mproc_listener_free(l);
    struct stat st;
    assert_ok(stat(path, &st));
    mproc_listener_free(l2);
    assert_int_equal(stat(path, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        MPROC_TEST(test_unix_path),       MPROC_TEST(test_abstract_and_tcp),
        MPROC_TEST(test_keys_refused),    MPROC_TEST(test_strangers),
        MPROC_TEST(test_client_timeouts), MPROC_TEST(test_not_a_listener),
        MPROC_TEST(test_max_message),     MPROC_TEST(test_bad_arguments),
        MPROC_TEST(test_socket_file),
    };
    return mproc_test_run(tests);
}
