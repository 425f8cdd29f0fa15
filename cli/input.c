/* cli/input.c - the stream of argument tuples of `mproc run`.
 *
 * DESIGN: one tuple per job, produced on demand by the scheduler when a slot is
 * free, never all at once. With several sources the tuples are their cartesian
 * product in GNU parallel's order: the first source varies slowest, the last
 * fastest. So the first source is read lazily, one record at a time (standard input
 * or a file of millions of lines costs the memory of one line), while the other
 * sources are read whole at open, since every value of the first one revisits them.
 * Records end with the delimiter ('\n', or '\0' with -0), which is removed; a last
 * record without one still counts. Each tuple is one allocation that the job owns.
 *
 * The streamed source is read from its descriptor through a buffer of our own, never
 * with a blocking call: when no whole record is buffered and the descriptor has
 * nothing to read right now, cli_input_next says CLI_INPUT_WAIT and the scheduler
 * polls the descriptor beside its jobs and signals. A pipe that delivers a line every
 * few seconds thus never holds back output, reaping or Ctrl-C. (The descriptor itself
 * stays blocking: O_NONBLOCK would change it for every process sharing it, the shell
 * that gave it to us included; a read after poll says POLLIN does not block.)
 *
 * A NUL byte inside a newline-delimited record cannot be passed in an argument: as GNU
 * parallel does, it becomes the two characters "\0", with one warning.
 */
#include <mproc.h>

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A record reader over a descriptor. */
typedef struct reader {
    int fd;
    int own; /* close fd at the end */
    char *buf;
    size_t pos, len, cap; /* unread bytes are buf[pos..len) */
    int eof;
} reader;

typedef struct list {
    char **v; /* owned strings when owned != 0 */
    size_t n;
    int owned;
} list;

struct cli_input {
    char delim;
    int uses_stdin;
    int nul_warned;
    /* Source 0, streamed. */
    int first_is_file;
    reader first_r; /* standard input or an opened file */
    const char *first_path;
    list first_list; /* a ::: list */
    size_t first_i;
    int want_first; /* the odometer wrapped: source 0's next value is due */
    /* Sources 1..n-1, in memory; idx is the odometer over them. */
    list *rest;
    size_t nrest;
    size_t *idx;
    char *cur; /* the current value of source 0 (owned copy) */
    int have_cur;
    int done;
};

/* A ::: list as records: GNU parallel reads ::: arguments as lines, so with the
 * newline delimiter a word "x\ny" is two arguments. Borrows the words when none has
 * a newline. 0 or -1 (out of memory, printed). */
static int expand_list(char **items, size_t n, char delim, list *l)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]), recs = 1;
        for (size_t k = 0; delim == '\n' && k < len; k++)
            recs += items[i][k] == '\n';
        count += recs;
    }
    int split = count != n;
    for (size_t i = 0; i < n && !split && delim == '\n'; i++)
        split = strchr(items[i], '\n') != NULL;
    if (!split) {
        *l = (list){.v = items, .n = n, .owned = 0};
        return 0;
    }
    *l = (list){.v = calloc(count, sizeof(char *)), .n = 0, .owned = 1};
    if (!l->v)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *p = items[i];
        for (;;) {
            const char *e = strchr(p, '\n');
            char *c = strndup(p, e ? (size_t)(e - p) : strlen(p));
            if (!c)
                goto nomem;
            l->v[l->n++] = c;
            if (!e)
                break; /* as GNU parallel: "z\n" is "z" and "" */
            p = e + 1;
        }
    }
    return 0;
nomem:
    cli_error("out of memory");
    return -1;
}

static void list_release(list *l)
{
    if (!l->owned)
        return;
    for (size_t j = 0; j < l->n; j++)
        free(l->v[j]);
    free(l->v);
}

