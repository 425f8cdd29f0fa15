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
 */
#include <mproc.h>

#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct list {
    char **v; /* owned strings when owned != 0 */
    size_t n;
    int owned;
} list;

struct cli_input {
    char delim;
    int uses_stdin;
    /* Source 0, streamed. */
    int first_is_file;
    FILE *first_f; /* stdin or an opened file */
    const char *first_path;
    list first_list; /* a ::: list */
    size_t first_i;
    char *line; /* getdelim buffer */
    size_t line_cap;
    /* Sources 1..n-1, in memory; idx is the odometer over them. */
    list *rest;
    size_t nrest;
    size_t *idx;
    char *cur;      /* the current value of source 0 (owned copy) */
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

static FILE *open_source(const char *path, cli_input *in)
{
    if (strcmp(path, "-") == 0) {
        in->uses_stdin = 1;
        return stdin;
    }
    FILE *f = fopen(path, "re");
    if (!f)
        cli_error("run: cannot read '%s': %s", path, strerror(errno));
    return f;
}

/* Read one record of f into in->line. 1, 0 at the end, -1 on a read error. */
static int read_record(cli_input *in, FILE *f, size_t *len)
{
    errno = 0;
    ssize_t n = getdelim(&in->line, &in->line_cap, in->delim, f);
    if (n < 0) {
        if (ferror(f))
            return -1;
        return 0;
    }
    if (n > 0 && in->line[n - 1] == in->delim)
        n--;
    in->line[n] = '\0';
    *len = (size_t)n;
    return 1;
}

static int load_file(cli_input *in, const char *path, list *l)
{
    FILE *f = open_source(path, in);
    if (!f)
        return -1;
    size_t cap = 0;
    int rc = 0;
    l->owned = 1;
    for (;;) {
        size_t len;
        int r = read_record(in, f, &len);
        if (r < 0) {
            cli_error("run: cannot read '%s': %s", path, strerror(errno));
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        if (l->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = realloc(l->v, nc * sizeof *nv);
            if (!nv) {
                cli_error("out of memory");
                rc = -1;
                break;
            }
            l->v = nv;
            cap = nc;
        }
        char *s = malloc(len + 1);
        if (!s) {
            cli_error("out of memory");
            rc = -1;
            break;
        }
        memcpy(s, in->line, len + 1);
        l->v[l->n++] = s;
    }
    if (f != stdin)
        fclose(f);
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
    if (o->nsrc == 0) {
        in->first_is_file = 1;
        in->first_f = stdin;
        in->first_path = "-";
        in->uses_stdin = 1;
    } else {
        const cli_source *s0 = &o->src[0];
        if (s0->kind == CLI_SRC_FILE) {
            in->first_is_file = 1;
            in->first_path = s0->path;
            in->first_f = open_source(s0->path, in);
            if (!in->first_f)
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

/* Advance source 0: 1 with in->cur set, 0 at its end, -1 on error. */
static int next_first(cli_input *in)
{
    free(in->cur);
    in->cur = NULL;
    if (in->first_is_file) {
        size_t len;
        int r = read_record(in, in->first_f, &len);
        if (r < 0) {
            cli_error("run: cannot read '%s': %s", in->first_path, strerror(errno));
            return -1;
        }
        if (r == 0)
            return 0;
        in->cur = malloc(len + 1);
        if (!in->cur) {
            cli_error("out of memory");
            return -1;
        }
        memcpy(in->cur, in->line, len + 1);
        return 1;
    }
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
     * the next value of source 0. */
    int need_first = !in->have_cur;
    if (in->have_cur) {
        size_t k = in->nrest;
        for (;;) {
            if (k == 0) {
                need_first = 1;
                break;
            }
            k--;
            if (++in->idx[k] < in->rest[k].n)
                break;
            in->idx[k] = 0;
        }
    }
    if (need_first) {
        int r = next_first(in);
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
    if (in->first_f && in->first_f != stdin)
        fclose(in->first_f);
    for (size_t k = 0; k < in->nrest && in->rest; k++)
        list_release(&in->rest[k]);
    list_release(&in->first_list);
    free(in->rest);
    free(in->idx);
    free(in->cur);
    free(in->line);
    free(in);
}
