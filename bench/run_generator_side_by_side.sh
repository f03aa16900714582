#!/bin/sh
# bench/run_generator_side_by_side.sh - the seed's generator workload (150 tasks sleeping 0.1 s
# and returning 16 MB each, n_jobs=2, summed as they arrive) on cojob (samples/parallel_generator,
# threads and processes) and on joblib (bench/joblib/bench_generator.py, loky and threading), in
# one go, then a side-by-side table of wall times and peak resident memory.
#
# Every run is a fresh process (so no run inherits the heap of another), in this order: cojob
# threads, joblib, cojob processes; each (implementation, run) is repeated REPEATS times and the
# table shows medians.
#
# Usage, from anywhere (the repository root is found from this script's location):
#   bench/run_generator_side_by_side.sh
# Environment:
#   BUILD_DIR  build directory (default: build-generator under the repository root); set up as an
#              optimized build without tests and benchmarks when it does not exist, and brought
#              up to date with ninja
#   PYTHON     interpreter with joblib and numpy (default: the first of /usr/bin/python3, python3
#              that imports both)
#   TASKS      tasks per run (default 150, the seed's)
#   SLOW_MS    the slow consumer's sleep after each result (default 100)
#   REPEATS    runs of each case (default 1)
#   BACKENDS   cojob backends (default "threads processes")
#   JOBLIB_BACKENDS  joblib backends (default "loky threading"; empty: cojob alone)
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
tasks=${TASKS:-150}
slow_ms=${SLOW_MS:-100}
repeats=${REPEATS:-1}
backends=${BACKENDS-threads processes}
joblib_backends=${JOBLIB_BACKENDS-loky threading}

bench_build build-generator "-Dtests=disabled -Dbenchmarks=disabled" samples/parallel_generator
bench_python "joblib, numpy"
bench_tmp
bench_header "cojob vs joblib, the generator seed"
echo "# $tasks tasks, slow consumer $slow_ms ms per result, $repeats run(s) each; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

cojob_runs() {
    failed=0
    for _ in $(seq "$repeats"); do
        for run in list generator slow; do
            rm -f "$tmp/one.tsv"
            rc=0
            "$build/samples/parallel_generator" --quiet --tasks "$tasks" --slow-ms "$slow_ms" --backend "$1" \
                --runs "$run" --tsv "$tmp/one.tsv" --svg "$tmp/$1-$run.svg" >"$tmp/out.txt" 2>&1 || rc=$?
            grep -v -e '^|' -e '^$' -e 'Memory over time' "$tmp/out.txt" || true
            if [ -s "$tmp/one.tsv" ]; then cat "$tmp/one.tsv" >> "$tmp/results.tsv"; fi
            if [ "$rc" -ne 0 ]; then
                echo "run_generator_side_by_side.sh: parallel_generator --backend $1 --runs $run exited with $rc" >&2
                failed=1
            fi
        done
    done
    return $failed
}

status=0
for b in $backends; do
    [ "$b" = processes ] && continue
    cojob_runs "$b" || status=1
done
for backend in $joblib_backends; do
    for _ in $(seq "$repeats"); do
        for run in list generator slow; do
            "$python" "$here/joblib/bench_generator.py" --tasks "$tasks" --slow-ms "$slow_ms" --backend "$backend" \
                --run "$run" --tsv "$tmp/results.tsv" || status=1
        done
    done
done
for b in $backends; do
    [ "$b" = processes ] || continue
    cojob_runs "$b" || status=1
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

"$python" - "$tmp/results.tsv" <<'EOF'
import statistics
import sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
impls, cells = [], {}
for impl, run, wall, peak, above, workers, verdict in rows:
    if impl not in impls:
        impls.append(impl)
impls.sort(key=lambda name: not name.startswith("cojob"))  # cojob first, in the order it ran
for impl, run, wall, peak, above, workers, verdict in rows:
    cells.setdefault((impl, run), []).append((wall, peak, above, workers, verdict))

def median(values):
    v = [float(x) for x in values if x != ""]
    return statistics.median(v) if v else None

def show(v, digits):
    return "—" if v is None else f"{v:.{digits}f}"

print("## Side by side (medians)")
print()
print("| run, figure | " + " | ".join(impls) + " |")
print("|---" * (len(impls) + 1) + "|")
for run in ("list", "generator", "slow"):
    for label, k, digits in (("wall (s)", 0, 2), ("peak RSS, all processes (MB)", 1, 0),
                             ("peak above start (MB)", 2, 0), ("of it workers (MB)", 3, 0)):
        line = []
        for impl in impls:
            got = cells.get((impl, run), [])
            if got and all(g[4] == "unsupported" for g in got):
                line.append("n/a")
            else:
                line.append(show(median([g[k] for g in got]), digits))
        print(f"| {run}: {label} | " + " | ".join(line) + " |")
bad = [f"{impl} {run}" for (impl, run), got in cells.items() if any(g[4] == "wrong" for g in got)]
print()
print("sums: " + ("all correct" if not bad else "WRONG in " + ", ".join(bad)))
print()
print("## cojob against the targets")
print()
print("| backend | generator peak ≤ 120 MB | slow-consumer peak ≤ 120 MB | generator wall ≤ 8.0 s | list wall ≤ 8.0 s |")
print("|---|---|---|---|---|")
for impl in impls:
    if impl.startswith("joblib"):
        continue
    def verdict(run, k, limit, digits):
        v = median([g[k] for g in cells.get((impl, run), [])])
        return "—" if v is None else f"{v:.{digits}f} {'met' if v <= limit else 'MISSED'}"
    print(f"| {impl} | {verdict('generator', 1, 120, 0)} | {verdict('slow', 1, 120, 0)} | "
          f"{verdict('generator', 0, 8.0, 2)} | {verdict('list', 0, 8.0, 2)} |")
EOF
exit $status
