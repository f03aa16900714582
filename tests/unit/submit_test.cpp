// parallel::async_submit: one task as an awaitable, with its result, its exception, void tasks,
// per-operation cancellation, and hundreds in flight from many coroutines at once, which run
// together in groups: a failure stays with its own submission, a submission cancelled while it
// waits never runs, and those waiting when the object goes complete aborted.
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

std::atomic<long> releases_seen{0};  // wait_for_release calls that saw their release

long wait_for_release(std::atomic<bool>* release) {
    while (!release->load()) std::this_thread::sleep_for(1ms);
    ++releases_seen;  // `release` is not touched after this
    return 1;
}

/// Runs what is ready on `ctx` until `ready()` holds, for at most `limit`; returns whether it does.
template <class Ready>
bool poll_until(asio::io_context& ctx, Ready ready, std::chrono::seconds limit) {
    return kit::eventually([&] {
        ctx.restart();
        ctx.poll();
        return ready();
    }, limit);
}

/// Two submissions that hold both workers of `par` until `release`; `done` counts their completions.
void hold_workers(cojob::parallel& par, std::atomic<bool>& release, asio::io_context& ctx, int& done) {
    for (int i = 0; i < 2; ++i)
        par.async_submit(cojob::delayed(wait_for_release)(&release),
                         asio::bind_executor(ctx, [&done](std::exception_ptr, long) { ++done; }));
}

/// Runs `coroutines` coroutines on one io_context, each awaiting `submit(x)` for `per` values
/// of its own (coroutine c takes x = c * per ... c * per + per - 1), all within 60 s.
template <class Submit>
void from_coroutines(long coroutines, long per, Submit submit) {
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (long c = 0; c < coroutines; ++c)
            asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                for (long k = 0; k < per; ++k) co_await submit(c * per + k);
            }, asio::detached);
        co_return;
    }, 60s);
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
    from_coroutines(100, 10, [&](long x) -> asio::awaitable<void> {
        if (co_await par.async_submit(cojob::delayed(cube)(x), asio::use_awaitable) != x * x * x) ++wrong;
        ++done;
    });
    CHECK(done == 1000);
    CHECK(wrong == 0);
}

TEST_CASE("async_submit: cancelling one submission completes it with operation_aborted; the others finish",
          "[async][submit][cancel]") {
    cojob::parallel par{{.n_jobs = 2}};
    asio::io_context ctx;
    asio::cancellation_signal stop;
    std::atomic<bool> release{false};
    const long seen_before = releases_seen.load();
    std::exception_ptr cancelled;
    bool cancelled_done = false;
    long other = 0;
    // The one to cancel waits on a worker until released: cancellation cannot stop a running
    // task, but the operation completes with operation_aborted all the same.
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
    // The cancelled operation has completed, but its task may still be running: the object's
    // destructor does not wait for a call it cancels, so `release` must outlive the task.
    CHECK(kit::eventually([&] { return releases_seen.load() > seen_before; }, 20s));
}

namespace {

long refuse_sevenths(long x) {
    if (x % 7 == 3) throw std::domain_error("refused " + std::to_string(x));
    return x * 2;
}

}  // namespace

TEST_CASE("async_submit: submissions in flight run together, and a failure stays with its own",
          "[async][submit]") {
    std::atomic<std::size_t> highest_index{0};
    cojob::parallel par{{.n_jobs = 2, .on_task = [&](const cojob::task_event& e) {
                             std::size_t seen = highest_index.load();
                             while (e.index > seen && !highest_index.compare_exchange_weak(seen, e.index)) {
                             }
                         }}};
    long wrong = 0;
    long refused = 0;
    long unexplained = 0;
    from_coroutines(50, 20, [&](long x) -> asio::awaitable<void> {
        try {
            if (co_await par.async_submit(cojob::delayed(refuse_sevenths)(x), asio::use_awaitable) != 2 * x) ++wrong;
            if (x % 7 == 3) ++wrong;
        } catch (const std::domain_error& e) {
            // The handler's thread sees this submission's failure first thing.
            const auto& f = par.last_failure();
            if (x % 7 != 3 || e.what() != "refused " + std::to_string(x) || !f ||
                f->arguments.find(std::to_string(x)) == std::string::npos)
                ++unexplained;
            ++refused;
        }
    });
    CHECK(wrong == 0);
    CHECK(unexplained == 0);
    CHECK(refused == 143);  // x in [0, 1000) with x % 7 == 3
    // Some call ran more than one submission: a task was not the first of its call.
    CHECK(highest_index.load() > 0);
}

TEST_CASE("async_submit: a submission cancelled while it waits completes at once and never runs",
          "[async][submit][cancel]") {
    touched = 0;
    std::atomic<bool> release{false};
    asio::io_context ctx;
    asio::cancellation_signal stop;
    int held_done = 0;
    std::exception_ptr cancelled;
    bool cancelled_done = false;
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
        // Two groups hold both workers: the third submission waits for one of them to end.
        hold_workers(par, release, ctx, held_done);
        par.async_submit(cojob::delayed(touch)(100L),
                         asio::bind_cancellation_slot(stop.slot(), asio::bind_executor(ctx, [&](std::exception_ptr e) {
                                                          cancelled = e;
                                                          cancelled_done = true;
                                                      })));
        ctx.poll();
        stop.emit(asio::cancellation_type::terminal);
        CHECK(poll_until(ctx, [&] { return cancelled_done; }, 10s));
        CHECK(held_done == 0);  // completed before the tasks ahead of it
        CHECK(kit::is_operation_aborted(cancelled));
        release = true;
        CHECK(poll_until(ctx, [&] { return held_done == 2; }, 20s));
    }
    CHECK(touched.load() == 0);
}

TEST_CASE("async_submit: submissions still waiting when the object goes complete with operation_aborted",
          "[async][submit][cancel]") {
    touched = 0;
    std::atomic<bool> release{false};
    asio::io_context ctx;
    int held_done = 0;
    int aborted = 0;
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
        hold_workers(par, release, ctx, held_done);
        for (long i = 0; i < 5; ++i)
            par.async_submit(cojob::delayed(touch)(i + 1),
                             asio::bind_executor(ctx, [&](std::exception_ptr e) { aborted += kit::is_operation_aborted(e); }));
        ctx.poll();
    }
    CHECK(poll_until(ctx, [&] { return aborted == 5; }, 10s));
    release = true;
    CHECK(poll_until(ctx, [&] { return held_done == 2; }, 20s));
    CHECK(touched.load() == 0);
}
