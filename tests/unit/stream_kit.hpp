// tests/unit/stream_kit.hpp - tasks and helpers shared by the stream tests: a probe that counts
// started and consumed tasks and live results, and task ranges.
#pragma once

#include "kit.hpp"

#include <cojob/delayed.hpp>

#include <atomic>
#include <chrono>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace stream_kit {

using kit::watchdog;

/// What the tasks of one test saw.
struct probe {
    std::atomic<long> started{0};
    std::atomic<long> consumed{0};          ///< counted by the test's consumer
    std::atomic<long> max_outstanding{0};   ///< most tasks started and not consumed at once
    std::atomic<long> max_alive{0};
    kit::counts counts;
};

inline long square(long i) { return i * i; }

inline long uneven_square(long i) {
    if (i % 97 == 3) std::this_thread::sleep_for(std::chrono::microseconds(100));
    return i * i;
}

inline long sleep_then_return(long i, long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return i;
}

inline long throw_at(long i, long bad) {
    if (i == bad) throw std::invalid_argument("bad " + std::to_string(i));
    if (i % 13 == 5) std::this_thread::sleep_for(std::chrono::microseconds(200));
    return i;
}

/// A result counted by `p`: records how many tasks run ahead of the consumer, then sleeps.
inline kit::counted counted_value(probe* p, long i, long ms) {
    kit::raise_to(p->max_outstanding, ++p->started - p->consumed);
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    kit::counted c(p->counts, static_cast<int>(i));
    kit::raise_to(p->max_alive, p->counts.values());
    return c;
}

inline auto plain_squares(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(square)(i); });
}
inline auto squares(long n) { return plain_squares(n); }
inline auto uneven_squares(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(uneven_square)(i); });
}
inline auto failing_at(long n, long bad) {
    return std::views::iota(0L, n) | std::views::transform([bad](long i) { return cojob::delayed(throw_at)(i, bad); });
}
inline auto counted_tasks(probe& p, long n, long ms) {
    return std::views::iota(0L, n) |
           std::views::transform([pp = &p, ms](long i) { return cojob::delayed(counted_value)(pp, i, ms); });
}

inline std::vector<long> expected_squares(long n) {
    std::vector<long> v;
    for (long i = 0; i < n; ++i) v.push_back(i * i);
    return v;
}

}  // namespace stream_kit
