// bench/bench_arrays.cpp - the seed's memmap workload (joblib.md §3(c)): an 80 MB array
// (1e7 doubles), 95 windows of 5e5 elements with step 1e5, slow_mean sleeps 10 ms and returns
// the window's mean; n_jobs=2. Cases, repeated in interleaved rounds (so that every case sees
// the same spells of load), medians and ranges over the rounds:
//
//   sequential             the 95 tasks in a plain loop (gives the floor below)
//   floor                  sequential x 48/95: the busier of two workers runs 48 tasks
//   threads                backend=threads, warm object
//   processes_array_first  backend=processes, the array itself, the first call of a warm object
//                          that sees this array (the array is placed in a fresh segment)
//   processes_array        the same object, the same array again
//   dump_and_map           cojob::dump of the array into the folder + cojob::load_mmap
//   processes_mapped       backend=processes, the mapped file (a memmap travels by reference)
//   share_first            a call of two trivial tasks taking the whole array, the first one on
//                          a warm object: what placing 80 MB costs the first time
//   share                  the same call again on the same object: what sharing costs per call
//   share_changed          the same, one element of the array changed before each call (the
//                          task returns that element, and the benchmark fails if it is stale)
//
// The mean is summed with eight partial sums, as numpy's pairwise summation does (0.15-0.4 ms
// per window here, like numpy's `data[sl].mean()`). Every parallel result is checked against
// the sequential one.
//
// Usage: bench_arrays [rounds=N] [folder=DIR] [tsv=FILE] [cases=a,b,...]
//   rounds (default 7), folder for the dump (default: the system temp dir), tsv writes
//   "id<TAB>median<TAB>min<TAB>max<TAB>unit" lines for bench/run_arrays_side_by_side.sh, which
//   runs the joblib twin bench/joblib/bench_arrays.py in the same go.
#include <cojob/cojob.hpp>

#include "bench_kit.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace bench {

/// The window's mean with eight partial sums (numpy's pairwise summation has the same inner loop).
double mean_of(const double* p, std::size_t n) {
    double acc[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) acc[k] += p[i + k];
    double rest = 0;
    for (; i < n; ++i) rest += p[i];
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + rest) /
           static_cast<double>(n);
}

/// The seed's task: sleeps 10 ms, then averages data[begin, end).
double slow_mean(std::span<const double> data, std::size_t begin, std::size_t end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return mean_of(data.data() + begin, end - begin);
}

/// Trivial tasks taking the whole array: what sharing it costs.
std::size_t size_of(std::span<const double> data) { return data.size(); }
double element(std::span<const double> data, std::size_t i) { return data[i]; }

}  // namespace bench

namespace {

using bench_kit::clock_type;
using bench_kit::seconds_since;

struct window {
    std::size_t begin, end;
};

struct series {
    const char* unit;
    double scale;  ///< seconds -> unit
    std::vector<double> values;
};

using bench_kit::median;

[[noreturn]] void wrong(const char* what) {
    std::fprintf(stderr, "bench_arrays: %s\n", what);
    std::exit(1);
}

std::string arg_value(int argc, char** argv, const char* key, std::string fallback) {
    const std::size_t n = std::strlen(key);
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], key, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
    return fallback;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    const int rounds = std::max(1, std::atoi(arg_value(argc, argv, "rounds", "7").c_str()));
    const std::string tsv = arg_value(argc, argv, "tsv", "");
    const std::string cases = "," + arg_value(argc, argv, "cases", "") + ",";
    const auto wanted = [&](const char* id) { return cases == ",," || cases.find(std::string(",") + id + ",") != std::string::npos; };
    const std::filesystem::path folder = std::filesystem::path(arg_value(argc, argv, "folder", std::filesystem::temp_directory_path().string())) /
                                         ("cojob_bench_arrays_" + std::to_string(::getpid()));

    std::vector<double> data(10'000'000);
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (double& x : data) x = uniform(rng);
    std::vector<double> other = data;  // for share_changed
    const std::size_t window_size = 500'000;
    std::vector<window> slices;
    for (std::size_t start = 0; start < data.size() - window_size; start += 100'000) slices.push_back({start, start + window_size});
    std::vector<double> expected;
    for (const window& w : slices) expected.push_back(bench::mean_of(data.data() + w.begin, w.end - w.begin));

    const auto on = [&](auto& array) {
        return slices | std::views::transform([&array](window w) { return cojob::delayed(bench::slow_mean)(array, w.begin, w.end); });
    };
    const auto trivial = [&] { return std::views::iota(0, 2) | std::views::transform([&](int) { return cojob::delayed(bench::size_of)(data); }); };
    const auto check = [&](const std::vector<double>& got, const char* what) {
        if (got != expected) wrong(what);
    };

    std::map<std::string, series> out;
    const std::vector<const char*> order = {"sequential", "floor", "threads", "processes_array_first", "processes_array", "dump_and_map",
                                            "processes_mapped", "share_first", "share", "share_changed"};
    for (const char* id : order) {
        const bool ms = std::strncmp(id, "share", 5) == 0;
        out[id] = series{ms ? "ms" : "s", ms ? 1e3 : 1.0, {}};
    }
    const auto record = [&](const char* id, double seconds) { out[id].values.push_back(seconds * out[id].scale); };

    std::printf("cojob arrays benchmark (the seed's memmap workload): 95 windows of 5e5 doubles, 10 ms sleep each, n_jobs=2, "
                "%d CPUs, %d rounds; load average %s\n",
                cojob::cpu_count(), rounds, [] {
                    static char buf[64] = "?";
                    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
                        if (!std::fgets(buf, sizeof buf, f)) buf[0] = 0;
                        std::fclose(f);
                        if (char* nl = std::strchr(buf, '\n')) *nl = 0;
                    }
                    return buf;
                }());
    std::filesystem::create_directories(folder);
    cojob::parallel threads{{.n_jobs = 2, .backend = cojob::backend::threads}};
    (void)threads(std::views::single(cojob::delayed(bench::size_of)(data)));
    std::vector<double> small(8, 1.0);
    const auto warm = [&](cojob::parallel& p) {  // starts the workers without any large array
        (void)p(std::views::iota(0, 2) | std::views::transform([&](int) { return cojob::delayed(bench::size_of)(small); }));
    };

