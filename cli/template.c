/* cli/template.c - replacement strings, shell quoting, and the command line of a job.
 *
 * DESIGN: the command words are joined with spaces (as GNU parallel does, so
 * `mproc run 'echo $HOME'` lets the shell expand $HOME) and compiled once into a
 * list of pieces: literal text, or a replacement string ({}, {.}, {/}, {//}, {/.},
 * {N} and its variants, {#}, {%}). For each job the pieces are expanded with the
 * job's arguments, each argument quoted for /bin/sh so that no value (spaces,
 * quotes, $, backquotes, newlines, globs) is ever interpreted by the shell: a
 * replaced value is always exactly one word. A template with no replacement string
 * gets the quoted arguments appended. An empty command runs the arguments
 * themselves as the command line, unquoted (GNU parallel's `parallel ::: cmds`);
 * so does a command that starts with a replacement string (`mproc run '{} x' ::: cmd`):
 * there GNU parallel leaves every replaced argument unquoted, and so do we.
 *
 * Quoting uses single quotes ('it'\''s'), which /bin/sh takes literally, newlines
 * included; a value made only of harmless characters is left bare.
 *
 * Direct execution: when the template's own text has no shell syntax at all (only
 * words of plain characters separated by spaces) and its first word is a plain
 * program name (not a shell builtin or keyword, no assignment), running the words
 * through /bin/sh -c would only split them on spaces; so the job may be exec'd
 * directly with the same argv, saving a shell per job. The scheduler falls back to
 * the shell when exec fails, so even "command not found" looks the same (127).
 */
#include <mproc.h>

#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum piece_kind { P_LIT, P_ARG, P_SEQ, P_SLOT };

typedef struct piece {
    enum piece_kind kind;
    size_t off, len; /* P_LIT: text in t->text */
    size_t pos;      /* P_ARG: 1-based source, 0 for all */
    char mod[3];     /* P_ARG: "", ".", "/", "//", "/." */
} piece;

struct cli_template {
    char *text; /* the words joined by spaces */
    size_t len;
    piece *p;
    size_t np;
    int has_rep;     /* some replacement string: no arguments appended */
    int empty;       /* no command words: the arguments are the command */
    int direct_ok;   /* may be exec'd without a shell (see DESIGN) */
    int has_all_arg; /* {} or {.}... without a position: one word per source */
    int raw_args;    /* the text starts with an argument: arguments are shell code */
};

int cli_buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 64;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

int cli_safe_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_./,:+@%-", c) != NULL;
}

int cli_shell_quote(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    int bare = n > 0;
    for (size_t i = 0; i < n && bare; i++)
        bare = cli_safe_char(s[i]);
    if (bare)
        return cli_buf_add(buf, len, cap, s, n);
    if (cli_buf_add(buf, len, cap, "'", 1) < 0)
        return -ENOMEM;
    const char *p = s;
    for (;;) {
        const char *q = strchr(p, '\'');
        if (!q)
            break;
        if (cli_buf_add(buf, len, cap, p, (size_t)(q - p)) < 0 ||
            cli_buf_add(buf, len, cap, "'\\''", 4) < 0)
            return -ENOMEM;
        p = q + 1;
    }
    if (cli_buf_add(buf, len, cap, p, strlen(p)) < 0 || cli_buf_add(buf, len, cap, "'", 1) < 0)
        return -ENOMEM;
    return 0;
}

int cli_replace_one(char **buf, size_t *len, size_t *cap, const char *arg, const char *kind)
{
    size_t n = strlen(arg);
    const char *slash = strrchr(arg, '/');
    size_t base = slash ? (size_t)(slash - arg) + 1 : 0; /* start of the basename */
    if (kind[0] == '\0')
        return cli_buf_add(buf, len, cap, arg, n);
    if (strcmp(kind, "//") == 0) {
        /* POSIX dirname (as Perl's File::Basename, which GNU parallel uses): trailing
         * slashes do not count, "." when there is no directory part, "/" for the root. */
        size_t e = n;
        while (e > 1 && arg[e - 1] == '/')
            e--;
        while (e > 0 && arg[e - 1] != '/')
            e--;
        if (e == 0)
            return cli_buf_add(buf, len, cap, ".", 1);
        while (e > 1 && arg[e - 1] == '/')
            e--;
        return cli_buf_add(buf, len, cap, arg, e);
    }
    size_t start = kind[0] == '/' ? base : 0;
    size_t end = n;
    if (strcmp(kind, ".") == 0 || strcmp(kind, "/.") == 0) {
        /* Remove the extension: from the last dot of the basename. */
        const char *dot = strrchr(arg + base, '.');
        if (dot)
            end = (size_t)(dot - arg);
    }
    return cli_buf_add(buf, len, cap, arg + start, end - start);
}

