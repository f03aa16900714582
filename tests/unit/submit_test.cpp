// parallel::async_submit: one task as an awaitable, with its result, its exception, void tasks,
// per-operation cancellation, and hundreds in flight from many coroutines at once.
#include "kit.hpp"

#include <cojob/cojob.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

long cube(long x) { return x * x * x; }

long refuse(long x) { throw std::domain_error("refused " + std::to_string(x)); }

std::atomic<long> touched{0};
void touch(long x) { touched += x; }

long wait_for_release(std::atomic<bool>* release) {
    while (!release->load()) std::this_thread::sleep_for(1ms);
    return 1;
}

}  // namespace

TEST_CASE("async_submit: one task's result, its exception unchanged, and a void task", "[async][submit]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs " << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        long got = 0;
        std::string error;
        touched = 0;
        kit::run_coroutine([&]() -> asio::awaitable<void> {
            got = co_await par.async_submit(cojob::delayed(cube)(3L), asio::use_awaitable);
            try {
                (void)co_await par.async_submit(cojob::delayed(refuse)(4L), asio::use_awaitable);
            } catch (const std::domain_error& e) {
                error = e.what();
            }
            co_await par.async_submit(cojob::delayed(touch)(5L), asio::use_awaitable);
        });
        CHECK(got == 27);
        CHECK(error == "refused 4");
        CHECK(touched.load() == 5);
        // Any completion token: a future.
        CHECK(par.async_submit(cojob::delayed(cube)(2L), asio::use_future).get() == 8);
    }
}

TEST_CASE("async_submit: hundreds in flight from many coroutines each get their own result", "[async][submit]") {
    cojob::parallel par{{.n_jobs = 2}};
    long wrong = 0;
    long done = 0;
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (long c = 0; c < 100; ++c) {
            asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                for (long k = 0; k < 10; ++k) {
                    const long x = c * 10 + k;
                    if (co_await par.async_submit(cojob::delayed(cube)(x), asio::use_awaitable) != x * x * x) ++wrong;
                    ++done;
                }
            }, asio::detached);
        }
        co_return;
    }, 60s);
    CHECK(done == 1000);
    CHECK(wrong == 0);
}

TEST_CASE("async_submit: cancelling one submission completes it with operation_aborted; the others finish",
          "[async][submit][cancel]") {
    cojob::parallel par{{.n_jobs = 2}};
    asio::io_context ctx;
    asio::cancellation_signal stop;
    std::atomic<bool> release{false};
    std::exception_ptr cancelled;
    bool cancelled_done = false;
    long other = 0;
    // The one to cancel waits on a worker until released: cancellation cannot stop a running
    // task, so the operation completes once the task returns, with operation_aborted.
    par.async_submit(cojob::delayed(wait_for_release)(&release),
                     asio::bind_cancellation_slot(stop.slot(), asio::bind_executor(ctx, [&](std::exception_ptr e, long) {
                                                      cancelled = e;
                                                      cancelled_done = true;
                                                  })));
    par.async_submit(cojob::delayed(cube)(4L), asio::bind_executor(ctx, [&](std::exception_ptr, long v) { other = v; }));
    ctx.run_for(20ms);
    stop.emit(asio::cancellation_type::terminal);
    release = true;
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (!(cancelled_done && other) && std::chrono::steady_clock::now() < until) {
        ctx.restart();
        ctx.run_for(5ms);
    }
    REQUIRE(cancelled_done);
    CHECK(kit::is_operation_aborted(cancelled));
    CHECK(other == 64);
}
