// tests/process/stream_process_test.cpp - parallel::stream on backend=processes: input and
// completion order, empty input, errors at every position, and backpressure against a slow
// consumer (results left in the workers until consumed). Dropping a stream and Ctrl-C are in
// stream_cancel_process_test.cpp. Every wait is bounded by a watchdog.
#include "stream_process_kit.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace pstream;

// --- order ------------------------------------------------------------------------------------

TEST_CASE("processes: a stream hands results out in input order for any batch size", "[process][stream]") {
    watchdog dog(120s, "input order");
    const std::vector<cojob::batch_size_spec> batch_sizes{1, 7, "auto"};
    for (int n_jobs : {2, 3}) {
        for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
            INFO("n_jobs=" << n_jobs << " batch_size#" << b);
            cojob::parallel par{{.n_jobs = n_jobs, .backend = processes, .batch_size = batch_sizes[b]}};
            std::vector<long> got;
            for (auto&& r : par.stream(squares(500), cojob::order::input)) got.push_back(r);
            CHECK(got == expected_squares(500));
        }
    }
}

TEST_CASE("processes: an unordered stream hands results out as workers finish them, each once",
          "[process][stream]") {
    watchdog dog(60s, "completion order");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    // Task 0 takes 600 ms, the others 1 ms: the other worker finishes most of them first (the
    // one running task 0 holds one more task queued behind it).
    auto tasks = std::views::iota(0L, 20L) |
                 std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, i == 0 ? 600L : 1L); });
    std::vector<long> got;
    for (auto&& r : par.stream(tasks, cojob::order::completion)) got.push_back(r);
    REQUIRE(got.size() == 20);
    CHECK(std::set<long>(got.begin(), got.end()).size() == 20);
    const auto pos0 = std::find(got.begin(), got.end(), 0L) - got.begin();
    CHECK(pos0 >= 10);

    std::vector<long> ordered;
    for (auto&& r : par.stream(tasks, cojob::order::input)) ordered.push_back(r);
    std::vector<long> expected(20);
    for (long i = 0; i < 20; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(ordered == expected);
}

TEST_CASE("processes: co_await next() streams results from worker processes on the caller's executor",
          "[process][stream]") {
    watchdog dog(60s, "co_await");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
        std::vector<long> got;
        bool same_thread = true;
        kit::run_coroutine(
            [&]() -> asio::awaitable<void> {
                const auto me = std::this_thread::get_id();
                auto s = par.stream(squares(300), o);
                while (auto r = co_await s.next()) {
                    got.push_back(*r);
                    same_thread = same_thread && std::this_thread::get_id() == me;
                }
            },
            30s);
        CHECK(same_thread);
        if (o == cojob::order::completion) std::sort(got.begin(), got.end());
        CHECK(got == expected_squares(300));
    }
}

TEST_CASE("processes: large results stream in order and sum correctly", "[process][stream]") {
    watchdog dog(60s, "large results");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    constexpr long n = 12, len = 1'000'000;  // 8 MB each
    auto tasks = std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(block)(i, long{len}); });
    long k = 0;
    for (auto&& v : par.stream(tasks)) {
        REQUIRE(v.size() == static_cast<std::size_t>(len));
        CHECK(v.front() == double(k));
        CHECK(v.back() == double(k));
        ++k;
    }
    CHECK(k == n);
}

TEST_CASE("processes: a stream over an empty input ends at once, in both orders", "[process][stream]") {
    watchdog dog(30s, "empty input");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
        auto s = par.stream(squares(0), o);
        CHECK(s.begin() == s.end());
    }
    kit::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(squares(0));
            CHECK_FALSE((co_await s.next()).has_value());
            CHECK_FALSE((co_await s.next()).has_value());
        },
        10s);
    CHECK(par(squares(3)) == expected_squares(3));
}

// --- errors -----------------------------------------------------------------------------------

TEST_CASE("processes: a failing task surfaces at its position in an ordered stream, after every result before it",
          "[process][stream][error]") {
    watchdog dog(120s, "ordered errors");
    for (int batch_size : {1, 3}) {
        for (long bad : {0L, 31L, 59L}) {
            INFO("batch_size=" << batch_size << " failing task " << bad);
            cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = batch_size}};
            std::vector<long> got;
            std::string message;
            try {
                for (auto&& r : par.stream(failing_at(60, bad))) got.push_back(r);
            } catch (const std::invalid_argument& e) {
                message = e.what();
            }
            CHECK_THAT(message, Catch::StartsWith("bad " + std::to_string(bad)) &&
                                    Catch::Contains("Sub-process traceback"));
            std::vector<long> expected(static_cast<std::size_t>(bad));
            for (long i = 0; i < bad; ++i) expected[static_cast<std::size_t>(i)] = i;
            CHECK(got == expected);
            REQUIRE(par.last_failure().has_value());
            CHECK(par.last_failure()->index == static_cast<std::size_t>(bad));
            CHECK(par.last_failure()->pid != static_cast<int>(::getpid()));
            CHECK(par(squares(5)) == expected_squares(5));  // usable again
        }
    }
}

