/* cli/args.c - the command line of `mproc run`: options, command words, argument sources.
 *
 * DESIGN: GNU parallel's shape. Options come first; the first word that is not an
 * option starts the command, and every word up to the first ":::" or "::::" belongs
 * to it (so the command's own options, like `grep -v`, are never taken for ours).
 * ":::" opens a source of literal arguments, "::::" a source of files (one argument
 * per line, "-" is standard input); several sources combine as a cartesian product
 * (input.c). Nothing here reads a file or starts a process: a syntax error is found
 * before any job runs, reported in one line with the usage, and gives exit 255.
 */
#include <mproc.h>

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The most job slots -j 0 gives: each running job holds up to five descriptors (pidfd,
 * stdout and stderr pipes, and a spool file for each past 64 KiB of output), and we
 * keep some for ourselves. */
static long most_slots(void)
{
    struct rlimit rl;
    long most = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long byfd = ((long)rl.rlim_cur - 32) / 5;
        if (byfd < most)
            most = byfd;
    }
    return most < 1 ? 1 : most;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_jobs(const char *s, long usable, long most, long *out)
{
    if (!s || !*s)
        return -1;
    size_t n = strlen(s);
    long v;
    if (s[n - 1] == '%') {
        char tmp[32];
        if (n - 1 == 0 || n - 1 >= sizeof tmp)
            return -1;
        memcpy(tmp, s, n - 1);
        tmp[n - 1] = '\0';
        if (parse_long(tmp, 0, 1000000, &v) < 0)
            return -1;
        v = usable * v / 100;
    } else if (s[0] == '+' || s[0] == '-') {
        if (parse_long(s + 1, 0, 1000000, &v) < 0)
            return -1;
        v = s[0] == '+' ? usable + v : usable - v;
    } else {
        if (parse_long(s, 0, 1000000, &v) < 0)
            return -1;
        if (v == 0)
            v = most;
    }
    if (v < 1)
        v = 1;
    if (v > most)
        v = most;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= 0) || isinf(v))
        return -1;
    *out = v;
    return 0;
}

static int add_source(cli_run_opts *o, cli_source s)
{
    cli_source *ns = realloc(o->src, (o->nsrc + 1) * sizeof *ns);
    if (!ns)
        return -1;
    o->src = ns;
    o->src[o->nsrc++] = s;
    return 0;
}

void cli_run_opts_release(cli_run_opts *o)
{
    if (!o)
        return;
    free(o->src);
    o->src = NULL;
    o->nsrc = 0;
}

static int is_sep(const char *w)
{
    return strcmp(w, ":::") == 0 || strcmp(w, "::::") == 0;
}

