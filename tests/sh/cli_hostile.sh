#!/usr/bin/env bash
# `mproc run` in a hostile world, from outside: the terminal's signals (SIGHUP, SIGQUIT,
# Ctrl-Z and fg), a terminal or a pipe as stdin, a slow input, closed fds 0-2, SIGCHLD
# ignored by the parent, MAKEFLAGS naming descriptors that are not a jobserver, NUL bytes
# in the input. Nothing may be left running afterwards.
source "$(dirname "$0")/lib/cli.bash"
tmp=$(mktemp -d)
mark="mproc_cli_hostile_$$_$RANDOM" # unique text in the jobs' command lines, for pgrep
trap 'pkill -KILL -f "$mark" 2>/dev/null; rm -rf "$tmp"' EXIT
# wait_for WHAT CMD...: poll CMD up to 10 s; fail WHAT if it never succeeds. 0 if it did.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 100); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what"
    return 1
}
# ended PID: poll up to 10 s for PID to end; "still running" (then it is killed) or
# "ended". Called as $(ended PID), it cannot reap: `wait PID` afterwards gives the status.
ended() {
    for _ in $(seq 100); do
        [ "$(ps -o stat= -p "$1" | cut -c1)" = Z ] && break
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ] && kill -0 "$1" 2>/dev/null; then
        echo "still running"
        kill -KILL "$1"
    else
        echo "ended"
    fi
}
# states of the jobs' processes (the sleeps with the marker)
job_states() { ps -o stat= -p "$(pgrep -d, -f "sleep 3[0-9].*$mark" || echo 1)" | cut -c1 | sort -u | xr; }
xr() { xargs echo; }
jobs_running() { [ "$(pgrep -f "sleep 3[0-9].*$mark" | wc -l)" -ge 2 ]; }

# ---- SIGHUP and SIGQUIT end mproc like SIGTERM: its jobs and their children go too -----
# (a background job of a script starts with SIGINT and SIGQUIT ignored, which mproc
# keeps, as make does: start it with the default dispositions)
for sig in HUP QUIT TERM; do
    env --default-signal=INT,QUIT "$M" run -j2 "sh -c 'sleep 31 # $mark & sleep 32 # $mark'; : {}" ::: 1 2 >/dev/null 2>&1 &
    pid=$!
    wait_for "$sig: jobs started" jobs_running
    kill -"$sig" "$pid"
    st=$(ended "$pid")
    [ "$st" != "still running" ] || fail "$sig: mproc did not end"
    none_left "SIG$sig"
done

# Started with SIGHUP ignored (nohup), mproc and its jobs outlive the terminal.
(
    trap '' HUP
    exec "$M" run -k "sleep 0.5; echo done-{} # $mark" ::: 1 2 >"$tmp/nohup" 2>&1
) &
pid=$!
wait_for "nohup: jobs started" sh -c "pgrep -f 'sleep 0.5; echo done-.*$mark' >/dev/null"
kill -HUP "$pid"
expect_eq "nohup: ended" ended "$(ended "$pid")"
wait "$pid"
expect_eq "nohup: status" 0 "$?"
expect_eq "nohup: output" "$(printf 'done-1\ndone-2')" "$(cat "$tmp/nohup")"

# Started with SIGINT ignored (a background job of a script), mproc keeps it ignored,
# as make and GNU parallel do: the terminal's Ctrl-C is not meant for it.
(
    trap '' INT
    exec "$M" run -k "sleep 0.5; echo int-{} # $mark" ::: 1 >"$tmp/noint" 2>&1
) &
pid=$!
wait_for "ignored INT: job started" sh -c "pgrep -f 'sleep 0.5; echo int-.*$mark' >/dev/null"
kill -INT "$pid"
expect_eq "ignored INT: ended" ended "$(ended "$pid")"
wait "$pid"
expect_eq "ignored INT: status" 0 "$?"
expect_eq "ignored INT: output" "int-1" "$(cat "$tmp/noint")"

# ---- Ctrl-Z stops the jobs with mproc; fg (SIGCONT) continues them ---------------------
"$M" run -j2 "sleep 33 # $mark {}" ::: 1 2 >/dev/null 2>&1 &
pid=$!
wait_for "TSTP: jobs started" jobs_running
kill -TSTP "$pid"
wait_for "TSTP: mproc stopped" sh -c "ps -o stat= -p $pid | grep -q '^T'"
wait_for "TSTP: jobs stopped (states: $(job_states))" sh -c "[ \"\$(ps -o stat= -p \$(pgrep -d, -f 'sleep 3[0-9].*$mark') | cut -c1 | sort -u | xargs)\" = T ]"
kill -CONT "$pid"
wait_for "CONT: jobs continued" sh -c "[ \"\$(ps -o stat= -p \$(pgrep -d, -f 'sleep 3[0-9].*$mark') | cut -c1 | sort -u | xargs)\" = S ]"
wait_for "CONT: mproc continued" sh -c "ps -o stat= -p $pid | grep -q '^S'"
kill -TERM "$pid"
st=$(ended "$pid")
[ "$st" != "still running" ] || fail "TSTP: mproc did not end after TERM"
none_left "TSTP"