TEST_CASE("processes: a failing task surfaces when it finishes in an unordered stream", "[process][stream][error]") {
    watchdog dog(120s, "unordered errors");
    for (long bad : {0L, 31L, 59L}) {
        INFO("failing task " << bad);
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
        std::vector<long> got;
        std::string message;
        try {
            for (auto&& r : par.stream(failing_at(60, bad), cojob::order::completion)) got.push_back(r);
        } catch (const std::invalid_argument& e) {
            message = e.what();
        }
        CHECK_THAT(message, Catch::StartsWith("bad " + std::to_string(bad)));
        CHECK(std::find(got.begin(), got.end(), bad) == got.end());
        CHECK(std::set<long>(got.begin(), got.end()).size() == got.size());
        REQUIRE(par.last_failure().has_value());
        CHECK(par.last_failure()->index == static_cast<std::size_t>(bad));
        CHECK(par(squares(5)) == expected_squares(5));
    }
}

TEST_CASE("processes: co_await next() rethrows a task's exception after the results before it",
          "[process][stream][error]") {
    watchdog dog(60s, "co_await errors");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 2}};
    for (long bad : {0L, 31L, 59L}) {
        INFO("failing task " << bad);
        std::vector<long> got;
        std::string message;
        kit::run_coroutine(
            [&]() -> asio::awaitable<void> {
                auto s = par.stream(failing_at(60, bad));
                try {
                    while (auto r = co_await s.next()) got.push_back(*r);
                } catch (const std::invalid_argument& e) {
                    message = e.what();
                }
                CHECK_FALSE((co_await s.next()).has_value());
            },
            30s);
        CHECK_THAT(message, Catch::StartsWith("bad " + std::to_string(bad)));
        CHECK(got.size() == static_cast<std::size_t>(bad));
        CHECK(par(squares(3)) == expected_squares(3));
    }
}

// --- backpressure -----------------------------------------------------------------------------

TEST_CASE("processes: a slow consumer holds the workers back: results in flight stay within the window",
          "[process][stream][backpressure]") {
    watchdog dog(120s, "backpressure");
    struct setup {
        cojob::pre_dispatch_spec pre_dispatch;
        long window;
    };
    for (const auto& [pre, window] : {setup{"2*n_jobs", 4}, setup{3, 3}}) {
        for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
            INFO("window " << window << (o == cojob::order::input ? " input order" : " completion order"));
            cojob::parallel par{{.n_jobs = 2, .backend = processes, .pre_dispatch = pre, .batch_size = 1}};
            constexpr long n = 40;
            std::vector<std::int64_t> starts;
            std::vector<std::int64_t> consumed;  // when the consumer had each result
            int max_alive = 0;
            for (auto&& r : par.stream(timed_tasks(n, 1), o)) {
                consumed.push_back(steady_ns());
                starts.push_back(r.started_ns());
                max_alive = std::max(max_alive, tracked_values.load());
                std::this_thread::sleep_for(15ms);  // far slower than the workers
                max_alive = std::max(max_alive, tracked_values.load());
            }
            REQUIRE(starts.size() == static_cast<std::size_t>(n));
            // Results held in this process: the window plus the one the consumer holds, far
            // below the 40 a list would hold.
            CHECK(max_alive <= window + 1);
            CHECK(tracked_values.load() == 0);
            // When any task started, tasks started minus results consumed: within the window.
            std::sort(starts.begin(), starts.end());
            long max_ahead = 0;
            for (std::size_t k = 0; k < starts.size(); ++k) {
                const auto taken = std::upper_bound(consumed.begin(), consumed.end(), starts[k]) - consumed.begin();
                max_ahead = std::max(max_ahead, static_cast<long>(k + 1) - static_cast<long>(taken));
            }
            CHECK(max_ahead <= window);
            CHECK(max_ahead >= 2);  // and the workers did run ahead of the consumer
        }
    }
}

