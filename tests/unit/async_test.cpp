// parallel::async_run: every completion token, errors, cancellation, destruction of the
// parallel object before completion, and an event loop that stays responsive.
#include "kit.hpp"

#include <cojob/errors.hpp>
#include <cojob/parallel.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

long async_square(long i) { return i * i; }

auto async_squares(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(async_square)(i); });
}

auto async_failing_at(long n, long bad) {
    return std::views::iota(0L, n) | std::views::transform([bad](long i) {
               return cojob::delayed([bad](long k) {
                   if (k == bad) throw std::invalid_argument("bad " + std::to_string(k));
                   return k;
               })(i);
           });
}

std::vector<long> expected_async_squares(long n) {
    std::vector<long> v;
    for (long i = 0; i < n; ++i) v.push_back(i * i);
    return v;
}

using kit::is_operation_aborted;
using kit::run_coroutine;

/// Runs `ctx` (on this thread) until `condition` holds or `limit` passes.
template <class Condition>
bool run_until(asio::io_context& ctx, Condition condition, std::chrono::steady_clock::duration limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return false;
        ctx.restart();
        ctx.run_for(2ms);
    }
    return true;
}

}  // namespace

// --- completion tokens -------------------------------------------------------------------------

TEST_CASE("async_run with use_awaitable delivers every result in input order", "[async][awaitable]") {
    for (int n_jobs : {1, 2, 4}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        std::vector<long> results;
        run_coroutine([&]() -> asio::awaitable<void> {
            auto tasks = async_squares(500);
            results = co_await par.async_run(tasks, asio::use_awaitable);
        });
        CHECK(results == expected_async_squares(500));
    }
}

TEST_CASE("async_run with use_awaitable rethrows a task's exception with its original type", "[async][awaitable][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        std::string caught;
        run_coroutine([&]() -> asio::awaitable<void> {
            auto tasks = async_failing_at(100, 30);
            try {
                (void)co_await par.async_run(tasks, asio::use_awaitable);
            } catch (const std::invalid_argument& e) {
                caught = e.what();
            }
        });
        CHECK(caught == "bad 30");
        REQUIRE(par.last_failure().has_value());
        CHECK(par.last_failure()->index == 30);
        CHECK(par.last_failure()->exception == "std::invalid_argument");
    }
}

TEST_CASE("async_run with use_future gives a future of the results", "[async][future]") {
    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = async_squares(300);
    std::future<std::vector<long>> f = par.async_run(tasks, asio::use_future);
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get() == expected_async_squares(300));
}

TEST_CASE("async_run with use_future carries a task's exception with its original type", "[async][future][error]") {
    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = async_failing_at(50, 9);
    auto f = par.async_run(tasks, asio::use_future);
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK_THROWS_MATCHES(f.get(), std::invalid_argument, Catch::Message("bad 9"));
}

TEST_CASE("async_run with deferred, the default token, is launched by co_await", "[async][deferred]") {
    cojob::parallel par{{.n_jobs = 2}};
    std::vector<long> by_default;
    std::vector<long> explicit_deferred;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto tasks = async_squares(64);
        auto op = par.async_run(tasks);  // nothing runs yet
        by_default = co_await std::move(op)(asio::use_awaitable);
        auto op2 = par.async_run(tasks, asio::deferred);
        explicit_deferred = co_await std::move(op2)(asio::use_awaitable);
    });
    CHECK(by_default == expected_async_squares(64));
    CHECK(explicit_deferred == expected_async_squares(64));
}

TEST_CASE("a deferred async_run does not start until it is launched", "[async][deferred]") {
    std::atomic<int> ran{0};
    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = std::views::iota(0, 10) | std::views::transform([&ran](int i) {
                     return cojob::delayed([&ran](int k) {
                         ++ran;
                         return k;
                     })(i);
                 });
    auto op = par.async_run(tasks, asio::deferred);
    std::this_thread::sleep_for(20ms);
    CHECK(ran == 0);
    auto f = std::move(op)(asio::use_future);
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get().size() == 10);
    CHECK(ran == 10);
}

TEST_CASE("async_run with a plain callback gets (exception_ptr, results)", "[async][callback]") {
    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = async_squares(100);
    std::promise<std::vector<long>> got;
    par.async_run(tasks, [&got](std::exception_ptr e, std::vector<long> r) {
        if (e)
            got.set_exception(e);
        else
            got.set_value(std::move(r));
    });
    auto f = got.get_future();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get() == expected_async_squares(100));
}

