// cojob::pool: runners with their own options on one set of workers (threads and sequential):
// calls of several runners at once share the pool's threads and none are added; n_jobs and
// backend come from the pool and a mismatch is refused; the workers outlive the pool while a
// runner uses them; a failure, or a runner's end, stays with its own runner's calls.
#include "kit.hpp"

#include <cojob/cojob.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

/// The kernel's id of the thread that ran the task, beside the task's own value.
struct ran_on {
    long value = 0;
    long tid = 0;
    bool operator==(const ran_on&) const = default;
};

ran_on tid_of(long i) {
    std::this_thread::sleep_for(100us);  // long enough for every worker to take a batch
    return {i * 3, static_cast<long>(::syscall(SYS_gettid))};
}

auto tid_tasks(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(tid_of)(i); });
}

/// Checks the values of a tid_tasks(n) call and adds the threads it ran on to `tids`.
bool collect(const std::vector<ran_on>& out, long n, std::set<long>& tids, std::mutex& m) {
    if (static_cast<long>(out.size()) != n) return false;
    std::lock_guard lock(m);
    for (long i = 0; i < n; ++i) {
        if (out[static_cast<std::size_t>(i)].value != i * 3) return false;
        tids.insert(out[static_cast<std::size_t>(i)].tid);
    }
    return true;
}

}  // namespace

TEST_CASE("pool: runners with their own options share its threads, from several threads at once", "[pool]") {
    kit::watchdog dog(60s, "runners on one pool");
    cojob::pool workers{2, cojob::backend::threads};
    CHECK(workers.n_jobs() == 2);
    CHECK(workers.backend() == cojob::backend::threads);
    cojob::parallel one_by_one{workers, {.pre_dispatch = 3, .batch_size = 1}};
    cojob::parallel tuned{workers, {.batch_size = "auto"}};
    cojob::parallel fixed{workers, {.batch_size = 7}};
    CHECK(one_by_one.n_jobs() == 2);
    CHECK(tuned.backend() == cojob::backend::threads);
    const auto threads_before = kit::thread_count();
    std::set<long> tids;
    std::mutex m;
    std::atomic<int> wrong{0};
    std::vector<std::thread> callers;
    for (cojob::parallel* par : {&one_by_one, &tuned, &fixed}) {
        callers.emplace_back([par, &tids, &m, &wrong] {
            for (long k = 0; k < 10; ++k)
                if (!collect((*par)(tid_tasks(20 + k)), 20 + k, tids, m)) ++wrong;
        });
    }
    for (auto& c : callers) c.join();
    CHECK(wrong.load() == 0);
    // Every task of the three runners ran on one of the pool's two threads.
    CHECK(tids.size() <= 2);
    CHECK(kit::eventually([&] { return kit::thread_count() <= threads_before + 2; }, 3s));
}

TEST_CASE("pool: async calls of two runners on one executor each get their own results", "[pool][async]") {
    cojob::pool workers{2};
    cojob::parallel a{workers, {.batch_size = 2}};
    cojob::parallel b{workers, {.pre_dispatch = "all"}};
    std::set<long> tids;
    std::mutex m;
    int good = 0;
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (long c = 0; c < 8; ++c) {
            cojob::parallel& par = c % 2 ? a : b;
            asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                auto out = co_await par.async_run(tid_tasks(10 + c), asio::use_awaitable);
                if (collect(out, 10 + c, tids, m)) ++good;
            }, asio::detached);
        }
        co_return;
    });
    CHECK(good == 8);
    CHECK(tids.size() <= 2);
}

TEST_CASE("pool: a task's exception ends its own runner's call only", "[pool][error]") {
    kit::watchdog dog(60s, "error on one runner of a pool");
    cojob::pool workers{2};
    cojob::parallel failing{workers, {.batch_size = 1}};
    cojob::parallel healthy{workers};
    std::string message;
    std::size_t failed_index = 99;
    std::thread t([&] {
        try {
            (void)failing(std::views::iota(0L, 60L) |
                          std::views::transform([](long i) { return cojob::delayed(kit::fails_on)(i, 9); }));
        } catch (const std::invalid_argument& e) {
            message = e.what();
            if (failing.last_failure()) failed_index = failing.last_failure()->index;
        }
    });
    std::set<long> tids;
    std::mutex m;
    const bool ok = collect(healthy(tid_tasks(100)), 100, tids, m);
    t.join();
    CHECK(ok);
    CHECK_FALSE(healthy.last_failure().has_value());
    CHECK(message == "bad 9");
    CHECK(failed_index == 9);
}

