#!/usr/bin/env python3
"""bench/joblib/bench_generator.py - joblib's twin of samples/parallel_generator.cpp.

The seed's workload (joblib's "Returning a generator in joblib.Parallel"): N tasks, each sleeps
0.1 s and returns i * np.ones((10000, 200)) (16 MB of float64), n_jobs=2, summed by the
consumer as results arrive. One run per invocation, so that every run starts from a fresh
interpreter (as the cojob side does):

  list       Parallel(n_jobs=2)(tasks), then the sum
  generator  Parallel(n_jobs=2, return_as="generator")(tasks), summed as they come
  slow       the same generator with a consumer that sleeps after each array

Memory is sampled as cojob's sample does: every 50 ms, the resident set (statm) of this process
and of all its descendants (loky workers and its resource tracker), summed. The wall time runs
from the Parallel call to the end of the sum. joblib before 1.3 has no generator: such runs are
reported as unsupported (exit code 0, a row with no figures).

Run with Debian's interpreter (python3-joblib, python3-numpy):
  /usr/bin/python3 bench/joblib/bench_generator.py --run generator --backend loky
Options: --tasks (150), --run list|generator|slow, --backend loky|threading, --slow-ms (100),
--tsv FILE (appends one line: backend, run, wall s, peak MB, above start MB, workers MB, sum).
"""

import argparse
import os
import sys
import threading
import time

import joblib
import numpy as np
from joblib import Parallel, delayed

PAGE = os.sysconf("SC_PAGE_SIZE")


def return_big_object(i):
    time.sleep(0.1)
    return i * np.ones((10000, 200), dtype=np.float64)


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(root):
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                line = f.read()
        except OSError:
            continue
        fields = line[line.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    out, pending = [], [root]
    while pending:
        for c in children.get(pending.pop(), []):
            out.append(c)
            pending.append(c)
    return out


class MemoryMonitor(threading.Thread):
    """Samples (parent MB, workers MB) every 50 ms until join()."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = False
        self.samples = []
        self.start()

    def measure(self):
        me = os.getpid()
        parent = rss_bytes(me) / 1e6
        workers = sum(rss_bytes(p) for p in descendants(me)) / 1e6
        self.samples.append((parent, workers))

    def run(self):
        next_t = time.monotonic()
        while not self.stop:
            self.measure()
            next_t += 0.05
            time.sleep(max(0.0, next_t - time.monotonic()))

    def join(self, timeout=None):
        self.stop = True
        super().join(timeout)
        self.measure()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=150)
    ap.add_argument("--run", choices=["list", "generator", "slow"], default="generator")
    ap.add_argument("--backend", choices=["loky", "threading"], default="loky")
    ap.add_argument("--slow-ms", type=int, default=100)
    ap.add_argument("--tsv")
    args = ap.parse_args()

    label = f"joblib {joblib.__version__} {args.backend}"
    has_generator = "return_as" in Parallel.__init__.__code__.co_varnames
    if args.run != "list" and not has_generator:
        print(f"[{label}] {args.run}: joblib {joblib.__version__} has no return_as (generators came in 1.3)")
        if args.tsv:
            with open(args.tsv, "a") as f:
                f.write(f"{label}\t{args.run}\t\t\t\t\tunsupported\n")
        return 0

    print(f"[{label}] {args.run}: {args.tasks} tasks returning 16 MB, n_jobs=2", flush=True)
    monitor = MemoryMonitor()
    t0 = time.perf_counter()
    tasks = (delayed(return_big_object)(i) for i in range(args.tasks))
    total = 0
    if args.run == "list":
        res = Parallel(n_jobs=2, backend=args.backend)(tasks)
        for value in res:
            total += value
        del res
    else:
        res = Parallel(n_jobs=2, backend=args.backend, return_as="generator")(tasks)
        for value in res:
            total += value
            if args.run == "slow":
                time.sleep(args.slow_ms / 1000)
        del res
    wall = time.perf_counter() - t0
    monitor.join()

    expected = args.tasks * (args.tasks - 1) / 2
    ok = isinstance(total, np.ndarray) and bool(np.all(total == expected))
    totals = [p + w for p, w in monitor.samples]
    peak = max(totals)
    above = peak - totals[0]
    workers = max(w for _, w in monitor.samples)
    print(f"{'ok' if ok else 'WRONG SUM'}. Peak memory usage: {peak:.2f} MB ({above:.2f} MB above the start; "
          f"workers {workers:.2f} MB). Wall {wall:.2f} s")
    if args.tsv:
        with open(args.tsv, "a") as f:
            f.write(f"{label}\t{args.run}\t{wall:.3f}\t{peak:.1f}\t{above:.1f}\t{workers:.1f}\t{'ok' if ok else 'wrong'}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
