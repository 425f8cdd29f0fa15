/* tests/fuzz/fuzz_net.c - fuzz the handshake of Listener/Client and the message framing.
 *
 * The first byte picks a side; the rest is what the other side says on the wire, all of
 * it written at once before the side under test reads, then end of file:
 *   0  the listener's handshake (with a key) hears a stranger: it must refuse it
 *      (a stranger cannot sign a fresh random challenge), without waiting past the
 *      end of file or reading more than a handshake message at a time
 *   1  the client's handshake (with a key) hears a fake listener: refused, or a clean error
 *   2  the client's handshake without a key
 *   3  the framing: messages received with a largest size of 64 KiB until an error
 * Any result is fine except a crash, a hang, a sanitizer report or a broken check.
 * Replayed on every `make check` from corpus_net/ (see README.md here).
 */
#include "net/net.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_net: check failed: %s\n", #c);                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_INPUT = 64 * 1024 }; /* fits a socket's buffer: written before reading */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_INPUT)
        return 0;
    int mode = data[0] % 4;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    int buf = 4 * MAX_INPUT;
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    size_t off = 1;
    while (off < size) {
        ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            break; /* the buffer is full: the rest is not said */
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);
    mproc_conn *c;
    if (mproc_conn_from_socket(&c, sv[0]) < 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    static unsigned char key_bytes[] = "fuzz key";
    struct mproc__net_key key = {key_bytes, sizeof key_bytes - 1}, none = {NULL, 0};
    int64_t deadline = mproc__net_now_ns() + 2000000000; /* far more than end of file needs */
    int rc;
    switch (mode) {
    case 0:
        rc = mproc__net_serve(c, &key, deadline);
        CHECK(rc < 0); /* nobody can answer a fresh challenge without the key */
        CHECK(rc != -ETIMEDOUT);
        break;
    case 1:
        rc = mproc__net_answer(c, &key, deadline);
        CHECK(rc < 0); /* the fake listener cannot answer our challenge either */
        CHECK(rc != -ETIMEDOUT);
        break;
    case 2:
        rc = mproc__net_answer(c, &none, deadline);
        CHECK(rc <= 0 && rc != -ETIMEDOUT);
        break;
    default:
        CHECK(mproc_conn_set_max(c, 64 * 1024) == 0);
        for (int i = 0; i < 1000; i++) {
            void *msg;
            size_t len;
            char small[16];
            rc = (i & 1) != 0 ? mproc_conn_recv_into(c, small, sizeof small, &len, 2)
                              : mproc_conn_recv(c, &msg, &len, 2);
            if (rc == 0 && (i & 1) == 0) {
                CHECK(len <= 64 * 1024);
                free(msg);
            }
            if (rc == -MPROC_ETOOSMALL)
                continue; /* kept: the next (whole) receive takes it */
            if (rc < 0) {
                CHECK(rc != -ETIMEDOUT); /* end of file came: nothing to wait for */
                break;
            }
        }
        break;
    }
    mproc_conn_free(c);
    close(sv[1]);
    return 0;
}
