// tests/process/shared_pool_test.cpp - runners with their own options on one cojob::pool of
// worker processes: their calls at once run on the pool's n_jobs workers and no others; each
// call shares large arrays as its own runner's max_nbytes says; a timeout on one runner kills
// and replaces a worker of the pool while the other runner's calls complete.
#include "stream_process_kit.hpp"

#include "sharing.hpp"

#include <atomic>
#include <numeric>
#include <span>
#include <thread>

namespace shared_pool {

using namespace pstream;

inline double span_total(std::span<const double> s, long) { return std::accumulate(s.begin(), s.end(), 0.0); }

/// The worker's pid, after a pause long enough for both workers to take a batch.
inline auto pid_tasks(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long) { return cojob::delayed(pid_after)(5L); });
}

}  // namespace shared_pool

using namespace shared_pool;

TEST_CASE("pool of processes: two runners' calls at once run on its two workers only", "[process][pool]") {
    watchdog dog(60s, "runners on one process pool");
    cojob::pool workers{2, processes};
    CHECK(workers.backend() == processes);
    cojob::parallel one_by_one{workers, {.batch_size = 1}};
    cojob::parallel batched{workers, {.pre_dispatch = "all", .batch_size = 4}};
    std::set<long> pids;
    std::mutex m;
    auto run = [&](cojob::parallel& par) {
        for (int k = 0; k < 5; ++k) {
            const auto out = par(pid_tasks(16));
            std::lock_guard lock(m);
            pids.insert(out.begin(), out.end());
        }
    };
    std::thread other([&] { run(batched); });
    run(one_by_one);
    other.join();
    CHECK(pids.size() == 2);
    CHECK(running_and_zombies().first == 2);
}

TEST_CASE("pool of processes: each runner shares large arrays as its own max_nbytes says", "[process][pool][arrays]") {
    cojob::pool workers{2, processes};
    cojob::parallel sharing{workers, {.max_nbytes = 8000}};
    cojob::parallel copying{workers, {.max_nbytes = "none"}};
    std::vector<double> large(4000);
    std::iota(large.begin(), large.end(), 1.0);
    const double total = std::accumulate(large.begin(), large.end(), 0.0);
    auto tasks = std::views::iota(0L, 6L) |
                 std::views::transform([&](long i) { return cojob::delayed(span_total)(std::span<const double>(large), i); });
    const auto before = cojob::detail::sharing_totals().arrays;
    CHECK(copying(tasks) == std::vector<double>(6, total));
    CHECK(cojob::detail::sharing_totals().arrays == before);
    CHECK(sharing(tasks) == std::vector<double>(6, total));
    CHECK(cojob::detail::sharing_totals().arrays == before + 1);
}

TEST_CASE("pool of processes: a timeout on one runner replaces a worker; the other runner's calls complete",
          "[process][pool][timeout]") {
    watchdog dog(60s, "timeout on one runner of a pool");
    cojob::pool workers{2, processes};
    cojob::parallel strict{workers, {.batch_size = 1, .timeout = 1s}};
    cojob::parallel patient{workers};
    std::atomic<bool> timed_out{false};
    std::thread t([&] {
        try {
            (void)strict(std::views::iota(0L, 1L) |
                         std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, stuck_ms); }));
        } catch (const cojob::timeout_error&) {
            timed_out = true;
        }
    });
    bool ok = true;
    for (long k = 0; k < 20; ++k) {
        auto tasks = std::views::iota(0L, 10L) | std::views::transform([k](long i) { return cojob::delayed(square)(i + k); });
        const auto out = patient(tasks);
        for (long i = 0; i < 10; ++i) ok = ok && out[static_cast<std::size_t>(i)] == (i + k) * (i + k);
    }
    t.join();
    CHECK(timed_out.load());
    CHECK(ok);
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    CHECK(patient(pid_tasks(4)).size() == 4);
    CHECK(running_and_zombies().first == 2);
}

TEST_CASE("pool of processes: a runner asking for threads is refused", "[process][pool]") {
    cojob::pool workers{2, processes};
    CHECK_THROWS_WITH((cojob::parallel{workers, {.backend = cojob::backend::threads}}),
                      Catch::Contains("backend=threads") && Catch::Contains("processes"));
}