    for (int r = 0; r < rounds; ++r) {
        if (wanted("sequential") || wanted("floor")) {
            const auto t0 = clock_type::now();
            std::vector<double> got;
            for (const window& w : slices) got.push_back(bench::slow_mean(data, w.begin, w.end));
            const double s = seconds_since(t0);
            check(got, "sequential means differ");
            record("sequential", s);
            record("floor", s * 48.0 / 95.0);
        }
        if (wanted("threads")) {
            const auto t0 = clock_type::now();
            auto got = threads(on(data));
            record("threads", seconds_since(t0));
            check(got, "threads: means differ");
        }
        if (wanted("share_first")) {
            cojob::parallel p{{.n_jobs = 2, .backend = cojob::backend::processes}};
            warm(p);
            const auto t0 = clock_type::now();
            auto got = p(trivial());
            record("share_first", seconds_since(t0));
            if (got.size() != 2 || got[0] != data.size()) wrong("share_first: wrong size");
        }
        cojob::parallel procs{{.n_jobs = 2, .backend = cojob::backend::processes}};
        warm(procs);
        if (wanted("processes_array_first") || wanted("processes_array")) {
            auto t0 = clock_type::now();
            auto got = procs(on(data));
            record("processes_array_first", seconds_since(t0));
            check(got, "processes on the array: means differ");
            t0 = clock_type::now();
            got = procs(on(data));
            record("processes_array", seconds_since(t0));
            check(got, "processes on the array, again: means differ");
        }
        if (wanted("dump_and_map") || wanted("processes_mapped")) {
            const std::string file = (folder / "data_memmap").string();
            auto t0 = clock_type::now();
            cojob::dump(data, file);
            const cojob::memmap<double> mapped = cojob::load_mmap<double>(file);
            record("dump_and_map", seconds_since(t0));
            t0 = clock_type::now();
            auto got = procs(on(mapped));
            record("processes_mapped", seconds_since(t0));
            check(got, "processes on the mapped file: means differ");
        }
        if (wanted("share")) {
            std::vector<double> calls;
            for (int i = 0; i < 9; ++i) {
                const auto t0 = clock_type::now();
                auto got = procs(trivial());
                calls.push_back(seconds_since(t0));
                if (got.size() != 2 || got[0] != data.size()) wrong("share: wrong size");
            }
            record("share", median(calls));
        }
        if (wanted("share_changed")) {
            std::vector<double> calls;
            for (int i = 0; i < 5; ++i) {
                const std::size_t at = (static_cast<std::size_t>(r) * 5 + static_cast<std::size_t>(i)) * 1'999'993 % other.size();
                other[at] = -1.0 - i;
                const auto t0 = clock_type::now();
                auto got = procs(std::views::iota(0, 2) | std::views::transform([&](int) { return cojob::delayed(bench::element)(other, at); }));
                calls.push_back(seconds_since(t0));
                if (got.size() != 2 || got[0] != other[at] || got[1] != other[at]) wrong("share_changed: a worker saw stale data");
            }
            record("share_changed", median(calls));
        }
        std::printf("round %d:", r + 1);
        for (const char* id : order)
            if (!out[id].values.empty() && out[id].values.size() == static_cast<std::size_t>(r) + 1)
                std::printf(" %s %.3g%s", id, out[id].values.back(), out[id].unit);
        std::printf("\n");
        std::fflush(stdout);
    }
    std::error_code ec;
    std::filesystem::remove_all(folder, ec);

    std::printf("\n| case | median | min | max |\n|---|---|---|---|\n");
    std::FILE* f = tsv.empty() ? nullptr : std::fopen(tsv.c_str(), "w");
    if (!tsv.empty() && !f) {
        std::perror(tsv.c_str());
        return 1;
    }
    for (const char* id : order) {
        const series& s = out[id];
        if (s.values.empty()) continue;
        const auto [lo, hi] = std::minmax_element(s.values.begin(), s.values.end());
        std::printf("| %s | %.3f %s | %.3f | %.3f |\n", id, median(s.values), s.unit, *lo, *hi);
        if (f) std::fprintf(f, "%s\t%.6g\t%.6g\t%.6g\t%s\n", id, median(s.values), *lo, *hi, s.unit);
    }
    if (f) std::fclose(f);
    return 0;
}
