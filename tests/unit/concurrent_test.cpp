// Concurrent calls on one parallel object (threads and sequential backends): blocking calls from
// several threads, async_run from many coroutines, each with its own results, errors,
// cancellation and failure context; a short call served while long ones keep the workers busy;
// a stress run; and the round-robin queue the backends share workers through.
#include "engine.hpp"
#include "fair_queue.hpp"
#include "kit.hpp"

#include <cojob/cojob.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

long offset_square(long i, long base) { return base + i * i; }

/// n tasks whose results carry `base`, so a result delivered to the wrong call shows.
auto tagged(long n, long base) {
    return std::views::iota(0L, n) |
           std::views::transform([base](long i) { return cojob::delayed(offset_square)(i, base); });
}

std::vector<long> expected(long n, long base) {
    std::vector<long> v;
    for (long i = 0; i < n; ++i) v.push_back(base + i * i);
    return v;
}

long nap(long i, long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return i;
}

}  // namespace

TEST_CASE("concurrent: blocking calls from four threads on one object each get their own results",
          "[concurrent]") {
    kit::watchdog dog(60s, "blocking calls from threads");
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs " << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        const auto threads_before = kit::thread_count();
        std::atomic<int> wrong{0};
        std::vector<std::thread> callers;
        for (long t = 0; t < 4; ++t) {
            callers.emplace_back([&par, &wrong, t] {
                for (long k = 0; k < 30; ++k) {
                    const long base = t * 1'000'000 + k * 1000;
                    const long n = 1 + (t * 7 + k) % 40;
                    if (par(tagged(n, base)) != expected(n, base)) ++wrong;
                }
            });
        }
        for (auto& c : callers) c.join();
        CHECK(wrong.load() == 0);
        // The calls shared the object's workers: none were added for them.
        const std::size_t most = threads_before + (n_jobs == 1 ? 0 : 2);
        CHECK(kit::eventually([&] { return kit::thread_count() <= most; }, 3s));  // the callers' entries go
    }
}

TEST_CASE("concurrent: async_run from many coroutines on one executor each get their own results",
          "[concurrent]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs " << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 2}};
        int finished = 0;
        int wrong = 0;
        kit::run_coroutine([&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            for (long c = 0; c < 16; ++c) {
                asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                    const long n = 5 + c;
                    auto v = co_await par.async_run(tagged(n, c * 1000), asio::use_awaitable);
                    if (v != expected(n, c * 1000)) ++wrong;
                    ++finished;
                }, asio::detached);
            }
            co_return;
        });
        CHECK(finished == 16);
        CHECK(wrong == 0);
    }
}

TEST_CASE("concurrent: an error ends its own call; the others complete, and each thread's last_failure is its own",
          "[concurrent][error]") {
    kit::watchdog dog(60s, "error beside other calls");
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    std::string failed_message;
    std::size_t failed_index = 99;
    bool healthy_ok = false;
    bool healthy_failure_empty = false;
    std::thread failing([&] {
        try {
            (void)par(std::views::iota(0L, 50L) |
                      std::views::transform([](long i) { return cojob::delayed(kit::fails_on)(i, 7); }));
        } catch (const std::invalid_argument& e) {
            failed_message = e.what();
            if (par.last_failure()) failed_index = par.last_failure()->index;
        }
    });
    std::thread healthy([&] {
        healthy_ok = par(tagged(200, 5)) == expected(200, 5);
        healthy_failure_empty = !par.last_failure().has_value();
    });
    failing.join();
    healthy.join();
    CHECK(failed_message == "bad 7");
    CHECK(failed_index == 7);
    CHECK(healthy_ok);
    CHECK(healthy_failure_empty);
    CHECK(par(tagged(3, 0)) == expected(3, 0));
}

