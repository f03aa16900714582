#!/usr/bin/env python3
"""bench/joblib/bench_processes.py - joblib's twins of bench/bench_processes.cpp.

The four cases of cojob's process backend, run on joblib's default process backend (loky),
measured the same way (medians of repeated runs), and written as a TSV (id, value, unit) that
bench/run_processes_side_by_side.sh sets beside cojob's:

  tiny         with Parallel(n_jobs=2) as p: p(delayed(sqrt)(i) for i in range(N)), batch auto
  warm_call    with Parallel(n_jobs=2) as p: p([delayed(f)(7)]), back to back
  cold_start   Parallel(n_jobs=2)([delayed(f)(7)]) right after the loky executor was shut down
  big_result   8 tasks returning a 16 MiB float64 array each, batch_size=1, warm pool

Run with Debian's interpreter (python3-joblib, python3-numpy):
  /usr/bin/python3 bench/joblib/bench_processes.py [--repeats 11] [--n 100000] [--tsv FILE]
"""

import argparse
import statistics
import sys
import time
from math import sqrt

import joblib
import numpy as np
from joblib import Parallel, delayed


def identity(x):
    return x


def block(i, n):
    return np.full(n, float(i))


def shut_down_loky():
    # Ends joblib's reusable loky executor, so that the next Parallel starts workers afresh.
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--n", type=int, default=100_000, help="tiny tasks per call")
    ap.add_argument("--calls", type=int, default=200, help="warm calls timed one by one")
    ap.add_argument("--tsv", help="write id, median, unit lines here")
    args = ap.parse_args()
    rows = []
    print(f"joblib {joblib.__version__} processes benchmark (loky), {args.repeats} repeats, n_jobs=2, Python "
          f"{sys.version.split()[0]}")

    with Parallel(n_jobs=2) as p:
        p(delayed(sqrt)(i) for i in range(args.n))  # warm-up: starts the workers, tunes the batch size
        per_task = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = p(delayed(sqrt)(i) for i in range(args.n))
            per_task.append((time.perf_counter() - t0) / args.n * 1e9)
            assert len(out) == args.n
    rows.append(("tiny", statistics.median(per_task), "ns/task"))
    print(f"tiny tasks: {args.n} x delayed(sqrt)(i), batch auto: {rows[-1][1]:.0f} ns/task")

    with Parallel(n_jobs=2) as p:
        for _ in range(20):
            p([delayed(identity)(7)])
        us = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            p([delayed(identity)(7)])
            us.append((time.perf_counter() - t0) * 1e6)
    rows.append(("warm_call", statistics.median(us), "us/call"))
    print(f"one trivial task, warm pool: {rows[-1][1]:.0f} us/call (median of {len(us)})")

    ms = []
    for _ in range(max(3, args.repeats // 2)):
        shut_down_loky()
        t0 = time.perf_counter()
        Parallel(n_jobs=2)([delayed(identity)(7)])
        ms.append((time.perf_counter() - t0) * 1e3)
    rows.append(("cold_start", statistics.median(ms), "ms"))
    print(f"cold start, pool of 2 + one trivial task: {rows[-1][1]:.1f} ms")

    n = (16 << 20) // 8
    with Parallel(n_jobs=2, batch_size=1) as p:
        p(delayed(block)(i, n) for i in range(8))
        gbps = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = p(delayed(block)(i, n) for i in range(8))
            gbps.append(8 * 16 * (1 << 20) / (time.perf_counter() - t0) / 1e9)
            assert out[7][n - 1] == 7.0
    rows.append(("big_result", statistics.median(gbps), "GB/s"))
    print(f"16 MB results, 8 per call: {rows[-1][1]:.2f} GB/s")

    if args.tsv:
        with open(args.tsv, "w") as f:
            for r in rows:
                f.write(f"{r[0]}\t{r[1]:.6g}\t{r[2]}\n")


if __name__ == "__main__":
    main()
