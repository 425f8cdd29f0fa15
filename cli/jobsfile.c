/* cli/jobsfile.c - the jobs file of `mproc make` (docs/make.md): parsed into a list of
 * jobs, every syntax error named FILE:LINE:COLUMN with what was expected.
 *
 * DESIGN. Line by line, no recursion, no limits but memory: a logical line is one or
 * more physical lines joined where one ends in a backslash (the column of an error is
 * counted in the physical line it is on). At column 0: a variable (NAME = value) or a
 * job header (NAME: DEPS...); indented: a field of the job above (in:, out:, run:,
 * retries:, timeout:). ${NAME} is replaced by the file's variable, else the
 * environment's; one that is neither is an error. The result is plain data (struct
 * cli_jobs); cli/make.c turns it into a task graph.
 */
#include "cli.h"
#include "jobsfile.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct text {
    char *s;
    size_t n, cap;
};

static int text_add(struct text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->n + n + 1)
            cap *= 2;
        char *v = realloc(t->s, cap);
        if (v == NULL)
            return -ENOMEM;
        t->s = v;
        t->cap = cap;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = '\0';
    return 0;
}

struct parser {
    const char *file;
    char *err;
    size_t errlen;
    cli_job_fn on_job;
    void *arg;
    struct cli_job cur; /* the job being read */
    bool has_cur;
    char **var_names, **var_values;
    size_t nvars;
};

