# tests/sh/lib/cli.bash - what every tests/sh/cli_*.sh starts with: the mproc binary
# (skip, exit 77, when it is not built), failure counting, and the closing line.
# Sourced, not run: CTest registers only tests/sh/*.sh.
set -uo pipefail
: "${MPROC_SOURCE_DIR:?}" "${MPROC_BINARY_DIR:?}"
name=$(basename "$0" .sh)
M="$MPROC_BINARY_DIR/cli/mproc"
[ -x "$M" ] || { echo "$name: $M not built"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_eq WHAT WANT GOT
expect_eq() { [ "$2" == "$3" ] || fail "$1: want [${2:0:200}] got [${3:0:200}]"; }
# status CMD...: run it quietly, print its exit status
status() { "$@" >/dev/null 2>&1; echo $?; }
# none_left WHAT: no process whose command line holds $mark (the script's unique text) may
# remain; polls up to 3 s (reaping is asynchronous), then kills what is left.
none_left() {
    for _ in $(seq 30); do
        pgrep -f "$mark" >/dev/null || return 0
        sleep 0.1
    done
    fail "$1: left running: $(pgrep -af "$mark")"
    pkill -KILL -f "$mark"
}
# finish: the closing line; the script's status is 1 if anything failed
finish() {
    if [ "$fails" -ne 0 ]; then
        echo "$name: $fails failure(s)"
        exit 1
    fi
    echo "$name: all passed"
}
# in_memory_cgroup BYTES CMD...: run CMD in a memory cgroup of its own limited to BYTES
# (cgroup v1 or v2; needs root), so that a test provoking a large allocation never calls
# the machine's OOM killer onto others. Its status, or 77 (with a note) when no such
# group can be made.
in_memory_cgroup() {
    local limit=$1 base="" file="" line
    shift
    while IFS= read -r line; do
        case $line in
        *:memory:*)
            base="/sys/fs/cgroup/memory${line#*:memory:}" file=memory.limit_in_bytes
            break
            ;;
        0::*)
            [ -e /sys/fs/cgroup/cgroup.controllers ] &&
                base="/sys/fs/cgroup${line#0::}" file=memory.max
            ;;
        esac
    done </proc/self/cgroup
    local dir="$base/mproc-sh-$$-$RANDOM"
    if [ -z "$base" ] || ! mkdir "$dir" 2>/dev/null; then
        echo "no memory cgroup of our own: case skipped" >&2
        return 77
    fi
    if ! echo "$limit" >"$dir/$file" 2>/dev/null; then
        rmdir "$dir"
        echo "no memory cgroup of our own: case skipped" >&2
        return 77
    fi
    (echo "$BASHPID" >"$dir/cgroup.procs" && exec "$@")
    local st=$?
    for _ in $(seq 50); do
        rmdir "$dir" 2>/dev/null && break
        sleep 0.1
    done
    return $st
}
