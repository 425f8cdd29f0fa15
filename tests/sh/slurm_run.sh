#!/usr/bin/env bash
# mproc run --slurm on a one-node Slurm of our own (lib/slurm.bash): each job a step of
# the allocation, with the same output, joblog and exit statuses as without Slurm, the
# node in the joblog's Host column; a time limit or SIGTERM to mproc leaves no step.
. "$(dirname "$0")/lib/cli.bash"
. "$(dirname "$0")/lib/slurm.bash"
work=$(mktemp -d /tmp/mproc-test-slurm-run-XXXXXX)
trap 'slurm_stop; rm -rf "$work"' EXIT
cd "$work" || exit 1

# outside an allocation: a clear error before anything runs (no Slurm needed to say so)
out=$(env -u SLURM_JOB_ID "$M" run --slurm echo ::: a 2>&1); rc=$?
expect_eq "no allocation: status" 255 "$rc"
grep -q "salloc" <<<"$out" || fail "no allocation: the message says how to get one: $out"

slurm_start
host=$(hostname -s)
export M work
# inside: `salloc -n2 bash -c SCRIPT`, the script's output back here
in_alloc() { salloc -Q -n2 bash -c "$1" 2>&1; }
# in an allocation: wait (10 s at most) until N steps run / none is left (Slurm ends a step
# asynchronously)
steps_up() { for _ in $(seq 100); do [ "$(squeue -h -s -j "$SLURM_JOB_ID" | wc -l)" -ge "$1" ] && break; sleep 0.1; done; }
steps_gone() { for _ in $(seq 100); do [ -z "$(squeue -h -s -j "$SLURM_JOB_ID")" ] && break; sleep 0.1; done; }
export -f steps_up steps_gone

# 200 jobs through Slurm equal the same without it
in_alloc '
    cd "$work"
    "$M" run --slurm -k --joblog s.log "echo out {}; echo err {} >&2" ::: $(seq 200) >s.out 2>s.err
    echo $? >s.rc
    "$M" run -k --joblog p.log "echo out {}; echo err {} >&2" ::: $(seq 200) >p.out 2>p.err
'
expect_eq "200 jobs: status" 0 "$(cat s.rc)"
expect_eq "200 jobs: stdout" "$(cat p.out)" "$(cat s.out)"
expect_eq "200 jobs: stderr" "$(cat p.err)" "$(cat s.err)"
cols() { tail -n +2 "$1" | cut -f1,5-9 | sort -n; }
expect_eq "200 jobs: joblog" "$(cols p.log)" "$(cols s.log)"
expect_eq "200 jobs: Host" "$host" "$(tail -n +2 s.log | cut -f2 | sort -u)"

# exit statuses and signals, as without Slurm
in_alloc '
    cd "$work"
    "$M" run --slurm -j1 -k --joblog s2.log "{}" ::: "exit 3" "kill -KILL \$\$" "kill -TERM \$\$" "true" >/dev/null 2>&1
    echo $? >s2.rc
    "$M" run -j1 -k --joblog p2.log "{}" ::: "exit 3" "kill -KILL \$\$" "kill -TERM \$\$" "true" >/dev/null 2>&1
    echo $? >p2.rc
'
expect_eq "failures: status" "$(cat p2.rc)" "$(cat s2.rc)"
expect_eq "failures: joblog" "$(cols p2.log)" "$(cols s2.log)"

# --timeout ends the step; SIGTERM to mproc ends every step; nothing left in the allocation
in_alloc '
    cd "$work"
    "$M" run --slurm --timeout 1 "sleep 30; echo late" ::: 1 >t.out 2>&1
    echo $? >t.rc
    sleep 1
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >t.steps
    "$M" run --slurm "sleep 30; echo late" ::: 1 2 >k.out 2>&1 &
    pid=$!
    steps_up 2
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >k.before
    kill -TERM $pid
    wait $pid
    echo $? >k.rc
    steps_gone
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >k.steps
'
expect_eq "timeout: status" 1 "$(cat t.rc)"
grep -q late t.out && fail "timeout: the job was not ended"
expect_eq "timeout: no step left" "" "$(cat t.steps)"
expect_eq "SIGTERM: steps were running" 2 "$(wc -l <k.before)"
expect_eq "SIGTERM: status" 143 "$(cat k.rc)"
expect_eq "SIGTERM: no step left" "" "$(cat k.steps)"
# SIGINT (Ctrl-C) too: srun would only print its status on one; mproc sends it SIGTERM
in_alloc '
    cd "$work"
    set -m # a background job of a script would otherwise start with SIGINT ignored
    "$M" run --slurm "sleep 30; echo late" ::: 1 2 >i.out 2>&1 &
    pid=$!
    steps_up 2
    kill -INT $pid
    wait $pid
    echo $? >i.rc
    steps_gone
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >i.steps
'
expect_eq "SIGINT: status" 130 "$(cat i.rc)"
expect_eq "SIGINT: no step left" "" "$(cat i.steps)"

