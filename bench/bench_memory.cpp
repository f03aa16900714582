// bench/bench_memory.cpp - what cojob::memory costs: a hit with a small argument, a hit with a
// 320 KB array argument (and XXH3 of that array alone), check_call_in_cache, a miss on top of
// a trivial computation (store + metadata), the file system's cost of one file creation there
// (the floor of a miss), and the seed's second round (4 hits of a 1e4 x 4 column extraction
// through `par`, n_jobs=2 threads).
//
// Prints a markdown table of medians (with p10-p90) against their targets.
// Arguments, all optional, as key=value:
//   calls=2000     timed calls per per-call case (after calls/10 warm-up calls)
//   rounds=51      timed runs of the second round
//   dir=PATH       cache location (default: a fresh directory under the system temp dir, removed)
//   tsv=FILE       also write `id<TAB>median<TAB>unit` lines (for run_memory_side_by_side.sh)
#include <cojob/cojob.hpp>

#include <xxhash.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[gnu::noinline]] int trivial(int x) { return x + 1; }

[[gnu::noinline]] double total(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

constexpr std::size_t rows = 10000;
constexpr std::size_t columns = 4;

// The seed's costly_compute without its 2 s sleep: the second round only loads its results.
std::vector<double> costly_compute(const std::vector<double>& data, int column) {
    std::vector<double> out(rows);
    for (std::size_t r = 0; r < rows; ++r) out[r] = data[r * columns + static_cast<std::size_t>(column)];
    return out;
}

volatile double sink = 0;

struct stats {
    double median = 0, p10 = 0, p90 = 0;
};

stats summarize(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const auto at = [&](double q) { return v[static_cast<std::size_t>(q * double(v.size() - 1) + 0.5)]; };
    return {at(0.5), at(0.1), at(0.9)};
}

/// Per-call times in µs of `f(i)` for i in [0, calls), after `calls/10` warm-up calls.
template <class F>
stats per_call(int calls, F f) {
    for (int i = 0; i < calls / 10; ++i) f(i);
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(calls));
    for (int i = 0; i < calls; ++i) {
        const auto t0 = clock_type::now();
        f(i);
        us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    return summarize(us);
}

struct row {
    std::string id, label, unit;
    stats s;
    double target = 0;  // 0: none (a reference)
};

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    int calls = 2000, rounds = 51;
    std::string dir_arg, tsv;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        const auto eq = a.find('=');
        if (eq == std::string_view::npos) throw std::invalid_argument("expected key=value: " + std::string(a));
        const std::string key(a.substr(0, eq)), value(a.substr(eq + 1));
        if (key == "calls") calls = std::max(10, std::stoi(value));
        else if (key == "rounds") rounds = std::max(3, std::stoi(value));
        else if (key == "dir") dir_arg = value;
        else if (key == "tsv") tsv = value;
        else throw std::invalid_argument("unknown argument " + key + " (known: calls, rounds, dir, tsv)");
    }
    std::filesystem::path dir = dir_arg;
    if (dir.empty()) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "cojob-bench-memory-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
    }
    cojob::memory mem{dir, {.verbose = 0}};
    mem.clear();
    std::vector<row> rows_out;

    // Hit, small argument.
    auto cached_trivial = mem.cache(trivial);
    (void)cached_trivial(41);
    rows_out.push_back({"hit_small", "hit, small int argument", "µs/call",
                        per_call(calls, [&](int) { sink = sink + cached_trivial(41); }), 10});
    rows_out.push_back({"check", "check_call_in_cache, small argument", "µs/call",
                        per_call(calls, [&](int) { sink = sink + cached_trivial.check_call_in_cache(41); }), 0});

    // Hit, 320 KB array argument (40000 doubles), and the hash of that array alone.
    std::vector<double> array(40000);
    std::iota(array.begin(), array.end(), 0.25);
    auto cached_total = mem.cache(total);
    (void)cached_total(array);
    rows_out.push_back({"hit_array", "hit, 320 KB array argument", "µs/call",
                        per_call(calls, [&](int) { sink = sink + cached_total(array); }), 60});
    rows_out.push_back({"hash_array", "XXH3-128 of the 320 KB array alone", "µs/call", per_call(calls, [&](int) {
                            sink = sink + double(XXH3_128bits(array.data(), array.size() * sizeof(double)).low64 & 1);
                        }), 0});

    // Miss: a trivial computation, stored with its metadata (a fresh argument every call).
    auto cached_miss = mem.cache(trivial, {.name = "trivial_miss"});
    int next = 1000;
    rows_out.push_back({"miss", "miss: trivial compute + store + metadata", "µs/call",
                        per_call(calls, [&](int) { sink = sink + cached_miss(next++); }), 200});

    // Reference: what the file system charges for one file creation in the cache directory (a
    // miss creates three inodes: the entry's directory and the temp files of output.bin and
    // metadata.json). On ext4 this varies by two orders of magnitude with other I/O.
    {
        const std::filesystem::path probe = dir / "create-probe";
        std::filesystem::create_directories(probe);
        int file = 0;
        rows_out.push_back({"fs_create", "reference: create + close an empty file in the cache directory", "µs/call",
                            per_call(calls, [&](int) {
                                const std::string p = (probe / std::to_string(file++)).string();
                                const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                                if (fd < 0) throw std::runtime_error("cannot create " + p);
                                ::close(fd);
                            }),
                            0});
        std::filesystem::remove_all(probe);
    }

    // The seed's second round: 4 cached column loads through par (n_jobs=2, threads).
    std::vector<double> data(rows * columns);
    std::iota(data.begin(), data.end(), 0.0);
    auto costly_cached = mem.cache(costly_compute);
    auto tasks = [&] {
        return std::views::iota(0, int(columns)) | std::views::transform([&](int c) {
                   return cojob::delayed([&costly_cached](const std::vector<double>* d, int col) {
                       const auto v = costly_cached(*d, col);
                       return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
                   })(&data, c);
               });
    };
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
    (void)par(tasks());  // first round: stores
    std::vector<double> ms;
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = clock_type::now();
        const auto means = par(tasks());
        ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        sink = sink + means[0];
    }
    rows_out.push_back({"round2", "seed's second round: 4 hits (80 KB results) through par, n_jobs=2", "ms/round",
                        summarize(ms), 1});
    // Same, with a new parallel object each round (what the seed writes).
    ms.clear();
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = clock_type::now();
        cojob::parallel fresh{{.n_jobs = 2, .backend = cojob::backend::threads}};
        const auto means = fresh(tasks());
        ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        sink = sink + means[0];
    }
    rows_out.push_back({"round2_new", "the same, a new parallel object each round", "ms/round", summarize(ms), 1});

    const auto direct = per_call(calls, [&](int i) { sink = sink + trivial(i); });
    rows_out.push_back({"plain", "reference: plain call of the trivial function", "µs/call", direct, 0});

    std::printf("# cojob::memory (%s)\n\n", dir_arg.empty() ? "cache in a fresh temp directory" : dir.c_str());
    std::printf("| case | median | p10-p90 | target | verdict |\n|---|---|---|---|---|\n");
    for (const auto& r : rows_out) {
        char target[32] = "—";
        if (r.target > 0) std::snprintf(target, sizeof target, "≤ %g %s", r.target, r.unit.c_str());
        std::printf("| %s | %.2f %s | %.2f-%.2f | %s | %s |\n", r.label.c_str(), r.s.median, r.unit.c_str(), r.s.p10,
                    r.s.p90, target, r.target <= 0 ? "—" : (r.s.median <= r.target ? "met" : "MISSED"));
    }
    if (!tsv.empty()) {
        std::ofstream out(tsv);
        for (const auto& r : rows_out) out << r.id << '\t' << r.s.median << '\t' << r.unit << '\n';
    }
    mem.clear();
    if (dir_arg.empty()) std::filesystem::remove_all(dir);
    return 0;
}
