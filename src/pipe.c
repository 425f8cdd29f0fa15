/* src/pipe.c - Pipe and Connection: a connected pair carrying whole byte messages.
 *
  * Wire format: each message is an 8-byte length (uint64, little-endian, so that a TCP
 * connection (src/net/) joins machines of either byte order) followed by that many
 * payload bytes. Nothing else is on the wire.

 *
 * DESIGN: no shared memory and no wake-ups of our own: the kernel's pipe buffer is the
 * queue and its wait queues wake the peer. Duplex is two pipes rather than a socketpair
 * (as Python uses) because a Unix socket round trip costs about 1.6x a pipe's here.
 *
 * The receiving fd stays blocking so that a receive without deadline can be one plain
 * read(), exactly what a raw ping-pong does; with a finite timeout it first tries a read
 * that does not wait (src/sys/pipe.c), then waits in poll() until the deadline and does
 * the same read(), which does not block then (one reader per end, lifetime rule 2 of the
 * header). The sending fd is non-blocking: a send tries its write first (the common case,
 * one syscall whatever the timeout) and polls for room only on EAGAIN.
 *
 * Spinning (who wakes whom): the writer's write wakes a reader asleep in read() or poll();
 * on a 2-CPU virtual machine waking a process asleep on the other CPU costs 40-50 us,
 * ten times the rest of a round trip. So a receive that finds nothing spins first: it
 * repeats the non-waiting read for up to SPIN_NS, and sleeps only if nothing came. A
 * peer that answers within the window (a ping-pong across two CPUs) then never waits
 * for a wake-up. A spin only helps when the peer runs at the same time on another CPU;
 * when they share one, the spinner only delays the peer. So a connection spins only
 * while its spins pay off: after a spin that got nothing it sleeps at once for the next
 * 1, 2, 4, ... SPIN_BACKOFF_MAX receives that have to wait, and before spinning again it
 * checks that its affinity mask allows more than one CPU (a pinned process never spins).
 * An idle receiver thus spins at most SPIN_NS out of every SPIN_BACKOFF_MAX waits: its
 * CPU cost is negligible. Receives with a timeout shorter than SPIN_NS do not spin.
 *
 * Sending: the header and a payload of up to SMALL bytes go out in ONE write from a stack
 * buffer, larger ones in one writev; up to PIPE_BUF bytes are atomic on a pipe. The
 * timeout bounds only the wait for room to start; once the first byte is out the rest is
 * written whatever the deadline, because a stream left with half a message is corrupt for
 * ever (a failure after the start makes the error sticky for later sends). Writes never
 * raise SIGPIPE (src/sys/pipe.c): a reader that is gone is -MPROC_EEOF.
 *
 * Receiving: bytes are read ahead into a 4 KiB buffer in the connection (one read gets the
 * header and a small payload, often several messages); a remainder of at least RBUF bytes
 * is read straight into the destination, so a big message is copied once. A message whose
 * header arrived but whose payload is late is kept in the connection on timeout: the
 * header, and the payload so far in a heap buffer of the message's size (for recv that is
 * the buffer it will return; recv_into copies what it had), so the next receive continues
 * where this one stopped and the stream stays intact. The receiver allocates a message's
 * full size when its header arrives (Linux maps the pages lazily, so a large length costs
 * address space, not memory, until data comes); lengths above PTRDIFF_MAX - 8 cannot come
 * from our writer and are -EPROTO.
 *
  * Sockets (mproc_conn_from_socket: a Listener's or a Client's connection) carry the same
 * stream over one fd for both directions, which stays blocking: the non-waiting reads
 * and writes ask for it per call (MSG_DONTWAIT, and MSG_NOSIGNAL for SIGPIPE). A
 * connection from a stranger can be given a largest message (mproc_conn_set_max), so
 * that a length on the wire cannot make the receiver reserve what it likes.
 *
 * Death of the peer: the kernel closes its fds; reads return 0 once everything it sent
 * was read, and writes fail with EPIPE (a socket may say ECONNRESET on either side):
 * all are -MPROC_EEOF here. A message cut short
 * by the death is discarded (-MPROC_EEOF). No process ever waits for another's action
 * other than through the kernel buffer, so a death can never leave anyone waiting.
 */
#include "internal.h"

#include "sys/cpu.h"
#include "sys/pipe.h"

#include <endian.h>
#include <poll.h>

