#!/bin/sh
# bench/run_arrays_side_by_side.sh - the seed's memmap workload on cojob
# (bench/bench_arrays) and on joblib (bench/joblib/bench_arrays.py), one after the other in one
# go, then a side-by-side table of the medians (with the ranges over the rounds).
#
# Usage, from anywhere (the repository root is found from this script's location):
#   bench/run_arrays_side_by_side.sh
# Environment:
#   BUILD_DIR    build directory (default: build-bench under the repository root; see bench/common.sh)
#   PYTHON       interpreter with joblib and numpy (see bench/common.sh)
#   ROUNDS       rounds of every case on each side (default 7; ~4 s per round for cojob, ~6 s for joblib)
#   FOLDER       where both sides dump the array for the mapped case (default: the system temp dir)
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
bench_build build-bench "-Dtests=disabled -Dsamples=disabled" bench/bench_arrays
bench_python "joblib, numpy"
bench_tmp
rounds=${ROUNDS:-7}
folder=${FOLDER:-${TMPDIR:-/tmp}}

bench_header "cojob vs joblib, the seed's memmap workload"
echo
"$build/bench/bench_arrays" rounds="$rounds" folder="$folder" tsv="$tmp/cojob.tsv"
echo
"$python" "$here/joblib/bench_arrays.py" --rounds "$rounds" --folder "$folder" --tsv "$tmp/joblib.tsv"
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

awk -F '\t' '
    function cell(m, lo, hi, unit) {
        return sprintf(unit == "s" ? "%.3f s (%.3f–%.3f)" : "%.1f ms (%.1f–%.1f)", m, lo, hi)
    }
    function line(label, id) {
        if (!(id in cm)) return
        printf "| %s | %s | %s |\n", label, cell(cm[id], clo[id], chi[id], cu[id]),
               (id in jm) ? cell(jm[id], jlo[id], jhi[id], ju[id]) : "—"
    }
    FNR == NR { cm[$1] = $2; clo[$1] = $3; chi[$1] = $4; cu[$1] = $5; next }
    { jm[$1] = $2; jlo[$1] = $3; jhi[$1] = $4; ju[$1] = $5 }
    END {
        print "## Side by side (medians over the rounds, range in parentheses)"
        print ""
        print "| case | cojob | joblib |"
        print "|---|---|---|"
        line("sequential", "sequential")
        line("floor: the busier worker'"'"'s 48 tasks at the sequential pace", "floor")
        line("threads, the array itself", "threads")
        line("processes, the array itself, first call with it", "processes_array_first")
        line("processes, the array itself, again", "processes_array")
        line("dump + map the array", "dump_and_map")
        line("processes, the mapped file", "processes_mapped")
        line("sharing 80 MB: two trivial tasks, first call", "share_first")
        line("sharing 80 MB: two trivial tasks, again", "share")
        line("sharing 80 MB: one element changed before each call", "share_changed")
        if ("share_changed_stale" in jm)
            printf "\njoblib returned %d stale results %s in the changed-array calls; cojob checks every result (none stale, or it exits 1).\n",
                   jm["share_changed_stale"], ju["share_changed_stale"]
    }' "$tmp/cojob.tsv" "$tmp/joblib.tsv"
