#!/bin/sh
# bench/run_side_by_side.sh - cojob's core benchmark and its joblib twin, one after the other in
# one go, then a side-by-side table of the two (ratios measured in the same run).
#
# Usage, from anywhere (the repository root is found from this script's location):
#   bench/run_side_by_side.sh
# Environment:
#   BUILD_DIR    build directory (default: build-bench under the repository root); set up as an
#                optimized build when it does not exist, and brought up to date with ninja
#   PYTHON       interpreter with joblib (default: the first of /usr/bin/python3, python3 that
#                imports joblib; see bench/common.sh)
#   COJOB_ARGS   extra arguments for bench_core (e.g. "repeats=31 calls=5000")
#   JOBLIB_ARGS  extra arguments for bench/joblib/bench_core.py (e.g. "--repeats 9")
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
bench_build build-bench "-Dtests=disabled -Dsamples=disabled" bench/bench_core
bench_python joblib
bench_tmp
bench_header "cojob vs joblib, core cases"
echo
# shellcheck disable=SC2086  # the extra arguments are meant to be split
"$build/bench/bench_core" tsv="$tmp/cojob.tsv" ${COJOB_ARGS:-}
echo
# shellcheck disable=SC2086
"$python" "$here/joblib/bench_core.py" --tsv "$tmp/joblib.tsv" ${JOBLIB_ARGS:-}
echo

awk -F '\t' '
    function num(v) {
        if (v == "") return "—"
        return sprintf(v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v)
    }
    function ratio(j, c) {
        if (j == "" || c == "" || c == 0) return "—"
        return num(j / c) "×"
    }
    function line(label, cid, lid, tid,   u) {
        if (!(cid in cojob)) return
        u = unit[cid] == "ns/task" ? "ns/task" : "µs/call"
        printf "| %s, %s | %s | %s | %s | %s | %s |\n", label, u, num(cojob[cid]), num(joblib[lid]),
               (tid == "" ? "—" : num(joblib[tid])), ratio(joblib[lid], cojob[cid]),
               (tid == "" ? "—" : ratio(joblib[tid], cojob[cid]))
    }
    FNR == NR { cojob[$1] = $2; unit[$1] = $3; next }
    { joblib[$1] = $2 }
    END {
        print "## Side by side (medians from the two runs above)"
        print ""
        print "| case | cojob | joblib default (loky) | joblib threading | default ÷ cojob | threading ÷ cojob |"
        print "|---|---|---|---|---|---|"
        line("plain loop (C++ loop / list comprehension)", "plain", "plain", "")
        line("building the tasks only", "build", "build", "")
        line("n_jobs=1", "seq", "seq", "")
        line("n_jobs=2, batch auto, new object", "auto", "auto", "auto_threading")
        line("n_jobs=2, batch auto, warm object", "auto_warm", "auto_warm", "")
        line("n_jobs=2, batch_size=1", "batch1", "batch1", "batch1_threading")
        line("one task, n_jobs=1, warm object, back to back", "call_seq", "call_seq", "")
        line("one task, warm object, back to back", "call_warm", "call_warm", "call_warm_threading")
        line("one task, warm object, 1 ms idle gap", "call_gap", "call_gap", "call_gap_threading")
        line("one task, new object each call", "call_new", "call_new", "call_new_threading")
    }
' "$tmp/cojob.tsv" "$tmp/joblib.tsv"