TEST_CASE("concurrent: cancelling one async_run leaves the call beside it running to its end", "[concurrent][cancel]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    asio::io_context ctx;
    asio::cancellation_signal stop;
    std::exception_ptr cancelled_error;
    bool cancelled_done = false;
    std::vector<long> kept;
    bool kept_done = false;
    auto slow = std::views::iota(0L, 400L) | std::views::transform([](long i) { return cojob::delayed(nap)(i, 2L); });
    // Both handlers run on ctx, so the state they write is read here without a race.
    par.async_run(slow, asio::bind_cancellation_slot(
                            stop.slot(), asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<long>) {
                                cancelled_error = e;
                                cancelled_done = true;
                            })));
    par.async_run(tagged(300, 1), asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<long> v) {
                      if (!e) kept = std::move(v);
                      kept_done = true;
                  }));
    asio::steady_timer later(ctx, 5ms);
    later.async_wait([&](boost::system::error_code) { stop.emit(asio::cancellation_type::terminal); });
    // run_for returns once both calls have completed (they hold ctx's work) or after the limit.
    ctx.run_for(20s);
    CHECK(cancelled_done);
    CHECK(kept_done);
    CHECK(kit::is_operation_aborted(cancelled_error));
    CHECK(kept == expected(300, 1));
}

TEST_CASE("concurrent: a one-task call is served while a long call keeps every worker busy", "[concurrent][fair]") {
    kit::watchdog dog(60s, "short call beside a long one");
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    std::atomic<bool> long_done{false};
    std::atomic<long> started{0};
    std::thread long_call([&] {
        (void)par(std::views::iota(0L, 600L) | std::views::transform([&started](long i) {
                      return cojob::delayed([&started](long k) {
                          ++started;
                          std::this_thread::sleep_for(5ms);
                          return k;
                      })(i);
                  }));
        long_done = true;
    });
    REQUIRE(kit::eventually([&] { return started.load() >= 4; }, 20s));
    // Round robin: the short call waits about one 5 ms batch per worker, the long one about 1.5 s.
    CHECK(par(tagged(1, 42)) == expected(1, 42));
    CHECK_FALSE(long_done.load());
    long_call.join();
}

TEST_CASE("concurrent: a call's auto batch size grows though its batches wait behind another call's",
          "[concurrent][fair][batch]") {
    kit::watchdog dog(120s, "batch sizing beside a long call");
    // A long call of 5 ms tasks keeps both workers busy; round robin, every batch of the tiny call
    // waits about one of them in the queue. Timed from its dispatch, each tiny batch would look
    // 5 ms long and stay one task (2,000 batches); timed from its start, it grows.
    cojob::pool workers{2, cojob::backend::threads};
    std::atomic<std::size_t> last_batch{0};
    cojob::parallel tiny{workers, {.on_task = [&last_batch](const cojob::task_event& e) {
                                       if (e.batch > last_batch) last_batch = e.batch;
                                   }}};
    cojob::parallel slow{workers};
    std::atomic<bool> tiny_done{false};
    std::atomic<long> started{0};
    std::thread long_call([&] {
        (void)slow(std::views::iota(0L, 2000L) | std::views::transform([&](long i) {
                       return cojob::delayed([&](long k) {
                           ++started;
                           if (!tiny_done) std::this_thread::sleep_for(5ms);
                           return k;
                       })(i);
                   }));
    });
    REQUIRE(kit::eventually([&] { return started.load() >= 4; }, 20s));
    CHECK(tiny(tagged(2000, 7)) == expected(2000, 7));
    tiny_done = true;
    long_call.join();
    CHECK(last_batch.load() < 500);
}