enum {
    HDR = 8,                 /* bytes of the length header */
    RBUF = 4096,             /* read-ahead buffer in each connection */
    SMALL = 512 - HDR,       /* payloads up to this size are copied next to the header */
    SPIN_NS = 20000,         /* how long a receive that finds nothing spins (see DESIGN) */
    SPIN_BACKOFF_MAX = 1024, /* most waits that sleep at once after a fruitless spin */
};

/* Largest length accepted from the wire: anything above cannot be allocated anyway and
 * can only come from a writer that does not speak this protocol. */
#define MAX_MESSAGE ((uint64_t)PTRDIFF_MAX - HDR)

struct mproc_conn {
    int rfd;       /* receives from here; -1 on a send-only end */
    int wfd;       /* sends here (non-blocking; a socket: rfd itself); -1 on a receive-only end */
    bool sock;     /* rfd == wfd is a stream socket (see DESIGN) */
    uint64_t max;  /* the largest length accepted from the wire */
    bool eof;      /* read side saw end-of-file: nothing more will arrive */
    int werr;      /* sticky send error after a message was left half-written */
    bool have_len; /* the header of the next message has been read */
    uint64_t len;  /* its payload length */
    char *part;    /* its payload so far (len bytes allocated), or NULL */
    size_t part_got;
    size_t rpos, rend;     /* unread bytes of the stream: rbuf[rpos..rend) */
    uint16_t spin_skip;    /* waits left that sleep at once, without spinning */
    uint16_t spin_backoff; /* spin_skip set by the last fruitless spin; 0: the last paid off */
    bool spin_cpus;        /* more than one CPU was seen since the last fruitless spin */
    char rbuf[RBUF];
};

/* ---- creation --------------------------------------------------------------- */

static mproc_conn *conn_alloc(int rfd, int wfd)
{
    mproc_conn *c = mproc__malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    memset(c, 0, offsetof(mproc_conn, rbuf)); /* the buffer needs no clearing */
    c->rfd = rfd;
    c->wfd = wfd;
    c->max = MAX_MESSAGE;
    return c;
}

static void close_pair(int fds[2])
{
    mproc__sys_close(fds[0]);
    mproc__sys_close(fds[1]);
}

/* A close-on-exec pipe whose write end is non-blocking (see DESIGN). */
static int make_pipe(int fds[2])
{
    int rc = mproc__sys_pipe(fds, 0);
    if (rc < 0)
        return rc;
    rc = mproc__sys_set_nonblock(fds[1], true);
    if (rc < 0) {
        close_pair(fds);
        fds[0] = fds[1] = -1;
    }
    return rc;
}

int mproc_pipe_new(mproc_conn **a, mproc_conn **b, unsigned flags)
{
    if (a == NULL || b == NULL || a == b || (flags & ~(unsigned)MPROC_PIPE_SIMPLEX) != 0)
        return -EINVAL;
    bool simplex = (flags & MPROC_PIPE_SIMPLEX) != 0;
    int ab[2] = {-1, -1}, ba[2] = {-1, -1}; /* [0] read end, [1] write end */
    int rc = make_pipe(ba);
    if (rc < 0)
        return rc;
    if (!simplex && (rc = make_pipe(ab)) < 0) {
        close_pair(ba);
        return rc;
    }
    mproc_conn *ca = conn_alloc(ba[0], ab[1]);
    mproc_conn *cb = conn_alloc(ab[0], ba[1]);
    if (ca == NULL || cb == NULL) {
        mproc__free(ca);
        mproc__free(cb);
        close_pair(ba);
        if (!simplex)
            close_pair(ab);
        return -ENOMEM;
    }
    *a = ca;
    *b = cb;
    return 0;
}

int mproc_conn_from_socket(mproc_conn **out, int fd)
{
    if (out == NULL || fd < 0)
        return -EINVAL;
    int rc = mproc__sys_stream_socket(fd); /* datagrams would cut our messages */
    if (rc == 0)
        rc = mproc__sys_set_nonblock(fd, false);
    if (rc < 0)
        return rc;
    mproc_conn *c = conn_alloc(fd, fd);
    if (c == NULL)
        return -ENOMEM;
    (void)mproc__sys_set_cloexec(fd);
    c->sock = true;
    *out = c;
    return 0;
}