# --halt now,fail=1 ends the running steps
in_alloc '
    cd "$work"
    "$M" run --slurm -j2 --halt now,fail=1 "{}" ::: "sleep 30; echo late" "sleep 0.5; exit 4" >h.out 2>&1
    echo $? >h.rc
    sleep 1
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >h.steps
'
expect_eq "halt now: status" 4 "$(cat h.rc)"
grep -q late h.out && fail "halt now: the other job was not ended"
expect_eq "halt now: no step left" "" "$(cat h.steps)"

# what each step asks for: CPUs (and -j follows: 2 CPUs, 2 per step, 1 at a time) and time
in_alloc '
    cd "$work"
    "$M" run -k --slurm-cpus 2 --slurm-mem 10M --slurm-time 7 --joblog res.log \
        "echo {} \$SLURM_CPUS_PER_TASK \$(squeue -h -s --steps=\$SLURM_JOB_ID.\$SLURM_STEP_ID -o %l)" \
        ::: a b >res.out 2>&1
    echo $? >res.rc
'
expect_eq "resources: status" 0 "$(cat res.rc)"
expect_eq "resources: what the steps got" "a 2 7:00
b 2 7:00" "$(cat res.out)"
# -j from the allocation: 2 CPUs, 2 per step: one at a time (a second would find busy/)
in_alloc '
    cd "$work"
    "$M" run --slurm-cpus 2 "mkdir busy || echo overlap; sleep 0.5; rmdir busy # {}" ::: 1 2 3 >one.out 2>&1
'
expect_eq "resources: one step at a time" "" "$(cat one.out)"
expect_eq "bad --slurm-mem" 255 "$(status "$M" run --slurm-mem 12Q true ::: 1)"
expect_eq "bad --slurm-time" 255 "$(status "$M" run --slurm-time soon true ::: 1)"
# outside an allocation, --salloc asks for one
out=$(env -u SLURM_JOB_ID "$M" run --salloc "-Q -n2" -k 'echo {} $SLURM_JOB_ID' ::: x y 2>&1)
expect_eq "salloc: status" 0 "$?"
[ "$(awk '{print $2}' <<<"$out" | sort -u | wc -l)" = 1 ] && grep -q "^x [0-9]" <<<"$out" ||
    fail "salloc: both jobs in one new allocation: $out"

# the whole allocation cancelled half-way: what did not complete is not logged, and
# --resume in a new allocation runs exactly that
jobs6='echo start {}; sleep 1.5; echo done {}'
salloc -Q -n2 "$M" run --slurm --joblog r.log "$jobs6" ::: 1 2 3 4 5 6 >r1.out 2>r1.err &
spid=$!
for _ in $(seq 100); do [ "$(grep -c done r1.out 2>/dev/null)" -ge 2 ] && break; sleep 0.1; done
sleep 0.3
scancel "$(squeue -h -o %i | head -1)"
wait $spid
logged=$(tail -n +2 r.log | wc -l)
expect_eq "cancelled: only completed jobs logged" "$(grep -c '^done' r1.out)" "$logged"
[ "$logged" -ge 2 ] && [ "$logged" -lt 6 ] || fail "cancelled: $logged jobs logged"
expect_eq "cancelled: every logged job succeeded" "" "$(tail -n +2 r.log | awk -F'\t' '$7 != 0 || $8 != 0')"
salloc -Q -n2 "$M" run --slurm --resume --joblog r.log "$jobs6" ::: 1 2 3 4 5 6 >r2.out 2>r2.err
expect_eq "resume: status" 0 "$?"
expect_eq "resume: each job done once in all" "$(seq 6)" \
    "$(cat r1.out r2.out | sed -n 's/^done //p' | sort -n)"
expect_eq "resume: all logged" 6 "$(tail -n +2 r.log | wc -l)"