/* Open a file source ("-": standard input) for reading. 0, or -1 (printed). */
static int open_source(const char *path, cli_input *in, reader *r)
{
    *r = (reader){.fd = -1};
    if (strcmp(path, "-") == 0) {
        in->uses_stdin = 1;
        r->fd = 0;
        return 0;
    }
    do {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (r->fd < 0 && errno == EINTR);
    if (r->fd < 0) {
        cli_error("run: cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    r->own = 1;
    return 0;
}

static void reader_close(reader *r)
{
    if (r->own && r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

/* The next record of r, NUL-terminated in r's buffer (valid until the next call):
 * 1 and *rec, *len; 0 at the end; -1 on a read error (errno set); CLI_INPUT_WAIT when
 * !block and nothing whole is buffered or readable now. */
static int reader_next(reader *r, char delim, int block, char **rec, size_t *len)
{
    for (;;) {
        char *start = r->buf + r->pos;
        char *d = r->len > r->pos ? memchr(start, delim, r->len - r->pos) : NULL;
        if (d || (r->eof && r->pos < r->len)) {
            size_t n = d ? (size_t)(d - start) : r->len - r->pos;
            start[n] = '\0'; /* the delimiter, or the byte kept free past len */
            r->pos += d ? n + 1 : n;
            *rec = start;
            *len = n;
            return 1;
        }
        if (r->eof)
            return 0;
        if (r->pos > 0) { /* keep the partial record at the front */
            memmove(r->buf, start, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        if (r->cap - r->len < 4096 + 1) {
            size_t nc = r->cap ? r->cap * 2 : 65536;
            char *nb = realloc(r->buf, nc);
            if (!nb) {
                errno = ENOMEM;
                return -1;
            }
            r->buf = nb;
            r->cap = nc;
        }
        if (!block) {
            struct pollfd p = {.fd = r->fd, .events = POLLIN};
            int pr = poll(&p, 1, 0);
            if (pr == 0 || (pr < 0 && errno == EINTR))
                return CLI_INPUT_WAIT;
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && !block)
            return CLI_INPUT_WAIT;
        if (n < 0)
            return -1;
        if (n == 0)
            r->eof = 1;
        r->len += (size_t)n;
    }
}

/* A heap copy of a record; NUL bytes inside a newline-delimited one become "\0". NULL
 * when out of memory (printed). */
static char *record_copy(cli_input *in, const char *rec, size_t len)
{
    size_t nuls = 0;
    for (const char *p = rec; in->delim == '\n' && (p = memchr(p, '\0', len - (size_t)(p - rec)));
         p++)
        nuls++;
    char *s = malloc(len + nuls + 1);
    if (!s) {
        cli_error("out of memory");
        return NULL;
    }
    if (nuls == 0) {
        memcpy(s, rec, len + 1);
        return s;
    }
    char *o = s;
    for (size_t i = 0; i < len; i++) {
        if (rec[i] == '\0') {
            *o++ = '\\';
            *o++ = '0';
        } else {
            *o++ = rec[i];
        }
    }
    *o = '\0';
    if (!in->nul_warned) {
        in->nul_warned = 1;
        cli_error("Warning: A NUL character in the input was replaced with \\0.");
        cli_error("Warning: NUL cannot be passed through in the argument list.");
        cli_error("Warning: Did you mean to use the --null option?");
    }
    return s;
}

/* Read every record of r into l (owned copies), blocking. 0, or -1 (printed; l keeps
 * what was read, for list_release). */
static int read_list(cli_input *in, reader *r, const char *path, list *l)
{
    size_t cap = l->n;
    l->owned = 1;
    for (;;) {
        char *rec;
        size_t len;
        int got = reader_next(r, in->delim, 1, &rec, &len);
        if (got < 0) {
            cli_error("run: cannot read '%s': %s", path, strerror(errno));
            return -1;
        }
        if (got == 0)
            return 0;
        if (l->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = realloc(l->v, nc * sizeof *nv);
            if (!nv) {
                cli_error("out of memory");
                return -1;
            }
            l->v = nv;
            cap = nc;
        }
        char *s = record_copy(in, rec, len);
        if (!s)
            return -1;
        l->v[l->n++] = s;
    }
}

static int load_file(cli_input *in, const char *path, list *l)
{
    reader r;
    if (open_source(path, in, &r) < 0)
        return -1;
    int rc = read_list(in, &r, path, l);
    reader_close(&r);
    return rc;
}

int cli_input_open(cli_input **out, const cli_run_opts *o)
{
    *out = NULL;
    cli_input *in = calloc(1, sizeof *in);
    if (!in) {
        cli_error("out of memory");
        return CLI_EXIT_ERROR;
    }
    in->delim = o->delim;
    in->first_r.fd = -1;
    if (o->nsrc == 0) {
        in->first_is_file = 1;
        in->first_path = "-";
        if (open_source("-", in, &in->first_r) < 0)
            goto fail;
    } else {
        const cli_source *s0 = &o->src[0];
        if (s0->kind == CLI_SRC_FILE) {
            in->first_is_file = 1;
            in->first_path = s0->path;
            if (open_source(s0->path, in, &in->first_r) < 0)
                goto fail;
        } else {
            if (expand_list(s0->items, s0->n, in->delim, &in->first_list) < 0)
                goto fail;
        }
    }
    if (o->nsrc > 1) {
        in->nrest = o->nsrc - 1;
        in->rest = calloc(in->nrest, sizeof *in->rest);
        in->idx = calloc(in->nrest, sizeof *in->idx);
        if (!in->rest || !in->idx) {
            cli_error("out of memory");
            goto fail;
        }
        for (size_t k = 0; k < in->nrest; k++) {
            const cli_source *s = &o->src[k + 1];
            if (s->kind == CLI_SRC_FILE) {
                if (load_file(in, s->path, &in->rest[k]) < 0)
                    goto fail;
            } else {
                if (expand_list(s->items, s->n, in->delim, &in->rest[k]) < 0)
                    goto fail;
            }
            if (in->rest[k].n == 0)
                in->done = 1; /* a product with an empty factor is empty */
        }
    }
    *out = in;
    return 0;
fail:
    cli_input_close(in);
    return CLI_EXIT_ERROR;
}

int cli_input_uses_stdin(const cli_input *in)
{
    return in->uses_stdin;
}

int cli_input_preload(cli_input *in, unsigned long *total)
{
    if (in->first_is_file) {
        list l = {0};
        if (read_list(in, &in->first_r, in->first_path, &l) < 0) {
            list_release(&l);
            return CLI_EXIT_ERROR;
        }
        reader_close(&in->first_r);
        in->first_is_file = 0;
        in->first_list = l;
        in->first_i = 0;
    }
    unsigned long n = in->done ? 0 : (unsigned long)in->first_list.n;
    for (size_t k = 0; k < in->nrest; k++)
        n *= (unsigned long)in->rest[k].n;
    *total = n;
    return 0;
}

int cli_input_fd(const cli_input *in)
{
    return in->first_is_file && !in->done ? in->first_r.fd : -1;
}

/* Advance source 0: 1 with in->cur set, 0 at its end, -1 on error, CLI_INPUT_WAIT. */
static int next_first(cli_input *in)
{
    if (in->first_is_file) {
        char *rec;
        size_t len;
        int r = reader_next(&in->first_r, in->delim, 0, &rec, &len);
        if (r == CLI_INPUT_WAIT)
            return r;
        free(in->cur);
        in->cur = NULL;
        if (r < 0) {
            cli_error("run: cannot read '%s': %s", in->first_path, strerror(errno));
            return -1;
        }
        if (r == 0)
            return 0;
        in->cur = record_copy(in, rec, len);
        return in->cur ? 1 : -1;
    }
    free(in->cur);
    in->cur = NULL;
    if (in->first_i >= in->first_list.n)
        return 0;
    in->cur = strdup(in->first_list.v[in->first_i++]);
    if (!in->cur) {
        cli_error("out of memory");
        return -1;
    }
    return 1;
}

int cli_input_next(cli_input *in, cli_tuple **t)
{
    *t = NULL;
    if (in->done)
        return 0;
    /* Step the odometer over sources 1..n-1; when it wraps (or at the start), take
     * the next value of source 0. A wrap is remembered across CLI_INPUT_WAIT. */
    if (!in->want_first) {
        in->want_first = !in->have_cur;
        for (size_t k = in->nrest; in->have_cur;) {
            if (k == 0) {
                in->want_first = 1;
                break;
            }
            k--;
            if (++in->idx[k] < in->rest[k].n)
                break;
            in->idx[k] = 0;
        }
    }
    if (in->want_first) {
        int r = next_first(in);
        if (r == CLI_INPUT_WAIT)
            return r;
        in->want_first = 0;
        if (r <= 0) {
            in->done = 1;
            return r < 0 ? CLI_EXIT_ERROR : 0;
        }
        in->have_cur = 1;
    }
    size_t n = 1 + in->nrest;
    size_t bytes = strlen(in->cur) + 1;
    for (size_t k = 0; k < in->nrest; k++)
        bytes += strlen(in->rest[k].v[in->idx[k]]) + 1;
    cli_tuple *tu = malloc(sizeof *tu + n * sizeof(char *) + bytes);
    if (!tu) {
        cli_error("out of memory");
        return CLI_EXIT_ERROR;
    }
    tu->n = n;
    char *p = (char *)(tu->v + n);
    for (size_t k = 0; k < n; k++) {
        const char *s = k == 0 ? in->cur : in->rest[k - 1].v[in->idx[k - 1]];
        size_t l = strlen(s) + 1;
        memcpy(p, s, l);
        tu->v[k] = p;
        p += l;
    }
    *t = tu;
    return 1;
}

void cli_input_close(cli_input *in)
{
    if (!in)
        return;
    reader_close(&in->first_r);
    for (size_t k = 0; k < in->nrest && in->rest; k++)
        list_release(&in->rest[k]);
    list_release(&in->first_list);
    free(in->rest);
    free(in->idx);
    free(in->cur);
    free(in);
}
