// parallel::stream consumed by coroutines and completion tokens: co_await next() on the
// caller's executor, errors, cancellation of the awaiting coroutine, dropping the stream,
// callbacks chained from callbacks, and many synchronously ready results.
#include "kit.hpp"
#include "stream_kit.hpp"

#include <cojob/errors.hpp>
#include <cojob/parallel.hpp>
#include <cojob/stream.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace stream_kit;

namespace {
constexpr long many = kit::sanitized ? 20'000 : 200'000;  // synchronously ready results
}

namespace {

using kit::run_coroutine;

using kit::is_operation_aborted;

}  // namespace

TEST_CASE("co_await next() hands results out in order, on the awaiting coroutine's thread", "[stream][async]") {
    watchdog dog(60s, "co_await order");
    for (int n_jobs : {1, 2, 4}) {
        for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
            INFO("n_jobs=" << n_jobs);
            cojob::parallel par{{.n_jobs = n_jobs}};
            std::vector<long> got;
            bool same_thread = true;
            run_coroutine([&]() -> asio::awaitable<void> {
                const auto me = std::this_thread::get_id();
                auto s = par.stream(uneven_squares(3000), o);
                while (auto r = co_await s.next()) {
                    got.push_back(*r);
                    same_thread = same_thread && std::this_thread::get_id() == me;
                }
            });
            CHECK(same_thread);
            if (o == cojob::order::input) {
                CHECK(got == expected_squares(3000));
            } else {
                std::multiset<long> a(got.begin(), got.end());
                auto e = expected_squares(3000);
                CHECK(a == std::multiset<long>(e.begin(), e.end()));
            }
        }
    }
}

TEST_CASE("an empty stream completes next() with nothing, again and again", "[stream][async]") {
    watchdog dog(10s, "co_await empty");
    cojob::parallel par{{.n_jobs = 2}};
    run_coroutine([&]() -> asio::awaitable<void> {
        auto s = par.stream(squares(0));
        CHECK_FALSE((co_await s.next()).has_value());
        CHECK_FALSE((co_await s.next()).has_value());
    });
}

TEST_CASE("co_await next() rethrows a task's exception after the results before it", "[stream][async][error]") {
    watchdog dog(60s, "co_await errors");
    for (int n_jobs : {1, 2}) {
        for (long bad : {0L, 57L, 199L}) {
            INFO("n_jobs=" << n_jobs << " failing task " << bad);
            cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 2}};
            std::vector<long> got;
            std::string message;
            run_coroutine([&]() -> asio::awaitable<void> {
                auto s = par.stream(failing_at(200, bad));
                try {
                    while (auto r = co_await s.next()) got.push_back(*r);
                } catch (const std::invalid_argument& e) {
                    message = e.what();
                }
                CHECK_FALSE((co_await s.next()).has_value());  // told once, then the stream is over
            });
            CHECK(message == "bad " + std::to_string(bad));
            CHECK(got.size() == static_cast<std::size_t>(bad));
            CHECK(par(squares(3)).size() == 3);
        }
    }
}

TEST_CASE("cancelling the awaiting coroutine drops the stream and frees the parallel object", "[stream][async][cancel]") {
    watchdog dog(30s, "co_await cancel");
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        probe p;
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
        asio::io_context ctx;
        asio::cancellation_signal signal;
        long received = 0;
        std::exception_ptr outcome;
        bool done = false;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                auto s = par.stream(counted_tasks(p, 200, 20));
                while (auto r = co_await s.next()) {
                    ++received;
                    if (received == 3)  // cancel while the coroutine waits for the 4th
                        asio::post(ctx, [&] { signal.emit(asio::cancellation_type::terminal); });
                }
            },
            asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                outcome = e;
                done = true;
            }));
        ctx.run_for(20s);
        REQUIRE(done);
        CHECK(is_operation_aborted(outcome));
        CHECK(received == 3);
        CHECK(p.started.load() < 20);
        CHECK(par(squares(3)).size() == 3);
        CHECK(kit::eventually([&] { return p.counts.alive() == 0; }, 5s));
    }
}

