// tests/process/stream_process_kit.hpp - what the process stream tests share: task functions
// (named, so that reports name them, and inline: one address in the whole test program), a
// result type that counts its values in this process, task ranges, and checks on the pool's
// workers after a drop.
#pragma once

#include "../unit/stream_kit.hpp"
#include "children.hpp"
#include "kit.hpp"

#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pstream {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using stream_kit::watchdog;

using cojob::backend::processes;

/// Values of `tracked` that hold a result in this process (moved-from husks do not count).
inline std::atomic<int> tracked_values{0};

inline std::int64_t steady_ns() {
    // CLOCK_MONOTONIC: one clock for every process of the machine.
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// ---- task functions and types (named, not in an anonymous namespace: reports name them) -----

/// A result that counts itself, in whichever process it lives: in the parent, the values the
/// stream holds; in a worker, nothing the test reads.
class tracked {
public:
    tracked() = default;
    tracked(long index, std::int64_t started_ns) : index_(index), started_ns_(started_ns) { hold(); }
    tracked(const tracked& o) : index_(o.index_), started_ns_(o.started_ns_) {
        if (o.holds_) hold();
    }
    tracked(tracked&& o) noexcept
        : index_(o.index_), started_ns_(o.started_ns_), holds_(std::exchange(o.holds_, false)) {}
    tracked& operator=(tracked o) noexcept {
        release();
        index_ = o.index_;
        started_ns_ = o.started_ns_;
        holds_ = std::exchange(o.holds_, false);
        return *this;
    }
    ~tracked() { release(); }

    [[nodiscard]] long index() const noexcept { return index_; }
    [[nodiscard]] std::int64_t started_ns() const noexcept { return started_ns_; }

    template <class Archive>
    void save(Archive& ar) const {
        ar(index_, started_ns_);
    }
    template <class Archive>
    void load(Archive& ar) {
        ar(index_, started_ns_);
        if (!holds_) hold();
    }

private:
    void hold() noexcept {
        holds_ = true;
        ++tracked_values;
    }
    void release() noexcept {
        if (holds_) --tracked_values;
        holds_ = false;
    }

    long index_ = -1;
    std::int64_t started_ns_ = 0;
    bool holds_ = false;
};

inline long square(long i) { return i * i; }

inline long sleep_then(long i, long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return i;
}

/// Kills its own worker after `ms`.
inline long die_after(long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ::kill(::getpid(), SIGKILL);
    return 0;
}

inline long throw_at(long i, long bad) {
    if (i == bad) throw std::invalid_argument("bad " + std::to_string(i));
    if (i % 7 == 3) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return i;
}

/// The worker's pid, after `ms`.
inline long pid_after(long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return static_cast<long>(::getpid());
}

inline tracked timed(long i, long ms) {
    const std::int64_t t = steady_ns();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return tracked(i, t);
}

/// A result large enough to stay in its worker's arena until consumed (800 KB), that counts
/// itself in this process like `tracked`.
struct bulky {
    tracked tag;
    std::vector<double> payload;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(tag, payload);
    }
};

inline bulky bulky_after(long i, long ms) {
    const std::int64_t t = steady_ns();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return bulky{tracked(i, t), std::vector<double>(100'000, double(i))};
}

/// A large result: n doubles of value i.
inline std::vector<double> block(long i, long n) { return std::vector<double>(static_cast<std::size_t>(n), double(i)); }

// ---- helpers ----------------------------------------------------------------------------------

inline auto squares(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(square)(i); });
}
inline auto failing_at(long n, long bad) {
    return std::views::iota(0L, n) | std::views::transform([bad](long i) { return cojob::delayed(throw_at)(i, bad); });
}
/// Longer than any watchdog: a call that waited for such a task would end the test by its watchdog.
inline constexpr long stuck_ms = 600'000;

/// Tasks 0 and 1 return their worker's pid after 50 ms; the others are stuck (stuck_ms) until
/// their worker is stopped.
inline auto two_quick_then_stuck(long n) {
    return std::views::iota(0L, n) |
           std::views::transform([](long i) { return cojob::delayed(pid_after)(i < 2 ? 50L : stuck_ms); });
}
inline auto timed_tasks(long n, long ms) {
    return std::views::iota(0L, n) | std::views::transform([ms](long i) { return cojob::delayed(timed)(i, ms); });
}

inline auto bulky_tasks(long n, long ms) {
    return std::views::iota(0L, n) | std::views::transform([ms](long i) { return cojob::delayed(bulky_after)(i, ms); });
}

using stream_kit::expected_squares;

/// Whether `pid` is a process that still runs (a zombie does not: its memory is gone).
inline bool running(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return false;
    const auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

/// Children of this process, whichever of its threads spawned them: (running, zombies).
inline std::pair<int, int> running_and_zombies() {
    const children::counts c = children::of_this_process();
    return {c.all - c.zombies, c.zombies};
}

/// The pids of the pool's workers: two tasks long enough that each worker takes one.
inline std::set<long> pool_pids(cojob::parallel& par) {
    auto pids = par(std::views::iota(0, 2) | std::views::transform([](int) { return cojob::delayed(pid_after)(200L); }));
    return {pids.begin(), pids.end()};
}

using kit::is_operation_aborted;

/// After a drop: the workers in `stuck` stop running soon, and the object runs a call at once,
/// on fresh workers, without zombies left behind.
inline void check_dropped_workers_stopped(cojob::parallel& par, const std::set<long>& stuck) {
    for (long pid : stuck) {
        INFO("worker " << pid);
        CHECK(kit::eventually([pid] { return !running(pid); }, 3s));
    }
    CHECK(par(squares(6)) == expected_squares(6));  // the stuck tasks were not waited for
    const auto fresh = pool_pids(par);
    for (long pid : fresh) CHECK_FALSE(stuck.count(pid));
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    CHECK(running_and_zombies().first <= 2);
}

}  // namespace pstream
