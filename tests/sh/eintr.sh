#!/usr/bin/env bash
# Interrupted system calls (docs/design.md: strace -e inject): with every 2nd read,
# poll, waitid, wait4 and futex call failing with EINTR, the examples (processes,
# pipes, queues, locks, shared values) still finish with the right results, so every
# blocking call the library makes retries EINTR correctly.
set -euo pipefail
: "${MPROC_BINARY_DIR:?}"
dir="$MPROC_BINARY_DIR/examples"
[ -d "$dir" ] || { echo "eintr: examples not built in this configuration"; exit 77; }
command -v strace >/dev/null || { echo "eintr: strace missing"; exit 77; }
calls=read,poll,ppoll,waitid,wait4,futex
run() { # the dynamic loader does not retry EINTR: start injecting after it is done
    timeout 120 strace -f -qq -o /dev/null -e trace=$calls \
        -e inject=$calls:error=EINTR:when=10+2 "$dir/$1"
}
out=$(run process_info) && grep -Eq '^info \(pid [0-9]+\) exited with code 0$' <<<"$out"
out=$(run pipe_pingpong) && grep -q 'sent "ping 10", got "pong 10"' <<<"$out"
out=$(run queue_squares) && grep -q '^8100 8281 8464 8649 8836 9025 9216 9409 9604 9801$' <<<"$out"
out=$(run shared_counter) && grep -q 'with the lock:    40000 (expected 40000)' <<<"$out"
echo "eintr: all examples correct with EINTR injected"
