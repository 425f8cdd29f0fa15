#!/usr/bin/env bash
# `mproc run` running real jobs, from outside: exit statuses, a missing command, output
# grouping under heavy output, --keep-order, --tag, --line-buffer, --ungroup, --joblog,
# --timeout with grandchildren, --retries, --halt, SIGINT, `| head -1`; compared with
# GNU parallel where it is installed. Nothing may be left running afterwards.
source "$(dirname "$0")/lib/cli.bash"
tmp=$(mktemp -d)
mark="mproc_cli_run_$$_$RANDOM" # unique text in the jobs' command lines, for pgrep
trap 'pkill -KILL -f "$mark" 2>/dev/null; rm -rf "$tmp"' EXIT

# ---- exit statuses ---------------------------------------------------------------------
expect_eq "0 failed" 0 "$(status "$M" run -j2 'exit {}' ::: 0 0 0)"
expect_eq "3 failed" 3 "$(status "$M" run -j2 'exit {}' ::: 0 1 2 0 255)"
expect_eq "150 failed" 101 "$(status "$M" run -j4 false ::: $(seq 150))"
expect_eq "100 failed" 100 "$(status "$M" run -j4 false ::: $(seq 100))"
expect_eq "killed by a signal is a failure" 1 "$(status "$M" run 'kill -9 $$' ::: x)"

# A missing command is that job's failure (127 from sh), reported; the others run.
out=$("$M" run -k --joblog "$tmp/jl" '{}' ::: "nosuch_cmd_$mark" 'echo ok' 2>"$tmp/err")
expect_eq "missing command: status" 1 $?
expect_eq "missing command: others run" "ok" "$out"
grep -q "nosuch_cmd_$mark" "$tmp/err" || fail "missing command not reported on stderr"
expect_eq "missing command: 127 logged" 127 "$(awk -F'\t' '$1 == 1 {print $7}' "$tmp/jl")"
# Direct execution (no shell syntax) of a missing program behaves the same.
expect_eq "missing program, direct" 127 \
    "$("$M" run --joblog "$tmp/jl2" "nosuch_prog_$mark" ::: a >/dev/null 2>&1; awk -F'\t' 'NR == 2 {print $7}' "$tmp/jl2")"
expect_eq "missing program status" 1 "$(status "$M" run "nosuch_prog_$mark" ::: a)"

# ---- joblog: GNU parallel's header and columns ------------------------------------------
"$M" run -j3 --joblog "$tmp/jl" 'printf abc; exit {}' ::: 0 1 2 3 >/dev/null
expect_eq "joblog header" "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')" \
    "$(head -n 1 "$tmp/jl")"
expect_eq "joblog lines" 5 "$(wc -l <"$tmp/jl")"
bad=$(awk -F'\t' 'NR > 1 && !(NF == 9 && $1 ~ /^[0-9]+$/ && $2 == ":" && $3 ~ /^[0-9]+\.[0-9][0-9][0-9]$/ &&
    $4 ~ /^ *[0-9]+\.[0-9][0-9][0-9]$/ && length($4) >= 10 && $5 == "0" && $6 == "3" && $7 == $1 - 1 &&
    $8 == "0" && $9 == "printf abc; exit " $1 - 1)' "$tmp/jl")
expect_eq "joblog columns" "" "$bad"
expect_eq "joblog seqs" "1 2 3 4" "$(awk -F'\t' 'NR > 1 {print $1}' "$tmp/jl" | sort -n | xargs)"
"$M" run --joblog "$tmp/jl" 'kill -9 $$' ::: x
expect_eq "joblog signal" "0 9" "$(awk -F'\t' 'NR == 2 {print $7, $8}' "$tmp/jl")"
"$M" run --joblog "+$tmp/jl" true ::: y
expect_eq "joblog +append" "3 1" "$(wc -l <"$tmp/jl") $(grep -c '^Seq' "$tmp/jl")"

