// tests/process/stream_cancel_process_test.cpp - dropping a stream on backend=processes (break,
// destroy at any stage, cancelling the awaiting coroutine, destroying the parallel object) with
// the workers that ran the dropped tasks stopped, and Ctrl-C during a blocking stream. Every
// wait is bounded by a watchdog.
#include "process/sigint_watch.hpp"
#include "stream_process_kit.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>

#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <thread>
#include <vector>

using namespace pstream;

// --- dropping early ---------------------------------------------------------------------------

TEST_CASE("processes: breaking out of a stream stops the workers running its tasks; the object is usable at once",
          "[process][stream][cancel]") {
    watchdog dog(60s, "break");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto pool = pool_pids(par);
    REQUIRE(pool.size() == 2);
    std::set<long> seen;
    long taken = 0;
    for (auto&& pid : par.stream(two_quick_then_stuck(20))) {
        seen.insert(pid);
        if (++taken == 2) break;  // both workers now run stuck tasks
    }
    CHECK(seen == pool);
    check_dropped_workers_stopped(par, pool);
}

TEST_CASE("processes: destroying a stream at any stage frees the parallel object at once", "[process][stream][cancel]") {
    watchdog dog(120s, "destroy");
    for (int stage : {0, 1, 2}) {  // never consumed, with stuck tasks running, consumed to the end
        INFO("stage " << stage);
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
        const auto pool = pool_pids(par);
        REQUIRE(pool.size() == 2);
        {
            std::optional<cojob::stream<long>> s;
            if (stage == 2) {
                s.emplace(par.stream(squares(30)));
                long n = 0;
                for (auto it = s->begin(); it != s->end(); ++it) ++n;
                CHECK(n == 30);
            } else {
                s.emplace(par.stream(two_quick_then_stuck(20)));
                if (stage == 1) {
                    auto it = s->begin();
                    ++it;  // the second quick result: both workers now run stuck tasks
                    REQUIRE(it != s->end());
                }
            }
            s.reset();  // returns although the workers run stuck tasks
        }
        if (stage == 1) {
            check_dropped_workers_stopped(par, pool);
        } else {
            // Nothing was left running: the same workers serve the next call.
            CHECK(par(squares(6)) == expected_squares(6));
            CHECK(pool_pids(par) == pool);
        }
    }
}

TEST_CASE("processes: cancelling a coroutine awaiting next() stops the workers and frees the object",
          "[process][stream][cancel]") {
    watchdog dog(60s, "co_await cancel");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto pool = pool_pids(par);
    REQUIRE(pool.size() == 2);
    asio::io_context ctx;
    asio::cancellation_signal signal;
    std::set<long> seen;
    std::exception_ptr outcome;
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(two_quick_then_stuck(20));
            while (auto pid = co_await s.next()) {
                seen.insert(*pid);
                if (seen.size() == 2) {  // cancel while the coroutine waits for a stuck task
                    auto t = std::make_shared<asio::steady_timer>(ctx, 100ms);
                    t->async_wait([&, t](boost::system::error_code) { signal.emit(asio::cancellation_type::terminal); });
                }
            }
        },
        asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
            outcome = e;
            done = true;
        }));
    ctx.run_for(20s);
    REQUIRE(done);  // the coroutine ended without the stuck tasks
    CHECK(is_operation_aborted(outcome));
    CHECK(seen == pool);

    SECTION("and the next call may be another coroutine on the same io_context") {
        std::vector<long> again;
        bool finished = false;
        ctx.restart();
        asio::co_spawn(
            ctx, [&]() -> asio::awaitable<void> { again = co_await par.async_run(squares(5), asio::use_awaitable); },
            [&](std::exception_ptr e) {
                finished = true;
                CHECK_FALSE(e);
            });
        ctx.run_for(10s);
        CHECK(finished);
        CHECK(again == expected_squares(5));
        for (long pid : pool) CHECK(kit::eventually([pid] { return !running(pid); }, 3s));
    }
    SECTION("and the next call may be a blocking one") { check_dropped_workers_stopped(par, pool); }
}

TEST_CASE("processes: destroying the parallel object cancels its running stream and stops its workers",
          "[process][stream][cancel]") {
    watchdog dog(60s, "destroy parallel");
    auto par = std::make_unique<cojob::parallel>(cojob::options{.n_jobs = 2, .backend = processes, .batch_size = 1});
    const auto pool = pool_pids(*par);
    REQUIRE(pool.size() == 2);
    {
        auto s = par->stream(two_quick_then_stuck(20));
        auto it = s.begin();
        ++it;  // both workers now run stuck tasks
        par.reset();
        auto drain = [&] {
            for (; it != s.end(); ++it) {
            }
        };
        CHECK_THROWS_AS(drain(), cojob::cancelled);  // without waiting for the stuck tasks
    }
    for (long pid : pool) CHECK(kit::eventually([pid] { return !running(pid); }, 3s));
    CHECK(kit::eventually([] { return running_and_zombies() == std::pair<int, int>{0, 0}; }, 3s));
}

TEST_CASE("processes: a stream dropped while a large result is in the pipe leaves the pool sound",
          "[process][stream][cancel]") {
    watchdog dog(60s, "drop large");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    constexpr long len = 2'000'000;  // 16 MB each
    auto tasks =
        std::views::iota(0L, 40L) | std::views::transform([](long i) { return cojob::delayed(block)(i, long{len}); });
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round);
        long k = 0;
        for (auto&& v : par.stream(tasks, round == 1 ? cojob::order::completion : cojob::order::input)) {
            CHECK(v.size() == static_cast<std::size_t>(len));
            if (++k == 3 + round) break;
        }
        CHECK(par(squares(4)) == expected_squares(4));
    }
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    CHECK(running_and_zombies().first <= 2);
}

// --- Ctrl-C -----------------------------------------------------------------------------------

TEST_CASE("processes: Ctrl-C during a blocking stream ends it with cojob::cancelled", "[process][stream][cancel]") {
    watchdog dog(60s, "Ctrl-C");
    for (bool buffered : {false, true}) {  // waiting for a result / results waiting for the consumer
        INFO((buffered ? "results buffered" : "waiting"));
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
        const auto pool = pool_pids(par);
        std::atomic<long> seen{0};
        // Ctrl-C once the stream watches for it and has handed out its first results (sent
        // before the watch, it would end the test binary).
        std::thread interrupter([&seen, want = buffered ? 1L : 2L] {
            if (kit::eventually([&] { return cojob::detail::process::sigint_watchers() > 0 && seen.load() >= want; }, 10s))
                ::kill(::getpid(), SIGINT);
        });
        const auto consume = [&] {
            if (buffered) {
                for (auto&& r : par.stream(bulky_tasks(40, 1))) {
                    (void)r;
                    ++seen;
                    std::this_thread::sleep_for(100ms);  // Ctrl-C comes while results wait
                }
            } else {
                for (auto&& pid : par.stream(two_quick_then_stuck(20))) {
                    (void)pid;
                    ++seen;
                }
            }
        };
        CHECK_THROWS_AS(consume(), cojob::cancelled);
        interrupter.join();
        CHECK(seen <= (buffered ? 5 : 2));  // nothing buffered was handed out after Ctrl-C
        CHECK(kit::eventually([] { return kit::sigint_is_default(); }, 5s));  // the default disposition is back
        CHECK(tracked_values.load() == 0);
        if (!buffered) {
            check_dropped_workers_stopped(par, pool);
        } else {
            CHECK(par(squares(6)) == expected_squares(6));
            CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
        }
    }
}
