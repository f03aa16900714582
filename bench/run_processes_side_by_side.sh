#!/bin/sh
# bench/run_processes_side_by_side.sh - cojob's process-backend benchmark and its joblib (loky)
# twin, one after the other in one go, then a side-by-side table (ratios from the same run).
#
# Usage, from anywhere (the repository root is found from this script's location):
#   bench/run_processes_side_by_side.sh
# Environment:
#   BUILD_DIR    build directory (default: build-bench under the repository root); set up as an
#                optimized build when it does not exist, and brought up to date with ninja
#   PYTHON       interpreter with joblib and numpy (default: the first of /usr/bin/python3,
#                python3 that imports both)
#   REPEATS, N_TINY  passed to bench_processes (its environment)
#   JOBLIB_ARGS  extra arguments for bench/joblib/bench_processes.py (e.g. "--repeats 5")
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
bench_build build-bench "-Dtests=disabled -Dsamples=disabled" bench/bench_processes
bench_python "joblib, numpy"
bench_tmp
bench_header "cojob vs joblib, process backends"
echo
"$build/bench/bench_processes" tsv="$tmp/cojob.tsv"
echo
# shellcheck disable=SC2086  # the extra arguments are meant to be split
"$python" "$here/joblib/bench_processes.py" --tsv "$tmp/joblib.tsv" ${JOBLIB_ARGS:-}
echo

awk -F '\t' '
    function num(v) { return sprintf(v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v) }
    function line(label, id, higher_is_better,   c, j) {
        if (!(id in cojob) || !(id in joblib)) return
        c = cojob[id]; j = joblib[id]
        printf "| %s | %s %s | %s %s | %s× |\n", label, num(c), unit[id], num(j), unit[id],
               num(higher_is_better ? c / j : j / c)
    }
    FNR == NR { cojob[$1] = $2; unit[$1] = $3; next }
    { joblib[$1] = $2 }
    END {
        print "## Side by side (medians from the two runs above)"
        print ""
        print "| case | cojob processes | joblib loky | cojob faster by |"
        print "|---|---|---|---|"
        line("1e5 tiny tasks, n_jobs=2, batch auto", "tiny", 0)
        line("one trivial task, warm pool", "warm_call", 0)
        line("cold start: pool of 2 + one trivial task", "cold_start", 0)
        line("16 MB results, 8 per call, batch_size=1", "big_result", 1)
    }' "$tmp/cojob.tsv" "$tmp/joblib.tsv"