# ---- output grouping under heavy output --------------------------------------------------
# 20 jobs at once, each writing 2 MB of lines of one repeated character to stdout and
# stderr: no line may mix two jobs, and every line arrives.
line=$(printf '%0100d' 0)
"$M" run -j20 "yes {}$line | head -n 20000; yes {}$line | head -n 2000 >&2" \
    ::: a b c d e f g h i j k l m n o p q r s t >"$tmp/out" 2>"$tmp/err"
expect_eq "heavy: status" 0 $?
expect_eq "heavy: stdout lines" 400000 "$(wc -l <"$tmp/out")"
expect_eq "heavy: stderr lines" 40000 "$(wc -l <"$tmp/err")"
expect_eq "heavy: mixed stdout lines" 0 "$(grep -cvE "^[a-t]$line\$" "$tmp/out")"
# Grouped: each job's lines are contiguous (20 runs of one letter).
expect_eq "heavy: stdout groups" 20 "$(cut -c1 "$tmp/out" | uniq | wc -l)"
expect_eq "heavy: stderr groups" 20 "$(cut -c1 "$tmp/err" | uniq | wc -l)"

# ---- keep-order, tag, line-buffer, ungroup -------------------------------------------------
want=$(seq 30)
expect_eq "keep-order" "$want" \
    "$("$M" run -k -j6 'sleep 0.0$(( {} * 7 % 5 )); echo {}' ::: $(seq 30))"
expect_eq "grouped, any order" "$want" "$("$M" run -j6 'echo {}' ::: $(seq 30) | sort -n)"
expect_eq "tag" "$(printf 'a b\tx\na b\ty\nc\tx\nc\ty')" \
    "$("$M" run -k --tag 'echo x; echo y # {}' ::: 'a b' c)"
expect_eq "tag stderr" "$(printf 'a\te')" "$("$M" run --tag 'echo e >&2 # {}' ::: a 2>&1)"
expect_eq "line-buffer" "$want" "$("$M" run --line-buffer -j4 'echo {}' ::: $(seq 30) | sort -n)"
expect_eq "line-buffer partial last line" "ab" "$("$M" run --line-buffer 'printf {}; printf b' ::: a)"
expect_eq "ungroup" "$want" "$("$M" run -u -j4 'echo {}' ::: $(seq 30) | sort -n)"
# Jobs do not read mproc's input when the arguments come from it.
expect_eq "jobs' stdin is /dev/null" "$(printf 'a\nb')" "$(printf 'a\nb\n' | "$M" run -k -j1 'cat; echo {}')"

# ---- retries, halt --------------------------------------------------------------------------
"$M" run --retries 3 --joblog "$tmp/jl" "echo try >>$tmp/count; echo out{}; exit 1" ::: x >"$tmp/out"
expect_eq "retries: attempts" 3 "$(wc -l <"$tmp/count")"
expect_eq "retries: output of the last attempt only" "outx" "$(cat "$tmp/out")"
expect_eq "retries: one joblog line" 2 "$(wc -l <"$tmp/jl")"
rm -f "$tmp/count"
"$M" run --retries 3 "echo t >>$tmp/count; [ \$(wc -l <$tmp/count) -ge 2 ] # {}" ::: x
expect_eq "retries: success stops retrying" "0 2" "$? $(wc -l <"$tmp/count")"
out=$("$M" run -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 1 2 3)
rc=$?
expect_eq "halt now,fail=1" "1 $(printf '0\n1')" "$rc $out"
out=$("$M" run -j1 --halt soon,fail=2 'echo {}; exit {}' ::: 0 1 2 3 4)
rc=$?
expect_eq "halt soon,fail=2" "2 $(printf '0\n1\n2')" "$rc $out"
out=$("$M" run -j1 --halt now,success=1 'echo {}; exit {}' ::: 3 0 2)
rc=$?
expect_eq "halt now,success=1" "0 $(printf '3\n0')" "$rc $out"
start=$(date +%s%N)
"$M" run -j2 --halt now,fail=1 '{}' ::: "sleep 30 # $mark" 'sleep 0.2; exit 4'
expect_eq "halt now kills running jobs: status" 4 $?
elapsed=$((($(date +%s%N) - start) / 1000000))
[ "$elapsed" -lt 10000 ] || fail "halt now took ${elapsed} ms"
none_left "halt now"