TEST_CASE("leaving a coroutine with its stream unfinished drops it", "[stream][async][cancel]") {
    watchdog dog(30s, "co_await drop");
    probe p;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    run_coroutine([&]() -> asio::awaitable<void> {
        {
            auto s = par.stream(counted_tasks(p, 500, 2));
            for (int i = 0; i < 5; ++i) CHECK((co_await s.next()).has_value());
        }
        // The drop is posted to the stream's strand; one turn of the loop and the object is free.
        asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
        co_await t.async_wait(asio::use_awaitable);
        auto again = co_await par.async_run(squares(4), asio::use_awaitable);
        CHECK(again.size() == 4);
    });
    CHECK(p.started.load() < 50);
    CHECK(kit::eventually([&] { return p.counts.alive() == 0; }, 5s));
}

TEST_CASE("a slow coroutine consumer holds the workers back", "[stream][async][backpressure]") {
    watchdog dog(30s, "co_await backpressure");
    probe p;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    run_coroutine([&]() -> asio::awaitable<void> {
        auto s = par.stream(counted_tasks(p, 40, 1), cojob::order::completion);
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (auto r = co_await s.next()) {
            ++p.consumed;
            // Values, not objects: each result passes through several moves on its way to
            // the coroutine (handler, post, awaitable frame), leaving empty husks behind.
            kit::raise_to(p.max_alive, p.counts.values());
            t.expires_after(5ms);
            co_await t.async_wait(asio::use_awaitable);
        }
    });
    // The window (4) plus the one result on its way to the coroutine: the stream counts a
    // result as taken when it hands it over, before the coroutine resumes and counts it.
    CHECK(p.max_outstanding.load() <= 4 + 1);
    CHECK(p.max_alive.load() <= 4 + 2);
}

TEST_CASE("async_next works with callbacks chained from callbacks, without recursion", "[stream][async][stress]") {
    watchdog dog(60s, "callbacks");
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        asio::io_context ctx;
        auto s = par.stream(plain_squares(many));
        long count = 0;
        bool ended = false;
        std::function<void(std::exception_ptr, std::optional<long>)> on_next =
            [&](std::exception_ptr e, std::optional<long> r) {
                REQUIRE_FALSE(e);
                if (!r) {
                    ended = true;
                    return;
                }
                ++count;
                s.async_next(asio::bind_executor(ctx, on_next));
            };
        s.async_next(asio::bind_executor(ctx, on_next));
        ctx.run_for(40s);
        CHECK(ended);
        CHECK(count == many);
    }
}

TEST_CASE("co_await next() over many synchronously ready results on the sequential backend", "[stream][async][stress]") {
    watchdog dog(60s, "co_await many");
    cojob::parallel par{{.n_jobs = 1}};
    long count = 0;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto s = par.stream(plain_squares(many));
        while (auto r = co_await s.next()) ++count;
    }, 40s);
    CHECK(count == many);
}

TEST_CASE("async_next with use_future from a plain thread, the scheduler on a thread pool", "[stream][async]") {
    watchdog dog(30s, "use_future");
    asio::thread_pool pool(2);
    cojob::parallel par{{.n_jobs = 2}};
    auto s = par.stream(squares(500));
    long count = 0;
    for (;;) {
        auto f = s.async_next(asio::bind_executor(pool, asio::use_future));
        REQUIRE(f.wait_for(10s) == std::future_status::ready);
        auto r = f.get();
        if (!r) break;
        CHECK(*r == count * count);
        ++count;
    }
    CHECK(count == 500);
    pool.join();
}

TEST_CASE("a stream consumed with co_await refuses a blocking loop, and the reverse", "[stream][async][error]") {
    watchdog dog(20s, "modes");
    cojob::parallel par{{.n_jobs = 2}};
    run_coroutine([&]() -> asio::awaitable<void> {
        auto s = par.stream(squares(10));
        CHECK((co_await s.next()).has_value());
        CHECK_THAT(kit::message_of<cojob::error>([&] { (void)s.begin(); }), Catch::Contains("co_await"));
    });
    auto b = par.stream(squares(10));
    REQUIRE(b.begin() != b.end());
    run_coroutine([&]() -> asio::awaitable<void> {
        CHECK_THROWS_AS(co_await b.next(), cojob::error);
    });
}
