#!/usr/bin/env bash
# `mproc run`'s job log, --resume, --halt and output errors against a hostile world, from
# outside: a full disk under the joblog, absurd Seq values, --halt percentages and exit
# statuses side by side with GNU parallel, jobs killed by --halt now, stdout on
# /dev/full, a low fd limit, a missing TMPDIR, a joblog that is /dev/full or a directory.
source "$(dirname "$0")/lib/cli.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_parallel=0
command -v parallel >/dev/null && have_parallel=1

# ---- a full disk under the joblog: reported, exit 255, never a torn line ----------------
if unshare -m true 2>/dev/null; then
    mkdir "$tmp/small"
    long=$(printf 'x%.0s' $(seq 5000))
    unshare -m bash -c '
        mount -t tmpfs -o size=1m none "$1" || exit 77
        "$2" run -j2 --joblog "$1/jl" "true $3 {}" ::: $(seq 300) >/dev/null 2>"$4"
        echo "status $?"
        echo "err $(head -c 300 "$4")"
        echo "lastbyte $(tail -c 1 "$1/jl" | od -An -c | tr -d " ")"
        echo "badlines $(awk -F"\t" "NF != 9" "$1/jl" | wc -l)"
    ' _ "$tmp/small" "$M" "$long" "$tmp/full.err" >"$tmp/full.out" 2>&1
    grep -q "^status 255$" "$tmp/full.out" || fail "full joblog: status: $(cat "$tmp/full.out")"
    grep -q "^err .*joblog.*No space left" "$tmp/full.out" || fail "full joblog: message: $(cat "$tmp/full.out")"
    grep -q '^lastbyte \\n$' "$tmp/full.out" || fail "full joblog: torn last line: $(cat "$tmp/full.out")"
    grep -q "^badlines 0$" "$tmp/full.out" || fail "full joblog: malformed lines: $(cat "$tmp/full.out")"
else
    echo "no private mount namespace: full-disk case skipped"
fi

# ---- --resume with an absurd Seq: memory follows the lines read, not the largest Seq ----
printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n' >"$tmp/absurd"
printf '99999999999\t:\t1.000\t0.001\t0\t0\t0\t0\techo z\n1\t:\t1.000\t0.001\t0\t0\t0\t0\techo a\n' >>"$tmp/absurd"
# run in a memory cgroup of its own (200 MiB) where one can be made: before, this
# cleared a 12 GiB bitmap
out=$(in_memory_cgroup $((200 << 20)) "$M" run -k --resume --joblog "$tmp/absurd" echo {} ::: a b c 2>&1)
st=$?
if [ "$st" -ne 77 ]; then
    expect_eq "absurd Seq: status" 0 "$st"
    expect_eq "absurd Seq: jobs 2 and 3 run" "$(printf 'b\nc')" "$out"
fi

# ---- --halt: percentages of all the jobs, exit statuses: as GNU parallel ----------------
# each case: halt spec, then the job exit codes (run one at a time, in order)
halt_case() {
    local spec=$1
    shift
    local mst pst mout pout
    mout=$("$M" run -j1 -k --halt "$spec" --joblog "$tmp/hm" 'echo {}; exit {}' ::: "$@" 2>/dev/null)
    mst=$?
    expect_eq "halt $spec $*: jobs run" "$(awk 'NR > 1' "$tmp/hm" | wc -l)" "$(echo "$mout" | grep -c .)"
    if [ "$have_parallel" = 1 ]; then
        pout=$(parallel --will-cite -j1 -k --halt "$spec" --joblog "$tmp/hp" 'echo {}; exit {}' ::: "$@" 2>/dev/null)
        pst=$?
        expect_eq "halt $spec $*: status as parallel" "$pst" "$mst"
        expect_eq "halt $spec $*: output as parallel" "$pout" "$mout"
        expect_eq "halt $spec $*: joblog seqs as parallel" \
            "$(awk -F'\t' 'NR > 1 {print $1, $7, $8}' "$tmp/hp" | sort -n | xargs)" \
            "$(awk -F'\t' 'NR > 1 {print $1, $7, $8}' "$tmp/hm" | sort -n | xargs)"
    fi
}
halt_case now,done=100% 0 0 0 0
halt_case now,done=50% 0 0 0 0
halt_case soon,success=50% 1 0 1 0 0
halt_case now,fail=2 1 0 2 0 3
halt_case now,fail=1 0 0 5 0
halt_case soon,fail=30% 0 1 1 0 1 0 0 0 0 0
halt_case now,fail=30% 1 0 0 0 0 0 0 0 0 0
halt_case now,fail=50% 0 0 0 0
halt_case soon,fail=3 2 0 0 4
# a job killed by a signal that triggers the halt: 128 + the signal, as bash says it
"$M" run -j1 --halt now,fail=1 'kill -9 $$' ::: x 2>/dev/null
expect_eq "halt on a killed job: status" 137 $?
"$M" run -j1 --halt now,fail=1 'kill -15 $$' ::: x 2>/dev/null
expect_eq "halt on a terminated job: status" 143 $?

