// tests/unit/async_generator_test.cpp - cojob::async_generator<T> read by a coroutine: values in
// order across timers and awaitables, laziness, exceptions from the body, a body destroyed while
// it waits, a cancelled next(), and a generator wrapping another.
#include "kit.hpp"

#include <cojob/async_generator.hpp>
#include <cojob/errors.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kit::run_coroutine;

namespace {

/// Sets `*flag` when destroyed: a local of a body, to see when the body's frame goes.
struct on_destroy {
    bool* flag;
    ~on_destroy() { *flag = true; }
};

/// Yields 0..n-1, waiting `gap` on a timer before each, counting what it made in `*made`.
cojob::async_generator<int> ticking(int n, std::chrono::milliseconds gap, int* made) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (int i = 0; i < n; ++i) {
        t.expires_after(gap);
        co_await t.async_wait(asio::deferred);
        ++*made;
        co_yield i;
    }
}

/// Yields 0..n-1 and throws instead of yielding `fail_at`, after a timer each time.
cojob::async_generator<int> failing_async_generator(int n, int fail_at) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (int i = 0; i < n; ++i) {
        t.expires_after(1ms);
        co_await t.async_wait(asio::deferred);
        if (i == fail_at) throw std::runtime_error("producer failed at " + std::to_string(i));
        co_yield i;
    }
}

asio::awaitable<int> tenfold(int x) {
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return 10 * x;
}

/// Reads `inner` and yields each value through an awaitable: a generator wrapping another.
cojob::async_generator<std::string> wrapped(cojob::async_generator<int> inner) {
    while (auto v = co_await inner.next()) co_yield std::to_string(co_await tenfold(*v));
}

template <class T>
asio::awaitable<std::vector<T>> read_all(cojob::async_generator<T>& g) {
    std::vector<T> out;
    while (auto v = co_await g.next()) out.push_back(std::move(*v));
    co_return out;
}

}  // namespace

TEST_CASE("async_generator: values in order across timers, made only when asked", "[async_generator][async]") {
    int made = 0;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto g = ticking(5, 1ms, &made);
        CHECK(made == 0);  // lazy: nothing runs before the first read
        for (int i = 0; i < 5; ++i) {
            auto v = co_await g.next();
            REQUIRE(v);
            CHECK(*v == i);
            CHECK(made == i + 1);  // exactly one value per read, none ahead
        }
        auto end = co_await g.next();
        CHECK_FALSE(end);
        end = co_await g.next();
        CHECK_FALSE(end);  // stays ended
    });
}

TEST_CASE("async_generator: awaits awaitables and wraps another generator", "[async_generator][async]") {
    int made = 0;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto g = wrapped(ticking(4, 1ms, &made));
        const auto all = co_await read_all(g);
        CHECK(all == std::vector<std::string>{"0", "10", "20", "30"});
    });
    CHECK(made == 4);
}

TEST_CASE("async_generator: move-only values and a body that never waits", "[async_generator][async]") {
    auto boxes = []() -> cojob::async_generator<std::unique_ptr<int>> {
        for (int i = 0; i < 3; ++i) co_yield std::make_unique<int>(i);
    };
    run_coroutine([&]() -> asio::awaitable<void> {
        auto g = boxes();
        auto all = co_await read_all(g);
        REQUIRE(all.size() == 3);
        CHECK(*all[2] == 2);
    });
}

TEST_CASE("async_generator: what the body throws comes out of next(), at any item", "[async_generator][async]") {
    for (int fail_at : {0, 2, 4}) {
        INFO("fail_at=" << fail_at);
        std::vector<int> got;
        std::string message;
        run_coroutine([&]() -> asio::awaitable<void> {
            auto g = failing_async_generator(5, fail_at);
            try {
                while (auto v = co_await g.next()) got.push_back(*v);
            } catch (const std::runtime_error& e) {
                message = e.what();
            }
            const auto after = co_await g.next();
            CHECK_FALSE(after);  // the body has ended
        });
        CHECK(message == "producer failed at " + std::to_string(fail_at));
        CHECK(got.size() == static_cast<std::size_t>(fail_at));
    }
}

