// bench/bench_concurrent.cpp - one runner serving many calls at once, on threads and processes,
// each case against its own floor in the same run:
//   (a) eight concurrent async_runs of K tasks against one call of 8K of the same tasks;
//   (b) N async_submits from 100 coroutines against one call of the same N tasks;
//   (c) a one-task call's latency while a long call keeps every worker busy, against its
//       latency on the idle runner (the median, and the 90th percentile of the busy calls).
// Prints medians and ratios. Environment: REPEATS (5), SPIN_US (50, the work of one task),
// K (1000), N_SUBMIT (10000), BACKEND (both; or threads, or processes).
#include <cojob/cojob.hpp>

#include "bench_kit.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace bench {

/// Busy work for `us` microseconds; returns i.
long spin(long i, long us) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    while (std::chrono::steady_clock::now() < until) {
    }
    return i;
}

long one(long i) { return i; }

}  // namespace bench

namespace {

namespace asio = boost::asio;
using bench_kit::clock_type;
using bench_kit::env_int;
using bench_kit::median;
using bench_kit::seconds_since;

auto spins(long n, long us) {
    return std::views::iota(0L, n) | std::views::transform([us](long i) { return cojob::delayed(bench::spin)(i, us); });
}

/// Runs `body` (a coroutine factory taking the executor) `copies` times at once on one io_context.
template <class Body>
void run_coroutines(int copies, Body body) {
    asio::io_context ctx;
    for (int c = 0; c < copies; ++c) asio::co_spawn(ctx, body(c), asio::detached);
    ctx.run();
}

struct ratio_row {
    double concurrent_s;
    double floor_s;
};

ratio_row eight_requests(cojob::parallel& par, long k, long us) {
    auto t0 = clock_type::now();
    (void)par(spins(8 * k, us));
    const double floor = seconds_since(t0);
    t0 = clock_type::now();
    run_coroutines(8, [&](int) -> asio::awaitable<void> { (void)co_await par.async_run(spins(k, us), asio::use_awaitable); });
    return {seconds_since(t0), floor};
}

ratio_row submits(cojob::parallel& par, long n, long us) {
    auto t0 = clock_type::now();
    (void)par(spins(n, us));
    const double floor = seconds_since(t0);
    t0 = clock_type::now();
    const long per = n / 100;
    run_coroutines(100, [&](int) -> asio::awaitable<void> {
        for (long i = 0; i < per; ++i) (void)co_await par.async_submit(cojob::delayed(bench::spin)(i, us), asio::use_awaitable);
    });
    return {seconds_since(t0), floor};
}

struct latency {
    double median_us = 0, p90_us = 0;
};

/// Latency of 50 one-task calls made back to back; with `busy`, while a long call keeps the
/// workers busy.
latency one_task_latency(cojob::parallel& par, long us, bool busy) {
    std::atomic<bool> stop{false};
    std::thread load;
    if (busy) {
        load = std::thread([&] {
            while (!stop) (void)par(spins(2000, us));
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::vector<double> us_each;
    for (int i = 0; i < 50; ++i) {
        const auto t0 = clock_type::now();
        (void)par(std::views::single(cojob::delayed(bench::one)(long{i})));
        us_each.push_back(seconds_since(t0) * 1e6);
    }
    stop = true;
    if (load.joinable()) load.join();
    const double m = median(us_each);
    std::sort(us_each.begin(), us_each.end());
    return {m, us_each[us_each.size() * 9 / 10]};
}

void run_backend(cojob::backend b, const char* name, int repeats, long us, long k, long n_submit) {
    cojob::parallel par{{.n_jobs = 2, .backend = b}};
    (void)par(spins(100, us));  // warm: workers up, batch size tuned
    std::vector<double> eight, eight_floor, sub, sub_floor, idle, busy, busy_p90;
    for (int r = 0; r < repeats; ++r) {
        const auto e = eight_requests(par, k, us);
        eight.push_back(e.concurrent_s / e.floor_s);
        eight_floor.push_back(e.floor_s);
        const auto s = submits(par, n_submit, us);
        sub.push_back(s.concurrent_s / s.floor_s);
        sub_floor.push_back(s.floor_s);
        idle.push_back(one_task_latency(par, us, false).median_us);
        const latency l = one_task_latency(par, us, true);
        busy.push_back(l.median_us);
        busy_p90.push_back(l.p90_us);
    }
    std::printf("%s: 8 concurrent requests of %ld tasks / one call of %ld: %.3f (one call %.1f ms)\n", name, k, 8 * k,
                median(eight), median(eight_floor) * 1e3);
    std::printf("%s: %ld async_submits from 100 coroutines / one call: %.2f (one call %.1f ms)\n", name, n_submit,
                median(sub), median(sub_floor) * 1e3);
    std::printf("%s: one-task call latency, saturated / idle: %.1f (%.1f us / %.1f us); saturated p90 %.1f us\n",
                name, median(busy) / median(idle), median(busy), median(idle), median(busy_p90));
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    const int repeats = env_int("REPEATS", 5);
    const long us = env_int("SPIN_US", 50);
    const long k = env_int("K", 1000);
    const long n_submit = env_int("N_SUBMIT", 10000);
    std::printf("cojob concurrent-calls benchmark, %d repeats, n_jobs=2, tasks of %ld us, %d CPUs (medians)\n",
                repeats, us, cojob::cpu_count());
    const char* only = std::getenv("BACKEND");
    const std::string which = only ? only : "both";
    if (which != "processes") run_backend(cojob::backend::threads, "threads", repeats, us, k, n_submit);
    if (which != "threads") run_backend(cojob::backend::processes, "processes", repeats, us, k, n_submit);
}
