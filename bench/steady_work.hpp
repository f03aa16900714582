// bench/steady_work.hpp - the work bench_steady times, and the machine's floors for it: 1e6
// tiny tasks (an out-of-line sqrt each), the loops that do the same without cojob, and a
// one-byte pipe round trip between two processes.
#pragma once

#include <cojob/cojob.hpp>

#include "bench_kit.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace steady {

// Named functions, so that worker processes can run the tasks too.
[[gnu::noinline]] inline double root(double x) { return std::sqrt(x); }
[[gnu::noinline]] inline int next(int x) { return x + 1; }

using bench_kit::clock_type;
using bench_kit::median;
using bench_kit::seconds_since;

inline volatile double sink = 0;  // results are folded in, so no run can be optimized away

inline auto tiny(int n) {
    return std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed(steady::root)(double(i)); });
}

inline void expect_roots(const double* out, std::size_t size, int n, const char* what) {
    if (size != static_cast<std::size_t>(n)) throw std::runtime_error(std::string(what) + ": wrong result count");
    for (int i : {0, n / 3, n - 1})
        if (out[i] != std::sqrt(double(i))) throw std::runtime_error(std::string(what) + ": wrong result");
    sink = sink + out[n - 1];
}

// --- floors -------------------------------------------------------------------------------------

// A plain loop filling a fresh vector (ns/task).
inline double plain_loop(int n) {
    const auto t0 = clock_type::now();
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) out.push_back(steady::root(double(i)));
    const double s = seconds_since(t0);
    expect_roots(out.data(), out.size(), n, "plain loop");
    return s * 1e9 / n;
}

// Two plain threads, started for the run, each filling its half of fresh storage (ns/task).
inline double plain_threads(int n) {
    const auto t0 = clock_type::now();
    std::unique_ptr<double[]> out(new double[static_cast<std::size_t>(n)]);
    const auto fill = [&out](int from, int to) {
        for (int i = from; i < to; ++i) out[static_cast<std::size_t>(i)] = steady::root(double(i));
    };
    std::thread a(fill, 0, n / 2), b(fill, n / 2, n);
    a.join();
    b.join();
    const double s = seconds_since(t0);
    expect_roots(out.get(), static_cast<std::size_t>(n), n, "two plain threads");
    return s * 1e9 / n;
}

// The least any runner pays that reads its input on the caller's thread, as cojob's contract
// says: this thread pulls the same tasks from the same range into batches (a ring of sixteen of
// 4096 tasks, reused), two plain threads started for the run run them and write each result
// straight to its place in fresh storage (ns/task). What it costs beyond two plain threads is
// the traffic of tasks from one CPU to the others.
inline double handoff_threads(int n) {
    constexpr std::size_t batch = 4096, ring = 16;
    using task_t = std::ranges::range_value_t<decltype(tiny(n))>;
    struct slot {
        std::vector<task_t> tasks;
        std::size_t first = 0;
        std::atomic<int> state{0};  // 0: free for the caller, 1: full, 2: taken by a thread
    };
    const auto t0 = clock_type::now();
    std::unique_ptr<double[]> out(new double[static_cast<std::size_t>(n)]);
    std::vector<slot> slots(ring);
    for (auto& s : slots) s.tasks.reserve(batch);
    const std::size_t batches = (static_cast<std::size_t>(n) + batch - 1) / batch;
    std::atomic<std::size_t> next{0};
    const auto work = [&] {
        for (std::size_t k; (k = next.fetch_add(1)) < batches;) {
            slot& s = slots[k % ring];
            for (int expected = 1; !s.state.compare_exchange_weak(expected, 2); expected = 1) std::this_thread::yield();
            for (std::size_t i = 0; i < s.tasks.size(); ++i) out[s.first + i] = s.tasks[i]();
            s.state.store(0, std::memory_order_release);
        }
    };
    std::thread a(work), b(work);
    std::size_t filled = 0;
    auto tasks = tiny(n);
    auto it = tasks.begin();
    for (std::size_t k = 0; k < batches; ++k) {
        slot& s = slots[k % ring];
        while (s.state.load(std::memory_order_acquire) != 0) std::this_thread::yield();
        s.tasks.clear();
        s.first = filled;
        for (; it != tasks.end() && s.tasks.size() < batch; ++it) s.tasks.push_back(*it);
        filled += s.tasks.size();
        s.state.store(1, std::memory_order_release);
    }
    a.join();
    b.join();
    const double s = seconds_since(t0);
    expect_roots(out.get(), static_cast<std::size_t>(n), n, "hand-off floor");
    return s * 1e9 / n;
}

// One-byte round trips between this process and a child that echoes (µs per round trip).
inline std::vector<double> pipe_round_trips(int count) {
    int to_child[2], to_parent[2];
    if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) throw std::runtime_error("pipe failed");
    const pid_t child = ::fork();
    if (child < 0) throw std::runtime_error("fork failed");
    if (child == 0) {
        ::close(to_child[1]);  // else its own copy would keep the read below from ever ending
        ::close(to_parent[0]);
        char c;
        while (::read(to_child[0], &c, 1) == 1 && ::write(to_parent[1], &c, 1) == 1) {
        }
        ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(to_parent[1]);
    std::vector<double> us;
    char c = 'x';
    for (int i = 0; i < count + count / 10; ++i) {
        const auto t0 = clock_type::now();
        if (::write(to_child[1], &c, 1) != 1 || ::read(to_parent[0], &c, 1) != 1) throw std::runtime_error("echo failed");
        if (i >= count / 10) us.push_back(seconds_since(t0) * 1e6);
    }
    ::close(to_child[1]);
    ::close(to_parent[0]);
    ::waitpid(child, nullptr, 0);
    return us;
}

}  // namespace steady