__attribute__((format(printf, 4, 5))) static int syntax(struct parser *p, size_t line, size_t col,
                                                        const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%zu:%zu: ", p->file, line, col);
    if (n > 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool name_char(char c)
{
    return c != '\0' && !isspace((unsigned char)c) && c != ':' && c != '=' && c != '#' &&
           c != '$' && c != '\\';
}

static const char *var_value(const struct parser *p, const char *name, size_t n)
{
    for (size_t i = p->nvars; i-- > 0;)
        if (strlen(p->var_names[i]) == n && memcmp(p->var_names[i], name, n) == 0)
            return p->var_values[i];
    char key[256];
    if (n >= sizeof key)
        return NULL;
    memcpy(key, name, n);
    key[n] = '\0';
    return getenv(key);
}

/* Expand ${NAME} in s[0..n) (cols: the column of each byte). */
static int expand(struct parser *p, const char *s, size_t n, const size_t *cols, size_t line,
                  struct text *out)
{
    for (size_t i = 0; i < n;) {
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
            size_t j = i + 2;
            while (j < n && s[j] != '}')
                j++;
            if (j == n)
                return syntax(p, line, cols[i], "expected '}' to close '${'");
            if (j == i + 2)
                return syntax(p, line, cols[i], "expected a variable name after '${'");
            const char *v = var_value(p, s + i + 2, j - i - 2);
            if (v == NULL)
                return syntax(p, line, cols[i], "undefined variable '%.*s'", (int)(j - i - 2),
                              s + i + 2);
            if (text_add(out, v, strlen(v)) < 0)
                return -ENOMEM;
            i = j + 1;
            continue;
        }
        if (text_add(out, s + i, 1) < 0)
            return -ENOMEM;
        i++;
    }
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int push_str(char ***v, size_t *n, const char *s, size_t len)
{
    char **nv = realloc(*v, (*n + 2) * sizeof *nv);
    if (nv == NULL)
        return -ENOMEM;
    *v = nv;
    if ((nv[*n] = dup_n(s, len)) == NULL)
        return -ENOMEM;
    (*n)++;
    nv[*n] = NULL;
    return 0;
}

/* Split an expanded string into words (spaces), each pushed to v. */
static int words(const char *s, char ***v, size_t *n)
{
    for (size_t i = 0; s[i] != '\0';) {
        while (isspace((unsigned char)s[i]))
            i++;
        size_t j = i;
        while (s[j] != '\0' && !isspace((unsigned char)s[j]))
            j++;
        if (j > i && push_str(v, n, s + i, j - i) < 0)
            return -ENOMEM;
        i = j;
    }
    return 0;
}

void cli_job_release(struct cli_job *b)
{
    char **lists[] = {b->deps, b->in, b->out, b->run};
    for (size_t k = 0; k < 4; k++) {
        for (size_t m = 0; lists[k] != NULL && lists[k][m] != NULL; m++)
            free(lists[k][m]);
        free(lists[k]);
    }
    free(b->name);
    free(b->mem);
    free(b->time);
    *b = (struct cli_job){.line = b->line};
}

/* The job being read is whole: it needs work, then it is the callback's. */
static int finish_job(struct parser *p)
{
    if (!p->has_cur)
        return 0;
    p->has_cur = false;
    if (p->cur.nrun == 0) {
        int rc = syntax(p, p->cur.line, 1, "job '%s' has no 'run:' line", p->cur.name);
        cli_job_release(&p->cur);
        return rc;
    }
    return p->on_job(&p->cur, p->arg);
}

/* One logical line: its bytes and, for each, its physical line and column. */
struct logical {
    struct text t;
    size_t *line, *col;
    size_t cap;
};

static int logical_add(struct logical *l, char c, size_t line, size_t col)
{
    if (l->t.n + 1 >= l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 128;
        size_t *nl = realloc(l->line, cap * sizeof *nl);
        if (nl == NULL)
            return -ENOMEM;
        l->line = nl;
        size_t *nc = realloc(l->col, cap * sizeof *nc);
        if (nc == NULL)
            return -ENOMEM;
        l->col = nc;
        l->cap = cap;
    }
    l->line[l->t.n] = line;
    l->col[l->t.n] = col;
    return text_add(&l->t, &c, 1);
}

/* The logical line's content up to a comment ('#' at its start or after a space), with
 * trailing spaces cut. */
static size_t content_len(const char *s, size_t n, bool keep_hash)
{
    size_t end = n;
    if (!keep_hash)
        for (size_t i = 0; i < n; i++)
            if (s[i] == '#' && (i == 0 || isspace((unsigned char)s[i - 1]))) {
                end = i;
                break;
            }
    while (end > 0 && isspace((unsigned char)s[end - 1]))
        end--;
    return end;
}

static int parse_line(struct parser *p, struct logical *l)
{
    const char *s = l->t.s;
    size_t n = l->t.n;
    if (n == 0)
        return 0;
    size_t line = l->line[0];
    bool indented = s[0] == ' ' || s[0] == '\t';
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n || s[i] == '#')
        return 0; /* blank, or a comment */
    struct text x = {0};
    int rc = 0;
    if (indented) {
        if (!p->has_cur)
            return syntax(p, l->line[i], l->col[i], "expected a job ('NAME: DEPS') before '%c'",
                          s[i]);
        struct cli_job *b = &p->cur;
        size_t k = i;
        while (k < n && isalpha((unsigned char)s[k]))
            k++;
        size_t key = k - i;
        if (k == n || s[k] != ':')
            return syntax(p, l->line[k < n ? k : n - 1], l->col[k < n ? k : n - 1] + (k == n),
                          "expected a field ('in:', 'out:', 'run:', 'retries:', 'timeout:', "
                          "'cpus:', 'mem:' or 'time:')");
        const char *name = s + i;
        size_t v = k + 1;
        while (v < n && (s[v] == ' ' || s[v] == '\t'))
            v++;
        bool is_run = key == 3 && memcmp(name, "run", 3) == 0;
        size_t end = v + content_len(s + v, n - v, is_run);
        if (end < v)
            end = v;
        rc = expand(p, s + v, end - v, l->col + v, line, &x);
        if (rc < 0)
            goto out;
        const char *val = x.s != NULL ? x.s : "";
        if (is_run) {
            if (val[0] == '\0') {
                rc = syntax(p, line, l->col[k] + 1, "expected a command after 'run:'");
                goto out;
            }
            rc = push_str(&b->run, &b->nrun, val, strlen(val));
        } else if (key == 2 && memcmp(name, "in", 2) == 0) {
            rc = words(val, &b->in, &b->nin);
        } else if (key == 3 && memcmp(name, "out", 3) == 0) {
            rc = words(val, &b->out, &b->nout);
        } else if ((key == 7 && memcmp(name, "retries", 7) == 0) ||
                   (key == 7 && memcmp(name, "timeout", 7) == 0)) {
            char *e;
            errno = 0;
            double d = strtod(val, &e);
            bool retries = name[0] == 'r';
            if (val[0] == '\0' || *e != '\0' || errno != 0 || !(d >= 0) ||
                (retries && (d != (double)(unsigned)d || d > 1000000))) {
                rc = syntax(p, line, l->col[v < n ? v : n - 1],
                            retries ? "expected a count after 'retries:'"
                                    : "expected seconds (a number >= 0) after 'timeout:'");
                goto out;
            }
            if (retries)
                b->retries = (unsigned)d;
            else
                b->timeout = d;
        } else if (key == 4 && memcmp(name, "cpus", 4) == 0) {
            char *e;
            errno = 0;
            long c = strtol(val, &e, 10);
            if (val[0] < '0' || val[0] > '9' || *e != '\0' || errno != 0 || c < 1 || c > 100000) {
                rc = syntax(p, line, l->col[v < n ? v : n - 1], "expected a count after 'cpus:'");
                goto out;
            }
            b->cpus = c;
        } else if ((key == 3 && memcmp(name, "mem", 3) == 0) ||
                   (key == 4 && memcmp(name, "time", 4) == 0)) {
            bool mem = name[0] == 'm';
            if (!(mem ? cli_slurm_mem_ok(val) : cli_slurm_time_ok(val))) {
                rc = syntax(p, line, l->col[v < n ? v : n - 1],
                            mem ? "expected a size after 'mem:' (e.g. 500M, 4G)"
                                : "expected a time after 'time:' (e.g. 30, 1:00:00)");
                goto out;
            }
            char **to = mem ? &b->mem : &b->time;
            free(*to);
            if ((*to = dup_n(val, strlen(val))) == NULL)
                rc = -ENOMEM;
        } else {
            rc = syntax(p, line, l->col[i],
                        "unknown field '%.*s' (expected in, out, run, "
                        "retries, timeout, cpus, mem or time)",
                        (int)key, name);
        }
        goto out;
    }
    /* column 0: NAME = value, or NAME: deps */
    size_t k = 0;
    while (k < n && name_char(s[k]))
        k++;
    if (k == 0)
        return syntax(p, l->line[0], l->col[0], "expected a job or variable name, not '%c'", s[0]);
    size_t after = k;
    while (after < n && (s[after] == ' ' || s[after] == '\t'))
        after++;
    if (after < n && s[after] == '=') {
        size_t v = after + 1;
        while (v < n && (s[v] == ' ' || s[v] == '\t'))
            v++;
        size_t end = v + content_len(s + v, n - v, false);
        rc = expand(p, s + v, end - v, l->col + v, line, &x);
        if (rc < 0)
            goto out;
        char **nn = realloc(p->var_names, (p->nvars + 1) * sizeof *nn);
        if (nn != NULL)
            p->var_names = nn;
        char **nv = realloc(p->var_values, (p->nvars + 1) * sizeof *nv);
        if (nv != NULL)
            p->var_values = nv;
        if (nn == NULL || nv == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        p->var_names[p->nvars] = dup_n(s, k);
        p->var_values[p->nvars] = dup_n(x.s != NULL ? x.s : "", x.n);
        if (p->var_names[p->nvars] == NULL || p->var_values[p->nvars] == NULL) {
            free(p->var_names[p->nvars]);
            free(p->var_values[p->nvars]);
            rc = -ENOMEM;
            goto out;
        }
        p->nvars++;
        goto out;
    }
    if (after == n || s[after] != ':')
        return syntax(p, l->line[after < n ? after : n - 1],
                      l->col[after < n ? after : n - 1] + (after == n),
                      "expected ':' after the job name '%.*s' (or '=' for a variable)", (int)k, s);
    rc = finish_job(p);
    if (rc != 0)
        return rc;
    struct cli_job *b = &p->cur;
    *b = (struct cli_job){.line = line};
    if ((b->name = dup_n(s, k)) == NULL)
        return -ENOMEM;
    p->has_cur = true;
    size_t v = after + 1;
    size_t end = v + content_len(s + v, n - v, false);
    rc = expand(p, s + v, end - v, l->col + v, line, &x);
    if (rc == 0)
        rc = words(x.s != NULL ? x.s : "", &b->deps, &b->ndeps);
out:
    free(x.s);
    return rc;
}

int cli_jobs_parse(const char *text, size_t len, const char *file, cli_job_fn on_job, void *arg,
                   char *err, size_t errlen)
{
    struct parser p = {.file = file, .err = err, .errlen = errlen, .on_job = on_job, .arg = arg};
    struct logical l = {0};
    size_t line = 1, col = 1;
    int rc = 0;
    for (size_t i = 0; i <= len && rc == 0; i++) {
        char c = i < len ? text[i] : '\n';
        if (c == '\0') {
            rc = syntax(&p, line, col, "unexpected NUL byte (a jobs file is text)");
            break;
        }
        if (c == '\\' && i + 1 < len && text[i + 1] == '\n') { /* continuation */
            i++;
            line++;
            col = 1;
            continue;
        }
        if (c == '\n') {
            rc = parse_line(&p, &l);
            l.t.n = 0;
            line++;
            col = 1;
            continue;
        }
        if (c == '\r' && i + 1 < len && text[i + 1] == '\n') {
            col++;
            continue; /* CRLF files */
        }
        rc = logical_add(&l, c, line, col);
        col++;
    }
    if (rc == 0)
        rc = finish_job(&p); /* the last one */
    if (p.has_cur)
        cli_job_release(&p.cur);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", file);
    free(l.t.s);
    free(l.line);
    free(l.col);
    for (size_t i = 0; i < p.nvars; i++) {
        free(p.var_names[i]);
        free(p.var_values[i]);
    }
    free(p.var_names);
    free(p.var_values);
    return rc;
}
