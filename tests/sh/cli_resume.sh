#!/usr/bin/env bash
# `mproc run --joblog F --resume / --resume-failed`, as GNU parallel: skip the jobs the
# log has (by Seq) / rerun those logged with a failure. A `kill -9` of mproc mid-run
# never leaves a torn log line, and a resume after it logs every job exactly once.
source "$(dirname "$0")/lib/cli.bash"
tmp=$(mktemp -d)
mark="mproc_cli_resume_$$_$RANDOM"
trap 'pkill -KILL -f "$mark" 2>/dev/null; rm -rf "$tmp"' EXIT
cols() { awk -F'\t' 'NR > 1 {print $1, $7}' "$1" | xargs; }

# ---- the options -------------------------------------------------------------------------
expect_eq "--resume without --joblog" 255 "$(status "$M" run --resume true ::: 1)"
expect_eq "--resume-failed without --joblog" 255 "$(status "$M" run --resume-failed true ::: 1)"
"$M" run --help | grep -q -- "--resume-failed" || fail "--help lacks --resume-failed"

# ---- the same scenario with mproc and (where installed) GNU parallel ----------------------
scenario() { # RUNNER... : prints what ran on each step, then the log's "seq exit" pairs
    local log="$tmp/log.$1"
    shift
    rm -f "$log"
    "$@" -j1 --joblog "$log" 'exit $(( {} % 3 == 0 ))' ::: 1 2 3 4 5 6
    echo "step1 $?"
    "$@" -j1 --joblog "$log" --resume-failed 'echo ran {}; exit 0' ::: 1 2 3 4 5 6 7
    echo "step2 $?"
    "$@" -j1 --joblog "$log" --resume 'echo ran {}' ::: 1 2 3 4 5 6 7 8
    echo "step3 $?"
    "$@" -j1 --joblog "$log" --resume 'echo ran {}' ::: 1 2 3 4 5 6 7 8
    echo "step4 $?"
    echo "log: $(cols "$log")"
    echo "header: $(grep -c '^Seq' "$log")"
}
got=$(scenario m "$M" run)
want="step1 2
ran 3
ran 6
ran 7
step2 0
ran 8
step3 0
step4 0
log: 1 0 2 0 3 1 4 0 5 0 6 1 3 0 6 0 7 0 8 0
header: 1"
expect_eq "resume scenario" "$want" "$got"
if command -v parallel >/dev/null; then
    expect_eq "resume scenario as GNU parallel" "$(scenario p parallel --will-cite)" "$got"
fi
# A missing log with --resume: everything runs, the log is created with its header.
expect_eq "resume, no log yet" "a b" "$("$M" run -k --joblog "$tmp/new" --resume echo ::: a b | xargs)"
expect_eq "resume, no log yet: header" 1 "$(grep -c '^Seq' "$tmp/new")"
# --resume-failed reruns a job killed by a signal too.
rm -f "$tmp/sig"
"$M" run --joblog "$tmp/sig" 'kill -9 $$; : {}' ::: 1 >/dev/null 2>&1
expect_eq "resume-failed after a signal" "x" "$("$M" run --joblog "$tmp/sig" --resume-failed 'echo x; : {}' ::: 1)"
# A log ending in a torn line (not ours) is ended before we append.
printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n1\t:\t1.000\t0.1\t0\t0\t0\t0\ttrue\n2\t:\t1.0' >"$tmp/torn"
"$M" run --joblog "$tmp/torn" --resume true ::: 1 2
expect_eq "torn foreign line" "1 0 2 2 0" "$(awk -F'\t' 'NR > 1 {print $1, $7}' "$tmp/torn" | xargs)"

# ---- kill -9 of mproc mid-run, then resume: every job logged exactly once ------------------
log="$tmp/kill.log"
seq 30 >"$tmp/in"
"$M" run -j4 --joblog "$log" "sleep 0.2; : $mark {}" :::: "$tmp/in" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do
    [ "$(($(wc -l 2>/dev/null <"$log" || echo 0)))" -ge 9 ] && break
    sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
n1=$(($(wc -l <"$log") - 1))
[ "$n1" -ge 8 ] && [ "$n1" -lt 30 ] || fail "kill -9 came at the wrong time: $n1 jobs logged"
# The jobs that ran on are orphans now; let them end (they are not logged: they rerun).
for _ in $(seq 40); do pgrep -f "$mark" >/dev/null || break; sleep 0.1; done
"$M" run -j4 --joblog "$log" --resume "sleep 0.01; : $mark {}" :::: "$tmp/in" >/dev/null
expect_eq "resume after kill -9: status" 0 $?
bad=$(awk -F'\t' 'NR > 1 && !(NF == 9 && $7 == 0 && $8 == 0 && $9 ~ /^sleep /)' "$log")
expect_eq "no torn or failed line" "" "$bad"
expect_eq "every job logged exactly once" "$(seq 30 | xargs)" "$(awk -F'\t' 'NR > 1 {print $1}' "$log" | sort -n | xargs)"
expect_eq "one header" 1 "$(grep -c '^Seq' "$log")"

finish
