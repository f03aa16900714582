"""joblib twin of samples/parallel_memmap (the seed's parallel_memmap example), same workload:
1e7 doubles, 95 windows of 5e5 with step 1e5, slow_mean sleeps 10 ms. Prints one line per case:
'<case>\t<seconds>'. Run with Debian's /usr/bin/python3 (python3-joblib, python3-numpy)."""
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from joblib import Parallel, delayed, dump, load


def slow_mean(data, sl):
    time.sleep(0.01)
    return data[sl].mean()


def slow_mean_write_output(data, sl, output, idx):
    time.sleep(0.005)
    output[idx] = data[sl].mean()


def main():
    data = np.random.random((int(1e7),))
    w = int(5e5)
    slices = [slice(s, s + w) for s in range(0, data.size - w, int(1e5))]

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        print(f"{name}\t{time.perf_counter() - t0:.3f}", flush=True)
        return out

    timed("sequential", lambda: [slow_mean(data, sl) for sl in slices])
    timed("threads_direct", lambda: Parallel(n_jobs=2, prefer="threads")(delayed(slow_mean)(data, sl) for sl in slices))
    with Parallel(n_jobs=2) as par:
        par(delayed(slow_mean)(data[:10], slice(0, 1)) for _ in range(2))  # start the workers
        timed("processes_direct", lambda: par(delayed(slow_mean)(data, sl) for sl in slices))
        folder = tempfile.mkdtemp(prefix="joblib_memmap_")
        try:
            fn = os.path.join(folder, "data_memmap")
            mapped = timed("dump_and_map", lambda: (dump(data, fn), load(fn, mmap_mode="r"))[1])
            timed("processes_mapped", lambda: par(delayed(slow_mean)(mapped, sl) for sl in slices))
            output = np.memmap(os.path.join(folder, "output"), dtype=data.dtype, shape=len(slices), mode="w+")
            timed("processes_output", lambda: par(delayed(slow_mean_write_output)(mapped, sl, output, i)
                                                  for i, sl in enumerate(slices)))
            # The cost of sharing the array: a call of two trivial tasks taking it.
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                par(delayed(np.size)(data) for _ in range(2))
                times.append(time.perf_counter() - t0)
            print(f"share_80MB_call\t{sorted(times)[2]:.3f}", flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