/* The value of an option that takes one: "--opt=V", "--opt V", "-jV", "-j V".
 * *i is advanced past a separate value. NULL when missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *attached)
{
    if (attached)
        return attached;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int cli_run_parse(cli_run_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->delim = '\n';
    o->retries = 1;
    o->argc = argc;
    o->argv = argv;
    const char *jobs_spec = NULL;
    int i = 1;
    int rc = CLI_EXIT_ERROR;

    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0' || is_sep(a))
            break;
        if (a[1] == '-') {
            /* Long option, possibly --name=value. */
            char name[64];
            const char *eq = strchr(a, '=');
            size_t nl = eq ? (size_t)(eq - a) : strlen(a);
            if (nl >= sizeof name) {
                rc = cli_usage_error("run", "run: unknown option '%s'", a);
                goto fail;
            }
            memcpy(name, a, nl);
            name[nl] = '\0';
            const char *att = eq ? eq + 1 : NULL;
            const char *v = NULL;
            int flag = 1; /* takes no value */
            if (strcmp(name, "--help") == 0) {
                cli_run_usage(stdout);
                cli_run_opts_release(o);
                return 1;
            } else if (strcmp(name, "--keep-order") == 0) {
                o->keep_order = 1;
            } else if (strcmp(name, "--null") == 0) {
                o->delim = '\0';
            } else if (strcmp(name, "--tag") == 0) {
                o->tag = 1;
            } else if (strcmp(name, "--dry-run") == 0) {
                o->dry_run = 1;
            } else if (strcmp(name, "--line-buffer") == 0 || strcmp(name, "--lb") == 0) {
                o->output = CLI_OUT_LINE;
            } else if (strcmp(name, "--ungroup") == 0) {
                o->output = CLI_OUT_UNGROUP;
            } else if (strcmp(name, "--bar") == 0) {
                o->progress = CLI_PROGRESS_BAR;
            } else if (strcmp(name, "--eta") == 0) {
                if (o->progress != CLI_PROGRESS_BAR)
                    o->progress = CLI_PROGRESS_ETA;
            } else if (strcmp(name, "--resume") == 0) {
                if (o->resume == 0)
                    o->resume = 1;
            } else if (strcmp(name, "--resume-failed") == 0) {
                o->resume = 2;
            } else if (strcmp(name, "--group") == 0) {
                o->output = CLI_OUT_GROUP;
            } else if (strcmp(name, "--slurm") == 0) {
                o->slurm = 1;
            } else {
                flag = 0;
                v = opt_value(argc, argv, &i, att);
                if (!v && (strcmp(name, "--jobs") == 0 || strcmp(name, "--joblog") == 0 ||
                           strcmp(name, "--timeout") == 0 || strcmp(name, "--retries") == 0 ||
                           strcmp(name, "--halt") == 0 || strcmp(name, "--arg-file") == 0 ||
                           strncmp(name, "--slurm-", 8) == 0 || strcmp(name, "--salloc") == 0)) {
                    rc = cli_usage_error("run", "run: option '%s' needs a value", name);
                    goto fail;
                }
                if (strcmp(name, "--jobs") == 0) {
                    jobs_spec = v;
                } else if (strcmp(name, "--joblog") == 0) {
                    if (!*v) {
                        rc = cli_usage_error("run", "run: --joblog needs a file name");
                        goto fail;
                    }
                    o->joblog = v;
                } else if (strcmp(name, "--timeout") == 0) {
                    if (parse_seconds(v, &o->timeout) < 0) {
                        rc = cli_usage_error("run", "run: bad --timeout '%s'", v);
                        goto fail;
                    }
                } else if (strcmp(name, "--retries") == 0) {
                    long n;
                    if (parse_long(v, 0, 1000000, &n) < 0) {
                        rc = cli_usage_error("run", "run: bad --retries '%s'", v);
                        goto fail;
                    }
                    o->retries = n < 1 ? 1 : (int)n;
                } else if (strcmp(name, "--halt") == 0) {
                    if (cli_halt_parse(v, &o->halt) < 0) {
                        rc = cli_usage_error("run", "run: bad --halt '%s'", v);
                        goto fail;
                    }
                } else if (strcmp(name, "--arg-file") == 0) {
                    if (add_source(o, (cli_source){.kind = CLI_SRC_FILE, .path = v}) < 0)
                        goto nomem;
                } else if (strcmp(name, "--slurm-cpus") == 0) {
                    if (parse_long(v, 1, 100000, &o->slurm_res.cpus) < 0) {
                        rc = cli_usage_error("run", "run: bad --slurm-cpus '%s'", v);
                        goto fail;
                    }
                    o->slurm = 1;
                } else if (strcmp(name, "--slurm-mem") == 0) {
                    if (!cli_slurm_mem_ok(v)) {
                        rc = cli_usage_error("run", "run: bad --slurm-mem '%s' (e.g. 500M, 4G)", v);
                        goto fail;
                    }
                    o->slurm_res.mem = v;
                    o->slurm = 1;
                } else if (strcmp(name, "--slurm-time") == 0) {
                    if (!cli_slurm_time_ok(v)) {
                        rc = cli_usage_error("run", "run: bad --slurm-time '%s' (e.g. 30, 1:00:00)",
                                             v);
                        goto fail;
                    }
                    o->slurm_res.time = v;
                    o->slurm = 1;
                } else if (strcmp(name, "--salloc") == 0) {
                    o->salloc = v;
                    o->slurm = 1;
                } else {
                    rc = cli_usage_error("run", "run: unknown option '%s'", name);
                    goto fail;
                }
            }
            if (flag && att) {
                rc = cli_usage_error("run", "run: option '%s' takes no value", name);
                goto fail;
            }
            continue;
        }
        /* A cluster of short options: -k0, -j4, -kj 4. */
        for (const char *p = a + 1; *p; p++) {
            char c = *p;
            if (c == 'k') {
                o->keep_order = 1;
            } else if (c == '0') {
                o->delim = '\0';
            } else if (c == 'u') {
                o->output = CLI_OUT_UNGROUP;
            } else if (c == 'h') {
                cli_run_usage(stdout);
                cli_run_opts_release(o);
                return 1;
            } else if (c == 'j' || c == 'a') {
                const char *v = opt_value(argc, argv, &i, p[1] ? p + 1 : NULL);
                if (!v) {
                    rc = cli_usage_error("run", "run: option '-%c' needs a value", c);
                    goto fail;
                }
                if (c == 'j') {
                    jobs_spec = v;
                } else if (add_source(o, (cli_source){.kind = CLI_SRC_FILE, .path = v}) < 0) {
                    goto nomem;
                }
                break;
            } else {
                rc = cli_usage_error("run", "run: unknown option '-%c'", c);
                goto fail;
            }
        }
    }

    /* The command: words up to the first source separator. */
    o->cmd = argv + i;
    while (i < argc && !is_sep(argv[i]))
        i++;
    o->ncmd = (size_t)(argv + i - o->cmd);

    /* The sources. */
    while (i < argc) {
        int files = strcmp(argv[i], "::::") == 0;
        i++;
        int start = i;
        while (i < argc && !is_sep(argv[i]))
            i++;
        if (files) {
            if (i == start) {
                rc = cli_usage_error("run", "run: '::::' needs a file name");
                goto fail;
            }
            for (int k = start; k < i; k++)
                if (add_source(o, (cli_source){.kind = CLI_SRC_FILE, .path = argv[k]}) < 0)
                    goto nomem;
        } else {
            cli_source s = {.kind = CLI_SRC_LIST, .items = argv + start, .n = (size_t)(i - start)};
            if (add_source(o, s) < 0)
                goto nomem;
        }
    }

    if (o->resume && !o->joblog) {
        rc = cli_usage_error("run", "run: --resume and --resume-failed need --joblog");
        goto fail;
    }

    long most = most_slots();
    if (jobs_spec) {
        long usable = 1;
        int needs_cpus = strchr(jobs_spec, '%') || jobs_spec[0] == '+' || jobs_spec[0] == '-';
        if (needs_cpus)
            usable = o->slurm ? cli_slurm_cpus() : mproc_cpu_usable();
        long asked;
        if (cli_parse_jobs(jobs_spec, usable, most, &o->jobs) < 0 ||
            cli_parse_jobs(jobs_spec, usable, 1000000, &asked) < 0) {
            rc = cli_usage_error("run", "run: bad --jobs '%s'", jobs_spec);
            goto fail;
        }
        if (asked > o->jobs && strcmp(jobs_spec, "0") != 0)
            cli_error("warning: only enough file descriptors to run %ld jobs at once, not %ld "
                      "(raise the limit: ulimit -n)",
                      o->jobs, asked);
    } else {
        o->jobs = o->slurm ? cli_slurm_slots(&o->slurm_res) : mproc_cpu_usable();
        if (o->jobs < 1)
            o->jobs = 1;
        if (o->jobs > most)
            o->jobs = most;
    }
    return 0;

nomem:
    cli_error("out of memory");
    rc = CLI_EXIT_ERROR;
fail:
    cli_run_opts_release(o);
    return rc;
}
