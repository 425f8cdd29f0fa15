#!/usr/bin/env bash
# mproc make: a jobs file run as a task graph, from outside, as a user runs it.
. "$(dirname "$0")/lib/cli.bash"
"$M" make --help >/dev/null 2>&1 || { echo "$name: mproc make not built (no SQLite)"; exit 77; }
work=$(mktemp -d /tmp/mproc-test-make-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# syntax errors name FILE:LINE:COLUMN and what was expected; nothing runs
err_of() { printf "$1" > bad; "$M" make -f bad 2>&1 >/dev/null | head -1; }
expect_eq "no colon" "mproc: bad:3:5: expected ':' after the job name 'oops' (or '=' for a variable)" \
    "$(err_of 'a:\n\trun: touch ran\noops\n')"
expect_eq "unknown field" "mproc: bad:2:5: unknown field 'rn' (expected in, out, run, retries, timeout, cpus, mem or time)" \
    "$(err_of 'a:\n    rn: true\n')"
expect_eq "undefined variable" "mproc: bad:2:15: undefined variable 'NOT_SET_ANYWHERE'" \
    "$(err_of 'a:\n    run: echo ${NOT_SET_ANYWHERE}\n')"
expect_eq "no run" "mproc: bad:1:1: job 'a' has no 'run:' line" "$(err_of 'a:\n    in: x\n')"
expect_eq "cycle" "mproc: make: bad: a cycle of dependencies: a -> b -> a (each needs the next)" \
    "$(err_of 'a: b\n    run: touch ran\nb: a\n    run: touch ran\n')"
expect_eq "unknown dependency" "mproc: make: bad: job 'a' depends on 'zz', which is not a job" \
    "$(err_of 'a: zz\n    run: touch ran\n')"
expect_eq "syntax error status" 255 "$(status "$M" make -f bad)"
[ -e ran ] && fail "a job ran despite a bad jobs file"
expect_eq "missing file" 255 "$(status "$M" make -f nosuchfile)"

cat > Jobfile <<'JOBS'
# split the words, count them, report
WHO = world

words:
    in: src.txt
    out: words.txt
    run: tr ' ' '\n' < src.txt > words.txt
    run: echo words ran >> log

count: words
    out: count.txt
    run: wc -l < words.txt > count.txt; echo count ran >> log

report: count
    out: report.txt
    run: echo "hello ${WHO}: $(cat count.txt) words" > report.txt
    run: cat report.txt; echo report ran >> log
JOBS
echo "a b c" > src.txt
out=$("$M" make -j2); rc=$?
expect_eq "first make" "0 hello world: 3 words" "$rc $out"
expect_eq "log after first" "3" "$(wc -l < log)"
expect_eq "again: nothing" "0 " "$(out=$("$M" make); echo "$? $out")"
expect_eq "log after again" "3" "$(wc -l < log)"
expect_eq "dry run, nothing" "0 jobs would run" "$("$M" make -n)"

echo "a b x" > src.txt # same count: report below count is not run
expect_eq "dry run says why" "words: changed: an input changed
count: upstream: a job it depends on will run
report: upstream: a job it depends on will run
3 jobs would run" "$("$M" make --dry-run)"
"$M" make >/dev/null
# a changed command is told apart from a changed input
sed -i 's/wc -l < words.txt/wc -l <words.txt/' Jobfile
expect_eq "changed command" "count: changed: its command changed
report: upstream: a job it depends on will run
2 jobs would run" "$("$M" make -n)"
"$M" make >/dev/null
expect_eq "only what changed" "words ran
count ran
report ran
words ran
count ran
count ran" "$(cat log)"

# --eta: a progress line on stderr that ends at 100%, the outputs alone on stdout
"$M" make --eta >out 2>err
grep -q "100% 3/3 done" err || fail "--eta: $(tr '\r' '|' < err)"
expect_eq "--eta stdout" "" "$(cat out)" # nothing ran: all up to date

expect_eq "status" "words                          done
count                          done
report                         done" "$("$M" make --status)"
grep -q '"words" -> "count";' <<<"$("$M" make --graph)" || fail "--graph: no edge"

# a failing job: the exit status counts it and what it blocked; the others go on
cat > Jobfile2 <<'JOBS'
bad:
    run: echo about to fail; exit 3
below: bad
    run: touch below
fine:
    run: touch fine
JOBS
out=$("$M" make -f Jobfile2 2>err); rc=$?
expect_eq "failure status" 2 "$rc"
[ -e fine ] || fail "an unrelated job did not run"
[ -e below ] && fail "a job below a failure ran"
grep -q "^mproc make: bad: failed: exited with status 3$" err || fail "failure said: $(cat err)"
grep -q "^mproc make: below: blocked: blocked: 'bad' failed$" err || fail "blocked said: $(cat err)"
# the joblog: GNU parallel's header and a line per job that ran, failures with their status
"$M" make -f Jobfile2 --joblog log2 >/dev/null 2>&1
expect_eq "joblog header" "Seq	Host	Starttime	JobRuntime	Send	Receive	Exitval	Signal	Command" \
    "$(head -1 log2)"
expect_eq "joblog lines" 1 "$(tail -n +2 log2 | wc -l)" # bad ran again; fine is up to date, below blocked
grep -q "	3	0	echo about to fail; exit 3$" log2 || fail "joblog: bad's exit status: $(cat log2)"

# --halt, as mproc run and GNU parallel: soon starts nothing new, now ends what runs (it
# stays todo: the next run does it); one failure enough gives its status
mkdir halt && cd halt || exit 1
printf 'bad:\n    run: exit 3\nlater: \n    run: touch later\n' > J1
expect_eq "halt soon" 3 "$(status "$M" make -j1 --halt soon,fail=1 -f J1)"
[ -e later ] && fail "--halt soon: a job started after the failure"
expect_eq "keep going" 1 "$(status "$M" make -j1 --halt soon,fail=1 -k -f J1)"
[ -e later ] || fail "--keep-going after --halt: the other job did not run"
printf 'slow:\n    run: trap "" TERM; sleep 30; touch slow\nbad:\n    run: sleep 0.3; exit 4\n' > J2
expect_eq "halt now" 4 "$(status "$M" make -j2 --halt=now,fail=1 --joblog log -f J2)"
[ -e slow ] && fail "--halt now: the running job was not ended"
expect_eq "halt now: joblog" "1" "$(tail -n +2 log | wc -l)" # the ended job is not logged
grep -q "^slow  *todo  *new: never run" <<<"$("$M" make --status -f J2)" ||
    fail "--halt now: the ended job is not todo: $("$M" make --status -f J2)"
printf 'a:\n    run: true\nb:\n    run: true\nc: a b\n    run: touch c\n' > J3
expect_eq "halt success" 0 "$(status "$M" make -j1 --halt now,success=1 -f J3)"
[ -e c ] && fail "--halt now,success=1: went on"
expect_eq "bad halt" 255 "$(status "$M" make --halt sometimes -f J3)"
cd .. || exit 1

# the make jobserver. Each job counts itself in cur while it runs and logs each new count
# to max (under flock).
if command -v make >/dev/null && command -v flock >/dev/null; then
    mkdir js && cd js || exit 1
    cat > job <<'EOS'
#!/bin/sh
flock lock sh -c 'n=$(($(cat cur) + 1)); echo $n > cur; echo $n >> max'
sleep "${1:-0.4}"
flock lock sh -c 'echo $(($(cat cur) - 1)) > cur'
EOS
    chmod +x job
    fresh() { rm -rf .mproc; echo 0 > cur; : > max; }
    unset MAKEFLAGS MFLAGS
    # server: mproc make -j3 is a jobserver; two jobs each run a plain `make` of four
    # targets, which share its 3 slots (without it, each make would run one at a time: 2)
    printf 'all: t1 t2 t3 t4
t1 t2 t3 t4:
	@./job
' > sub.mk
    printf 'one:
    run: make -s -f sub.mk
two:
    run: make -s -f sub.mk
' > J
    fresh
    out=$("$M" make -j3 -f J 2>&1); rc=$?
    expect_eq "jobserver: status" "0 " "$rc $out"
    expect_eq "jobserver: all ran" 8 "$(wc -l < max)"
    expect_eq "jobserver: the sub-makes shared 3 slots" 3 "$(sort -n max | tail -1)"
    # client: under make -j2, mproc make -j8 runs at most 2 at once, and uses both
    printf 'j%s:
    run: ./job 0.3
' 1 2 3 4 5 6 > J6
    printf 'all:
	+@"$(M)" make -j8 -f J6
' > Makefile
    fresh
    make -s -j2 M="$M" > out 2>&1
    expect_eq "jobserver client: status" "0 " "$? $(cat out)"
    expect_eq "jobserver client: all ran" 6 "$(wc -l < max)"
    expect_eq "jobserver client: 2 at once" 2 "$(sort -n max | tail -1)"
    cd .. || exit 1
fi

# a plain command runs without a shell, as make runs it; anything the shell must read goes
# through sh (the job's parent tells)
mkdir direct && cd direct || exit 1
printf '#!/bin/sh\ncat /proc/$PPID/comm > "$1"\n' > parent.sh
chmod +x parent.sh
printf 'plain:\n    run: ./parent.sh  p1\nshell:\n    run: ./parent.sh p2; true\ncd:\n    run: cd . && ./parent.sh p3\n' > J
expect_eq "direct: status" 0 "$(status "$M" make -j1 -f J --joblog log)"
expect_eq "direct: no shell" "mproc" "$(cat p1)"
expect_eq "direct: a shell for ;" "sh" "$(cat p2)"
expect_eq "direct: a shell for cd" "sh" "$(cat p3)"
grep -q "	0	0	./parent.sh p1$" log || fail "direct: joblog command: $(cat log)"
cd .. || exit 1

# the state's commands, with selections (names, globs, status words), as compmake's
mkdir st && cd st || exit 1
printf 'a:\n    run: echo hi\nb: a\n    run: exit 3\nc: b\n    run: true\nd:\n    run: true\n' > Jobfile
"$M" make -j1 >/dev/null 2>&1
expect_eq "status failed" "b                              failed       exited with status 3" \
    "$("$M" make --status failed)"
expect_eq "status glob" "a d" "$("$M" make --status '[ad]' | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//')"
expect_eq "stats" "4 jobs: 2 done, 1 failed, 1 blocked, 0 todo" "$("$M" make --stats)"
grep -q "^code:     3$" <<<"$("$M" make --details b)" || fail "details: $("$M" make --details b)"
expect_eq "details needs a job" 255 "$(status "$M" make --details)"
expect_eq "no such job" 255 "$(status "$M" make --status nosuch)"
expect_eq "clean" "forgot 1 job: it runs next time" "$("$M" make --clean d)"
expect_eq "cleaned runs again" "d: new: never run" "$("$M" make -n | grep '^d:')"
cd .. || exit 1

# a target: only it and what it needs
printf 'one:\n    run: touch one\ntwo: one\n    run: touch two\nthree:\n    run: touch three\n' \
    > Jobfile4
expect_eq "target" 0 "$(status "$M" make -f Jobfile4 two)"
[ -e one ] && [ -e two ] || fail "the target or what it needs did not run"
[ -e three ] && fail "a job the target does not need ran"
expect_eq "unknown target" 255 "$(status "$M" make -f Jobfile4 nosuch)"

# two runs on one state at once: the second is refused while the first holds it
cat > Jobfile3 <<'JOBS'
slow:
    run: sleep 2
JOBS
"$M" make -f Jobfile3 >/dev/null 2>&1 &
first=$!
for _ in $(seq 50); do [ -s .mproc/state.db ] && break; sleep 0.05; done
sleep 0.2
out=$("$M" make -f Jobfile3 2>&1); rc=$?
expect_eq "second runner" "255" "$rc"
grep -q "in use by another run" <<<"$out" || fail "second runner said: $out"
wait "$first"
# the example jobs file (Ruffus's parallel tasks): five parts at once, then the summary
mkdir ex && cp "$MPROC_SOURCE_DIR/examples/Jobfile" ex/
out=$("$M" make -j5 -f ex/Jobfile); rc=$?
expect_eq "example" "0 summary: 5 parts" "$rc $out"
expect_eq "example again" "0 " "$(out=$("$M" make -j5 -f ex/Jobfile); echo "$? $out")"
finish
