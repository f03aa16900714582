#!/usr/bin/env python3
"""bench/joblib/bench_memory.py - joblib's twins of bench/bench_memory.cpp.

The same cases, timed the same way (per-call medians after calls/10 warm-up calls; the second
round as the median of whole rounds), printed as the same markdown table:

  hit_small   f(41), f cached by joblib.Memory, a hit
  check       f.check_call_in_cache(41)
  hit_array   g(data), data a 320 KB float64 array (40000 values), a hit
  hash_array  joblib.hash(data) alone (md5 of the array)
  miss        f_miss(i) with a fresh i every call: compute + store output.pkl + metadata.json
  round2      Parallel(n_jobs=2)(delayed(mean_using_cache)(data, col) for col in range(4)),
              all four costly_compute calls hits (default backend, a new Parallel per round,
              as the seed writes it)
  round2_threading   the same with backend="threading"
  plain       f(41) uncached

Run with Debian's interpreter (python3-joblib): /usr/bin/python3 bench/joblib/bench_memory.py
Options: --calls, --rounds, --dir, --tsv.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import joblib
import numpy as np
from joblib import Memory, Parallel, delayed


def trivial(x):
    return x + 1


def total(v):
    return float(v.sum())


def costly_compute(data, column):
    """The seed's costly_compute without its 2 s sleep: the second round only loads."""
    return data[:, column]


costly_compute_cached = None  # set in main (module level, so loky workers can unpickle it)


def mean_using_cache(data, column):
    return costly_compute_cached(data, column).mean()


def percentile(sorted_values, q):
    return sorted_values[int(q * (len(sorted_values) - 1) + 0.5)]


def summarize(values):
    v = sorted(values)
    return statistics.median(v), percentile(v, 0.1), percentile(v, 0.9)


def per_call(calls, f):
    for i in range(calls // 10):
        f(i)
    us = []
    for i in range(calls):
        t0 = time.perf_counter()
        f(i)
        us.append((time.perf_counter() - t0) * 1e6)
    return summarize(us)


def main():
    global costly_compute_cached
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--dir", default="")
    parser.add_argument("--tsv", default="")
    args = parser.parse_args()

    location = args.dir or tempfile.mkdtemp(prefix="joblib-bench-memory-")
    memory = Memory(location, verbose=0)
    memory.clear(warn=False)
    rows = []

    cached_trivial = memory.cache(trivial)
    cached_trivial(41)
    rows.append(("hit_small", "hit, small int argument", "µs/call", per_call(args.calls, lambda i: cached_trivial(41))))
    rows.append(("check", "check_call_in_cache, small argument", "µs/call",
                 per_call(args.calls, lambda i: cached_trivial.check_call_in_cache(41))))

    array = np.arange(40000, dtype=np.float64) + 0.25
    cached_total = memory.cache(total)
    cached_total(array)
    rows.append(("hit_array", "hit, 320 KB array argument", "µs/call", per_call(args.calls, lambda i: cached_total(array))))
    rows.append(("hash_array", "joblib.hash (md5) of the 320 KB array alone", "µs/call",
                 per_call(args.calls, lambda i: joblib.hash(array))))

    def trivial_miss(x):
        return x + 1

    cached_miss = memory.cache(trivial_miss)
    counter = [1000]

    def miss(_):
        counter[0] += 1
        cached_miss(counter[0])

    rows.append(("miss", "miss: trivial compute + store + metadata", "µs/call", per_call(args.calls, miss)))

    data = np.arange(10000 * 4, dtype=np.float64).reshape(10000, 4)
    costly_compute_cached = memory.cache(costly_compute)
    for backend, rid, label in ((None, "round2", "seed's second round: 4 hits through Parallel(n_jobs=2)"),
                                ("threading", "round2_threading", "the same, backend='threading'")):
        kwargs = {"n_jobs": 2}
        if backend:
            kwargs["backend"] = backend
        Parallel(**kwargs)(delayed(mean_using_cache)(data, c) for c in range(4))  # stores (first round)
        ms = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            Parallel(**kwargs)(delayed(mean_using_cache)(data, c) for c in range(4))
            ms.append((time.perf_counter() - t0) * 1e3)
        rows.append((rid, label, "ms/round", summarize(ms)))

    rows.append(("plain", "reference: plain call of the trivial function", "µs/call",
                 per_call(args.calls, lambda i: trivial(41))))

    print(f"# joblib {joblib.__version__} Memory (Python {sys.version.split()[0]}, numpy {np.__version__})")
    print()
    print("| case | median | p10-p90 |")
    print("|---|---|---|")
    for _, label, unit, (median, p10, p90) in rows:
        print(f"| {label} | {median:.2f} {unit} | {p10:.2f}-{p90:.2f} |")
    if args.tsv:
        with open(args.tsv, "w") as f:
            for rid, _, unit, (median, _, _) in rows:
                f.write(f"{rid}\t{median}\t{unit}\n")
    memory.clear(warn=False)
    if not args.dir:
        shutil.rmtree(location, ignore_errors=True)


if __name__ == "__main__":
    main()
