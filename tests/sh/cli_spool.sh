#!/usr/bin/env bash
# `mproc run`: a job's captured output is spooled to an unlinked temporary file past
# 64 KiB, so mproc's memory stays bounded however much a job prints, while grouping
# and ordering stay exact. From outside: peak RSS read from /proc/<pid>/status.
source "$(dirname "$0")/lib/cli.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# peak_rss_kib FILE CMD...: run CMD in the background, poll its VmHWM until it ends,
# write the last value (KiB) to FILE; returns CMD's status.
peak_rss_kib() {
    local file=$1
    shift
    "$@" &
    local pid=$! hwm=0 v
    while kill -0 "$pid" 2>/dev/null; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ] && hwm=$v
        sleep 0.05
    done
    wait "$pid"
    local rc=$?
    echo "$hwm" >"$file"
    return $rc
}

export TMPDIR="$tmp/spool"
mkdir "$TMPDIR"
# Job 1 writes 200 MB of "A" lines while job 2 writes "B" lines and ends first; with -k
# the output must be all of job 1, then all of job 2, nothing lost, nothing mixed.
big=200000000
mkfifo "$tmp/fifo"
uniq -c <"$tmp/fifo" | awk '{print $1, $2}' >"$tmp/out" &
upid=$!
peak_rss_kib "$tmp/hwm" "$M" run -k -j2 '{}' ::: \
    "yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | head -c $big" \
    'yes BBBBBBB | head -n 100000; sleep 0.5' >"$tmp/fifo" 2>"$tmp/err"
expect_eq "200 MB job: status" 0 $?
wait $upid
expect_eq "200 MB job: complete, in order, not interleaved" \
    "$((big / 40)) AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
100000 BBBBBBB" "$(cat "$tmp/out")"
hwm=$(cat "$tmp/hwm")
echo "cli_spool: peak RSS of mproc with a 200 MB job: $hwm KiB"
[ "$hwm" -gt 0 ] && [ "$hwm" -lt 16384 ] || fail "peak RSS $hwm KiB (want < 16 MiB)"
# The spool files are unlinked: nothing is left in TMPDIR.
expect_eq "no spool file left" "" "$(ls -A "$TMPDIR")"

# Grouping without -k, with --tag, and --line-buffer with a long unfinished line.
"$M" run -j3 --tag 'head -c 300000 /dev/zero | tr "\0" {}; echo; echo end{}' ::: a b c >"$tmp/g"
expect_eq "tagged spooled lines" "a 2
b 2
c 2" "$(cut -c1 "$tmp/g" | sort | uniq -c | awk '{print $2, $1}')"
for x in a b c; do
    expect_eq "tagged line $x" "$x	$(head -c 300000 /dev/zero | tr '\0' $x)" "$(grep "^$x	$x" "$tmp/g")"
done
"$M" run --line-buffer --tag 'head -c 200000 /dev/zero | tr "\0" x; sleep 0.2; echo; echo second; : {}' ::: t >"$tmp/l"
expect_eq "line-buffer long line" "t	$(head -c 200000 /dev/zero | tr '\0' x)
t	second" "$(cat "$tmp/l")"
# stderr is spooled too, and a retried job starts afresh.
"$M" run --retries 2 'head -c 100000 /dev/zero | tr "\0" e >&2; [ -e '"$tmp"'/once ] || { touch '"$tmp"'/once; exit 1; }; : {}' ::: x 2>"$tmp/e"
expect_eq "stderr spooled, retry afresh" 100000 "$(wc -c <"$tmp/e")"
# -k with a slow first job: the finished jobs waiting behind it hold their spool files;
# under a low descriptor limit their number is bounded, not an EMFILE failure.
out=$(ulimit -n 64; "$M" run -k -j4 'if [ {} = 1 ]; then sleep 1; fi; head -c 100000 /dev/zero | tr "\0" e >&2; head -c 100000 /dev/zero | tr "\0" {}; echo' ::: $(seq 40) 2>"$tmp/e" | cut -c1-3 | xargs)
expect_eq "low fd limit: status" "0" "$?"
expect_eq "low fd limit: all in order" "$(seq 40 | cut -c1 | sed 's/.*/&&&/' | xargs)" "$out"
expect_eq "low fd limit: stderr" $((40 * 100000)) "$(wc -c <"$tmp/e")"

# A TMPDIR that cannot hold the spool is mproc's own error (255), not a crash.
TMPDIR="$tmp/missing" "$M" run 'head -c 1000000 /dev/zero' ::: x >/dev/null 2>"$tmp/e"
expect_eq "unusable TMPDIR: status" 255 $?
grep -q "cannot hold" "$tmp/e" || fail "unusable TMPDIR: no message: $(cat "$tmp/e")"

finish
