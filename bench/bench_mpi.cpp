// bench/bench_mpi.cpp - backend::mpi against backend::processes in the same run, on one node
// (run under `mpirun -n 3`: rank 0 and two worker ranks; the process pool has two workers too):
//   tiny     1e5 tiny tasks, auto batching, warm: ns per task
//   stream   the streaming seed: 150 tasks that sleep 0.1 s and return 16 MB, n_jobs=2, consumed
//            as a generator and summed: wall seconds
// and the two figures of the scaling model in docs/scaling.md:
//   dispatch batches of one empty task rank 0 turns around per second
//   feed     bytes per second rank 0 sends to the ranks as large array arguments
//   results  bytes per second of 16 MB results coming back
// Prints medians. Environment: REPEATS (7), STREAM_REPEATS (3), N_TINY (100000), CASES (a list
// of the names above; all by default).
#include <cojob/cojob.hpp>
#include <cojob/mpi.hpp>

#include "bench_kit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

double root(int i) { return std::sqrt(static_cast<double>(i)); }
int identity(int i) { return i; }
std::vector<double> seed_result(int i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return std::vector<double>(std::size_t{10000} * 200, static_cast<double>(i));  // i * ones(10000, 200)
}
std::vector<double> block(int i) { return std::vector<double>(std::size_t{2} << 20, static_cast<double>(i)); }
double first_of(std::span<const double> data, int i) { return data[static_cast<std::size_t>(i)]; }

}  // namespace bench

namespace {

using bench_kit::clock_type;
using bench_kit::env_int;
using bench_kit::median;
using bench_kit::seconds_since;


cojob::options on(cojob::backend b) {
    cojob::options o;
    o.n_jobs = 2;
    o.backend = b;
    return o;
}

double tiny_ns(cojob::backend b, int n, int repeats) {
    cojob::parallel par(on(b));
    auto tasks = std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed(bench::root)(i); });
    (void)par(tasks);  // warm: workers up, batch size tuned
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = clock_type::now();
        auto out = par(tasks);
        t.push_back(seconds_since(t0) / n * 1e9);
        if (out.size() != static_cast<std::size_t>(n)) std::abort();
    }
    return median(t);
}

double stream_seconds(cojob::backend b, int repeats) {
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        cojob::options o = on(b);
        o.return_as = cojob::return_as::generator;
        cojob::parallel par(o);
        const auto t0 = clock_type::now();
        double total = 0;
        for (const auto& v : par.stream(std::views::iota(0, 150) |
                                        std::views::transform([](int i) { return cojob::delayed(bench::seed_result)(i); })))
            total += std::accumulate(v.begin(), v.end(), 0.0);
        t.push_back(seconds_since(t0));
        if (total != 2e6 * (149.0 * 150 / 2)) std::abort();
    }
    return median(t);
}

double dispatch_per_second(cojob::backend b, int repeats) {
    cojob::options o = on(b);
    o.batch_size = 1;
    cojob::parallel par(o);
    auto tasks = std::views::iota(0, 20000) | std::views::transform([](int i) { return cojob::delayed(bench::identity)(i); });
    (void)par(tasks);
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = clock_type::now();
        (void)par(tasks);
        t.push_back(20000 / seconds_since(t0));
    }
    return median(t);
}

/// A fresh 64 MB argument each call, read by two tasks per worker: what sharing it costs.
double feed_bytes_per_second(cojob::backend b, int repeats) {
    cojob::options o = on(b);
    o.batch_size = 1;
    cojob::parallel par(o);
    std::vector<double> t;
    for (int r = 0; r <= repeats; ++r) {
        std::vector<double> data(std::size_t{8} << 20, static_cast<double>(r));
        const auto t0 = clock_type::now();
        auto out = par(std::views::iota(0, 4) | std::views::transform([&](int i) {
                           return cojob::delayed(bench::first_of)(std::span<const double>(data), i);
                       }));
        if (r > 0) t.push_back(static_cast<double>(data.size() * sizeof(double)) / seconds_since(t0));
        if (out[3] != r) std::abort();
    }
    return median(t);
}

double result_bytes_per_second(cojob::backend b, int repeats) {
    cojob::parallel par(on(b));
    auto tasks = std::views::iota(0, 16) | std::views::transform([](int i) { return cojob::delayed(bench::block)(i); });
    (void)par(tasks);
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = clock_type::now();
        auto out = par(tasks);
        t.push_back(16.0 * (16 << 20) / seconds_since(t0));
    }
    return median(t);
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);  // ranks 1..K-1 serve inside
    if (cojob::mpi::size() < 3) {
        std::fprintf(stderr, "bench_mpi: start it with `mpirun -n 3 %s` (rank 0 and two workers)\n", argv[0]);
        return 2;
    }
    const int repeats = env_int("REPEATS", 7);
    const int stream_repeats = env_int("STREAM_REPEATS", 3);
    const int n_tiny = env_int("N_TINY", 100000);
    std::printf("cojob mpi benchmark: %d ranks, n_jobs=2 on both backends, %d repeats (%d for the stream)\n",
                cojob::mpi::size(), repeats, stream_repeats);
    std::printf("%-44s %14s %14s %8s\n", "case", "mpi", "processes", "ratio");
    const char* cases_env = std::getenv("CASES");
    const std::string cases = cases_env ? cases_env : "tiny,stream,dispatch,feed,results";
    const auto wanted = [&](const char* name) { return cases.find(name) != std::string::npos; };
    const auto both = [](auto f) {
        const double m = f(cojob::backend::mpi), p = f(cojob::backend::processes);
        return std::pair{m, p};
    };
    if (wanted("tiny")) {
        auto [m, p] = both([&](cojob::backend b) { return tiny_ns(b, n_tiny, repeats); });
        std::printf("%-44s %11.1f ns %11.1f ns %7.2fx\n", "1e5 tiny tasks, per task", m, p, m / p);
    }
    if (wanted("stream")) {
        auto [m, p] = both([&](cojob::backend b) { return stream_seconds(b, stream_repeats); });
        std::printf("%-44s %12.2f s %12.2f s %7.2fx\n", "stream seed, 150 x 16 MB, generator, wall", m, p, m / p);
    }
    if (wanted("dispatch")) {
        auto [m, p] = both([&](cojob::backend b) { return dispatch_per_second(b, repeats); });
        std::printf("%-44s %12.0f/s %12.0f/s %7.2fx\n", "dispatch: batches of one empty task", m, p, p / m);
    }
    if (wanted("feed")) {
        auto [m, p] = both([&](cojob::backend b) { return feed_bytes_per_second(b, repeats); });
        std::printf("%-44s %9.2f GB/s %9.2f GB/s %7.2fx\n", "feed: a fresh 64 MB array argument", m / 1e9, p / 1e9, p / m);
    }
    if (wanted("results")) {
        auto [m, p] = both([&](cojob::backend b) { return result_bytes_per_second(b, repeats); });
        std::printf("%-44s %9.2f GB/s %9.2f GB/s %7.2fx\n", "results: 16 x 16 MB", m / 1e9, p / 1e9, p / m);
    }
    return 0;
}