int mproc_conn_set_max(mproc_conn *c, size_t max)
{
    if (c == NULL)
        return -EINVAL;
    c->max = max == 0 || (uint64_t)max > MAX_MESSAGE ? MAX_MESSAGE : (uint64_t)max;
    return 0;
}

void mproc_conn_free(mproc_conn *c)
{
    if (c == NULL)
        return;
    mproc__sys_close(c->rfd);
    if (c->wfd != c->rfd)
        mproc__sys_close(c->wfd);
    mproc__free(c->part);
    mproc__free(c);
}

int mproc_conn_fd(const mproc_conn *c)
{
    if (c == NULL)
        return -EINVAL;
    return c->rfd >= 0 ? c->rfd : c->wfd;
}

/* ---- sending ---------------------------------------------------------------- */

/* Write the n iovecs (total bytes) to the non-blocking write end. Until the first byte
 * is out, wait for room until the deadline; after it, for as long as it takes. */
static int write_msg(mproc_conn *c, struct iovec *iov, int n, size_t total, int64_t deadline)
{
    size_t done = 0;
    for (;;) {
        ssize_t put = c->sock ? mproc__sys_send_nosigpipe(c->wfd, iov, n)
                              : mproc__sys_write_nosigpipe(c->wfd, iov, n);
        if (put > 0) {
            done += (size_t)put;
            if (done == total)
                return 0;
            for (size_t skip = (size_t)put; skip > 0;) {
                size_t step = skip < iov->iov_len ? skip : iov->iov_len;
                iov->iov_base = (char *)iov->iov_base + step;
                iov->iov_len -= step;
                skip -= step;
                if (iov->iov_len == 0) {
                    iov++;
                    n--;
                }
            }
            continue;
        }
        if (put == 0 || put == -EAGAIN) {
            /* Full. POLLERR (reader gone) also wakes us: the next write says EPIPE. */
            int ev = mproc__sys_poll1(c->wfd, POLLOUT, done > 0 ? MPROC__NO_DEADLINE : deadline);
            if (ev > 0)
                continue;
            put = ev == 0 ? -ETIMEDOUT : ev;
        }
        int err = put == -EPIPE || put == -ECONNRESET ? -MPROC_EEOF : (int)put;
        if (err == -MPROC_EEOF || done > 0)
            c->werr = err; /* the reader is gone, or half a message is on the stream */
        return err;
    }
}

