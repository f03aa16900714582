// bench/bench_failures.cpp - what cojob::keep_going costs when nothing fails: the same tiny
// tasks through `par(tasks)` and `par(cojob::keep_going, tasks)` on one warm runner,
// alternated, on threads (1e6 tasks) and processes (1e5 tasks); medians and their ratio.
// Environment: REPEATS (9), N_THREADS_CASE (1000000), N_PROCESSES_CASE (100000).
#include <cojob/cojob.hpp>

#include "bench_kit.hpp"

#include <cmath>
#include <cstdio>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// Out of line, as the plain loop's call would be; a free function, so processes can name it.
[[gnu::noinline]] double root(double x) { return std::sqrt(x); }

}  // namespace bench

namespace {

using bench_kit::clock_type;
using bench_kit::seconds_since;

volatile double checksum_sink = 0;

auto tiny_tasks(int n) {
    return std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed(bench::root)(double(i)); });
}

/// One plain call and one keep_going call of n tasks, `repeats` times alternated; prints their
/// medians (ns per task) and the ratio.
void compare(const char* label, cojob::parallel& par, int n, int repeats) {
    std::vector<double> plain_ns, kept_ns;
    (void)par(tiny_tasks(n));  // warm: workers started, batch size tuned
    for (int r = 0; r < repeats; ++r) {
        {
            const auto t0 = clock_type::now();
            const auto out = par(tiny_tasks(n));
            plain_ns.push_back(seconds_since(t0) / n * 1e9);
            if (out.size() != static_cast<std::size_t>(n)) throw std::runtime_error("plain: wrong count");
            checksum_sink = checksum_sink + out[static_cast<std::size_t>(n / 2)];
        }
        {
            const auto t0 = clock_type::now();
            const auto out = par(cojob::keep_going, tiny_tasks(n));
            kept_ns.push_back(seconds_since(t0) / n * 1e9);
            if (out.size() != static_cast<std::size_t>(n) || !out.back().has_value())
                throw std::runtime_error("keep_going: wrong outcomes");
            checksum_sink = checksum_sink + out[static_cast<std::size_t>(n / 2)].value();
        }
    }
    const double plain = bench_kit::median(plain_ns), kept = bench_kit::median(kept_ns);
    std::printf("%-40s %10.1f ns %10.1f ns %8.3fx\n", label, plain, kept, kept / plain);
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    const int repeats = bench_kit::env_int("REPEATS", 9);
    const int n_threads = bench_kit::env_int("N_THREADS_CASE", 1000000);
    const int n_processes = bench_kit::env_int("N_PROCESSES_CASE", 100000);
    std::printf("keep_going against a plain call of the same tasks, medians of %d alternated runs\n", repeats);
    std::printf("CPUs obtainable now: %.2f of 2\n", bench_kit::cpus_obtainable(2));
    std::printf("%-40s %13s %13s %9s\n", "case (per task)", "plain", "keep_going", "ratio");
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
        compare(("threads, " + std::to_string(n_threads) + " tiny tasks").c_str(), par, n_threads, repeats);
    }
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
        compare(("processes, " + std::to_string(n_processes) + " tiny tasks").c_str(), par, n_processes, repeats);
    }
    return 0;
}
