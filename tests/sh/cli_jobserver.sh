#!/usr/bin/env bash
# `mproc run` inside `make -jN`: job slots come from GNU make's jobserver (MAKEFLAGS
# --jobserver-auth=R,W with a real make; fifo:PATH with a fake jobserver made here, as
# GNU make 4.4 does), one implicit slot is ours, every token goes back, errors and
# signals included. Each job records the concurrency in a file under flock.
source "$(dirname "$0")/lib/cli.bash"
command -v make >/dev/null && command -v flock >/dev/null || { echo "cli_jobserver: make/flock missing"; exit 77; }
tmp=$(mktemp -d)
mark="mproc_cli_js_$$_$RANDOM"
trap 'exec 3>&- 2>/dev/null; pkill -KILL -f "$mark" 2>/dev/null; rm -rf "$tmp"' EXIT

# job DIR SECONDS [ARG]: count itself in DIR/cur while it runs, log each new count to DIR/max.
cat >"$tmp/job" <<'EOS'
#!/bin/sh
d=$1
flock "$d/lock" sh -c 'n=$(($(cat "$1/cur") + 1)); echo $n >"$1/cur"; echo $n >>"$1/max"' _ "$d"
sleep "${2:-0.2}"
flock "$d/lock" sh -c 'echo $(($(cat "$1/cur") - 1)) >"$1/cur"' _ "$d"
EOS
chmod +x "$tmp/job"
newdir() { rm -rf "$1"; mkdir -p "$1"; echo 0 >"$1/cur"; : >"$1/max"; }
maxof() { sort -n "$1/max" | tail -n 1; }
unset MAKEFLAGS MFLAGS

# ---- a real make -j2 (pipe style in make 4.3) -----------------------------------------------
d="$tmp/c1"
newdir "$d"
cat >"$tmp/Makefile" <<EOS
all: a
a:
	+@"$M" run -j 8 "$tmp/job" "$d" 0.2 ::: 1 2 3 4 5 6 7 8 9 10
two: x y
x y:
	+@"$M" run -j 8 "$tmp/job" "$d" 0.2 ::: 1 2 3 4 5 6
fail:
	+@"$M" run -j 8 "$tmp/job $d 0.1 {}; exit {}" ::: 0 1 0 1 0 1
EOS
make -s -j2 -f "$tmp/Makefile" all >"$tmp/out" 2>&1
expect_eq "make -j2: status" 0 $?
expect_eq "make -j2: all ran" 10 "$(wc -l <"$d/max")"
expect_eq "make -j2: at most 2 at once, and 2 used" 2 "$(maxof "$d")"
grep -i "jobserver\|INTERNAL" "$tmp/out" && fail "make complained about tokens"
# Two recipes at once, each an mproc -j 8: together they never pass make's 2.
newdir "$d"
make -s -j2 -f "$tmp/Makefile" two >"$tmp/out" 2>&1
expect_eq "two recipes: status" 0 $?
expect_eq "two recipes: all ran" 12 "$(wc -l <"$d/max")"
m=$(maxof "$d")
[ "$m" -le 2 ] || fail "two recipes: $m at once under make -j2"
grep -i "jobserver\|INTERNAL" "$tmp/out" && fail "make complained about tokens"
# Failing jobs: make sees the failure; tokens are all back (make checks at exit).
newdir "$d"
make -s -j2 -f "$tmp/Makefile" fail >"$tmp/out" 2>&1
[ $? -ne 0 ] || fail "failing recipe: make should fail"
grep -i "jobserver\|INTERNAL" "$tmp/out" && fail "make complained about tokens after a failure"
# Without -j, make has no jobserver: mproc's own -j holds.
newdir "$d"
make -s -f "$tmp/Makefile" all >/dev/null 2>&1
m=$(maxof "$d")
[ "$m" -ge 1 ] && [ "$m" -le 8 ] || fail "no jobserver: $m"

# ---- a fake fifo jobserver (GNU make 4.4 style) ---------------------------------------------
mkfifo "$tmp/fifo"
exec 3<>"$tmp/fifo"
printf 'xy' >&3 # two tokens: with our implicit slot, 3 jobs at once
newdir "$d"
MAKEFLAGS=" -j3 --jobserver-auth=fifo:$tmp/fifo" "$M" run -j 8 "$tmp/job" "$d" 0.2 ::: $(seq 9)
expect_eq "fifo: status" 0 $?
expect_eq "fifo: at most 3 at once, and 3 used" 3 "$(maxof "$d")"
tok=""
read -r -t 2 -N 2 tok <&3
expect_eq "fifo: both tokens back, byte for byte" "xy" "$(echo "$tok" | grep -o . | sort | tr -d '\n')"
# No free token at all: one job at a time on the implicit slot, and nothing taken.
newdir "$d"
MAKEFLAGS="--jobserver-auth=fifo:$tmp/fifo" "$M" run -j 8 "$tmp/job" "$d" 0.05 ::: $(seq 4)
expect_eq "fifo, no token: one at a time" 1 "$(maxof "$d")"
# A SIGTERM while holding tokens: they come back.
printf 'ab' >&3
newdir "$d"
MAKEFLAGS="--jobserver-auth=fifo:$tmp/fifo" "$M" run -j 8 "$tmp/job $d 30 {}; : $mark" ::: 1 2 3 4 &
pid=$!
for _ in $(seq 100); do [ "$(cat "$d/cur")" = 3 ] && break; sleep 0.05; done
expect_eq "fifo: 3 running before the signal" 3 "$(cat "$d/cur")"
kill -TERM "$pid"
wait "$pid"
tok=""
read -r -t 2 -N 2 tok <&3
expect_eq "fifo: tokens back after SIGTERM" "ab" "$(echo "$tok" | grep -o . | sort | tr -d '\n')"
exec 3>&-
# --jobserver-auth naming descriptors we do not have: warn, one job at a time.
newdir "$d"
MAKEFLAGS=" -j4 --jobserver-auth=197,198" "$M" run -j 8 "$tmp/job" "$d" 0.05 ::: 1 2 3 2>"$tmp/err"
expect_eq "closed jobserver fds: status" 0 $?
expect_eq "closed jobserver fds: one at a time" 1 "$(maxof "$d")"
grep -q "jobserver unavailable" "$tmp/err" || fail "no warning for closed jobserver fds"

finish
