# bench/common.sh - sourced by the bench/run_*_side_by_side.sh scripts (POSIX sh): what they all
# need before running cojob and joblib side by side.
#
#   here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
#   . "$here/common.sh"
#   bench_build build-bench "-Dtests=disabled -Dsamples=disabled" bench/bench_core   # sets $build
#   bench_python "joblib, numpy"                                               # sets $python
#   bench_tmp                                                                  # sets $tmp
#   bench_header "cojob vs joblib, core cases"                                 # one title line
#
# Sets $root (the repository) and $script (the calling script's name, for messages).
# Environment read: BUILD_DIR (a build directory to use instead of the script's default; set up
# as --buildtype=release with the script's options when it does not exist, then brought up to
# date for the script's targets) and PYTHON (an interpreter tried before /usr/bin/python3,
# Debian's, with python3-joblib and python3-numpy, and before python3 from PATH).

# shellcheck disable=SC2034,SC2154  # $here comes from, and $build, $python, $tmp go to, the sourcing script
root=$(CDPATH='' cd -- "$here/.." && pwd)
script=$(basename -- "$0")

# bench_build DEFAULT_DIR "MESON_OPTIONS" TARGET...
bench_build() {
    build=${BUILD_DIR:-$root/$1}
    if [ ! -f "$build/build.ninja" ]; then
        # shellcheck disable=SC2086  # the options are meant to be split
        meson setup "$build" "$root" --buildtype=release $2 >&2
    fi
    shift 2
    ninja -C "$build" "$@" >/dev/null
}

# bench_python "MODULE, MODULE": the first interpreter that imports them all.
bench_python() {
    python=
    for candidate in ${PYTHON:-} /usr/bin/python3 python3; do
        if "$candidate" -c "import $1" >/dev/null 2>&1; then
            python=$candidate
            return 0
        fi
    done
    echo "$script: no Python that imports $1 found; set PYTHON (on Debian: apt-get install python3-joblib python3-numpy)" >&2
    exit 1
}

# bench_tmp: a scratch directory, removed when the script ends.
bench_tmp() {
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT INT TERM
}

# bench_header TITLE: the title with the date, kernel, CPUs, cojob commit and load average.
bench_header() {
    revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "# $1 ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) CPUs, cojob commit $revision, load $(cut -d' ' -f1-3 /proc/loadavg))"
}
