#!/usr/bin/env bash
# Builds and runs tests/consumer the three ways a user's project gets cojob: against cojob
# installed from the build directory, found through pkg-config (a Meson project) and through
# find_package (a CMake project, which also links cojob::mpi when cojob-mpi was built); and with
# cojob as a Meson subproject, where cojob must build its library and nothing else.
# Usage: run.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# What `meson install` would place under DESTDIR for a built option's value.
built_option() {
  meson introspect --buildoptions "$build" |
    python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1"
}

echo "== install the build into a staging folder"
DESTDIR="$work/stage" meson install -C "$build" --quiet --no-rebuild >/dev/null
prefix="$work/stage$(built_option prefix)"
libdir=$(built_option libdir)
case $libdir in /*) libdir="$work/stage$libdir" ;; *) libdir="$prefix/$libdir" ;; esac

# The two users of the installed tree build at the same time (one file each), logs kept apart.
pkgconfig_user() {
  PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$work/stage" \
    meson setup "$work/build-pc" "$src/tests/consumer" -Dfind=pkgconfig
  ninja -C "$work/build-pc"
  LD_LIBRARY_PATH="$libdir" "$work/build-pc/consumer"
}
cmake_user() {
  if ! command -v cmake >/dev/null || [ ! -f "$libdir/cmake/cojob/cojobConfig.cmake" ]; then
    echo "consumer: skipped, no cmake (scripts/install-deps installs it)"; return 0
  fi
  cmake -S "$src/tests/consumer" -B "$work/build-cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
  cmake --build "$work/build-cmake"
  LD_LIBRARY_PATH="$libdir" "$work/build-cmake/consumer"
  if [ -x "$work/build-cmake/consumer_mpi" ]; then
    LD_LIBRARY_PATH="$libdir" "$work/build-cmake/consumer_mpi"
  else
    echo "consumer: no cojob::mpi (cojob-mpi not built)"
  fi
}
pkgconfig_user >"$work/pkgconfig.log" 2>&1 & pc_pid=$!
cmake_user >"$work/cmake.log" 2>&1 & cmake_pid=$!
status=0
for way in pkgconfig:$pc_pid cmake:$cmake_pid; do
  if wait "${way#*:}"; then
    echo "== ${way%%:*}: $(grep '^consumer' "$work/${way%%:*}.log" | tr '\n' ' ')"
  else
    status=1
    echo "== ${way%%:*}: FAILED"; tail -n 40 "$work/${way%%:*}.log"
  fi
done
[ $status -eq 0 ] || exit 1

echo "== subproject: cojob's source tree under the consumer's subprojects/"
mkdir -p "$work/consumer/subprojects"
cp "$src/tests/consumer/meson.build" "$src/tests/consumer/meson_options.txt" "$src/tests/consumer/main.cpp" "$work/consumer/"
ln -s "$src" "$work/consumer/subprojects/cojob"
# The cheapest build that links and runs: no optimisation, no debug information, and cojob's
# sources in one unity unit (its headers parsed once instead of once per source).
meson setup "$work/build-sub" "$work/consumer" -Dfind=subproject --buildtype=plain \
  --unity=subprojects -Dunity_size=1000 >/dev/null
# What a parent project's build compiles of cojob: the library, nothing else (no test, sample,
# benchmark or header check; cojob-mpi only if the parent links it).
meson introspect --targets --tests "$work/build-sub" | python3 -c '
import json, sys
info = json.load(sys.stdin)
built = sorted(t["name"] for t in info["targets"] if t["subproject"] == "cojob" and t["build_by_default"])
tests = [t["name"] for t in info["tests"]]
print("subproject: cojob builds by default:", ", ".join(built), "| tests:", ", ".join(tests) or "none")
sys.exit(0 if built == ["cojob"] and not tests else 1)'
ninja -C "$work/build-sub" >/dev/null
"$work/build-sub/consumer"
echo "consumer: pkg-config, CMake and subproject all work"
