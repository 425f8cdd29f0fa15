/* tests/fuzz/fuzz_cli.c - fuzz the option parser and the template expander of `mproc run`.
 *
 * The input is the command line: words separated by NUL bytes, given to cli_run_parse()
 * after "run". When it parses, the command words are compiled (cli_template_new) and
 * expanded (cli_template_shell, cli_template_direct) with an argument tuple taken from
 * the ::: sources (their first words) or a fixed one, and the results are checked:
 * a shell line always comes back, a direct argv is NULL-terminated and non-empty, and
 * every argument quoted alone (cli_shell_quote) survives a round trip through the
 * rules of sh's single quotes. Nothing runs a job.
 *
 * Built two ways: with clang -fsanitize=fuzzer,address for fuzzing (see README.md in
 * this directory), and with the project's compiler plus replay_main.c as a CTest test
 * that replays every file of corpus_cli/ on each `make check`.
 */
#include <mproc.h>

#include "../../cli/cli.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Undo cli_shell_quote: bare text, '...' and \' pieces. 0 when s is not of that form. */
static int unquote(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = s; *p;) {
        if (*p == '\'') {
            const char *e = strchr(p + 1, '\'');
            if (!e)
                return 0;
            for (const char *q = p + 1; q < e; q++) {
                if (o + 1 >= cap)
                    return 0;
                out[o++] = *q;
            }
            p = e + 1;
        } else if (*p == '\\' && p[1]) {
            if (o + 1 >= cap)
                return 0;
            out[o++] = p[1];
            p += 2;
        } else {
            if (o + 1 >= cap)
                return 0;
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return 1;
}

static void check_quote(const char *arg)
{
    char *b = NULL;
    size_t l = 0, c = 0;
    if (cli_shell_quote(&b, &l, &c, arg) < 0)
        return;
    size_t cap = l + 2;
    char *back = malloc(cap);
    if (back) {
        if (!unquote(b, back, cap) || strcmp(back, arg) != 0) {
            fprintf(stderr, "fuzz_cli: quoting [%s] gave [%s]\n", arg, b);
            abort();
        }
        free(back);
    }
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    cli_quiet = 1;
    /* Words: the NUL-separated pieces (a final piece without NUL counts). */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t nw = 1;
    for (size_t i = 0; i < size; i++)
        nw += text[i] == '\0';
    char **argv = calloc(nw + 2, sizeof *argv);
    if (!argv) {
        free(text);
        return 0;
    }
    int argc = 0;
    argv[argc++] = "run";
    for (size_t i = 0, start = 0; i <= size; i++) {
        if (i == size || text[i] == '\0') {
            if (!(i == size && start == size && size > 0 && text[size - 1] == '\0'))
                argv[argc++] = text + start;
            start = i + 1;
        }
    }
    argv[argc] = NULL;

    cli_run_opts o;
    int rc = cli_run_parse(&o, argc, argv);
    if (rc == 0) {
        assert(o.jobs >= 1);
        assert(o.retries >= 1);
        size_t nsrc = o.nsrc ? o.nsrc : 1;
        cli_template *t = NULL;
        if (cli_template_new(&t, o.cmd, o.ncmd, nsrc) == 0) {
            cli_tuple *a = malloc(sizeof *a + nsrc * sizeof(char *));
            if (a) {
                a->n = nsrc;
                for (size_t k = 0; k < nsrc; k++) {
                    const cli_source *s = k < o.nsrc ? &o.src[k] : NULL;
                    a->v[k] = s && s->kind == CLI_SRC_LIST && s->n ? s->items[0]
                                                                   : "dir/sub.d/file name.tar.gz";
                    check_quote(a->v[k]);
                }
                char *line = cli_template_shell(t, a, 7, 2);
                if (line)
                    free(line);
                char **dargv = NULL;
                if (cli_template_direct(t, a, 7, 2, &dargv) == 0 && dargv) {
                    assert(dargv[0] != NULL);
                    size_t n = 0;
                    while (dargv[n])
                        n++;
                    assert(n >= 1);
                    free(dargv);
                }
                free(a);
            }
            cli_template_free(t);
        }
        cli_run_opts_release(&o);
    }
    free(argv);
    free(text);
    return 0;
}