TEST_CASE("a callback bound to an io_context runs on that io_context's thread", "[async][callback]") {
    asio::io_context ctx;
    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = async_failing_at(40, 12);
    bool done = false;
    std::thread::id ran_on;
    std::exception_ptr error;
    std::vector<long> results{1, 2, 3};
    par.async_run(tasks, asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<long> r) {
                      done = true;
                      ran_on = std::this_thread::get_id();
                      error = e;
                      results = std::move(r);
                  }));
    ctx.run_for(10s);
    REQUIRE(done);
    CHECK(ran_on == std::this_thread::get_id());
    CHECK_THROWS_AS(std::rethrow_exception(error), std::invalid_argument);
    CHECK(results.empty());  // no partial results after an error
}

TEST_CASE("void tasks complete with a callback taking only the exception_ptr", "[async][void]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 2}};
    std::vector<std::atomic<int>> hits(64);
    auto tasks = std::views::iota(std::size_t{0}, hits.size()) | std::views::transform([&hits](std::size_t i) {
                     return cojob::delayed([&hits](std::size_t k) { ++hits[k]; })(i);
                 });
    std::promise<void> done;
    par.async_run(tasks, [&done](std::exception_ptr e) {
        if (e)
            done.set_exception(e);
        else
            done.set_value();
    });
    auto f = done.get_future();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK_NOTHROW(f.get());
    for (const auto& h : hits) CHECK(h == 1);

    // With use_awaitable, co_await yields nothing.
    run_coroutine([&]() -> asio::awaitable<void> { co_await par.async_run(tasks, asio::use_awaitable); });
    for (const auto& h : hits) CHECK(h == 2);
}

TEST_CASE("a failing void task completes the callback with its exception", "[async][void][error]") {
    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = std::views::iota(0, 20) | std::views::transform([](int i) {
                     return cojob::delayed([](int k) {
                         if (k == 5) throw std::domain_error("five");
                     })(i);
                 });
    auto f = par.async_run(tasks, asio::use_future);
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK_THROWS_MATCHES(f.get(), std::domain_error, Catch::Message("five"));
}

TEST_CASE("an rvalue range given to async_run is kept by the operation", "[async][input]") {
    cojob::parallel par{{.n_jobs = 2}};
    auto make = [] {
        std::vector<decltype(cojob::delayed(async_square)(0L))> tasks;
        for (long i = 0; i < 50; ++i) tasks.push_back(cojob::delayed(async_square)(i));
        return tasks;
    };
    auto f = par.async_run(make(), asio::use_future);
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get() == expected_async_squares(50));
}

TEST_CASE("async_run consumes the input range on the thread that runs the handler's executor", "[async][input]") {
    kit::producer_log log;
    kit::input_generator gen(100, [](std::size_t i) { return cojob::delayed([](std::size_t k) { return k; })(i); }, &log);
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    std::size_t size = 0;
    run_coroutine([&]() -> asio::awaitable<void> { size = (co_await par.async_run(gen, asio::use_awaitable)).size(); });
    CHECK(size == 100);
    CHECK(log.threads == std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST_CASE("a second async_run while one runs is served beside it; each gets its own results",
          "[async][concurrent]") {
    asio::io_context ctx;
    kit::gate release;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    auto slow = std::views::iota(0, 4) | std::views::transform([&release](int i) {
                    return cojob::delayed([&release](int k) {
                        release.wait_for(2s);
                        return k;
                    })(i);
                });
    auto quick = async_squares(3);
    std::optional<std::vector<int>> first;
    std::exception_ptr second;
    bool second_done = false;
    par.async_run(slow, asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<int> r) {
                      if (!e) first = std::move(r);
                  }));
    std::vector<long> second_results;
    par.async_run(quick, asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<long> r) {
                      second = e;
                      second_results = std::move(r);
                      second_done = true;
                  }));
    release.open();
    REQUIRE(run_until(ctx, [&] { return second_done && first.has_value(); }, 10s));
    CHECK_FALSE(second);
    CHECK(second_results == std::vector<long>{0, 1, 4});
    CHECK(*first == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("several parallel objects run async calls at once on an io_context with two threads", "[async][threads]") {
    asio::io_context ctx;
    constexpr int objects = 3;
    std::vector<std::unique_ptr<cojob::parallel>> pars;
    for (int i = 0; i < objects; ++i) pars.push_back(std::make_unique<cojob::parallel>(cojob::options{.n_jobs = 2, .batch_size = 4}));
    auto tasks = async_squares(2000);
    std::atomic<int> correct{0};
    std::atomic<int> done{0};
    for (auto& p : pars) {
        asio::co_spawn(ctx, [&, par = p.get()]() -> asio::awaitable<void> {
            for (int round = 0; round < 3; ++round)
                if (co_await par->async_run(tasks, asio::use_awaitable) == expected_async_squares(2000)) ++correct;
            ++done;
        }, asio::detached);
    }
    std::thread second([&ctx] { ctx.run_for(20s); });
    ctx.run_for(20s);
    second.join();
    CHECK(done == objects);
    CHECK(correct == 3 * objects);
}

TEST_CASE("the progress callback of an async call runs on the thread that drives the call", "[async][progress]") {
    std::set<std::thread::id> threads;
    bool finished = false;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .progress = [&](const cojob::progress_event& e) {
                             threads.insert(std::this_thread::get_id());
                             finished = finished || e.finished;
                         }}};
    run_coroutine([&]() -> asio::awaitable<void> {
        auto tasks = async_squares(30);
        (void)co_await par.async_run(tasks, asio::use_awaitable);
    });
    CHECK(finished);
    CHECK(threads == std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST_CASE("the parallel object may be destroyed from its own completion handler", "[async][callback]") {
    asio::io_context ctx;
    auto par = std::make_unique<cojob::parallel>(cojob::options{.n_jobs = 2});
    auto tasks = async_squares(100);
    std::size_t size = 0;
    bool done = false;
    par->async_run(tasks, asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<long> r) {
                       par.reset();
                       size = e ? 0 : r.size();
                       done = true;
                   }));
    ctx.run_for(10s);
    REQUIRE(done);
    CHECK(size == 100);
    CHECK(par == nullptr);
}

