#!/usr/bin/env bash
# Install the library into a scratch prefix and build a consumer against it, both
# with find_package(mproc) (CMake package config) and with pkg-config (mproc.pc).
set -euo pipefail
: "${MPROC_SOURCE_DIR:?}" "${MPROC_BINARY_DIR:?}"
if [ "${MPROC_SANITIZE:-OFF}" = ON ]; then
    echo "install_consumer: checked in the plain build (an ASan library needs an ASan consumer)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$MPROC_BINARY_DIR" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/mproc.h"
test -f "$tmp/prefix/lib/pkgconfig/mproc.pc" || test -f "$tmp"/prefix/lib/*/pkgconfig/mproc.pc

# CMake consumer.
cmake -S "$MPROC_SOURCE_DIR/tests/consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$(ls -d "$tmp"/prefix/lib/*/ 2>/dev/null | tr '\n' ':')" "$tmp/cm/consumer"
"$tmp/cm/consumer_static"

# pkg-config consumer.
pcdir=$(dirname "$(find "$tmp/prefix" -name mproc.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir"
cc -std=c11 -Wall -Werror -o "$tmp/pc_consumer" "$MPROC_SOURCE_DIR/tests/consumer/main.c" \
    $(pkg-config --cflags --libs mproc)
LD_LIBRARY_PATH="$(pkg-config --variable=libdir mproc)" "$tmp/pc_consumer"
# The MPI backend, where it was built: a consumer of mproc-mpi.pc under mpirun.
if [ -f "$pcdir/mproc-mpi.pc" ] && command -v mpirun >/dev/null; then
    cat >"$tmp/mpi_consumer.c" <<'EOF'
#include <mproc.h>
#include <stdio.h>
#include <string.h>
static int twice(mproc_task *t, const void *in, size_t n, void *out, size_t *out_len)
{
    (void)t;
    (void)n;
    int x;
    memcpy(&x, in, sizeof x);
    x *= 2;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}
int main(int argc, char **argv)
{
    if (mproc_init(&argc, &argv) < 0)
        return 1;
    mproc_pool *p;
    if (mproc_pool_new(&p, &(mproc_pool_opts){.start = MPROC_START_MPI}) < 0)
        return 2;
    int in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    int rc = mproc_pool_map(p, twice, in, 100, sizeof *in, out, sizeof *out, NULL);
    printf("mpi consumer: %d workers, out[99] = %d\n", mproc_pool_workers(p), out[99]);
    mproc_pool_free(p);
    return rc == 0 && out[99] == 198 ? 0 : 3;
}
EOF
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror -o "$tmp/mpi_consumer" "$tmp/mpi_consumer.c" \
        $(pkg-config --cflags --libs mproc-mpi)
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        LD_LIBRARY_PATH="$(pkg-config --variable=libdir mproc)" \
        mpirun --oversubscribe -x LD_LIBRARY_PATH -np 3 "$tmp/mpi_consumer" >"$tmp/mpi.out"
    grep -q "2 workers, out\[99\] = 198" "$tmp/mpi.out"
fi
echo "install_consumer: find_package and pkg-config (and MPI) consumers built and ran"
