# tests/sh/lib/slurm.bash - a one-node Slurm of the test's own, for tests/sh/slurm_*.sh.
# Sourced after cli.bash. slurm_start writes nothing outside a temporary directory: munged
# with its key, socket and pid file there, a slurm.conf there (found through SLURM_CONF:
# one node with this machine's CPUs, no accounting, no cgroups, the scheduler without
# delays), slurmctld and slurmd in the foreground of background jobs; the node is idle in
# about a second. Skips (exit 77) when Slurm or munge is not installed or will not start
# here. slurm_stop (on EXIT) stops what it started, by pid, and removes the directory.
slurm_pids=()
slurm_dir=""
slurm_stop() {
    local p
    for p in "${slurm_pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${slurm_pids[@]}"; do wait "$p" 2>/dev/null; done
    slurm_pids=()
    [ -n "$slurm_dir" ] && rm -rf "$slurm_dir"
    slurm_dir=""
}
slurm_skip() {
    echo "$name: $1: Slurm cases skipped"
    [ -n "$slurm_dir" ] && tail -n 5 "$slurm_dir"/log/* 2>/dev/null
    slurm_stop
    exit 77
}
slurm_start() {
    local p
    for p in munged slurmctld slurmd srun salloc squeue scancel sinfo; do
        command -v "$p" >/dev/null || slurm_skip "no $p (install slurm-wlm and munge)"
    done
    slurm_dir=$(mktemp -d /tmp/mproc-test-slurm-XXXXXX)
    chmod 711 "$slurm_dir" # munged wants every directory above its socket searchable
    mkdir -p "$slurm_dir"/{munge,state,spool,log}
    chmod 700 "$slurm_dir/munge"
    head -c 1024 /dev/urandom >"$slurm_dir/munge/munge.key"
    chmod 400 "$slurm_dir/munge/munge.key"
    munged -F --force --key-file="$slurm_dir/munge/munge.key" --socket="$slurm_dir/munge/sock" \
        --pid-file="$slurm_dir/munge/pid" --log-file="$slurm_dir/log/munge.log" \
        --seed-file="$slurm_dir/munge/seed" >"$slurm_dir/log/munged.out" 2>&1 &
    slurm_pids+=($!)
    local host port cpus
    host=$(hostname -s)
    cpus=$(nproc)
    port=$((20000 + RANDOM % 20000))
    cat >"$slurm_dir/slurm.conf" <<CONF
ClusterName=mproctest
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$slurm_dir/munge/sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/ctld.pid
SlurmdPidFile=$slurm_dir/d.pid
SlurmctldLogFile=$slurm_dir/log/ctld.log
SlurmdLogFile=$slurm_dir/log/d.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$slurm_dir/slurm.conf"
    for _ in $(seq 50); do [ -S "$slurm_dir/munge/sock" ] && break; sleep 0.1; done
    [ -S "$slurm_dir/munge/sock" ] || slurm_skip "munged did not start"
    slurmctld -D -i >"$slurm_dir/log/ctld.out" 2>&1 &
    slurm_pids+=($!)
    slurmd -D >"$slurm_dir/log/d.out" 2>&1 &
    slurm_pids+=($!)
    for _ in $(seq 100); do
        sinfo -h -o %t 2>/dev/null | grep -q idle && return 0
        sleep 0.1
    done
    slurm_skip "the node did not come up in 10 s"
}
