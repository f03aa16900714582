// bench/bench_kit.hpp - what the benchmark programs share: a wall clock, medians, integer
// settings from the environment, and how many CPUs the process can get right now.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <vector>

namespace bench_kit {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// The median (the mean of the middle two for an even count); `v` must not be empty.
inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// The integer in environment variable `name`, else `fallback`.
inline int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v ? std::atoi(v) : fallback;
}

/// How many CPUs this process can actually get right now: `threads` threads spin for 100 ms,
/// and the process CPU time they obtain is divided by the wall time. On a shared machine this
/// says more than the load average about what the threaded cases had to run on.
inline double cpus_obtainable(int threads) {
    std::atomic<bool> stop{false};
    const std::clock_t c0 = std::clock();
    const auto t0 = clock_type::now();
    std::vector<std::thread> spinners;
    for (int i = 0; i < threads; ++i)
        spinners.emplace_back([&stop] {
            while (!stop.load(std::memory_order_relaxed)) {
            }
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop.store(true);
    for (auto& t : spinners) t.join();
    return double(std::clock() - c0) / CLOCKS_PER_SEC / seconds_since(t0);
}

}  // namespace bench_kit