TEST_CASE("processes: a slow coroutine consumer holds the workers back", "[process][stream][backpressure]") {
    watchdog dog(60s, "co_await backpressure");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    asio::io_context ctx;
    int max_alive = 0;
    long seen = 0;
    bool finished = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(timed_tasks(30, 1), cojob::order::completion);
            asio::steady_timer t(ctx);
            while (auto r = co_await s.next()) {
                ++seen;
                max_alive = std::max(max_alive, tracked_values.load());
                t.expires_after(15ms);
                co_await t.async_wait(asio::use_awaitable);
                max_alive = std::max(max_alive, tracked_values.load());
            }
        },
        [&](std::exception_ptr e) {
            finished = true;
            CHECK_FALSE(e);
        });
    ctx.run_for(40s);
    REQUIRE(finished);
    CHECK(seen == 30);
    CHECK(max_alive <= 4 + 1);
    CHECK(tracked_values.load() == 0);
}

TEST_CASE("processes: results a slow consumer has not taken stay in their workers until taken",
          "[process][stream][backpressure]") {
    watchdog dog(60s, "results left in workers");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto pool = pool_pids(par);
    for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
        INFO((o == cojob::order::input ? "input order" : "completion order"));
        long k = 0;
        int max_alive = 0;
        for (auto&& r : par.stream(bulky_tasks(16, 1), o)) {
            // Read when taken: only the result the loop holds exists in this process, however
            // many wait in the window.
            max_alive = std::max(max_alive, tracked_values.load());
            std::this_thread::sleep_for(20ms);
            max_alive = std::max(max_alive, tracked_values.load());
            CHECK(r.payload.size() == 100'000u);
            CHECK(r.payload.front() == double(r.tag.index()));
            if (o == cojob::order::input) CHECK(r.tag.index() == k);
            ++k;
        }
        CHECK(k == 16);
        CHECK(max_alive == 1);
        CHECK(tracked_values.load() == 0);
    }
    CHECK(pool_pids(par) == pool);  // nobody was killed on the way
}

TEST_CASE("processes: a call runs beside a stream whose results wait in the workers; the pool is whole after",
          "[process][stream][backpressure][concurrent]") {
    watchdog dog(60s, "busy while results wait");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto pool = pool_pids(par);
    for (bool drop : {false, true}) {
        INFO((drop ? "dropped" : "consumed"));
        {
            auto s = par.stream(bulky_tasks(3, 0));
            auto it = s.begin();
            REQUIRE(it != s.end());
            // The other results wait in the workers' arenas (or are on their way): a call now
            // is served by the workers that hold nothing, or by a spare one started for it.
            CHECK(par(squares(3)) == expected_squares(3));
            if (!drop) {
                long n = 1;
                for (++it; it != s.end(); ++it) ++n;
                CHECK(n == 3);
            }
        }  // dropped here, or consumed to the end
        CHECK(par(squares(3)) == expected_squares(3));
        // Consumed to the end, every arena was handed back and nobody was killed; a drop stops
        // the workers still running the call's tasks.
        if (!drop) CHECK(pool_pids(par) == pool);
        CHECK(tracked_values.load() == 0);
        CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    }
}

TEST_CASE("processes: a worker waiting for a slow consumer does not count against the timeout",
          "[process][stream][backpressure][timeout]") {
    watchdog dog(60s, "timeout and a slow consumer");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .timeout = std::chrono::milliseconds(800)}};
    long n = 0;
    for (auto&& r : par.stream(bulky_tasks(6, 10))) {
        CHECK(r.tag.index() == n);
        ++n;
        std::this_thread::sleep_for(600ms);  // the workers wait ~1.2 s for their arenas
    }
    CHECK(n == 6);
}

// --- tasks from an async generator -------------------------------------------------------------

namespace {

using square_task = decltype(cojob::delayed(square)(0L));

/// Yields delayed(square)(i) for i < n, waiting 1 ms on a timer before every fourth.
cojob::async_generator<square_task> timed_squares(long n) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (long i = 0; i < n; ++i) {
        if (i % 4 == 0) {
            t.expires_after(1ms);
            co_await t.async_wait(asio::deferred);
        }
        co_yield cojob::delayed(square)(i);
    }
}

}  // namespace

TEST_CASE("processes: async_run and a stream take their tasks from an async generator", "[process][stream]") {
    watchdog dog(60s, "async producer");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    std::vector<long> listed;
    std::vector<long> streamed;
    asio::io_context io;
    std::exception_ptr failure;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            listed = co_await par.async_run(timed_squares(200), asio::use_awaitable);
            auto s = par.stream(timed_squares(200), cojob::order::input);
            while (auto r = co_await s.next()) streamed.push_back(*r);
        },
        [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
    CHECK(listed == expected_squares(200));
    CHECK(streamed == expected_squares(200));
}
