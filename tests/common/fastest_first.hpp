// tests/common/fastest_first.hpp - no task waits behind a slow one while a worker is free: ten
// tasks, one of them slow, batch_size 1. The slow task waits for a file the test writes only
// once the nine fast results have come (a completion-order stream) or the nine fast tasks have
// ended (a list, where a fast task held behind the slow one would cost the call the slow
// task's time again), or after 30 s, to end a failing test: the test sees which. Shared by the process and MPI suites; `check` runs its two cases as sections of the
// caller's test case.
#pragma once

#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "kit.hpp"
#include "scratch_dir.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace fastest_first {

/// Task i leaves a file named after it in `dir`; the slow one first waits (at most 30 s) for
/// a file named "release".
inline long mark_or_wait(long i, long slow, std::string dir) {
    const std::filesystem::path d(dir);
    for (int k = 0; i == slow && k < 30'000 && !std::filesystem::exists(d / "release"); ++k)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::ofstream(d / ("done-" + std::to_string(i))) << i;
    return i;
}

/// Lets the slow task go once `ready()` holds (or after 30 s), and says which of the two
/// happened.
class releaser {
public:
    releaser(const kit::scratch_dir& dir, std::function<bool()> ready)
        : thread_([this, &dir, ready = std::move(ready)] {
              by_progress_ = kit::eventually(ready, std::chrono::seconds(30));
              std::ofstream(dir.file("release")) << 1;
          }) {}
    ~releaser() { join(); }
    releaser(const releaser&) = delete;
    releaser& operator=(const releaser&) = delete;
    /// Whether `ready()` came to hold while the slow task waited.
    bool released_by_progress() {
        join();
        return by_progress_;
    }

private:
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    bool by_progress_ = false;
    std::thread thread_;
};

/// The tasks that have ended (left their file).
inline long ended(const kit::scratch_dir& dir) {
    long n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        n += e.path().filename().string().rfind("done-", 0) == 0;
    return n;
}

inline auto ten_tasks(long slow, const kit::scratch_dir& dir) {
    return std::views::iota(0L, 10L) | std::views::transform([slow, d = dir.path().string()](long i) {
               return cojob::delayed(mark_or_wait)(i, slow, d);
           });
}

/// Ten tasks on `o` (batch_size 1 is set here), task `slow` the slow one.
inline void check(cojob::options o, long slow) {
    o.batch_size = 1;
    INFO(o.n_jobs.value_or(-1) << " workers, task " << slow << " slow");
    cojob::parallel par{o};
    kit::scratch_dir dir("cojob-fastest");
    SECTION("a completion-order stream gives every fast result before the slow one") {
        std::atomic<long> received{0};
        releaser r(dir, [&] { return received.load() >= 9; });
        std::vector<long> order;
        for (long v : par.stream(ten_tasks(slow, dir), cojob::order::completion)) {
            order.push_back(v);
            ++received;
        }
        CHECK(r.released_by_progress());
        REQUIRE(order.size() == 10);
        CHECK(order.back() == slow);
    }
    SECTION("a list ends as soon as the slow task does: the fast ones ended while it ran") {
        releaser r(dir, [&] { return ended(dir) >= 9; });
        const auto out = par(ten_tasks(slow, dir));
        CHECK(r.released_by_progress());
        CHECK(out.size() == 10);
    }
}

}  // namespace fastest_first