/* Recognise a replacement string at s (which starts with '{'). Its length, or 0. */
static size_t parse_rep(const char *s, piece *pc)
{
    const char *p = s + 1;
    memset(pc, 0, sizeof *pc);
    if ((p[0] == '#' || p[0] == '%') && p[1] == '}') {
        pc->kind = p[0] == '#' ? P_SEQ : P_SLOT;
        return 3;
    }
    size_t pos = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) {
        pos = pos * 10 + (size_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits && pos == 0)
        return 0;
    if (*p >= '0' && *p <= '9')
        return 0;
    static const char *const mods[] = {"}", ".}", "/}", "//}", "/.}"};
    for (size_t k = 0; k < sizeof mods / sizeof *mods; k++) {
        size_t ml = strlen(mods[k]);
        if (strncmp(p, mods[k], ml) == 0) {
            pc->kind = P_ARG;
            pc->pos = pos;
            memcpy(pc->mod, mods[k], ml - 1);
            pc->mod[ml - 1] = '\0';
            return (size_t)(p - s) + ml;
        }
    }
    return 0;
}

int cli_is_builtin(const char *w, size_t n)
{
    static const char *const names[] = {
        "alias", "bg",    "break",  "cd",       "command", "continue", "echo",   "eval",
        "exec",  "exit",  "export", "fc",       "fg",      "getopts",  "hash",   "jobs",
        "kill",  "local", "printf", "pwd",      "read",    "readonly", "return", "set",
        "shift", "test",  "times",  "trap",     "type",    "ulimit",   "umask",  "unalias",
        "unset", "wait",  "[",      ".",        ":",       "if",       "then",   "else",
        "elif",  "fi",    "case",   "esac",     "for",     "while",    "until",  "do",
        "done",  "in",    "!",      "function", "select",  "source",   "let",    "builtin"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        if (strlen(names[k]) == n && strncmp(names[k], w, n) == 0)
            return 1;
    return 0;
}

static int add_piece(cli_template *t, piece pc)
{
    piece *np = realloc(t->p, (t->np + 1) * sizeof *np);
    if (!np)
        return -ENOMEM;
    t->p = np;
    t->p[t->np++] = pc;
    return 0;
}

int cli_template_new(cli_template **out, char **words, size_t n, size_t nsrc)
{
    (void)nsrc;
    *out = NULL;
    cli_template *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && cli_buf_add(&t->text, &t->len, &cap, " ", 1) < 0) ||
            cli_buf_add(&t->text, &t->len, &cap, words[i], strlen(words[i])) < 0)
            goto nomem;
    }
    if (!t->text && cli_buf_add(&t->text, &t->len, &cap, "", 0) < 0)
        goto nomem;
    t->empty = n == 0;

    /* Split into pieces; judge whether the literal text is plain enough to exec. */
    int plain = !t->empty;
    int first_word = 1, in_word = 0, first_has_rep = 0;
    size_t first_start = 0, first_len = 0;
    size_t lit = 0;
    for (size_t i = 0; i <= t->len;) {
        piece pc;
        size_t rl = i < t->len && t->text[i] == '{' ? parse_rep(t->text + i, &pc) : 0;
        if (i == t->len || rl) {
            if (i > lit && add_piece(t, (piece){.kind = P_LIT, .off = lit, .len = i - lit}) < 0)
                goto nomem;
            if (i == t->len)
                break;
            if (add_piece(t, pc) < 0)
                goto nomem;
            t->has_rep = 1;
            if (pc.kind == P_ARG && pc.pos == 0)
                t->has_all_arg = 1;
            if (first_word) {
                first_has_rep = 1;
                in_word = 1;
            }
            i += rl;
            lit = i;
            continue;
        }
        char c = t->text[i];
        if (c == ' ') {
            if (in_word && first_word)
                first_word = 0;
            in_word = 0;
        } else {
            if (!in_word && first_word)
                first_start = i;
            if (first_word)
                first_len = i + 1 - first_start;
            in_word = 1;
            if (!cli_safe_char(c) && !(c == '=' && !first_word))
                plain = 0;
        }
        i++;
    }
    if (first_has_rep || first_len == 0 || cli_is_builtin(t->text + first_start, first_len))
        plain = 0;
    t->direct_ok = plain;
    t->raw_args = t->np > 0 && t->p[0].kind == P_ARG;
    *out = t;
    return 0;
nomem:
    cli_template_free(t);
    return -ENOMEM;
}

void cli_template_free(cli_template *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->p);
    free(t);
}

/* Append the expansion of an argument piece, quoted (shell) or raw. */
static int expand_arg(char **b, size_t *l, size_t *c, const piece *pc, const cli_tuple *a,
                      int quote)
{
    char *tmp = NULL;
    size_t tl = 0, tc = 0;
    int rc = 0;
    size_t from = pc->pos ? pc->pos - 1 : 0;
    size_t to = pc->pos ? pc->pos : a->n;
    for (size_t k = from; k < to && rc == 0; k++) {
        const char *arg = k < a->n ? a->v[k] : "";
        tl = 0;
        rc = cli_replace_one(&tmp, &tl, &tc, arg, pc->mod);
        if (rc == 0 && !tmp)
            rc = cli_buf_add(&tmp, &tl, &tc, "", 0);
        if (rc == 0 && k > from)
            rc = cli_buf_add(b, l, c, " ", 1);
        if (rc == 0)
            rc = quote ? cli_shell_quote(b, l, c, tmp) : cli_buf_add(b, l, c, tmp, tl);
    }
    if (rc == 0 && pc->pos > a->n)
        rc = quote ? cli_shell_quote(b, l, c, "") : cli_buf_add(b, l, c, "", 0);
    free(tmp);
    return rc;
}

