#!/bin/sh
# bench/run_memory_side_by_side.sh - cojob's memory benchmark and its joblib twin, one after the
# other in one go, then a side-by-side table of the two (ratios measured in the same run).
#
# Usage, from anywhere (the repository root is found from this script's location):
#   bench/run_memory_side_by_side.sh
# Environment:
#   BUILD_DIR    build directory (default: build-bench under the repository root); set up as an
#                optimized build when it does not exist, and brought up to date with ninja
#   PYTHON       interpreter with joblib and numpy (default: the first of /usr/bin/python3
#                (Debian's python3-joblib, the reference of the figures) and python3 that
#                imports both)
#   CACHE_DIR    where both caches live (default: fresh directories under the system temp dir;
#                give a directory on the disk you care about, tmpfs and ext4 differ)
#   COJOB_ARGS   extra arguments for bench_memory (e.g. "calls=5000 rounds=101")
#   JOBLIB_ARGS  extra arguments for bench/joblib/bench_memory.py (e.g. "--rounds 51")
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
bench_build build-bench "-Dtests=disabled -Dsamples=disabled" bench/bench_memory
bench_python "joblib, numpy"
bench_tmp
cojob_dir=
joblib_dir=
if [ -n "${CACHE_DIR:-}" ]; then
    cojob_dir="dir=$CACHE_DIR/cojob-bench-memory"
    joblib_dir="--dir=$CACHE_DIR/joblib-bench-memory"
fi

bench_header "cojob vs joblib, memory cases"
echo
echo "Load average (1, 5, 15 min) before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo
# shellcheck disable=SC2086  # the extra arguments are meant to be split
"$build/bench/bench_memory" tsv="$tmp/cojob.tsv" $cojob_dir ${COJOB_ARGS:-}
echo
# shellcheck disable=SC2086
"$python" "$here/joblib/bench_memory.py" --tsv "$tmp/joblib.tsv" $joblib_dir ${JOBLIB_ARGS:-}
echo
echo "Load average (1, 5, 15 min) after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
if [ -n "${CACHE_DIR:-}" ]; then
    rm -rf "$CACHE_DIR/cojob-bench-memory" "$CACHE_DIR/joblib-bench-memory"
fi

awk -F '\t' '
    function num(v) {
        if (v == "") return "—"
        return sprintf(v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v)
    }
    function ratio(j, c) {
        if (j == "" || c == "" || c == 0) return "—"
        return num(j / c) "×"
    }
    function line(label, cid, lid) {
        if (!(cid in cojob)) return
        printf "| %s, %s | %s | %s | %s |\n", label, unit[cid], num(cojob[cid]), num(joblib[lid]), ratio(joblib[lid], cojob[cid])
    }
    FNR == NR { cojob[$1] = $2; unit[$1] = $3; next }
    { joblib[$1] = $2 }
    END {
        print "## Side by side (medians from the two runs above)"
        print ""
        print "| case | cojob | joblib | joblib ÷ cojob |"
        print "|---|---|---|---|"
        line("hit, small int argument", "hit_small", "hit_small")
        line("check_call_in_cache", "check", "check")
        line("hit, 320 KB array argument", "hit_array", "hit_array")
        line("hash of the 320 KB array (XXH3-128 / md5)", "hash_array", "hash_array")
        line("miss: trivial compute + store + metadata", "miss", "miss")
        line("reference: one file creation in the cache directory (file system)", "fs_create", "fs_create")
        line("second round, 4 hits through par (cojob threads, warm object / joblib loky, new Parallel)", "round2", "round2")
        line("second round, new objects (cojob threads / joblib threading)", "round2_new", "round2_threading")
        line("plain call (reference)", "plain", "plain")
    }
' "$tmp/cojob.tsv" "$tmp/joblib.tsv"
