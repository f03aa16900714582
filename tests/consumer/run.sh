#!/usr/bin/env bash
# Builds and runs tests/consumer twice: against cojob installed from the build directory
# (found through pkg-config), and with cojob as a Meson subproject. Usage: run.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== pkg-config: install the build into a staging folder"
DESTDIR="$work/stage" meson install -C "$build" --quiet --no-rebuild >/dev/null
pcdir=$(dirname "$(find "$work/stage" -name cojob.pc | head -n 1)")
libdir=$(dirname "$(find "$work/stage" -name 'libcojob.so' | head -n 1)")
PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$work/stage" \
  meson setup "$work/build-pc" "$src/tests/consumer" -Dfind=pkgconfig >/dev/null
ninja -C "$work/build-pc" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/build-pc/consumer"

echo "== subproject: cojob's sources under the consumer's subprojects/"
mkdir -p "$work/consumer/subprojects/cojob"
cp "$src/tests/consumer/meson.build" "$src/tests/consumer/meson_options.txt" "$src/tests/consumer/main.cpp" "$work/consumer/"
cp -r "$src/meson.build" "$src/meson_options.txt" "$src/include" "$src/src" "$work/consumer/subprojects/cojob/"
mkdir -p "$work/consumer/subprojects/cojob/subprojects"
cp -r "$src/subprojects/"*.wrap "$src/subprojects/packagefiles" "$work/consumer/subprojects/cojob/subprojects/"
meson setup "$work/build-sub" "$work/consumer" -Dfind=subproject --buildtype=debug -Dcojob:mpi=disabled >/dev/null
ninja -C "$work/build-sub" >/dev/null
"$work/build-sub/consumer"
echo "consumer: both ways work"
