/* cli/main.c - the mproc command: dispatch to subcommands, usage, version, `mproc cpus`.
 *
 * DESIGN: main() only recognises the global options (--help, --version) and the
 * subcommand; each subcommand parses its own options. Every error of the command
 * itself is one line "mproc: ..." on stderr followed by the usage, and exit status
 * 255, so that it never collides with a job-failure count (1-101). Nothing here
 * starts a process; `mproc run` is cli_run() in run.c.
 */
#include <mproc.h>

#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef MPROC_CLI_VERSION
#define MPROC_CLI_VERSION "0.1.0"
#endif

static const char usage_main[] =
    "usage: mproc [--help] [--version] <command> [<args>]\n"
    "\n"
    "commands:\n"
    "  run    run shell jobs in parallel (see: mproc run --help)\n"
    "  cpus   print the logical, physical and usable CPU counts [--json]\n";

static const char usage_run[] =
    "usage: mproc run [options] [command [args...]] [::: args... | :::: file...]...\n"
    "\n"
    "Runs the command once for each argument (or tuple of arguments: several\n"
    "::: / :::: sources combine as a cartesian product), at most N at a time.\n"
    "Without ::: or ::::, arguments are read from standard input, one per line.\n"
    "\n"
    "replacement strings (the argument is appended when there is none):\n"
    "  {}  argument        {.}  without extension   {/}  basename\n"
    "  {//} dirname        {/.} basename without extension\n"
    "  {#} job number      {%}  job slot            {N} {N.} {N/} {N//} {N/.}  source N\n"
    "\n"
    "options:\n"
    "  -j, --jobs N        N jobs at once; N% of the usable CPUs; +N, -N; 0: as many as possible\n"
    "                      (default: the usable CPUs)\n"
    "  -a, --arg-file F    read arguments from F (as :::: F)\n"
    "  -0, --null          arguments are separated by NUL, not newline\n"
    "  -k, --keep-order    print the jobs' output in input order\n"
    "      --tag           prefix each output line with the arguments and a tab\n"
    "      --line-buffer   print whole lines as soon as they are complete\n"
    "  -u, --ungroup       do not capture output (lines of jobs may mix)\n"
    "      --joblog F      log each job (GNU parallel's format); +F appends\n"
    "      --resume        skip the jobs the --joblog already has (by job number)\n"
    "      --resume-failed skip those it has with exit 0; rerun the failed ones\n"
    "      --dry-run       print the commands, run nothing\n"
    "      --bar           a progress bar on stderr: done/total, rate, ETA (total \"?\"\n"
    "                      until the input is exhausted)\n"
    "      --eta           the same line without the bar\n"
    "      --timeout S     kill a job (its process group: TERM, then KILL) after S seconds\n"
    "      --retries N     run a failing job up to N times\n"
    "      --halt WHEN,WHY=N  WHEN: now|soon, WHY: fail|success|done, N: count or N%\n"
    "  -h, --help          this text\n"
    "\n"
    "Inside make -jN, jobs beyond the first take slots from make's jobserver (MAKEFLAGS).\n"
    "Captured output past 64 KiB per job is held in an unlinked file in $TMPDIR (or /tmp).\n"
    "\n"
    "exit status: the number of failed jobs (1-100), 101 for more, 255 for an error of mproc.\n";

void cli_run_usage(FILE *f)
{
    fputs(usage_run, f);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mproc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mproc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs(sub && strcmp(sub, "run") == 0 ? usage_run : usage_main, stderr);
    return CLI_EXIT_ERROR;
}

static int cmd_cpus(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs("usage: mproc cpus [--json]\n"
                  "Prints the logical CPUs, the physical cores and the CPUs this process may use\n"
                  "(affinity mask and cgroup CPU quota).\n",
                  stdout);
            return 0;
        } else {
            return cli_usage_error("cpus", "cpus: unknown option '%s'", argv[i]);
        }
    }
    mproc_cpu_counts c;
    int rc = mproc_cpu_counts_get(&c);
    if (rc < 0) {
        cli_error("cpus: %s", mproc_strerror(rc));
        return CLI_EXIT_ERROR;
    }
    if (json)
        printf("{\"logical\": %d, \"physical\": %d, \"usable\": %d}\n", c.logical, c.physical,
               c.usable);
    else
        printf("logical: %d\nphysical: %d\nusable: %d\n", c.logical, c.physical, c.usable);
    if (fflush(stdout) != 0) {
        cli_error("cpus: cannot write the output");
        return CLI_EXIT_ERROR;
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    cli_run_opts o;
    int rc = cli_run_parse(&o, argc, argv);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return rc;
    rc = cli_run(&o);
    cli_run_opts_release(&o);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(NULL, "no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("mproc %s\n", MPROC_CLI_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "cpus") == 0)
        return cmd_cpus(argc - 1, argv + 1);
    if (cmd[0] == '-')
        return cli_usage_error(NULL, "unknown option '%s'", cmd);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
