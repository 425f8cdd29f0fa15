/* cli/jobserver.c - job slots from GNU make's jobserver, inside `make -jN`.
 *
 * DESIGN: make hands its children a pool of tokens, one byte each, in a pipe
 * (MAKEFLAGS "--jobserver-auth=R,W": inherited descriptors) or a named fifo
 * ("--jobserver-auth=fifo:PATH", GNU make 4.4). A child owns one implicit slot (the
 * one make started it with); to run a second job at once it reads a token, and it
 * writes that very byte back when the job is done. So mproc runs its first job on the
 * implicit slot and takes one token for each further job running; the scheduler
 * returns surplus tokens at once (cli_run's loop) and every token at exit, errors and
 * signals included (a SIGKILLed mproc loses them, as any make child would).
 *
 * Nobody may block on the shared pipe: another child may take the token between our
 * poll and our read. So we read from a descriptor of our own in non-blocking mode: for
 * the fifo, our own open(); for the pipe, a fresh open of /proc/self/fd/R, which on
 * Linux is a new open file description of the same pipe (setting O_NONBLOCK on the
 * inherited one would change make's too). The scheduler polls that descriptor while it
 * wants a token; EAGAIN just means someone else was faster.
 *
 * When MAKEFLAGS names a jobserver whose descriptors are not open pipes here (a recipe
 * without "+" or $(MAKE) in make 4.3), we do what make's own sub-makes do: warn and run
 * one job at a time, never more than make granted.
 */
#include <mproc.h>

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A descriptor make could have passed: open, and a pipe (or fifo). Anything else (a
 * file, a terminal, a socket that happens to have that number) is not a jobserver:
 * reading "tokens" from it would eat its bytes, writing them back would corrupt it. */
static int fd_valid(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static int open_cloexec(const char *path, int flags)
{
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

/* The value of the last --jobserver-auth= (or make 4.1's --jobserver-fds=) in
 * MAKEFLAGS, copied into buf; 0 when there is none. */
static int auth_value(const char *mf, char *buf, size_t n)
{
    const char *best = NULL;
    static const char *keys[] = {"--jobserver-auth=", "--jobserver-fds="};
    for (size_t k = 0; k < 2; k++) {
        for (const char *p = mf; (p = strstr(p, keys[k])) != NULL; p++) {
            if (p == mf || p[-1] == ' ')
                if (!best || p > best)
                    best = p + strlen(keys[k]);
        }
    }
    if (!best)
        return 0;
    size_t l = strcspn(best, " ");
    if (l == 0 || l >= n)
        return 0;
    memcpy(buf, best, l);
    buf[l] = '\0';
    return 1;
}

int cli_jobserver_open(cli_jobserver *js, const char *makeflags)
{
    memset(js, 0, sizeof *js);
    js->rfd = js->wfd = -1;
    char v[4096];
    if (!makeflags || !auth_value(makeflags, v, sizeof v))
        return 0;
    if (strncmp(v, "fifo:", 5) == 0) {
        struct stat st;
        int fd = -1;
        if (stat(v + 5, &st) == 0 && !S_ISFIFO(st.st_mode))
            errno = EINVAL; /* a file, a directory...: never open it for writing */
        else
            fd = open_cloexec(v + 5, O_RDWR | O_NONBLOCK);
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))) { /* swapped since */
            close(fd);
            fd = -1;
            errno = EINVAL;
        }
        if (fd < 0) {
            cli_error("warning: jobserver fifo '%s' unusable (%s): running one job at a time",
                      v + 5, errno == EINVAL ? "not a fifo" : strerror(errno));
            js->serial = 1;
            return 0;
        }
        js->rfd = js->wfd = fd;
        js->own_w = 1;
    } else {
        char *end;
        long r = strtol(v, &end, 10);
        long w = *end == ',' ? strtol(end + 1, &end, 10) : -1;
        if (*end || r < 0 || w < 0 || r > 1 << 20 || w > 1 << 20 || !fd_valid((int)r) ||
            !fd_valid((int)w)) {
            cli_error("warning: jobserver unavailable (its descriptors are not open pipes; add "
                      "'+' to the make rule): running one job at a time");
            js->serial = 1;
            return 0;
        }
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", (int)r);
        int fd = open_cloexec(path, O_RDONLY | O_NONBLOCK);
        if (fd < 0) {
            cli_error("warning: cannot reopen the jobserver pipe (%s): running one job at a time",
                      strerror(errno));
            js->serial = 1;
            return 0;
        }
        js->rfd = fd;
        js->wfd = (int)w;
    }
    js->active = 1;
    return 0;
}

int cli_jobserver_take(cli_jobserver *js)
{
    if (!js->active)
        return 0;
    if (js->ntok == js->cap) {
        size_t nc = js->cap ? js->cap * 2 : 16;
        char *nb = realloc(js->tok, nc);
        if (!nb)
            return 0;
        js->tok = nb;
        js->cap = nc;
    }
    for (;;) {
        char c;
        ssize_t n = read(js->rfd, &c, 1);
        if (n == 1) {
            js->tok[js->ntok++] = c;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return 0; /* EAGAIN: none free now; EOF or error: make is gone, stay at what we have */
    }
}

void cli_jobserver_give(cli_jobserver *js)
{
    if (!js->active || js->ntok == 0)
        return;
    char c = js->tok[--js->ntok];
    for (;;) {
        ssize_t n = write(js->wfd, &c, 1);
        if (n == 1 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return;
        if (n < 0 && errno == EAGAIN) {
            /* Our own non-blocking fifo descriptor and a full pipe: wait for room. */
            struct pollfd p = {.fd = js->wfd, .events = POLLOUT};
            poll(&p, 1, 100);
        }
    }
}

int cli_jobserver_fd(const cli_jobserver *js)
{
    return js->active ? js->rfd : -1;
}

void cli_jobserver_close(cli_jobserver *js)
{
    while (js->ntok > 0)
        cli_jobserver_give(js);
    if (js->rfd >= 0)
        close(js->rfd);
    free(js->tok);
    memset(js, 0, sizeof *js);
    js->rfd = js->wfd = -1;
}