int mproc_conn_send(mproc_conn *c, const void *buf, size_t len, double timeout)
{
    int64_t deadline;
    if (c == NULL || (buf == NULL && len > 0) || (uint64_t)len > MAX_MESSAGE ||
        mproc__deadline(timeout, &deadline) < 0)
        return -EINVAL;
    if (c->wfd < 0)
        return -EBADF;
    if (c->werr < 0)
        return c->werr;

    uint64_t hdr = htole64((uint64_t)len);
    char small[HDR + SMALL];
    struct iovec iov[2];
    if (len <= SMALL) {
        memcpy(small, &hdr, HDR);
        if (len > 0)
            memcpy(small + HDR, buf, len);
        iov[0] = (struct iovec){.iov_base = small, .iov_len = HDR + len};
        return write_msg(c, iov, 1, HDR + len, deadline);
    }
    iov[0] = (struct iovec){.iov_base = &hdr, .iov_len = HDR};
    iov[1] = (struct iovec){.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
    return write_msg(c, iov, 2, HDR + len, deadline);
}

/* ---- receiving -------------------------------------------------------------- */

/* Whether a receive that has to wait should spin first (see DESIGN). */
static bool want_spin(mproc_conn *c)
{
    if (c->spin_skip > 0) {
        c->spin_skip--;
        return false;
    }
    if (!c->spin_cpus) {
        if (mproc__sys_affinity_count(0) <= 1) { /* one CPU (or unknown): check again later */
            c->spin_skip = c->spin_backoff = SPIN_BACKOFF_MAX;
            return false;
        }
        c->spin_cpus = true;
    }
    return true;
}

/* A read that does not wait: bytes (> 0), 0 at end of file, -EAGAIN or -errno. */
static ssize_t read_nowait(mproc_conn *c, void *dst, size_t n)
{
    return c->sock ? mproc__sys_recv_nowait(c->rfd, dst, n)
                   : mproc__sys_read_nowait(c->rfd, dst, n);
}

/* Repeat a non-waiting read for up to SPIN_NS; -EAGAIN if nothing came. */
static ssize_t spin_read(mproc_conn *c, void *dst, size_t n)
{
    int64_t end = mproc__sys_now_ns() + SPIN_NS;
    ssize_t got;
    do
        got = read_nowait(c, dst, n);
    while (got == -EAGAIN && mproc__sys_now_ns() < end);
    if (got != -EAGAIN) {
        c->spin_backoff = 0;
    } else {
        unsigned next = c->spin_backoff == 0 ? 1u : 2u * c->spin_backoff;
        c->spin_backoff = (uint16_t)(next < SPIN_BACKOFF_MAX ? next : SPIN_BACKOFF_MAX);
        c->spin_skip = c->spin_backoff;
        c->spin_cpus = false;
    }
    return got;
}

/* Read at most n bytes into dst, waiting until the deadline for the first one.
 * Returns bytes read (> 0), 0 at end of file (c->eof set), -ETIMEDOUT or -errno. */
static ssize_t read_some(mproc_conn *c, void *dst, size_t n, int64_t deadline)
{
    ssize_t got;
    if (deadline == MPROC__NO_DEADLINE) {
        if (want_spin(c)) {
            got = read_nowait(c, dst, n);
            if (got == -EAGAIN)
                got = spin_read(c, dst, n);
            if (got == -EAGAIN)
                got = mproc__sys_read(c->rfd, dst, n);
        } else {
            got = mproc__sys_read(c->rfd, dst, n); /* one plain read, as a raw ping-pong */
        }
    } else {
        got = read_nowait(c, dst, n);
        if (got == -EAGAIN && mproc__remaining_ns(deadline) >= SPIN_NS && want_spin(c))
            got = spin_read(c, dst, n);
        if (got == -EAGAIN) {
            int ev = mproc__sys_poll1(c->rfd, POLLIN, deadline);
            if (ev < 0)
                return ev;
            if (ev == 0)
                return -ETIMEDOUT;
            got = mproc__sys_read(c->rfd, dst, n);
        }
    }
    if (got == -ECONNRESET) /* a socket's peer went with bytes unread: gone all the same */
        got = 0;
    if (got == 0)
        c->eof = true;
    return got;
}

/* Make the header of the next message available in c->len.
 * 0, -MPROC_EEOF, -ETIMEDOUT, -EPROTO (a length no writer of ours sends) or -errno. */
static int get_header(mproc_conn *c, int64_t deadline)
{
    while (!c->have_len) {
        size_t avail = c->rend - c->rpos;
        if (avail >= HDR) {
            uint64_t len;
            memcpy(&len, c->rbuf + c->rpos, HDR);
            len = le64toh(len);
            if (len > MAX_MESSAGE)
                return -EPROTO;
            if (len > c->max)
                return -EMSGSIZE; /* the stream cannot be resynchronised: it stays so */
            c->rpos += HDR;
            c->len = len;
            c->have_len = true;
            break;
        }
        if (c->eof)
            return -MPROC_EEOF; /* a header cut short by the writer's death is dropped */
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, avail);
            c->rpos = 0;
            c->rend = avail;
        }
        ssize_t got = read_some(c, c->rbuf + c->rend, RBUF - c->rend, deadline);
        if (got < 0)
            return (int)got;
        c->rend += (size_t)got;
    }
    return 0;
}

/* Fill dst (c->len bytes, *got of them already there) with the rest of the payload. */
static int get_payload(mproc_conn *c, char *dst, size_t *got, int64_t deadline)
{
    size_t len = (size_t)c->len;
    if (len == 0)
        return 0; /* dst may be NULL here (recv_into with cap 0) */
    size_t take = c->rend - c->rpos;
    if (take > len - *got)
        take = len - *got;
    memcpy(dst + *got, c->rbuf + c->rpos, take);
    c->rpos += take;
    *got += take;
    while (*got < len) {
        assert(c->rpos == c->rend); /* the read-ahead buffer was emptied above */
        if (c->eof)
            return -MPROC_EEOF;
        size_t need = len - *got;
        ssize_t r;
        if (need >= RBUF) {
            r = read_some(c, dst + *got, need, deadline);
            if (r > 0)
                *got += (size_t)r;
        } else {
            c->rpos = c->rend = 0;
            r = read_some(c, c->rbuf, RBUF, deadline);
            if (r > 0) {
                c->rend = (size_t)r;
                take = (size_t)r < need ? (size_t)r : need;
                memcpy(dst + *got, c->rbuf, take);
                c->rpos = take;
                *got += take;
            }
        }
        if (r < 0)
            return (int)r;
    }
    return 0;
}

