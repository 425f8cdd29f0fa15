#!/usr/bin/env bash
# A program's task graph as its command line (mproc_graph_main), run from outside as a user
# would: examples/graph_pipeline (eight squares, their sum, a report written by a command).
set -uo pipefail
: "${MPROC_SOURCE_DIR:?}" "${MPROC_BINARY_DIR:?}"
name=graph_main
P="$MPROC_BINARY_DIR/examples/graph_pipeline"
[ -x "$P" ] || { echo "$name: $P not built"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_eq() { [ "$2" == "$3" ] || fail "$1: want [${2:0:300}] got [${3:0:300}]"; }
work=$(mktemp -d /tmp/mproc-test-graph-main-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

out=$("$P" parmake n=3); rc=$?
expect_eq "first parmake status" 0 "$rc"
expect_eq "first parmake" "10 done (0 up to date), 0 failed, 0 blocked, 0 todo" "$out"
[ -f .mproc/graph_pipeline.db ] || fail "the default state file is .mproc/graph_pipeline.db"
[ -f report.txt ] || fail "the report job wrote report.txt"

out=$("$P"); rc=$?
expect_eq "make again status" 0 "$rc"
expect_eq "make again runs nothing" "10 done (10 up to date), 0 failed, 0 blocked, 0 todo
sum of squares: 140" "$out"

expect_eq "ls done" 10 "$("$P" ls done | grep -c ' done$')"
expect_eq "ls with a glob" "square_1                       done
square_2                       done" "$("$P" ls 'square_[12]')"
out=$("$P" details report)
grep -q '^work:     date > report.txt; echo report written$' <<<"$out" || fail "details: $out"
grep -q '^captured: 15 bytes$' <<<"$out" || fail "details captured: $out"

# a missing output: its job would run, and says why
rm report.txt
expect_eq "ls after rm" "report                         todo         an output file is missing" \
    "$("$P" ls report)"
out=$("$P" make report); rc=$?
expect_eq "make one target" "0 10 done (9 up to date), 0 failed, 0 blocked, 0 todo" "$rc $out"

# clean forgets; a failure blocks what is below it, and the status counts them
expect_eq "clean" "forgot 1 job: it runs next time" "$("$P" clean square_3)"
expect_eq "ls after clean" "square_3                       todo         new: never run" \
    "$("$P" ls square_3)"
out=$(PIPELINE_FAIL=3 "$P" --stop make 2>&1); rc=$?
expect_eq "failed run status" 3 "$rc"
grep -q '^square_3  *failed  *square_3 was told to fail$' <<<"$out" || fail "failed: $out"
grep -q "^sum  *blocked  *blocked: 'square_3' failed$" <<<"$out" || fail "blocked: $out"
expect_eq "ls failed blocked" 3 "$("$P" ls failed blocked | wc -l)"
expect_eq "stats" "10 jobs: 7 done, 1 failed, 2 blocked, 0 todo" "$("$P" stats)"
out=$("$P" make); rc=$?
# square_3 runs again; its output is what it was, so sum and report below it are up to date
expect_eq "fixed" "0 10 done (9 up to date), 0 failed, 0 blocked, 0 todo" "$rc $(head -1 <<<"$out")"

# usage errors: exit status 2, nothing run
expect_eq "unknown command" 2 "$("$P" bogus >/dev/null 2>&1; echo $?)"
expect_eq "unknown target" 2 "$("$P" make nosuch >/dev/null 2>&1; echo $?)"
expect_eq "bad n" 2 "$("$P" parmake n=0 >/dev/null 2>&1; echo $?)"
expect_eq "ls no match" 2 "$("$P" ls 'zz*' >/dev/null 2>&1; echo $?)"
expect_eq "details needs one" 2 "$("$P" details >/dev/null 2>&1; echo $?)"
# a state file given by --state that is not a database: refused, left alone
echo "not a database, just text that is long enough" > bad.db
out=$("$P" --state bad.db make 2>&1); rc=$?
expect_eq "bad state status" 1 "$rc"
grep -q "damaged or not an mproc state" <<<"$out" || fail "bad state: $out"
expect_eq "bad state kept" "not a database, just text that is long enough" "$(cat bad.db)"

if [ "$fails" -ne 0 ]; then
    echo "$name: $fails failure(s)"
    exit 1
fi
echo "$name: all passed"
