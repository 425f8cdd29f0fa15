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
# finish: the closing line; the script's status is 1 if anything failed
finish() {
    if [ "$fails" -ne 0 ]; then
        echo "$name: $fails failure(s)"
        exit 1
    fi
    echo "$name: all passed"
}
