#!/usr/bin/env bash
# bench/slurm.sh MPROC - the slurm group's figures (run by bench/slurm.c, from bench/).
#   slurm.step  jobs/s of `true` as job steps, 2 at a time, inside one allocation of 2 CPUs
#               on a one-node Slurm started here (tests/sh/lib/slurm.bash):
#               mproc: `mproc run --slurm -j2 true ::: 1..N`;
#               srun: a shell loop of `srun --exact -N1 -n1 true`, two at a time;
#               parallel: `parallel -j2 srun --exact -N1 -n1 true ::: 1..N` (GNU parallel).
# Exits 77 (the group is skipped, with a note) where Slurm cannot be started.
set -uo pipefail
M=$1
name=bench-slurm
. ../tests/sh/lib/slurm.bash
trap slurm_stop EXIT
n=$(awk -v s="${BENCH_SCALE:-1}" 'BEGIN { v = int(100 * s); print (v < 10 ? 10 : v) }')
slurm_start >&2
export M n
salloc -Q -n2 bash -c '
now() { date +%s.%N; }
rate() { awk -v n="$n" -v a="$1" -v b="$2" "BEGIN { printf \"%.6g\", n / (b - a) }"; }
srun --exact -N1 -n1 true # warm-up: the first step of an allocation costs more
t0=$(now)
"$M" run --slurm -j2 true ::: $(seq "$n") || exit 1
t1=$(now)
echo "slurm.step mproc $(rate "$t0" "$t1") jobs/s"
t0=$(now)
for ((i = 0; i < n; i += 2)); do
    srun --exact -N1 -n1 true &
    srun --exact -N1 -n1 true &
    wait
done
t1=$(now)
echo "slurm.step srun $(rate "$t0" "$t1") jobs/s"
if command -v parallel >/dev/null; then
    t0=$(now)
    parallel --will-cite -j2 srun --exact -N1 -n1 true ::: $(seq "$n") || exit 1
    t1=$(now)
    echo "slurm.step parallel $(rate "$t0" "$t1") jobs/s"
fi
'
