// tests/unit/async_input_test.cpp - calls fed by a cojob::async_generator of tasks (async_run,
// stream, blocking): tasks pulled only as the window allows, a producer waiting on timers,
// exceptions from the producer, cancellation while the call waits for it, and a generator
// wrapping a slow consumer's stream with its memory bound kept.
#include "kit.hpp"
#include "stream_kit.hpp"

#include <cojob/async_generator.hpp>
#include <cojob/errors.hpp>
#include <cojob/parallel.hpp>
#include <cojob/stream.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kit::run_coroutine;

namespace {

using square_task = decltype(cojob::delayed(stream_kit::square)(0L));

/// What a producer saw: tasks it made, how far it ran ahead of `done`, how it was stopped.
struct producer_log {
    std::atomic<long> done{0};  ///< completed tasks (list calls) or consumed results (streams)
    long made = 0;
    long max_ahead = 0;  ///< most tasks made and not done, at the moment one was made
    bool aborted = false;
    bool gone = false;
};

struct mark_gone {
    producer_log* log;
    ~mark_gone() { log->gone = true; }
};

/// Yields delayed(stream_kit::square)(i) for i < n, waiting `gap` on a timer before each; throws instead of
/// yielding `fail_at`; from `stall_at` on, waits a minute before the next task.
cojob::async_generator<square_task> producer(producer_log* log, long n, std::chrono::milliseconds gap,
                                             long fail_at = -1, long stall_at = -1) {
    mark_gone g{log};
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (long i = 0; i < n; ++i) {
        t.expires_after(i == stall_at ? std::chrono::milliseconds(60s) : gap);
        try {
            co_await t.async_wait(asio::deferred);
        } catch (const boost::system::system_error& e) {
            log->aborted = e.code() == asio::error::operation_aborted;
            throw;
        }
        if (i == fail_at) throw std::runtime_error("producer failed at " + std::to_string(i));
        ++log->made;
        log->max_ahead = std::max(log->max_ahead, log->made - log->done.load());
        co_yield cojob::delayed(stream_kit::square)(i);
    }
}

long square_after(producer_log* log, long i, long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ++log->done;
    return i * i;
}

/// Yields n tasks at once (no wait), each sleeping `ms` and counting itself done.
cojob::async_generator<decltype(cojob::delayed(square_after)(static_cast<producer_log*>(nullptr), 0L, 0L))> eager(producer_log* log, long n,
                                                                                          long ms) {
    for (long i = 0; i < n; ++i) {
        ++log->made;
        log->max_ahead = std::max(log->max_ahead, log->made - log->done.load());
        co_yield cojob::delayed(square_after)(log, i, ms);
    }
}

}  // namespace

TEST_CASE("async_run: tasks from a producer that waits on a timer before each", "[async][async_input]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        producer_log log;
        std::vector<long> results;
        run_coroutine([&]() -> asio::awaitable<void> {
            results = co_await par.async_run(producer(&log, 20, 1ms), asio::use_awaitable);
        });
        CHECK(results == stream_kit::expected_squares(20));
        CHECK(log.gone);
    }
}

TEST_CASE("async_run: the producer is asked for a task only when the window has room", "[async][async_input]") {
    // Batches of one task, two workers, a window of 3 batches: a task is made only when fewer
    // than 3 are out, so the producer never runs more than 3 ahead of the completed tasks.
    cojob::parallel par{{.n_jobs = 2, .pre_dispatch = 3, .batch_size = 1}};
    producer_log log;
    std::vector<long> results;
    run_coroutine([&]() -> asio::awaitable<void> {
        results = co_await par.async_run(eager(&log, 30, 2), asio::use_awaitable);
    });
    CHECK(results == stream_kit::expected_squares(30));
    CHECK(log.max_ahead <= 3);
    CHECK(log.max_ahead >= 2);  // and it did run ahead: both workers were kept busy
}

TEST_CASE("a stream of a producer's tasks: the consumer's pace holds the producer back", "[async][async_input]") {
    cojob::parallel par{{.n_jobs = 2, .pre_dispatch = 4}};
    producer_log log;
    std::vector<long> got;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto s = par.stream(producer(&log, 30, 0ms), cojob::order::input);
        asio::steady_timer pause(co_await asio::this_coro::executor);
        while (auto r = co_await s.next()) {
            got.push_back(*r);
            ++log.done;
            pause.expires_after(1ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
    });
    CHECK(got == stream_kit::expected_squares(30));
    // The window counts results not consumed: pre_dispatch of them, plus the one being taken.
    CHECK(log.max_ahead <= 5);
}

TEST_CASE("async_run: what the producer throws ends the call, at any task", "[async][async_input][error]") {
    for (long fail_at : {0L, 5L, 9L}) {
        INFO("fail_at=" << fail_at);
        cojob::parallel par{{.n_jobs = 2}};
        producer_log log;
        std::string message;
        run_coroutine([&]() -> asio::awaitable<void> {
            try {
                co_await par.async_run(producer(&log, 10, 1ms, fail_at), asio::use_awaitable);
            } catch (const std::runtime_error& e) {
                message = e.what();
            }
        });
        CHECK(message == "producer failed at " + std::to_string(fail_at));
        CHECK(log.gone);
        // The object is free for the next call.
        CHECK(par(stream_kit::squares(3)) == std::vector<long>{0, 1, 4});
    }
}

