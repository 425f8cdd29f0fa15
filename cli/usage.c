/* cli/usage.c - the usage texts and the error lines of the mproc command.
 *
 * DESIGN: every error of the command itself is one line "mproc: ..." on stderr,
 * followed by the usage where the user got the syntax wrong. Kept apart from main()
 * so that the option parser (args.c) and the template expander (template.c) link into
 * the fuzz target (tests/fuzz/) without a main() of their own; cli_quiet silences
 * these texts there. Nothing here starts a process or waits.
 */
#include <mproc.h>

#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_quiet;

static const char usage_main[] =
    "usage: mproc [--help] [--version] <command> [<args>]\n"
    "\n"
    "commands:\n"
    "  run    run shell jobs in parallel (see: mproc run --help)\n"
    "  make   run a jobs file's jobs that are not up to date (see: mproc make --help)\n"
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
    "      --slurm         run each job as a Slurm job step (srun) of the allocation mproc\n"
    "                      runs in (salloc, sbatch); -j defaults to its CPUs\n"
    "      --slurm-cpus N, --slurm-mem SIZE, --slurm-time T  what each step asks for\n"
    "                      (srun --cpus-per-task, --mem, --time); imply --slurm\n"
    "      --salloc OPTS   outside an allocation, ask for one: salloc OPTS mproc run ...\n"
    "  -h, --help          this text\n"
    "\n"
    "Inside make -jN, jobs beyond the first take slots from make's jobserver (MAKEFLAGS).\n"
    "Captured output past 64 KiB per job is held in an unlinked file in $TMPDIR (or /tmp).\n"
    "\n"
    "exit status: the number of failed jobs (1-100), 101 for more, 255 for an error of mproc.\n";

void cli_run_usage(FILE *f)
{
    if (!cli_quiet)
        fputs(usage_run, f);
}

void cli_main_usage(FILE *f)
{
    if (!cli_quiet)
        fputs(usage_main, f);
}

void cli_error(const char *fmt, ...)
{
    if (cli_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("mproc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const char *sub, const char *fmt, ...)
{
    if (cli_quiet)
        return CLI_EXIT_ERROR;
    va_list ap;
    va_start(ap, fmt);
    fputs("mproc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (sub != NULL && strcmp(sub, "make") == 0)
        cli_make_usage(stderr);
    else
        fputs(sub && strcmp(sub, "run") == 0 ? usage_run : usage_main, stderr);
    return CLI_EXIT_ERROR;
}
