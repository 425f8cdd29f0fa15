#!/usr/bin/env bash
# Real resource limits (docs/design.md, "How the promise is tested"): the library meets
# the fd limit, the process limit and the address-space limit with error codes, frees
# what it made, and works again afterwards.
set -euo pipefail
: "${MPROC_BINARY_DIR:?}"
probe="$MPROC_BINARY_DIR/tests/helpers/limits_probe"
command -v prlimit >/dev/null || { echo "limits: prlimit missing"; exit 77; }

prlimit --nofile=64 "$probe" fds
# ASan reserves terabytes of shadow address space, so RLIMIT_AS applies to plain builds.
if [ "${MPROC_SANITIZE:-OFF}" = ON ]; then
    echo "limits: RLIMIT_AS part runs in the plain build (ASan needs its shadow memory)"
else
    prlimit --as=$((512 * 1024 * 1024)) "$probe" as
fi

# RLIMIT_NPROC counts the user's processes and root ignores it: run as nobody.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    cp "$probe" "$dir/"
    chmod 755 "$dir" "$dir/limits_probe"
    used=$( (ps -u nobody -o pid= || true) | wc -l)
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        prlimit --nproc=$((used + 8)) "$dir/limits_probe" nproc
else
    echo "limits: nproc part needs root (to become an unprivileged user) and setpriv"
fi
echo "limits: ok"