TEST_CASE("cancelling async_run while it waits for the producer stops the producer", "[async][async_input][cancel]") {
    cojob::parallel par{{.n_jobs = 2}};
    producer_log log;
    std::exception_ptr failure;
    run_coroutine(
        [&]() -> asio::awaitable<void> {
            asio::cancellation_signal stop;
            asio::steady_timer later(co_await asio::this_coro::executor, 20ms);
            later.async_wait([&](boost::system::error_code) { stop.emit(asio::cancellation_type::terminal); });
            try {
                co_await par.async_run(producer(&log, 10, 1ms, -1, 3),
                                       asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
            } catch (...) {
                failure = std::current_exception();
            }
            // The timer was cancelled when the call ended: its handler, queued then, has destroyed
            // the body by the time this later one runs (not a minute later).
            asio::steady_timer settle(co_await asio::this_coro::executor, 5ms);
            co_await settle.async_wait(asio::use_awaitable);
            CHECK(log.gone);
        },
        10s);
    CHECK(kit::is_operation_aborted(failure));
    CHECK(log.made == 3);
}

TEST_CASE("a stream cancelled while it waits for the producer: the producer sees the abort", "[async][async_input][cancel]") {
    cojob::parallel par{{.n_jobs = 2}};
    producer_log log;
    std::vector<long> got;
    run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(producer(&log, 10, 1ms, -1, 3), cojob::order::input);
            for (int i = 0; i < 3; ++i) got.push_back(*co_await s.next());
            s.cancel();  // the stream still holds the producer: its wait ends with operation_aborted
            asio::steady_timer settle(co_await asio::this_coro::executor, 5ms);
            co_await settle.async_wait(asio::use_awaitable);
            CHECK(log.aborted);
            CHECK(log.gone);  // the producer rethrew: its body ended there
        },
        10s);
    CHECK(got == stream_kit::expected_squares(3));
}

TEST_CASE("a failing task stops the producer where it waits", "[async][async_input][error]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    producer_log log;
    std::string message;
    auto tasks = [](producer_log* l) -> cojob::async_generator<decltype(cojob::delayed(stream_kit::throw_at)(0L, 0L))> {
        mark_gone g{l};
        co_yield cojob::delayed(stream_kit::throw_at)(0L, 1L);
        co_yield cojob::delayed(stream_kit::throw_at)(1L, 1L);
        asio::steady_timer t(co_await asio::this_coro::executor, 60s);
        try {
            co_await t.async_wait(asio::deferred);
        } catch (const boost::system::system_error& e) {
            l->aborted = e.code() == asio::error::operation_aborted;
            throw;
        }
        co_yield cojob::delayed(stream_kit::throw_at)(2L, 1L);
    };
    run_coroutine(
        [&]() -> asio::awaitable<void> {
            try {
                co_await par.async_run(tasks(&log), asio::use_awaitable);
            } catch (const std::invalid_argument& e) {
                message = e.what();
            }
            asio::steady_timer settle(co_await asio::this_coro::executor, 5ms);
            co_await settle.async_wait(asio::use_awaitable);
            CHECK(log.gone);  // stopped where it waited, not a minute later
        },
        10s);
    CHECK(message == "bad 1");
}

TEST_CASE("par(producer) blocks, and a blocking loop reads a stream of a producer", "[async_input]") {
    cojob::parallel par{{.n_jobs = 2}};
    producer_log log;
    CHECK(par(producer(&log, 12, 1ms)) == stream_kit::expected_squares(12));
    producer_log log2;
    std::vector<long> got;
    for (long r : par.stream(producer(&log2, 12, 1ms), cojob::order::completion)) got.push_back(r);
    std::sort(got.begin(), got.end());
    CHECK(got == stream_kit::expected_squares(12));
}

TEST_CASE("a generator wrapping a slow consumer's stream keeps the stream's memory bound", "[async][async_input]") {
    // The stream's window holds at most pre_dispatch + n_jobs results; the wrapper adds the one
    // it yields, the consumer the one it holds.
    constexpr long n = 40;
    stream_kit::probe p;
    cojob::parallel par{{.n_jobs = 2, .pre_dispatch = "2*n_jobs"}};
    auto wrap = [](cojob::stream<kit::counted> s) -> cojob::async_generator<kit::counted> {
        while (auto r = co_await s.next()) co_yield std::move(*r);
    };
    long seen = 0;
    int most_alive = 0;
    run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto g = wrap(par.stream(stream_kit::counted_tasks(p, n, 0), cojob::order::input));
            asio::steady_timer pause(co_await asio::this_coro::executor);
            while (auto r = co_await g.next()) {
                CHECK(r->value() == seen);
                ++seen;
                most_alive = std::max(most_alive, p.counts.values());
                ++p.consumed;
                pause.expires_after(1ms);
                co_await pause.async_wait(asio::use_awaitable);
            }
        },
        30s);
    CHECK(seen == n);
    CHECK(most_alive <= 4 + 2 + 2);
    CHECK(p.max_alive <= 4 + 2 + 2);
    CHECK(p.counts.values() == 0);
}
