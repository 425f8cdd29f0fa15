#!/usr/bin/env bash
# `mproc run` under heavy output (issue 4): 100 jobs each writing 10 MB, grouped by
# default and ordered with -k. The output (1 GB) is checked as it streams, never
# stored: each job's lines arrive as one unbroken group, every group exactly once and
# whole, no line mixes two jobs, and with -k the groups come in input order.
source "$(dirname "$0")/lib/cli.bash"

jobs=100
lines=100000 # of 100 bytes each: 10 MB a job
pad=$(printf '%095d' 0)
# check ORDERED: reads mproc's output; prints "ok" or what went wrong.
check() {
    awk -v jobs="$jobs" -v lines="$lines" -v pad="$pad" -v ordered="$1" '
        function close_group() {
            if (cur != "" && n != lines) { print "job " cur ": " n " lines in its group"; bad = 1; exit }
        }
        {
            if ($1 != cur) {
                close_group()
                if (seen[$1]++) { print "job " $1 ": a second group at line " NR; bad = 1; exit }
                if (ordered && $1 != groups + 1) { print "job " $1 " came as group " groups + 1; bad = 1; exit }
                groups++; cur = $1; n = 0
            }
            if (NF != 2 || $2 != pad) { print "line " NR " is mixed: " substr($0, 1, 60); bad = 1; exit }
            n++
        }
        END {
            if (bad) exit 1
            close_group()
            if (groups != jobs) { print groups " groups, want " jobs; exit 1 }
            print "ok"
        }'
}
job='yes "{} '"$pad"'" | head -n '"$lines"

out=$(seq "$jobs" | "$M" run -j4 "$job" | check 0)
[ "$out" = ok ] || fail "grouped: $out"
out=$(seq "$jobs" | "$M" run -j4 -k "$job" | check 1)
[ "$out" = ok ] || fail "keep-order: $out"

finish
