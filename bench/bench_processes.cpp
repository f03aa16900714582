// bench/bench_processes.cpp - backend=processes: per-task cost of tiny tasks, one trivial task on
// a warm pool, cold start of a pool of 2, and a large result through the pipe. Prints medians;
// the joblib twin is bench/joblib/bench_processes.py, run side by side by run_processes_side_by_side.sh.
// Arguments: tsv=FILE writes "id<TAB>median<TAB>unit" lines for that script. Environment:
// REPEATS (11), N_TINY (100000).
#include <cojob/cojob.hpp>
#include <cojob/detail/elements.hpp>  // fill_fresh, for the floor

#include "bench_kit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ranges>
#include <string>
#include <vector>

namespace bench {

double root(int i) { return std::sqrt(static_cast<double>(i)); }
int identity(int i) { return i; }
std::vector<double> block(int i, int n) { return std::vector<double>(static_cast<std::size_t>(n), double(i)); }

}  // namespace bench

namespace {

using bench_kit::clock_type;
using bench_kit::env_int;
using bench_kit::median;
using bench_kit::seconds_since;


struct row {
    const char* id;
    double value;
    const char* unit;
};

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    const int repeats = env_int("REPEATS", 11);
    const int n_tiny = env_int("N_TINY", 100000);
    std::string tsv;
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], "tsv=", 4) == 0) tsv = argv[i] + 4;
    std::vector<row> rows;
    std::printf("cojob processes benchmark, %d repeats, n_jobs=2, %d CPUs\n", repeats, cojob::cpu_count());

    // (a) tiny tasks, auto batching, warm pool (the first call starts it and is not counted).
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
        auto tasks = std::views::iota(0, n_tiny) | std::views::transform([](int i) { return cojob::delayed(bench::root)(i); });
        double check = 0;
        (void)par(tasks);
        std::vector<double> per_task;
        for (int r = 0; r < repeats; ++r) {
            const auto t0 = clock_type::now();
            auto out = par(tasks);
            per_task.push_back(seconds_since(t0) / n_tiny * 1e9);
            check += out.back();
        }
        // The plain loop, in the same run, for scale.
        std::vector<double> plain;
        for (int r = 0; r < repeats; ++r) {
            const auto t0 = clock_type::now();
            std::vector<double> out;
            out.reserve(static_cast<std::size_t>(n_tiny));
            for (int i = 0; i < n_tiny; ++i) out.push_back(bench::root(i));
            plain.push_back(seconds_since(t0) / n_tiny * 1e9);
            check += out.back();
        }
        std::printf("tiny tasks: %d x delayed(sqrt)(i), batch auto: %.1f ns/task (plain loop %.2f ns/task) [check %.0f]\n",
                    n_tiny, median(per_task), median(plain), check);
        rows.push_back({"tiny", median(per_task), "ns/task"});
    }

    // (b) one trivial task, warm pool, back to back.
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
        auto one = std::views::single(cojob::delayed(bench::identity)(7));
        (void)par(one);
        std::vector<double> us;
        for (int r = 0; r < std::max(repeats, 1) * 20; ++r) {
            const auto t0 = clock_type::now();
            (void)par(one);
            us.push_back(seconds_since(t0) * 1e6);
        }
        std::printf("one trivial task, warm pool: %.1f us/call (median of %zu)\n", median(us), us.size());
        rows.push_back({"warm_call", median(us), "us/call"});
    }

    // (c) cold start: a new pool of 2 and one trivial task, then its shutdown.
    {
        std::vector<double> ms, total;
        for (int r = 0; r < repeats; ++r) {
            const auto t0 = clock_type::now();
            {
                cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
                (void)par(std::views::single(cojob::delayed(bench::identity)(7)));
                ms.push_back(seconds_since(t0) * 1e3);
            }
            total.push_back(seconds_since(t0) * 1e3);
        }
        std::printf("cold start, pool of 2 + one trivial task: %.2f ms (with shutdown %.2f ms)\n", median(ms),
                    median(total));
        rows.push_back({"cold_start", median(ms), "ms"});
    }

    // (d) large results: 16 MB each through the pipes.
    {
        const int n = 16 << 20 >> 3;
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 1}};
        auto tasks = std::views::iota(0, 8) | std::views::transform([n](int i) { return cojob::delayed(bench::block)(i, n); });
        (void)par(tasks);
        std::vector<double> gbps;
        for (int r = 0; r < repeats; ++r) {
            const auto t0 = clock_type::now();
            auto out = par(tasks);
            gbps.push_back(8.0 * 16 * (1 << 20) / seconds_since(t0) / 1e9);
        }
        std::printf("16 MB results, 8 per call: %.2f GB/s\n", median(gbps));
        rows.push_back({"big_result", median(gbps), "GB/s"});

        // (e) the floor of (d): the parent's least work per result, with no other process
        // involved: 8 fresh 16 MB vectors filled from bytes already in this process, their
        // storage made ready as cojob's decoding does (fill_fresh: huge pages, the back half
        // faulted in by a helper beside the copy).
        const std::vector<double> source(static_cast<std::size_t>(n), 1.5);
        std::vector<double> floor_gbps;
        for (int r = 0; r < repeats; ++r) {
            const auto t0 = clock_type::now();
            std::vector<std::vector<double>> fresh;
            for (int k = 0; k < 8; ++k) {
                std::vector<double> v;
                cojob::detail::fill_fresh(v, source.size(), [&] { v.insert(v.end(), source.begin(), source.end()); });
                fresh.push_back(std::move(v));
            }
            floor_gbps.push_back(8.0 * 16 * (1 << 20) / seconds_since(t0) / 1e9);
        }
        std::printf("16 MB results, the parent's floor (fresh vectors filled in-process): %.2f GB/s; results at %.2f of it\n",
                    median(floor_gbps), median(gbps) / median(floor_gbps));
        rows.push_back({"big_result_floor", median(floor_gbps), "GB/s"});
    }
    if (!tsv.empty()) {
        std::FILE* f = std::fopen(tsv.c_str(), "w");
        if (!f) {
            std::perror(tsv.c_str());
            return 1;
        }
        for (const row& r : rows) std::fprintf(f, "%s\t%.6g\t%s\n", r.id, r.value, r.unit);
        std::fclose(f);
    }
    return 0;
}