TEST_CASE("pool: its workers outlive it while a runner uses them, and go with the last runner", "[pool]") {
    kit::watchdog dog(60s, "pool lifetime");
    const auto threads_before = kit::thread_count();
    auto workers = std::make_unique<cojob::pool>(2);
    auto par = std::make_unique<cojob::parallel>(*workers, cojob::options{.batch_size = 1});
    std::set<long> tids;
    std::mutex m;
    CHECK(collect((*par)(tid_tasks(10)), 10, tids, m));
    workers.reset();
    CHECK(collect((*par)(tid_tasks(10)), 10, tids, m));
    CHECK(tids.size() <= 2);
    par.reset();
    CHECK(kit::eventually([&] { return kit::thread_count() <= threads_before; }, 5s));
}

TEST_CASE("pool: one worker is the sequential backend, and its runners run on their callers' threads", "[pool]") {
    cojob::pool workers{1};
    CHECK(workers.backend() == cojob::backend::sequential);
    cojob::parallel par{workers, {.backend = cojob::backend::threads}};  // what was asked for: accepted
    CHECK(par.backend() == cojob::backend::sequential);
    std::set<long> tids;
    std::mutex m;
    CHECK(collect(par(tid_tasks(5)), 5, tids, m));
    CHECK(tids == std::set<long>{static_cast<long>(::syscall(SYS_gettid))});
}

TEST_CASE("pool: a runner that asks for other workers than its pool's is refused, naming the option", "[pool][options]") {
    cojob::pool workers{2, cojob::backend::threads};
    CHECK_THROWS_WITH((cojob::parallel{workers, {.n_jobs = 3}}), Catch::Contains("n_jobs=3") &&
                                                                    Catch::Contains("n_jobs=2"));
    CHECK_THROWS_WITH((cojob::parallel{workers, {.backend = cojob::backend::processes}}),
                      Catch::Contains("backend=processes") && Catch::Contains("threads"));
    // What matches is accepted, and the other options are still checked.
    CHECK_NOTHROW(cojob::parallel{workers, {.n_jobs = 2, .backend = cojob::backend::threads}});
    CHECK_THROWS_WITH((cojob::parallel{workers, {.batch_size = 0}}), Catch::Contains("batch_size"));
    CHECK_THROWS_WITH(cojob::pool(0), Catch::Contains("n_jobs=0"));
}

TEST_CASE("pool: -1 counts every CPU, and a parallel_config scope gives the backend", "[pool][options]") {
    CHECK(cojob::pool(-1).n_jobs() == cojob::cpu_count());
    cojob::parallel_config scope{{.backend = cojob::backend::threads}};
    cojob::pool workers{3};
    CHECK(workers.backend() == cojob::backend::threads);
}

TEST_CASE("pool: destroying a runner cancels its own call; another runner's call on the pool runs to its end",
          "[pool][cancel]") {
    cojob::pool workers{2};
    cojob::parallel staying{workers, {.batch_size = 1}};
    auto leaving = std::make_unique<cojob::parallel>(workers, cojob::options{.batch_size = 1});
    asio::io_context ctx;
    std::exception_ptr left_error;
    bool left_done = false;
    std::vector<ran_on> kept;
    bool kept_done = false;
    // Both handlers run on ctx, so what they write is read here without a race.
    leaving->async_run(tid_tasks(20'000), asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<ran_on>) {
                           left_error = e;
                           left_done = true;
                       }));
    staying.async_run(tid_tasks(200), asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<ran_on> v) {
                          if (!e) kept = std::move(v);
                          kept_done = true;
                      }));
    leaving.reset();
    ctx.run_for(30s);  // returns once both calls have completed, or at the limit
    CHECK(left_done);
    CHECK(kit::is_operation_aborted(left_error));
    CHECK(kept_done);
    std::set<long> tids;
    std::mutex m;
    CHECK(collect(kept, 200, tids, m));
}
