// tests/process/keep_going_process_test.cpp - keep_going and retries on worker processes: a
// task past the timeout kills only its worker, a worker killed mid-batch costs its running task
// one attempt and its batch-mates none, a crash's outcome carries the worker's last words.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "kit.hpp"
#include "scratch_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// Outside the anonymous namespace: tasks name their function in another process.
namespace keep_going_process {

/// Every 50th task sleeps `slow` seconds, every other 7th throws, the rest return i.
int mixed(int i, double slow) {
    if (i % 50 == 0) {
        std::this_thread::sleep_for(std::chrono::duration<double>(slow));
        return -1;
    }
    if (i % 7 == 0) throw std::invalid_argument("bad " + std::to_string(i));
    return i;
}

/// Creates `marker` and returns true the first time it is called for it (in any process).
bool first_time(const std::string& marker) {
    const int fd = ::open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

/// Task `victim` kills its worker (SIGKILL) the first time it runs, after a word on stderr.
int die_once(int i, int victim, const std::string& marker) {
    if (i == victim && first_time(marker)) {
        std::fprintf(stderr, "task %d: last words before SIGKILL\n", i);
        std::fflush(stderr);
        ::kill(::getpid(), SIGKILL);
    }
    return i;
}

/// Task `victim` hangs the first time it runs.
int hang_once(int i, int victim, const std::string& marker) {
    if (i == victim && first_time(marker)) std::this_thread::sleep_for(60s);
    return i;
}

/// Allocates and touches `mb` megabytes; returns their count.
int allocate(int mb) {
    std::vector<char> block(static_cast<std::size_t>(mb) << 20, 1);
    return static_cast<int>(block.size() >> 20) + block[block.size() / 2] - 1;
}

/// A large result (kept in the worker's arena) for most tasks; every 5th throws.
std::vector<double> block_or_throw(int i) {
    if (i % 5 == 0) throw std::runtime_error("no block " + std::to_string(i));
    return std::vector<double>(std::size_t{1} << 16, static_cast<double>(i));
}

/// A large result for every task; task `victim` kills its worker the first time it runs.
std::vector<double> block_or_die(int i, int victim, const std::string& marker) {
    return std::vector<double>(std::size_t{1} << 16, static_cast<double>(die_once(i, victim, marker)));
}

}  // namespace keep_going_process

namespace {

using namespace keep_going_process;

cojob::options on_two_workers(cojob::options o = {}) {
    o.n_jobs = 2;
    o.backend = cojob::backend::processes;
    return o;
}

}  // namespace

TEST_CASE("processes keep_going: 1,000 tasks, every 7th throws, every 50th times out", "[process][keep_going]") {
    cojob::parallel par{on_two_workers({.timeout = 0.3s})};
    // The slow ones would sleep a minute: their workers are killed and replaced.
    const auto out = par(cojob::keep_going, std::views::iota(0, 1000) | std::views::transform([](int i) {
                                                return cojob::delayed(mixed)(i, 60.0);
                                            }));
    REQUIRE(out.size() == 1000);
    for (int i = 0; i < 1000; ++i) {
        INFO("task " << i);
        const auto& o = out[static_cast<std::size_t>(i)];
        if (i % 50 == 0) {
            REQUIRE(!o.has_value());
            CHECK(o.failure().kind == cojob::failure_kind::timeout);
            CHECK(o.failure().index == static_cast<std::size_t>(i));
            CHECK(o.failure().pid != ::getpid());
            CHECK_THROWS_AS(o.value(), cojob::timeout_error);
        } else if (i % 7 == 0) {
            REQUIRE(!o.has_value());
            CHECK(o.failure().kind == cojob::failure_kind::exception);
            CHECK(o.failure().message == "bad " + std::to_string(i));
            CHECK_THROWS_AS(o.value(), std::invalid_argument);
        } else {
            REQUIRE(o.has_value());
            CHECK(o.value() == i);
        }
    }
}

TEST_CASE("processes retry: a worker killed mid-batch costs its task one attempt", "[process][retry]") {
    kit::scratch_dir dir;
    cojob::parallel par{on_two_workers(
        {.batch_size = 4, .retry = cojob::retry_policy{.attempts = 2, .backoff = 0s, .max_backoff = 0s}})};
    const std::string marker = dir.file("died");
    const auto out = par(cojob::keep_going, std::views::iota(0, 24) | std::views::transform([&](int i) {
                                                return cojob::delayed(die_once)(i, 9, marker);
                                            }));
    REQUIRE(out.size() == 24);
    for (int i = 0; i < 24; ++i) {
        INFO("task " << i);
        REQUIRE(out[static_cast<std::size_t>(i)].has_value());
        CHECK(out[static_cast<std::size_t>(i)].value() == i);
        CHECK(out[static_cast<std::size_t>(i)].attempts() == (i == 9 ? 2 : 1));
    }
    // Without keep_going the call succeeds the same way.
    kit::scratch_dir dir2;
    const std::string marker2 = dir2.file("died");
    const auto values = par(std::views::iota(0, 24) | std::views::transform([&](int i) {
                                return cojob::delayed(die_once)(i, 9, marker2);
                            }));
    CHECK(values.size() == 24);
    CHECK(values[9] == 9);
}

TEST_CASE("processes keep_going: a crash's outcome names its signal and stderr", "[process][keep_going][crash]") {
    kit::scratch_dir dir;
    cojob::parallel par{on_two_workers({.batch_size = 4})};
    const std::string marker = dir.file("died");
    const auto out = par(cojob::keep_going, std::views::iota(0, 16) | std::views::transform([&](int i) {
                                                return cojob::delayed(die_once)(i, 6, marker);
                                            }));
    REQUIRE(out.size() == 16);
    for (int i = 0; i < 16; ++i) CHECK(out[static_cast<std::size_t>(i)].has_value() == (i != 6));
    const cojob::task_failure& f = out[6].failure();
    CHECK(f.kind == cojob::failure_kind::worker_died);
    CHECK(f.index == 6);
    CHECK(f.signal == "SIGKILL");
    CHECK(f.attempts == 1);
    CHECK_THAT(f.stderr_tail, Catch::Contains("task 6: last words before SIGKILL"));
    CHECK_THROWS_AS(out[6].value(), cojob::worker_died);
}

TEST_CASE("processes retry: a task past the timeout runs again on a new worker", "[process][retry][timeout]") {
    kit::scratch_dir dir;
    cojob::parallel par{on_two_workers({.batch_size = 3,
                                   .timeout = 0.3s,
                                   .retry = cojob::retry_policy{.attempts = 2, .backoff = 0s, .max_backoff = 0s}})};
    const std::string marker = dir.file("hung");
    const auto values = par(std::views::iota(0, 12) | std::views::transform([&](int i) {
                                return cojob::delayed(hang_once)(i, 4, marker);
                            }));
    REQUIRE(values.size() == 12);
    for (int i = 0; i < 12; ++i) CHECK(values[static_cast<std::size_t>(i)] == i);
    // The pool serves the next call as usual.
    const auto again = par(std::views::iota(0, 4) | std::views::transform([](int i) { return cojob::delayed(mixed)(i + 1, 0.0); }));
    CHECK(again == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("processes: a task past worker_memory_limit fails as an OOM, and the pool recovers",
          "[process][keep_going][memory_limit]") {
    if (kit::sanitized) {  // sanitizers reserve terabytes of address space: no limit on it can hold
        WARN("not run under a sanitizer");
        return;
    }
    cojob::parallel par{on_two_workers({.batch_size = 1, .worker_memory_limit = std::size_t{1} << 30})};
    const auto out = par(cojob::keep_going, std::views::iota(0, 6) | std::views::transform([](int i) {
                                                return cojob::delayed(allocate)(i == 2 ? 2048 : 16);
                                            }));
    REQUIRE(out.size() == 6);
    for (int i = 0; i < 6; ++i) CHECK(out[static_cast<std::size_t>(i)].has_value() == (i != 2));
    const cojob::task_failure& f = out[2].failure();
    CHECK(f.kind == cojob::failure_kind::worker_died);
    CHECK(f.oom_suspected);
    CHECK_THAT(f.stderr_tail, Catch::Contains("worker_memory_limit"));
    CHECK_THAT(f.report(), Catch::Contains("worker_memory_limit"));
    // Replaced: the next call runs on a full pool.
    CHECK(par(std::views::iota(0, 4) | std::views::transform([](int) { return cojob::delayed(allocate)(8); })) ==
          std::vector<int>{8, 8, 8, 8});
}

TEST_CASE("processes keep_going stream: large results beside failures in a batch", "[process][keep_going][stream]") {
    const auto order = GENERATE(cojob::order::input, cojob::order::completion);
    cojob::parallel par{on_two_workers({.batch_size = 2})};
    auto gen = par.stream(cojob::keep_going,
                          std::views::iota(0, 30) | std::views::transform([](int i) {
                              return cojob::delayed(block_or_throw)(i);
                          }),
                          order);
    std::vector<int> seen;
    for (auto&& o : gen) {
        if (o.has_value()) {
            const auto& v = o.value();
            REQUIRE(v.size() == std::size_t{1} << 16);
            REQUIRE(static_cast<int>(v.front()) % 5 != 0);
            seen.push_back(static_cast<int>(v.back()));
        } else {
            CHECK(o.failure().kind == cojob::failure_kind::exception);
            seen.push_back(static_cast<int>(o.failure().index));
        }
    }
    std::ranges::sort(seen);
    REQUIRE(seen.size() == 30);
    for (int i = 0; i < 30; ++i) CHECK(seen[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("processes retry stream: a task run again comes before results its stream holds", "[process][retry][stream]") {
    // Results later in input order wait in the other worker's arena for the consumer, who waits
    // for the task run again: it must not be queued behind them.
    kit::scratch_dir dir;
    const std::string marker = dir.file("died");
    cojob::parallel par{on_two_workers(
        {.batch_size = 2, .retry = cojob::retry_policy{.attempts = 2, .backoff = 0s, .max_backoff = 0s}})};
    auto gen = par.stream(std::views::iota(0, 30) | std::views::transform([&](int i) {
                              return cojob::delayed(block_or_die)(i, 7, marker);
                          }),
                          cojob::order::input);
    int next = 0;
    for (auto&& v : gen) {
        REQUIRE(v.size() == std::size_t{1} << 16);
        CHECK(static_cast<int>(v.back()) == next);
        ++next;
    }
    CHECK(next == 30);
}