// --- cancellation ------------------------------------------------------------------------------

TEST_CASE("cancelling through a bound cancellation slot completes with operation_aborted", "[async][cancel]") {
    asio::io_context ctx;
    asio::cancellation_signal signal;
    std::atomic<int> ran{0};
    std::atomic<bool> emitted{false};
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    // Task 2 has the io_context emit the cancellation; tasks from 10 on wait until it was
    // emitted, so the call cannot have run them all when it stops, however the threads are timed.
    auto slow = std::views::iota(0, 200) | std::views::transform([&](int i) {
                    return cojob::delayed([&](int k) {
                        ++ran;
                        if (k == 2)
                            asio::post(ctx, [&] {
                                signal.emit(asio::cancellation_type::terminal);
                                emitted = true;
                            });
                        if (k >= 10) (void)kit::eventually([&] { return emitted.load(); }, 10s);
                        return k;
                    })(i);
                });
    bool done = false;
    std::exception_ptr error;
    std::vector<int> results{-1};
    par.async_run(slow, asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<int> r) {
                                                          done = true;
                                                          error = e;
                                                          results = std::move(r);
                                                      })));
    ctx.run_for(10s);
    REQUIRE(done);
    CHECK(is_operation_aborted(error));
    CHECK(results.empty());
    // At most the window of batches (pre_dispatch = 4) ran past task 10 before the stop.
    const int ran_when_done = ran;
    CHECK(ran_when_done <= 10 + 2 * 4);
    // Nothing runs after the completion: the running batches came back before it.
    CHECK_FALSE(kit::eventually([&] { return ran != ran_when_done; }, 10ms));
    signal.emit(asio::cancellation_type::terminal);  // too late: the slot was released, nothing happens

    // The object is usable afterwards.
    std::vector<long> again;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto tasks = async_squares(20);
        again = co_await par.async_run(tasks, asio::use_awaitable);
    });
    CHECK(again == expected_async_squares(20));
}

TEST_CASE("cancelling a co_await'ed async_run throws operation_aborted in the coroutine", "[async][cancel]") {
    asio::io_context ctx;
    asio::cancellation_signal signal;
    std::atomic<int> ran{0};
    std::atomic<bool> emitted{false};
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    // Task 2 has the io_context emit the cancellation; tasks from 10 on wait until it was
    // emitted, so the call cannot have run them all when it stops, however the threads are timed.
    auto slow = std::views::iota(0, 200) | std::views::transform([&](int i) {
                    return cojob::delayed([&](int k) {
                        ++ran;
                        if (k == 2)
                            asio::post(ctx, [&] {
                                signal.emit(asio::cancellation_type::terminal);
                                emitted = true;
                            });
                        if (k >= 10) (void)kit::eventually([&] { return emitted.load(); }, 10s);
                        return k;
                    })(i);
                });
    bool aborted = false;
    bool finished = false;
    asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        try {
            (void)co_await par.async_run(slow, asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable));
        } catch (const boost::system::system_error& e) {
            aborted = e.code() == asio::error::operation_aborted;
        }
        finished = true;
    }, asio::detached);
    ctx.run_for(10s);
    REQUIRE(finished);
    CHECK(aborted);
    CHECK(ran < 200);
}

