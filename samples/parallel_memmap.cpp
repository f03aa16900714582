// samples/parallel_memmap.cpp - joblib's "NumPy memmap in joblib.Parallel" example in C++:
// the mean of 95 windows of an 80 MB array, sequentially, in parallel on the array itself,
// in parallel on the array dumped and mapped back, and with the workers writing their means
// into a shared output array. Prints the times, and checks that the workers' means equal the
// parent's (exit status 1 otherwise).
//
//   parallel_memmap [--quiet] [--folder DIR] [--backend threads|processes]
#include <cojob/cojob.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

bool quiet = false;

struct window {
    std::size_t begin, end;
};

}  // namespace

/// Simulates a time-consuming computation: sleeps 10 ms, then averages data[begin, end).
double slow_mean(std::span<const double> data, std::size_t begin, std::size_t end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return std::accumulate(data.begin() + static_cast<std::ptrdiff_t>(begin), data.begin() + static_cast<std::ptrdiff_t>(end),
                           0.0) / static_cast<double>(end - begin);
}

/// A trivial task that takes the whole array (the cost of sharing it).
std::size_t size_of(std::span<const double> data) { return data.size(); }

/// The same, writing the mean into output[idx] instead of returning it (5 ms of sleep).
void slow_mean_write_output(std::span<const double> data, std::size_t begin, std::size_t end,
                            cojob::memmap<double> output, std::size_t idx) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const double mean = std::accumulate(data.begin() + static_cast<std::ptrdiff_t>(begin),
                                        data.begin() + static_cast<std::ptrdiff_t>(end), 0.0) /
                        static_cast<double>(end - begin);
    if (!std::getenv("PARALLEL_MEMMAP_QUIET")) std::printf("[Worker %d] Mean for slice %zu is %f\n", static_cast<int>(::getpid()), idx, mean);
    output[idx] = mean;
}

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    std::string folder = "./cojob_memmap";
    cojob::backend backend = cojob::backend::processes;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
            ::setenv("PARALLEL_MEMMAP_QUIET", "1", 1);  // the workers inherit it (they get no arguments)
        }
        else if (std::strcmp(argv[i], "--folder") == 0 && i + 1 < argc) folder = argv[++i];
        else if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = std::strcmp(argv[++i], "threads") == 0 ? cojob::backend::threads : cojob::backend::processes;
    }
    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };

    std::vector<double> data(10'000'000);
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (double& x : data) x = uniform(rng);
    const std::size_t window_size = 500'000;
    std::vector<window> slices;
    for (std::size_t start = 0; start < data.size() - window_size; start += 100'000)
        slices.push_back({start, start + window_size});

    auto t0 = clock::now();
    std::vector<double> results;
    for (const window& w : slices) results.push_back(slow_mean(data, w.begin, w.end));
    std::printf("\nElapsed time computing the average of couple of slices %.2f s (sequential)\n", seconds(t0));

    cojob::parallel par{{.n_jobs = 2, .backend = backend}};
    const char* name = backend == cojob::backend::threads ? "threads" : "processes";
    t0 = clock::now();
    // `data` is an lvalue vector given to a span parameter: tasks hold a view; worker processes
    // get it through shared memory, placed once for the call.
    auto direct = par(slices | std::views::transform([&](window w) { return cojob::delayed(slow_mean)(data, w.begin, w.end); }));
    std::printf("\nElapsed time computing the average of couple of slices %.2f s (%s, the array itself)\n", seconds(t0), name);

    std::filesystem::create_directories(folder);
    const std::string data_file = folder + "/data_memmap";
    t0 = clock::now();
    cojob::dump(data, data_file);
    const cojob::memmap<double> mapped = cojob::load<double>(data_file, cojob::mmap_mode::r);
    std::printf("\nDumping and mapping the array took %.2f s\n", seconds(t0));
    t0 = clock::now();
    // A memmap travels by reference: each worker maps the same file.
    auto from_file = par(slices | std::views::transform([&](window w) { return cojob::delayed(slow_mean)(mapped, w.begin, w.end); }));
    std::printf("\nElapsed time computing the average of couple of slices %.2f s (%s, the mapped file)\n", seconds(t0), name);

    cojob::memmap<double> output(folder + "/output_memmap", cojob::mmap_mode::w_plus, {slices.size()});
    t0 = clock::now();
    par(std::views::iota(std::size_t{0}, slices.size()) | std::views::transform([&](std::size_t idx) {
            return cojob::delayed(slow_mean_write_output)(mapped, slices[idx].begin, slices[idx].end, output, idx);
        }));
    std::printf("\nElapsed time writing the means into the shared output %.2f s (%s)\n", seconds(t0), name);

    if (backend == cojob::backend::processes) {
        // The cost of sharing the 80 MB array with the workers: calls of two trivial tasks.
        std::vector<double> times;
        for (int i = 0; i < 5; ++i) {
            t0 = clock::now();
            par(std::views::iota(0, 2) | std::views::transform([&](int) { return cojob::delayed(size_of)(data); }));
            times.push_back(seconds(t0));
        }
        std::printf("\nSharing the 80 MB array, a call of two trivial tasks: first %.1f ms, then median %.1f ms\n",
                    times[0] * 1e3, [&] { auto t = std::vector<double>(times.begin() + 1, times.end()); std::sort(t.begin(), t.end()); return t[t.size() / 2] * 1e3; }());
    }

    bool same = direct == results && from_file == results;
    for (std::size_t i = 0; i < results.size(); ++i) same = same && output[i] == results[i];
    if (!quiet) {
        std::printf("\nExpected means computed in the parent process:\n");
        for (double r : results) std::printf(" %.8f", r);
        std::printf("\n\nActual means computed by the worker processes:\n");
        for (double r : output) std::printf(" %.8f", r);
        std::printf("\n");
    }
    std::printf("\nworkers' means %s the parent's (%zu slices)\n", same ? "equal" : "DIFFER FROM", results.size());

    std::error_code ec;
    std::filesystem::remove_all(folder, ec);
    if (ec) std::printf("Could not clean-up automatically.\n");
    return same ? 0 : 1;
}