TEST_CASE("async_generator: an operation's error code is thrown in the body", "[async_generator][async]") {
    bool aborted_seen = false;
    auto body = [&]() -> cojob::async_generator<int> {
        asio::steady_timer t(co_await asio::this_coro::executor, 10s);
        asio::post(t.get_executor(), [&t] { t.cancel(); });
        try {
            co_await t.async_wait(asio::deferred);
        } catch (const boost::system::system_error& e) {
            aborted_seen = e.code() == asio::error::operation_aborted;
        }
        co_yield 1;
    };
    run_coroutine([&]() -> asio::awaitable<void> {
        auto g = body();
        const auto all = co_await read_all(g);
        CHECK(all == std::vector<int>{1});
    });
    CHECK(aborted_seen);
}

TEST_CASE("async_generator: destroyed while suspended, its locals go", "[async_generator][async]") {
    SECTION("at a co_yield") {
        bool gone = false;
        auto body = [&]() -> cojob::async_generator<int> {
            on_destroy d{&gone};
            for (int i = 0;; ++i) co_yield i;
        };
        run_coroutine([&]() -> asio::awaitable<void> {
            auto g = body();
            const auto first = co_await g.next();
            CHECK(first == 0);
            CHECK_FALSE(gone);
        });
        CHECK(gone);
    }
    SECTION("waiting for a timer: the timer is cancelled, the body destroyed once it completes") {
        bool gone = false;
        bool resumed = false;
        auto body = [&]() -> cojob::async_generator<int> {
            on_destroy d{&gone};
            co_yield 0;
            asio::steady_timer t(co_await asio::this_coro::executor, 60s);
            co_await t.async_wait(asio::deferred);
            resumed = true;
            co_yield 1;
        };
        run_coroutine(
            [&]() -> asio::awaitable<void> {
                std::optional<cojob::async_generator<int>> g(body());
                const auto first = co_await g->next();
                CHECK(first == 0);
                // Ask for the next value, give up after 5 ms, then drop the generator.
                asio::cancellation_signal stop;
                asio::steady_timer limit(co_await asio::this_coro::executor, 5ms);
                limit.async_wait([&](boost::system::error_code) { stop.emit(asio::cancellation_type::terminal); });
                try {
                    co_await g->async_next(asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
                } catch (const boost::system::system_error& e) {
                    CHECK(e.code() == asio::error::operation_aborted);  // the body ended with the abort
                }
                g.reset();
                asio::steady_timer settle(co_await asio::this_coro::executor, 5ms);
                co_await settle.async_wait(asio::use_awaitable);
            },
            10s);
        CHECK(gone);
        CHECK_FALSE(resumed);
    }
    SECTION("dropped with a next() pending: that next() is aborted, the body destroyed") {
        bool gone = false;
        bool called = false;
        std::exception_ptr failure;
        auto body = [&]() -> cojob::async_generator<int> {
            on_destroy d{&gone};
            asio::steady_timer t(co_await asio::this_coro::executor, 60s);
            co_await t.async_wait(asio::deferred);
            co_yield 1;
        };
        run_coroutine(
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                std::optional<cojob::async_generator<int>> g(body());
                g->async_next(asio::bind_executor(ex, [&](std::exception_ptr e, std::optional<int>) {
                    called = true;
                    failure = e;
                }));
                asio::steady_timer settle(ex, 2ms);
                co_await settle.async_wait(asio::use_awaitable);
                CHECK_FALSE(gone);
                g.reset();
                settle.expires_after(5ms);
                co_await settle.async_wait(asio::use_awaitable);
            },
            10s);
        CHECK(called);
        CHECK(kit::is_operation_aborted(failure));
        CHECK(gone);
    }
}

TEST_CASE("async_generator: one next() at a time", "[async_generator][async]") {
    int made = 0;
    std::string second;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto g = ticking(2, 20ms, &made);
        std::optional<int> first;
        g.async_next(asio::bind_executor(co_await asio::this_coro::executor,
                                         [&](std::exception_ptr, std::optional<int> v) { first = v; }));
        try {
            co_await g.next();
        } catch (const cojob::error& e) {
            second = e.what();
        }
        asio::steady_timer settle(co_await asio::this_coro::executor, 100ms);
        co_await settle.async_wait(asio::use_awaitable);
        CHECK(first == 0);
    });
    CHECK(second.find("another next() is pending") != std::string::npos);
}
