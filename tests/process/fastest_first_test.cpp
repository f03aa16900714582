// tests/process/fastest_first_test.cpp - no task waits behind a slow one while a worker has
// nothing to do: ten tasks, one of them slow, with batch_size 1 and 2 or 4 workers. Every fast
// task ends before the slow one is let go, in a completion-order stream and in a list.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "kit.hpp"
#include "scratch_dir.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace fastest_first {

/// Task i leaves a file named after it in `dir`; the slow one first waits (at most 30 s) for
/// a file named "release".
long mark_or_wait(long i, long slow, std::string dir) {
    const std::filesystem::path d(dir);
    for (int k = 0; i == slow && k < 30'000 && !std::filesystem::exists(d / "release"); ++k)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::ofstream(d / ("done-" + std::to_string(i))) << i;
    return i;
}

/// Lets the slow task go once `fast` tasks have ended (or after 30 s, to end the test), and
/// says which of the two happened.
class releaser {
public:
    releaser(const kit::scratch_dir& dir, long fast)
        : thread_([this, &dir, fast] {
              by_progress_ = kit::eventually([&] { return done_count(dir) >= fast; }, std::chrono::seconds(30));
              std::ofstream(dir.file("release")) << 1;
          }) {}
    ~releaser() { join(); }
    releaser(const releaser&) = delete;
    releaser& operator=(const releaser&) = delete;
    /// Whether every fast task ended while the slow one waited.
    bool released_by_progress() {
        join();
        return by_progress_;
    }

private:
    static long done_count(const kit::scratch_dir& dir) {
        long n = 0;
        for (const auto& e : std::filesystem::directory_iterator(dir.path()))
            n += e.path().filename().string().rfind("done-", 0) == 0;
        return n;
    }
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    bool by_progress_ = false;
    std::thread thread_;
};

auto ten_tasks(long slow, const kit::scratch_dir& dir) {
    return std::views::iota(0L, 10L) |
           std::views::transform([slow, d = dir.path().string()](long i) { return cojob::delayed(mark_or_wait)(i, slow, d); });
}

}  // namespace fastest_first

using namespace fastest_first;

TEST_CASE("processes: a fast task never waits behind a slow one while a worker is free", "[process][order]") {
    const int n_jobs = GENERATE(2, 4);
    const long slow = GENERATE(0L, 1L);
    INFO(n_jobs << " workers, task " << slow << " slow");
    cojob::parallel par{{.n_jobs = n_jobs, .backend = cojob::backend::processes, .batch_size = 1}};
    kit::scratch_dir dir("cojob-fastest");
    releaser r(dir, 9);
    SECTION("a completion-order stream gives every fast result before the slow one") {
        std::vector<long> order;
        for (long v : par.stream(ten_tasks(slow, dir), cojob::order::completion)) order.push_back(v);
        CHECK(r.released_by_progress());
        REQUIRE(order.size() == 10);
        CHECK(order.back() == slow);
    }
    SECTION("a list ends as soon as the slow task does") {
        const auto out = par(ten_tasks(slow, dir));
        CHECK(r.released_by_progress());
        CHECK(out.size() == 10);
    }
}