TEST_CASE("concurrent: 1,000 short calls from 8 coroutines and 4 threads, nothing left behind", "[concurrent][stress]") {
    kit::watchdog dog(120s, "stress");
    kit::counts counts;
    {
        cojob::parallel par{{.n_jobs = 2}};
        const auto threads_before = kit::thread_count();
        std::atomic<int> wrong{0};
        std::atomic<int> done{0};
        auto check = [&](long who, long k, const std::vector<kit::counted>& v) {
            bool ok = v.size() == static_cast<std::size_t>(1 + k % 5);
            for (std::size_t i = 0; i < v.size(); ++i) ok = ok && v[i].value() == static_cast<int>(who * 1000 + k + i);
            if (!ok) ++wrong;
            ++done;
        };
        auto calls_of = [&counts](long who, long k) {
            return std::views::iota(0L, 1 + k % 5) | std::views::transform([&counts, who, k](long i) {
                       return cojob::delayed([&counts](int v) { return kit::counted(counts, v); })(
                           static_cast<int>(who * 1000 + k + i));
                   });
        };
        std::vector<std::thread> threads;
        for (long t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (long k = 0; k < 100; ++k) check(t, k, par(calls_of(t, k)));
            });
        }
        kit::run_coroutine(
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                for (long c = 0; c < 8; ++c) {
                    asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                        for (long k = 0; k < 75; ++k) {
                            auto v = co_await par.async_run(calls_of(10 + c, k), asio::use_awaitable);
                            check(10 + c, k, v);
                        }
                    }, asio::detached);
                }
                co_return;
            },
            100s);
        for (auto& t : threads) t.join();
        CHECK(done.load() == 1000);
        CHECK(wrong.load() == 0);
        CHECK(kit::eventually([&] { return kit::thread_count() <= threads_before + 2; }, 3s));
    }
    CHECK(counts.holding.load() == 0);  // every result was destroyed once
}

TEST_CASE("fair_queue: calls are served round robin, each in its own order", "[concurrent][fair]") {
    cojob::detail::fair_queue<int> q;
    int a = 0, b = 0, c = 0;
    for (int i = 0; i < 4; ++i) q.push(&a, 10 + i);
    q.push(&b, 20);
    for (int i = 0; i < 2; ++i) q.push(&c, 30 + i);
    std::vector<int> order;
    while (!q.empty()) order.push_back(q.pop());
    CHECK(order == std::vector<int>{10, 20, 30, 11, 31, 12, 13});

    for (int i = 0; i < 3; ++i) q.push(&a, i);
    q.push(&b, 9);
    q.push(&c, 5);
    CHECK(q.take(&b) == 9);
    CHECK_FALSE(q.take(&b).has_value());
    // A lane whose front does not fit is passed over whole; its order is kept.
    CHECK(q.take_first([](int j) { return j > 0; }) == 5);
    CHECK_FALSE(q.take_first([](int j) { return j > 0; }).has_value());
    std::vector<int> removed;
    q.remove(&a, [&](int j) { removed.push_back(j); });
    CHECK(removed == std::vector<int>{0, 1, 2});
    CHECK(q.empty());
}

TEST_CASE("fair_queue: a batch given back goes first in its call's lane, and that call is served next",
          "[concurrent][fair]") {
    cojob::detail::fair_queue<int> q;
    int a = 0, b = 0;
    q.push(&a, 10);
    q.push(&a, 11);
    q.push(&b, 20);
    CHECK(q.pop() == 10);  // the next lane is b's
    q.push_front(&a, 9);
    std::vector<int> order;
    while (!q.empty()) order.push_back(q.pop());
    CHECK(order == std::vector<int>{9, 20, 11});
    q.push_front(&b, 1);  // into an empty queue
    CHECK(q.pop() == 1);
    CHECK(q.empty());
}

TEST_CASE("concurrent: a thread's last_failure slot goes when the thread ends", "[concurrent][error]") {
    cojob::detail::engine eng{cojob::detail::resolve({.n_jobs = 1})};
    cojob::task_failure failed;
    failed.index = 3;
    std::size_t seen_index = 0;
    std::thread([&] {
        eng.set_last_failure(failed);
        seen_index = eng.last_failure() ? eng.last_failure()->index : 0;
    }).join();
    CHECK(seen_index == 3);
    CHECK(eng.failure_slot_count() == 0);  // its thread ended
    std::thread([&] { eng.set_last_failure(std::nullopt); }).join();  // succeeded only: no slot
    CHECK(eng.failure_slot_count() == 0);
    eng.set_last_failure(failed);  // this thread lives on: its slot stays
    CHECK(eng.failure_slot_count() == 1);
    REQUIRE(eng.last_failure().has_value());
    CHECK(eng.last_failure()->index == 3);
    eng.set_last_failure(std::nullopt);  // a later success on the same thread empties it
    CHECK_FALSE(eng.last_failure().has_value());
}