/* The current message is consumed (or lost): forget it. */
static void next_message(mproc_conn *c)
{
    c->have_len = false;
    c->len = 0;
    c->part = NULL;
    c->part_got = 0;
}

static int check_recv(mproc_conn *c, double timeout, int64_t *deadline)
{
    if (c == NULL || mproc__deadline(timeout, deadline) < 0)
        return -EINVAL;
    if (c->rfd < 0)
        return -EBADF;
    return 0;
}

int mproc_conn_recv(mproc_conn *c, void **buf, size_t *len, double timeout)
{
    int64_t deadline;
    if (buf == NULL || len == NULL)
        return -EINVAL;
    int rc = check_recv(c, timeout, &deadline);
    if (rc < 0)
        return rc;
    rc = get_header(c, deadline);
    if (rc < 0)
        return rc;
    char *dst = c->part;
    size_t got = c->part_got;
    if (dst == NULL) {
        dst = mproc__malloc(c->len > 0 ? (size_t)c->len : 1);
        if (dst == NULL)
            return -ENOMEM; /* the header stays: the message is still next */
    }
    rc = get_payload(c, dst, &got, deadline);
    if (rc == -MPROC_EEOF) {
        mproc__free(dst);
        next_message(c);
        return rc;
    }
    if (rc < 0) {
        c->part = dst; /* keep what arrived; the next receive continues */
        c->part_got = got;
        return rc;
    }
    *buf = dst;
    *len = (size_t)c->len;
    next_message(c);
    return 0;
}

int mproc_conn_recv_into(mproc_conn *c, void *buf, size_t cap, size_t *len, double timeout)
{
    int64_t deadline;
    if ((buf == NULL && cap > 0) || len == NULL)
        return -EINVAL;
    int rc = check_recv(c, timeout, &deadline);
    if (rc < 0)
        return rc;
    rc = get_header(c, deadline);
    if (rc < 0)
        return rc;
    if (c->len > cap) {
        *len = (size_t)c->len;
        return -MPROC_ETOOSMALL;
    }
    if (c->part != NULL) {
        /* An earlier receive timed out in this message: continue in its buffer. */
        size_t got = c->part_got;
        rc = get_payload(c, c->part, &got, deadline);
        c->part_got = got;
        if (rc == 0 && c->len > 0)
            memcpy(buf, c->part, (size_t)c->len);
        if (rc == 0 || rc == -MPROC_EEOF) {
            mproc__free(c->part);
            if (rc == 0)
                *len = (size_t)c->len;
            next_message(c);
        }
        return rc;
    }
    size_t got = 0;
    rc = get_payload(c, buf, &got, deadline);
    if (rc == -MPROC_EEOF)
        next_message(c);
    if (rc == 0) {
        *len = (size_t)c->len;
        next_message(c);
    }
    if (rc >= 0 || rc == -MPROC_EEOF || got == 0)
        return rc;
    /* Timed out (or failed) with part of the payload in the caller's buffer, which the
     * next call may not pass again: keep a copy in the connection. Without memory for
     * it, wait for the rest instead (the writer, once started, always finishes or dies),
     * so the stream is never corrupted. */
    char *keep = mproc__malloc((size_t)c->len);
    if (keep == NULL) {
        rc = get_payload(c, buf, &got, MPROC__NO_DEADLINE);
        if (rc == 0)
            *len = (size_t)c->len;
        if (rc == 0 || rc == -MPROC_EEOF)
            next_message(c);
        return rc;
    }
    memcpy(keep, buf, got);
    c->part = keep;
    c->part_got = got;
    return rc;
}

int mproc_conn_poll(mproc_conn *c, double timeout)
{
    int64_t deadline;
    int rc = check_recv(c, timeout, &deadline);
    if (rc < 0)
        return rc;
    if (c->have_len || c->eof || c->rend - c->rpos >= HDR)
        return 1;
    int ev = mproc__sys_poll1(c->rfd, POLLIN, deadline);
    if (ev < 0)
        return ev;
    return ev != 0;
}