# ---- jobs get an empty stdin when the arguments do not come from it ---------------------
out=$(echo "swallowed-$mark" | "$M" run -k -j1 'cat; echo {}' ::: 1 2)
expect_eq "piped stdin with :::" "$(printf '1\n2')" "$out"
# A terminal as stdin: a job reading it would be a background reader (SIGTTIN) and stop.
if command -v script >/dev/null; then
    timeout 20 script -qec "$M run -j1 'cat; echo done-{}' ::: 1 2" /dev/null </dev/null >"$tmp/tty" 2>&1
    st=$?
    expect_eq "terminal stdin: status" 0 "$st"
    grep -q done-2 "$tmp/tty" || fail "terminal stdin: jobs did not finish: $(head -c 300 "$tmp/tty")"
    pkill -KILL -f "done-{}" 2>/dev/null
else
    echo "script(1) missing: terminal case skipped"
fi

# ---- a slow input does not hold back output, reaping or signals -------------------------
# The writer sends "b" only once mproc has printed the job of "a" (or after 10 s).
{
    echo a
    for _ in $(seq 100); do
        grep -q '^a$' "$tmp/slow" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^a$' "$tmp/slow" 2>/dev/null && echo seen >"$tmp/seen"
    echo b
} | "$M" run 'echo {}' >"$tmp/slow"
[ -e "$tmp/seen" ] || fail "slow input: the first job's output waited for the next line"
expect_eq "slow input: output" "$(printf 'a\nb')" "$(cat "$tmp/slow")"
# SIGTERM while the input is silent ends mproc at once.
mkfifo "$tmp/fifo"
{
    echo "x"
    sleep 30
} >"$tmp/fifo" &
wpid=$!
"$M" run "echo {}" <"$tmp/fifo" >"$tmp/quiet" &
pid=$!
if wait_for "silent input: first job done" grep -q x "$tmp/quiet"; then
    kill -TERM "$pid"
    st=$(ended "$pid")
    [ "$st" != "still running" ] || fail "silent input: SIGTERM did not end mproc"
fi
kill -KILL "$pid" 2>/dev/null
pkill -KILL -P "$wpid" 2>/dev/null
kill -KILL "$wpid" 2>/dev/null
wait 2>/dev/null

# ---- closed fds 0-2: nothing of ours lands on a file opened in their place --------------
(cd "$tmp" && "$M" run -k --joblog jl echo out-{} ::: a b >&-)
expect_eq "stdout closed: joblog lines" 3 "$(wc -l <"$tmp/jl")"
grep -qx out-a "$tmp/jl" && fail "stdout closed: job output went into the joblog"
(cd "$tmp" && "$M" run -k --joblog jl2 'echo err-{} >&2' ::: a b 2>&- >/dev/null)
expect_eq "stderr closed: joblog lines" 3 "$(wc -l <"$tmp/jl2")"
grep -qx err-a "$tmp/jl2" && fail "stderr closed: job output went into the joblog"
out=$("$M" run -k echo {} ::: a b <&-)
expect_eq "stdin closed" "$(printf 'a\nb')" "$out"

# ---- SIGCHLD ignored by the parent (inherited across exec) ----------------------------
out=$(trap '' CHLD; "$M" run -k echo {} ::: a b c)
expect_eq "SIGCHLD ignored: output" "$(printf 'a\nb\nc')" "$out"
expect_eq "SIGCHLD ignored: status" 0 "$(trap '' CHLD; status "$M" run echo {} ::: a b c)"

# ---- MAKEFLAGS naming descriptors or a path that are not a jobserver -------------------
echo "secret" >"$tmp/reg"
: >"$tmp/w"
out=$(MAKEFLAGS=" -j2 --jobserver-auth=3,4" "$M" run -k -j2 echo {} ::: a b c 3<"$tmp/reg" 4>>"$tmp/w" 2>"$tmp/err")
expect_eq "jobserver fds not pipes: output" "$(printf 'a\nb\nc')" "$out"
expect_eq "jobserver fds not pipes: nothing written" 0 "$(stat -c %s "$tmp/w")"
grep -q "jobserver" "$tmp/err" || fail "jobserver fds not pipes: no warning"
out=$(MAKEFLAGS=" -j2 --jobserver-auth=fifo:$tmp/reg" "$M" run -k -j2 echo {} ::: a b c 2>"$tmp/err")
expect_eq "jobserver fifo a regular file: output" "$(printf 'a\nb\nc')" "$out"
expect_eq "jobserver fifo a regular file: untouched" "secret" "$(cat "$tmp/reg")"
grep -q "jobserver" "$tmp/err" || fail "jobserver fifo a regular file: no warning"

# ---- a NUL byte inside a line: kept as \0 with a warning, as GNU parallel does ---------
out=$(printf 'a\0b\nc\n' | "$M" run -k 'printf "%s\n" {}' 2>"$tmp/err")
expect_eq "NUL in a line" "$(printf 'a\\0b\nc')" "$out"
grep -q "NUL" "$tmp/err" || fail "NUL in a line: no warning"
expect_eq "NUL warned once" 1 "$(grep -c 'NUL character' "$tmp/err")"

none_left "the end"
finish
