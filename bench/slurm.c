/* bench/slurm.c - the slurm group: `mproc run --slurm` on a one-node Slurm of its own.
 *
 * Usage: slurm [--rep]. The figures are measured by bench/slurm.sh (Slurm is started and
 * driven by its commands, which a shell does best); this program finds the mproc command
 * (<this program's dir>/../cli/mproc, or $MPROC_CLI) and runs the script with it, from
 * bench/ (bench/run's working directory). The script exits 77 where Slurm cannot be
 * started: bench/run then skips the group with a note.
 */
#include "bench.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char mproc[4096];
    bench_mproc_cli(mproc, sizeof mproc);
    fflush(NULL);
    execl("/bin/bash", "bash", "./slurm.sh", mproc, (char *)NULL);
    bench_die("cannot run bench/slurm.sh: %s", strerror(errno));
}