# ---- --halt now: the jobs it kills are not logged as done; --resume runs them again -------
"$M" run -j2 --halt now,fail=1 --joblog "$tmp/hn" '{}' ::: 'sleep 0.3; exit 1' 'sleep 20; echo late' \
    >/dev/null 2>&1
expect_eq "halt now: status" 1 $?
expect_eq "halt now: only the failed job logged" "1" "$(awk -F'\t' 'NR > 1 {print $1}' "$tmp/hn" | xargs)"
out=$("$M" run -j2 --resume --joblog "$tmp/hn" '{}' ::: 'sleep 0.3; exit 1' 'echo again' 2>/dev/null)
expect_eq "halt now: resume runs the killed job" "again" "$out"

# ---- stdout on a full device: a message and 255, not a silent 141 -------------------------
"$M" run echo {} ::: a b >/dev/full 2>"$tmp/err"
expect_eq "stdout /dev/full: status" 255 $?
grep -q "No space left" "$tmp/err" || fail "stdout /dev/full: no message: $(cat "$tmp/err")"
expect_eq "stdout /dev/full: said once" 1 "$(grep -c "No space left" "$tmp/err")"

# ---- -j above what the fd limit allows: a warning, not a silent -j1 ---------------------
out=$(ulimit -n 30 && "$M" run -k -j 10 echo {} ::: a b 2>"$tmp/err")
expect_eq "fd limit: output" "$(printf 'a\nb')" "$out"
grep -q "file descriptors" "$tmp/err" || fail "fd limit: no warning: $(cat "$tmp/err")"

# ---- a missing TMPDIR with output past 64 KiB: one message naming the directory ---------
TMPDIR="$tmp/nonexistent" "$M" run -j3 'head -c 200000 /dev/zero' ::: 1 2 3 4 5 6 >/dev/null 2>"$tmp/err"
expect_eq "missing TMPDIR: status" 255 $?
grep -q "$tmp/nonexistent" "$tmp/err" || fail "missing TMPDIR: directory not named: $(head -c 300 "$tmp/err")"
expect_eq "missing TMPDIR: said once" 1 "$(grep -c "temporary" "$tmp/err")"

# ---- a joblog that is /dev/full, or a directory: why, with the system's words -------------
"$M" run --joblog /dev/full true ::: a 2>"$tmp/err"
expect_eq "joblog /dev/full: status" 255 $?
grep -q "No space left" "$tmp/err" || fail "joblog /dev/full: no reason: $(cat "$tmp/err")"
mkdir "$tmp/dir"
"$M" run --resume --joblog "$tmp/dir" true ::: a 2>"$tmp/err"
expect_eq "joblog a directory: status" 255 $?
grep -q "Is a directory" "$tmp/err" || fail "joblog a directory: no reason: $(cat "$tmp/err")"

finish
