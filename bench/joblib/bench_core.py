#!/usr/bin/env python3
"""bench/joblib/bench_core.py - joblib's twins of bench/bench_core.cpp.

The same cases, measured the same way (median of repeated runs, round robin, one warm-up run;
per-call cases timed call by call), printed as the same markdown table, so the two programs
can be run one after the other (bench/run_side_by_side.sh) and compared:

  plain      [sqrt(i) for i in range(N)]                                 (the plain loop)
  build      list(delayed(sqrt)(i) for i in range(N))                    (the tasks only)
  seq        Parallel(n_jobs=1)(delayed(sqrt)(i) for i in range(N))
  auto       Parallel(n_jobs=2)(...)              loky, batch_size auto, new Parallel per call
  auto_warm  with Parallel(n_jobs=2) as p: p(...)  loky, reused across runs
  *_threading                                      the same with backend="threading"
  batch1     Parallel(n_jobs=2, batch_size=1)(...)
  call_seq   with Parallel(n_jobs=1) as p: p([delayed(f)(41)]), back to back
  call_warm  with Parallel(n_jobs=2) as p: p([delayed(f)(41)]), back to back
  call_gap   the same with a 1 ms sleep before each call
  call_new   Parallel(n_jobs=2)([delayed(f)(41)]), a new Parallel per call

Run with Debian's interpreter (python3-joblib): /usr/bin/python3 bench/joblib/bench_core.py
Options: --n, --n-seq, --n-threading, --n-batch1, --repeats, --calls, --gap-calls, --only, --tsv.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from math import sqrt

import joblib
from joblib import Parallel, delayed


def trivial(x):
    return x + 1


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def count_text(n):
    e = len(str(n)) - 1
    return "1e%d" % e if n == 10 ** e and e >= 4 else str(n)


def short_number(v):
    return "%.*f" % (2 if v < 10 else 1 if v < 100 else 0, v)


def percentile(sorted_values, q):
    return sorted_values[int(q * (len(sorted_values) - 1) + 0.5)]


class Row:
    def __init__(self, ident, name, n, per_task=True):
        self.ident, self.name, self.n, self.per_task = ident, name, n, per_task
        self.samples = []

    def stats(self):
        v = sorted(self.samples)
        if self.per_task:
            return statistics.median(v), v[0], v[-1]
        return statistics.median(v), percentile(v, 0.10), percentile(v, 0.90)


def check(out, n, what):
    def value(k):
        v = out[k]
        if isinstance(v, tuple):  # a delayed() tuple: (function, args, kwargs)
            f, args, kwargs = v
            v = f(*args, **kwargs)
        return v

    if len(out) != n or value(n // 2) != sqrt(n // 2) or value(n - 1) != sqrt(n - 1):
        raise RuntimeError(what + ": wrong results")


def timed(fn, n, what):
    t0 = time.perf_counter()
    out = fn(n)
    s = time.perf_counter() - t0
    check(out, n, what)
    return s


def single_calls(call, calls, gap):
    def once():
        t0 = time.perf_counter()
        r = call()
        s = time.perf_counter() - t0
        if r != [42]:
            raise RuntimeError("one task: wrong result")
        return s

    for _ in range(max(calls // 10, 10)):
        once()
    us = []
    for _ in range(calls):
        if gap:
            time.sleep(gap)
        us.append(once() * 1e6)
    return us


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="tasks: plain loop and loky, batch auto")
    ap.add_argument("--n-seq", type=int, default=20_000, help="tasks with n_jobs=1 (~20 µs each on joblib 1.2)")
    ap.add_argument("--n-threading", type=int, default=20_000, help="tasks on the threading backend, batch auto")
    ap.add_argument("--n-batch1", type=int, default=2_000, help="tasks with batch_size=1")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=1000, help="timed one-task calls, back to back")
    ap.add_argument("--gap-calls", type=int, default=300, help="timed one-task calls with a 1 ms gap")
    ap.add_argument("--only", default="", help="comma-separated case ids (the plain loop always runs)")
    ap.add_argument("--tsv", default="", help="also write id<TAB>value<TAB>unit lines here")
    a = ap.parse_args()
    wanted = set(filter(None, a.only.split(",")))

    def want(ident):
        return not wanted or ident == "plain" or ident in wanted

    load_before = load_average()
    print("## joblib core benchmark\n")
    print("- machine: %d CPUs (os.cpu_count()), %s" % (os.cpu_count(), cpu_model()))
    print("- Python %s, joblib %s (%s)" % (platform.python_version(), joblib.__version__, sys.executable))
    print("- per-task cases: %d timed runs each, round robin, after one warm-up run; per-call cases: %d calls "
          "(1 ms gap: %d)" % (a.repeats, a.calls, a.gap_calls))
    print("- load average before: %s" % load_before)
    sys.stdout.flush()

    loky_warm = Parallel(n_jobs=2)
    loky_warm.__enter__()
    threading_warm = Parallel(n_jobs=2, backend="threading")
    threading_warm.__enter__()
    seq_warm = Parallel(n_jobs=1)
    seq_warm.__enter__()
    try:
        gen = lambda n: (delayed(sqrt)(i) for i in range(n))  # noqa: E731
        cases = [
            (Row("plain", "plain loop (list comprehension)", a.n), lambda n: [sqrt(i) for i in range(n)]),
            (Row("build", "building the delayed() tuples only", a.n), lambda n: list(gen(n))),
            (Row("seq", "n_jobs=1 (sequential), new Parallel", a.n_seq), lambda n: Parallel(n_jobs=1)(gen(n))),
            (Row("auto", "n_jobs=2 loky, batch auto, new Parallel", a.n), lambda n: Parallel(n_jobs=2)(gen(n))),
            (Row("auto_warm", "n_jobs=2 loky, batch auto, inside `with Parallel`", a.n), lambda n: loky_warm(gen(n))),
            (Row("auto_threading", "n_jobs=2 threading, batch auto (always 1), new Parallel", a.n_threading),
             lambda n: Parallel(n_jobs=2, backend="threading")(gen(n))),
            (Row("batch1", "n_jobs=2 loky, batch_size=1, new Parallel", a.n_batch1),
             lambda n: Parallel(n_jobs=2, batch_size=1)(gen(n))),
            (Row("batch1_threading", "n_jobs=2 threading, batch_size=1, new Parallel", a.n_batch1),
             lambda n: Parallel(n_jobs=2, backend="threading", batch_size=1)(gen(n))),
        ]
        cases = [c for c in cases if want(c[0].ident)]
        for row, fn in cases:  # warm-up: starts loky's workers, tunes batch_size inside `with`
            timed(fn, row.n, row.name)
        for _ in range(a.repeats):
            for row, fn in cases:
                row.samples.append(timed(fn, row.n, row.name) * 1e9 / row.n)
        rows = [row for row, _ in cases]

        one = [delayed(trivial)(41)]
        per_call = [
            ("call_seq", "one task, n_jobs=1, inside `with Parallel`, back to back", a.calls, 0, seq_warm),
            ("call_warm", "one task, inside `with Parallel` (loky), back to back", a.calls, 0, loky_warm),
            ("call_warm_threading", "one task, inside `with Parallel` (threading), back to back", a.calls, 0,
             threading_warm),
            ("call_gap", "one task, inside `with Parallel` (loky), 1 ms idle gap before each", a.gap_calls, 1e-3,
             loky_warm),
            ("call_gap_threading", "one task, inside `with Parallel` (threading), 1 ms idle gap before each",
             a.gap_calls, 1e-3, threading_warm),
        ]
        for ident, name, calls, gap, par in per_call:
            if want(ident):
                row = Row(ident, name, calls, per_task=False)
                row.samples = single_calls(lambda p=par: p(one), calls, gap)
                rows.append(row)
        fresh_calls = max(a.calls // 10, 20)
        for ident, name, kw in [
            ("call_new", "one task, new Parallel each call (loky, executor reused)", {}),
            ("call_new_threading", "one task, new Parallel each call (threading, threads started)",
             {"backend": "threading"}),
        ]:
            if want(ident):
                row = Row(ident, name, fresh_calls, per_task=False)
                row.samples = single_calls(lambda kw=kw: Parallel(n_jobs=2, **kw)(one), fresh_calls, 0)
                rows.append(row)
    finally:
        seq_warm.__exit__(None, None, None)
        threading_warm.__exit__(None, None, None)
        loky_warm.__exit__(None, None, None)

    print("- load average after: %s\n" % load_average())
    plain = rows[0].stats()[0]
    print("| case | N | median | ratio to plain loop | target | verdict | spread |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        median, low, high = r.stats()
        unit = " ns/task" if r.per_task else " µs/call"
        ratio = short_number(median / plain) + "×" if r.per_task else "—"
        if r.per_task and median >= 10_000:  # per-task figures of 10 µs and more read better in µs
            median, low, high, unit = median / 1e3, low / 1e3, high / 1e3, " µs/task"
        spread = "%s–%s %s" % (short_number(low), short_number(high), "(min–max)" if r.per_task else "(p10–p90)")
        print("| %s | %s | **%s**%s | %s | — | — | %s |" % (r.name, count_text(r.n), short_number(median), unit,
                                                            ratio, spread))
    if a.tsv:
        with open(a.tsv, "w") as f:
            for r in rows:
                f.write("%s\t%.4f\t%s\n" % (r.ident, r.stats()[0], "ns/task" if r.per_task else "us/call"))


if __name__ == "__main__":
    main()