static int add_number(char **b, size_t *l, size_t *c, unsigned long v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lu", v);
    return cli_buf_add(b, l, c, num, (size_t)n);
}

char *cli_template_shell(const cli_template *t, const cli_tuple *a, unsigned long seq,
                         unsigned long slot)
{
    char *b = NULL;
    size_t l = 0, c = 0;
    int rc = cli_buf_add(&b, &l, &c, "", 0);
    if (t->empty) {
        for (size_t k = 0; k < a->n && rc == 0; k++) {
            if (k)
                rc = cli_buf_add(&b, &l, &c, " ", 1);
            if (rc == 0)
                rc = cli_buf_add(&b, &l, &c, a->v[k], strlen(a->v[k]));
        }
    } else {
        for (size_t i = 0; i < t->np && rc == 0; i++) {
            const piece *pc = &t->p[i];
            if (pc->kind == P_LIT)
                rc = cli_buf_add(&b, &l, &c, t->text + pc->off, pc->len);
            else if (pc->kind == P_SEQ)
                rc = add_number(&b, &l, &c, seq);
            else if (pc->kind == P_SLOT)
                rc = add_number(&b, &l, &c, slot);
            else
                rc = expand_arg(&b, &l, &c, pc, a, !t->raw_args);
        }
        for (size_t k = 0; !t->has_rep && k < a->n && rc == 0; k++) {
            rc = cli_buf_add(&b, &l, &c, " ", 1);
            if (rc == 0)
                rc = cli_shell_quote(&b, &l, &c, a->v[k]);
        }
    }
    if (rc < 0) {
        free(b);
        return NULL;
    }
    return b;
}

/* A growing list of words for direct execution. */
typedef struct words {
    char **v;
    size_t n, cap;
} words;

static int words_push(words *w, char *s)
{
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 8;
        char **nv = realloc(w->v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        w->v = nv;
        w->cap = nc;
    }
    w->v[w->n++] = s;
    return 0;
}

int cli_template_direct(const cli_template *t, const cli_tuple *a, unsigned long seq,
                        unsigned long slot, char ***argv)
{
    *argv = NULL;
    if (!t->direct_ok || (t->has_all_arg && a->n != 1))
        return 0;
    words w = {0};
    char *cur = NULL; /* the word being built; NULL between words */
    size_t cl = 0, cc = 0;
    int rc = 0;
    for (size_t i = 0; i < t->np && rc == 0; i++) {
        const piece *pc = &t->p[i];
        if (pc->kind == P_LIT) {
            const char *s = t->text + pc->off;
            for (size_t k = 0; k < pc->len && rc == 0; k++) {
                if (s[k] == ' ') {
                    if (cur) {
                        rc = words_push(&w, cur);
                        cur = NULL;
                        cl = cc = 0;
                    }
                } else {
                    rc = cli_buf_add(&cur, &cl, &cc, s + k, 1);
                }
            }
            continue;
        }
        if (!cur)
            rc = cli_buf_add(&cur, &cl, &cc, "", 0);
        if (rc < 0)
            break;
        if (pc->kind == P_SEQ)
            rc = add_number(&cur, &cl, &cc, seq);
        else if (pc->kind == P_SLOT)
            rc = add_number(&cur, &cl, &cc, slot);
        else
            rc = expand_arg(&cur, &cl, &cc, pc, a, 0);
    }
    if (rc == 0 && cur) {
        rc = words_push(&w, cur);
        cur = NULL;
    }
    for (size_t k = 0; !t->has_rep && k < a->n && rc == 0; k++) {
        char *s = strdup(a->v[k]);
        rc = s ? words_push(&w, s) : -ENOMEM;
        if (rc < 0)
            free(s);
    }
    /* Pack the vector and its strings into one allocation. */
    char **packed = NULL;
    if (rc == 0) {
        size_t bytes = (w.n + 1) * sizeof(char *);
        for (size_t k = 0; k < w.n; k++)
            bytes += strlen(w.v[k]) + 1;
        packed = malloc(bytes);
        if (!packed) {
            rc = -ENOMEM;
        } else {
            char *p = (char *)(packed + w.n + 1);
            for (size_t k = 0; k < w.n; k++) {
                size_t sl = strlen(w.v[k]) + 1;
                memcpy(p, w.v[k], sl);
                packed[k] = p;
                p += sl;
            }
            packed[w.n] = NULL;
        }
    }
    free(cur);
    for (size_t k = 0; k < w.n; k++)
        free(w.v[k]);
    free(w.v);
    if (rc < 0)
        return rc;
    *argv = packed;
    return 0;
}