TEST_CASE("cancelling the coroutine that awaits async_run cancels the call", "[async][cancel]") {
    asio::io_context ctx;
    asio::cancellation_signal signal;
    std::atomic<int> ran{0};
    std::atomic<bool> emitted{false};
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    // Task 2 has the io_context emit the cancellation; tasks from 10 on wait until it was
    // emitted, so the call cannot have run them all when it stops, however the threads are timed.
    auto slow = std::views::iota(0, 200) | std::views::transform([&](int i) {
                    return cojob::delayed([&](int k) {
                        ++ran;
                        if (k == 2)
                            asio::post(ctx, [&] {
                                signal.emit(asio::cancellation_type::terminal);
                                emitted = true;
                            });
                        if (k >= 10) (void)kit::eventually([&] { return emitted.load(); }, 10s);
                        return k;
                    })(i);
                });
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(ctx, [&]() -> asio::awaitable<void> { (void)co_await par.async_run(slow, asio::use_awaitable); },
                   asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                       done = true;
                       error = e;
                   }));
    ctx.run_for(10s);
    REQUIRE(done);
    CHECK(is_operation_aborted(error));
    CHECK(ran < 200);
}

// --- destruction before completion -------------------------------------------------------------

TEST_CASE("destroying the parallel object while an async call runs still completes the call", "[async][cancel]") {
    for (bool wait_for_start : {true, false}) {
        INFO("destroyed " << (wait_for_start ? "after the first tasks ran" : "at once"));
        asio::io_context ctx;
        std::atomic<int> ran{0};
        auto slow = std::views::iota(0, 100) | std::views::transform([&ran](int i) {
                        return cojob::delayed([&ran](int k) {
                            ++ran;
                            std::this_thread::sleep_for(2ms);
                            return k;
                        })(i);
                    });
        bool done = false;
        std::exception_ptr error;
        std::vector<int> results;
        auto par = std::make_unique<cojob::parallel>(cojob::options{.n_jobs = 2, .batch_size = 1});
        par->async_run(slow, asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<int> r) {
                           done = true;
                           error = e;
                           results = std::move(r);
                       }));
        if (wait_for_start) REQUIRE(run_until(ctx, [&] { return ran >= 2; }, 5s));
        par.reset();
        REQUIRE(run_until(ctx, [&] { return done; }, 10s));
        if (error) {
            CHECK(is_operation_aborted(error));
            CHECK(results.empty());
        } else {
            CHECK(results.size() == 100);
        }
        const int ran_when_done = ran;
        std::this_thread::sleep_for(10ms);
        CHECK(ran == ran_when_done);
    }
}

// --- the event loop stays free -----------------------------------------------------------------

TEST_CASE("the io_context thread stays responsive while a long async_run computes", "[async][responsive]") {
    asio::io_context ctx;
    asio::steady_timer timer(ctx);
    std::atomic<int> ticks_while_running{0};
    std::atomic<bool> saw_ticks{false};
    bool done = false;
    std::function<void()> arm = [&] {
        timer.expires_after(5ms);
        timer.async_wait([&](boost::system::error_code ec) {
            if (ec || done) return;
            ++ticks_while_running;
            arm();
        });
    };
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    // The first task waits (bounded) until the loop has ticked five times while the call runs;
    // a loop blocked by the call would never tick.
    auto slow = std::views::iota(0, 60) | std::views::transform([&](int i) {
                    return cojob::delayed([&](int k) {
                        if (k == 0) saw_ticks = kit::eventually([&] { return ticks_while_running >= 5; }, 10s);
                        return k;
                    })(i);
                });
    std::size_t size = 0;
    asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        size = (co_await par.async_run(slow, asio::use_awaitable)).size();
        done = true;
        timer.cancel();
    }, asio::detached);
    arm();
    ctx.run_for(10s);
    REQUIRE(done);
    CHECK(size == 60);
    CHECK(saw_ticks);
}
