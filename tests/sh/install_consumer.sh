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
echo "install_consumer: find_package and pkg-config consumers built and ran"
