#!/usr/bin/env bash
# `mproc run --bar` / `--eta` in a real terminal (tmux, captured with capture-pane):
# done/total, rate and ETA on one line redrawn in place; the total is "?" until the
# input is exhausted. Skipped (77) where tmux is missing.
source "$(dirname "$0")/lib/cli.bash"
command -v tmux >/dev/null || { echo "cli_bar: tmux missing, skipped"; exit 77; }
tmp=$(mktemp -d)
sock="mproc_cli_bar_$$_$RANDOM"
trap 'tmux -L "$sock" kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
pane() { tmux -L "$sock" capture-pane -p -t bar 2>/dev/null; }
# wait_pane REGEX: poll the pane (up to 15 s) until a line matches; print the pane.
wait_pane() {
    for _ in $(seq 150); do
        if pane | grep -Eq -- "$1"; then
            pane
            return 0
        fi
        sleep 0.1
    done
    fail "pane never showed /$1/: $(pane | grep -v '^$')"
    return 1
}

# Five arguments, a pause with the input still open, then five more.
cat >"$tmp/job.sh" <<EOS
(seq 5; while [ ! -e "$tmp/go" ]; do sleep 0.05; done; seq 6 10) |
    "$M" run --bar -j2 'sleep 0.05; echo out{} >>"$tmp/out"'
echo "status \$?"
sleep 60
EOS
tmux -L "$sock" -f /dev/null new-session -d -s bar -x 120 -y 20 "bash $tmp/job.sh"
# Mid-run, the input is not exhausted: the total and the ETA are unknown.
mid=$(wait_pane '^ *\?% 5/\? done, [0-9.]+ jobs/s, ETA \?')
[ -n "$mid" ] && echo "$mid" | grep -q '\[?' || fail "mid-run bar: $(echo "$mid" | grep done)"
touch "$tmp/go"
end=$(wait_pane '^status ')
line=$(echo "$end" | grep 'done,')
echo "cli_bar: final line: $line"
echo "$line" | grep -Eq '^100% 10/10 done, [0-9.]+ jobs/s, ETA 0:00 \[#+\]$' || fail "final bar: [$line]"
expect_eq "one line, redrawn in place" 1 "$(echo "$end" | grep -c 'done,')"
expect_eq "width follows the terminal" 119 "$(echo "$line" | awk '{print length($0)}')"
expect_eq "status" "status 0" "$(echo "$end" | grep '^status')"
expect_eq "jobs ran" 10 "$(wc -l <"$tmp/out")"
tmux -L "$sock" kill-session -t bar

# --eta: the same line without the bar; and the jobs' own output is untouched.
cat >"$tmp/eta.sh" <<EOS
"$M" run --eta -k -j2 'echo out{}' ::: 1 2 3
echo "status \$?"
sleep 60
EOS
tmux -L "$sock" -f /dev/null new-session -d -s bar -x 100 -y 20 "bash $tmp/eta.sh"
end=$(wait_pane '^status ')
expect_eq "--eta output" "out1 out2 out3" "$(echo "$end" | grep '^out' | xargs)"
echo "$end" | grep -Eq '^100% 3/3 done, [0-9.]+ jobs/s, ETA 0:00$' || fail "--eta line: $(echo "$end" | grep done)"

# Not a terminal: the line still goes to stderr, stdout stays clean.
out=$("$M" run --bar -k echo ::: a b 2>"$tmp/err")
expect_eq "stdout clean" "a
b" "$out"
grep -q '100% 2/2 done' "$tmp/err" || fail "bar on a non-terminal stderr: $(cat -v "$tmp/err")"

# Documented in --help and the man page.
for o in --bar --eta; do
    "$M" run --help | grep -q -- "^ *$o " || fail "--help lacks $o"
    grep -q -- "^\.B \\\\-\\\\-${o#--}$" "$MPROC_SOURCE_DIR/cli/mproc.1" || fail "mproc.1 lacks $o"
done

finish