# mproc make --slurm: 100 jobs (10 chains of 10) as steps; the allocation cancelled
# half-way; run again: only what had not completed runs (at most the 2 in flight again)
mkdir mk && cd mk || exit 1
for i in $(seq 0 99); do
    printf 'j%d: %s\n    out: o%d\n    run: echo j%d >> runs.log; sleep 0.1; echo %d > o%d\n' \
        "$i" "$([ "$i" -ge 10 ] && echo "j$((i - 10))")" "$i" "$i" "$i" "$i"
done >Jobfile
salloc -Q -n2 "$M" make --slurm >m1.out 2>&1 &
spid=$!
for _ in $(seq 300); do [ "$(cat runs.log 2>/dev/null | wc -l)" -ge 40 ] && break; sleep 0.1; done
scancel "$(squeue -h -o %i | head -1)"
wait $spid
before=$(sort -u runs.log | wc -l)
[ "$before" -ge 40 ] && [ "$before" -lt 100 ] || fail "make: cancelled after $before jobs"
out=$(salloc -Q -n2 "$M" make --slurm 2>&1)
expect_eq "make: resumed" 0 "$?"
for i in $(seq 0 99); do [ "$(cat "o$i" 2>/dev/null)" = "$i" ] || fail "make: o$i"; done
ran=$(wc -l <runs.log)
[ "$ran" -le $((100 + 2)) ] || fail "make: $ran runs for 100 jobs (at most 2 again)"
expect_eq "make: all done" "100 jobs: 100 done, 0 failed, 0 blocked, 0 todo" "$("$M" make --stats)"
expect_eq "make: no allocation" 255 "$(status env -u SLURM_JOB_ID "$M" make --slurm)"
# SIGTERM to mproc make (which does not catch it): its guard ends the srun of each job,
# which cancels the step: nothing left in the allocation (within 10 s: Slurm ends a step
# asynchronously)
printf 'a:\n    run: sleep 60\nb:\n    run: sleep 60\n' >J5
in_alloc '
    "$M" make --slurm -f J5 >/dev/null 2>&1 &
    pid=$!
    steps_up 2
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >mt.before
    kill -TERM $pid
    wait $pid
    steps_gone
    squeue -h -s -j "$SLURM_JOB_ID" -o %i >mt.steps
'
expect_eq "make SIGTERM: steps were running" 2 "$(wc -l <mt.before)"
expect_eq "make SIGTERM: no step left" "" "$(cat mt.steps)"
# resources per job in the jobs file (cpus:, mem:, time:), and bad ones refused
printf 'two:\n    cpus: 2\n    run: echo cpus=$SLURM_CPUS_PER_TASK\none:\n    run: echo cpus=$SLURM_CPUS_PER_TASK\n' \
    >J2
expect_eq "make: per-job cpus" "cpus=2
cpus=" "$(salloc -Q -n2 "$M" make --slurm -j1 -f J2 --joblog j2.log 2>&1)"
expect_eq "make: Host" "$host" "$(tail -n +2 j2.log | cut -f2 | sort -u)"
printf 'x:\n    mem: lots\n    run: true\n' >J3
expect_eq "make: bad mem" "mproc: J3:2:10: expected a size after 'mem:' (e.g. 500M, 4G)" \
    "$("$M" make --slurm -n -f J3 2>&1)"
cd .. || exit 1

# Slurm's own time limit (it acts within about a minute and a half): the job fails, with
# Slurm's reason in its output, under mproc run and mproc make at once
printf 'slow:\n    time: 1\n    run: sleep 300; echo late\n' >mk/J4
in_alloc '
    cd "$work"
    "$M" run --slurm-time 1 --joblog tl.log "sleep 300; echo late" ::: 1 >tl.out 2>&1 &
    (cd mk && "$M" make --slurm -f J4 >../tm.out 2>&1; echo $? >../tm.rc) &
    wait
'
grep -q "DUE TO TIME LIMIT" tl.out || fail "time limit: Slurm's reason: $(cat tl.out)"
grep -q late tl.out && fail "time limit: the job ran on"
expect_eq "time limit: logged as killed" "0	15" "$(tail -n +2 tl.log | cut -f7,8)"
expect_eq "time limit: make" 1 "$(cat tm.rc)"
grep -q "DUE TO TIME LIMIT" tm.out || fail "time limit: make: $(cat tm.out)"
finish
