/* cli/main.c - the mproc command: dispatch to subcommands, usage, version, `mproc cpus`.
 *
 * DESIGN: main() only recognises the global options (--help, --version) and the
 * subcommand; each subcommand parses its own options. Every error of the command
 * itself is one line "mproc: ..." on stderr followed by the usage, and exit status
 * 255, so that it never collides with a job-failure count (1-101). Nothing here
 * starts a process; `mproc run` is cli_run() in run.c, the usage texts are in usage.c.
 */
#include <mproc.h>

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef MPROC_CLI_VERSION
#define MPROC_CLI_VERSION "0.1.0"
#endif

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

/* What the caller may have left us in a state we cannot work in. Returns 0, or -1
 * when even /dev/null cannot be opened (printed, if stderr is still there). */
static int sane_start(void)
{
    /* fds 0-2 closed by the caller: the next open() (a joblog, a spool file) would
       take one of them, and the jobs' output or ours would land in it. Hold each with
       /dev/null first (open gives the lowest free number). */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n < 0) {
            perror("mproc: /dev/null");
            return -1;
        }
        if (n != fd) { /* cannot happen: fd was the lowest free one */
            close(n);
            return -1;
        }
    }
    /* SIGCHLD ignored (inherited across exec) makes the kernel reap our children
       itself, so their statuses are lost; a blocked signal we rely on would never
       arrive. Dispositions of the terminal's signals are handled in run.c. */
    signal(SIGCHLD, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    int need[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGPIPE};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        sigaddset(&set, need[i]);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (sane_start() < 0)
        return CLI_EXIT_ERROR;
    if (argc < 2)
        return cli_usage_error(NULL, "no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        cli_main_usage(stdout);
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
    if (strcmp(cmd, "make") == 0)
        return cmd_make(argc - 1, argv + 1);
    if (cmd[0] == '-')
        return cli_usage_error(NULL, "unknown option '%s'", cmd);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