# ---- timeout: the job's whole process group, grandchildren included -----------------------
start=$(date +%s%N)
"$M" run --timeout 0.5 --joblog "$tmp/jl" -k '{}' \
    ::: "sleep 100 & sleep 100; echo never # $mark" \
        "trap '' TERM; sleep 100 & sleep 100 # $mark" \
        'echo fast' >"$tmp/out"
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
expect_eq "timeout: status" 2 "$rc"
expect_eq "timeout: output" "fast" "$(cat "$tmp/out")"
expect_eq "timeout: joblog" "1 -1 15|2 -1 9|3 0 0" \
    "$(awk -F'\t' 'NR > 1 {print $1, $7, $8}' "$tmp/jl" | sort -n | paste -sd'|')"
[ "$elapsed" -lt 10000 ] || fail "timeout took ${elapsed} ms"
none_left "timeout"

# ---- signals: Ctrl-C stops everything, nothing is left ---------------------------------------
# (a background job of a script starts with SIGINT ignored, which mproc keeps, as make
# and GNU parallel do: start it with the default dispositions)
env --default-signal=INT,QUIT "$M" run -j2 '{}' ::: "sleep 100 & sleep 100 # $mark" "sleep 100 # $mark" "sleep 100 # $mark" &
pid=$!
for _ in $(seq 100); do
    [ "$(pgrep -fc "$mark")" -ge 3 ] && break
    sleep 0.05
done
kill -INT "$pid"
wait "$pid"
expect_eq "SIGINT: mproc dies of SIGINT" 130 $?
none_left "SIGINT"

# A second signal kills jobs that ignore the first.
# The job says it is ready only once its trap is set (its command line matches earlier).
env --default-signal=INT,QUIT "$M" run -j2 '{}' ::: "trap '' INT TERM; : > $tmp/trapped; sleep 100 # $mark" &
pid=$!
for _ in $(seq 200); do
    [ -e "$tmp/trapped" ] && break
    sleep 0.05
done
kill -TERM "$pid"
sleep 0.3
kill -0 "$pid" 2>/dev/null || fail "mproc exited while its job ignored SIGTERM"
kill -TERM "$pid"
wait "$pid"
expect_eq "second SIGTERM" 143 $?
none_left "second SIGTERM"

# ---- | head -1 ends cleanly ------------------------------------------------------------------
seq 100000 | "$M" run -j2 "echo {} # $mark" 2>"$tmp/err" | head -n 1 >"$tmp/out"
expect_eq "head -1: status" "141 0" "${PIPESTATUS[1]} ${PIPESTATUS[2]}"
out=$(cat "$tmp/out")
[ "$out" -ge 1 ] 2>/dev/null || fail "head -1 output [$out]"
expect_eq "head -1: no message" "" "$(cat "$tmp/err")"
none_left "head -1"

# ---- same results as GNU parallel -------------------------------------------------------------
if command -v parallel >/dev/null; then
    export PARALLEL_SHELL=/bin/sh
    for cmd in "echo {}; exit {}" "echo {#}-{}; echo err{} >&2" "test {} -gt 5"; do
        want=$(parallel --will-cite -j3 "$cmd" ::: $(seq 0 9) 2>&1 | sort)
        wrc=${PIPESTATUS[0]}
        got=$("$M" run -j3 "$cmd" ::: $(seq 0 9) 2>&1 | sort)
        grc=${PIPESTATUS[0]}
        expect_eq "as GNU parallel: $cmd" "$wrc $want" "$grc $got"
    done
    want=$(seq 20 | parallel --will-cite -k -j4 'echo {} {.}' 2>&1)
    expect_eq "as GNU parallel: -k stdin" "$want" "$(seq 20 | "$M" run -k -j4 'echo {} {.}')"
fi

finish
