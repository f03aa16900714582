#!/usr/bin/env python3
"""bench/joblib/bench_arrays.py - joblib's twin of bench/bench_arrays.cpp.

The seed's memmap workload (1e7 doubles, 95 windows of 5e5 with step 1e5, slow_mean sleeps
10 ms and returns the window's mean, n_jobs=2), the same cases in the same interleaved rounds,
medians and ranges over the rounds, written as a TSV (id, median, min, max, unit) that
bench/run_arrays_side_by_side.sh sets beside cojob's:

  sequential             the 95 tasks in a list comprehension
  floor                  sequential x 48/95 (the busier of two workers runs 48 tasks)
  threads                Parallel(n_jobs=2, prefer="threads"), one object for all rounds
  processes_array_first  `with Parallel(n_jobs=2)` (loky) after a warm-up call, the array itself
  processes_array        the same block, the same array again (joblib keeps its memmap)
  dump_and_map           joblib.dump + joblib.load(mmap_mode="r")
  processes_mapped       the same block, the mapped array (sent by reference)
  share_first            two trivial tasks taking the array, the first such call of a new block
  share                  the same call again (median of 9 per round)
  share_changed          one element changed before each call, the task returns it: joblib 1.2
                         reuses the memmap of the same array object without looking at its
                         content, so these calls return stale values (counted and reported)

Run with Debian's interpreter (python3-joblib, python3-numpy):
  /usr/bin/python3 bench/joblib/bench_arrays.py [--rounds 7] [--folder DIR] [--tsv FILE]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
from joblib import Parallel, delayed, dump, load


def slow_mean(data, sl):
    time.sleep(0.01)
    return data[sl].mean()


def size_of(data):
    return data.size


def element(data, i):
    return float(data[i])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--folder", default=tempfile.gettempdir(), help="where the dump goes")
    ap.add_argument("--tsv", help="write id, median, min, max, unit lines here")
    args = ap.parse_args()

    rng = np.random.default_rng(42)
    data = rng.random(int(1e7))
    other = data.copy()
    w = int(5e5)
    slices = [slice(s, s + w) for s in range(0, data.size - w, int(1e5))]
    expected = [data[sl].mean() for sl in slices]
    order = ["sequential", "floor", "threads", "processes_array_first", "processes_array", "dump_and_map",
             "processes_mapped", "share_first", "share", "share_changed"]
    out = {k: [] for k in order}
    stale = [0, 0]  # stale results, results

    def close(got):
        return np.allclose(got, expected, rtol=1e-12, atol=0)

    def ms(fn, n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    folder = tempfile.mkdtemp(prefix="joblib_bench_arrays_", dir=args.folder)
    print(f"joblib {__import__('joblib').__version__} arrays benchmark: 95 windows of 5e5 doubles, 10 ms sleep each, "
          f"n_jobs=2, {args.rounds} rounds; load average {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
    try:
        with Parallel(n_jobs=2, prefer="threads") as threads:
            for r in range(args.rounds):
                t0 = time.perf_counter()
                got = [slow_mean(data, sl) for sl in slices]
                s = time.perf_counter() - t0
                assert close(got)
                out["sequential"].append(s)
                out["floor"].append(s * 48 / 95)

                t0 = time.perf_counter()
                got = threads(delayed(slow_mean)(data, sl) for sl in slices)
                out["threads"].append(time.perf_counter() - t0)
                assert close(got)

                with Parallel(n_jobs=2) as p:
                    p(delayed(size_of)(np.ones(8)) for _ in range(2))  # workers up, nothing large
                    t0 = time.perf_counter()
                    p(delayed(size_of)(data) for _ in range(2))
                    out["share_first"].append((time.perf_counter() - t0) * 1e3)

                with Parallel(n_jobs=2) as p:
                    p(delayed(size_of)(np.ones(8)) for _ in range(2))
                    t0 = time.perf_counter()
                    got = p(delayed(slow_mean)(data, sl) for sl in slices)
                    out["processes_array_first"].append(time.perf_counter() - t0)
                    assert close(got)
                    t0 = time.perf_counter()
                    got = p(delayed(slow_mean)(data, sl) for sl in slices)
                    out["processes_array"].append(time.perf_counter() - t0)
                    assert close(got)

                    fn = os.path.join(folder, "data_memmap")
                    t0 = time.perf_counter()
                    dump(data, fn)
                    mapped = load(fn, mmap_mode="r")
                    out["dump_and_map"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    got = p(delayed(slow_mean)(mapped, sl) for sl in slices)
                    out["processes_mapped"].append(time.perf_counter() - t0)
                    assert close(got)
                    del mapped

                    out["share"].append(ms(lambda: p(delayed(size_of)(data) for _ in range(2)), 9))

                    times = []
                    for i in range(5):
                        at = ((r * 5 + i) * 1_999_993) % other.size
                        other[at] = -1.0 - i
                        t0 = time.perf_counter()
                        got = p(delayed(element)(other, at) for _ in range(2))
                        times.append(time.perf_counter() - t0)
                        stale[0] += sum(g != other[at] for g in got)
                        stale[1] += len(got)
                    out["share_changed"].append(statistics.median(times) * 1e3)
                print(f"round {r + 1}: " + " ".join(
                    f"{k} {v[-1]:.3g}{'ms' if k.startswith('share') else 's'}" for k, v in out.items() if v), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\nshare_changed: {stale[0]} of {stale[1]} results were stale (the workers read the array as it was "
          f"before the change)")
    print("\n| case | median | min | max |\n|---|---|---|---|")
    rows = []
    for k in order:
        v = out[k]
        unit = "ms" if k.startswith("share") else "s"
        rows.append((k, statistics.median(v), min(v), max(v), unit))
        print(f"| {k} | {statistics.median(v):.3f} {unit} | {min(v):.3f} | {max(v):.3f} |")
    rows.append(("share_changed_stale", stale[0], stale[0], stale[0], f"of {stale[1]}"))
    if args.tsv:
        with open(args.tsv, "w") as f:
            for k, med, lo, hi, unit in rows:
                f.write(f"{k}\t{med:.6g}\t{lo:.6g}\t{hi:.6g}\t{unit}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
