// tests/process/concurrent_process_test.cpp - concurrent calls on one process-backed object:
// each call's own results; a crash, a timeout or a cancellation ending its own call only while
// the others complete on the same pool; one Ctrl-C ending every blocking call at once; a short
// call served beside a long one; a stress run
// that leaves the pool at n_jobs workers with no zombie and no leaked descriptor.
#include "stream_process_kit.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

namespace concurrent_process {

using namespace pstream;

inline long tagged_square(long i, long base) { return base + i * i; }

inline auto tagged(long n, long base) {
    return std::views::iota(0L, n) |
           std::views::transform([base](long i) { return cojob::delayed(tagged_square)(i, base); });
}

inline std::vector<long> expected(long n, long base) {
    std::vector<long> v;
    for (long i = 0; i < n; ++i) v.push_back(base + i * i);
    return v;
}

inline std::size_t open_fds() {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                                  std::filesystem::directory_iterator{}));
}

/// Runs `fast` calls on the calling thread while `other` runs on a thread of its own; returns
/// whether every fast call had its own results.
template <class Other>
bool fast_calls_beside(cojob::parallel& par, Other&& other) {
    std::thread t(std::forward<Other>(other));
    bool ok = true;
    for (long k = 0; k < 20; ++k) ok = ok && par(tagged(10, k * 100)) == expected(10, k * 100);
    t.join();
    return ok;
}

/// 20 coroutines awaiting 10 async_submits of tagged squares each, beside one more submission
/// of `odd_one`: counts the squares that came back and the wrong ones, and returns what the
/// odd one's submission failed with (null: it returned).
template <class Task>
std::exception_ptr submits_beside(cojob::parallel& par, Task odd_one, long& done, long& wrong) {
    std::exception_ptr failure;
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (long c = 0; c < 20; ++c) {
            asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                for (long k = 0; k < 10; ++k) {
                    if (co_await par.async_submit(cojob::delayed(tagged_square)(k, c), asio::use_awaitable) != c + k * k) ++wrong;
                    ++done;
                }
            }, asio::detached);
        }
        try {
            (void)co_await par.async_submit(std::move(odd_one), asio::use_awaitable);
        } catch (...) {
            failure = std::current_exception();
        }
    }, 50s);
    return failure;
}

}  // namespace concurrent_process

using namespace concurrent_process;

TEST_CASE("processes: async calls from coroutines and blocking calls from threads share one pool",
          "[process][concurrent]") {
    watchdog dog(60s, "concurrent process calls");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 2}};
    const auto pool = pool_pids(par);
    std::atomic<int> wrong{0};
    std::atomic<int> done{0};
    std::thread blocking([&] {
        for (long k = 0; k < 20; ++k) {
            if (par(tagged(7, 500'000 + k)) != expected(7, 500'000 + k)) ++wrong;
            ++done;
        }
    });
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (long c = 0; c < 8; ++c) {
            asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                for (long k = 0; k < 5; ++k) {
                    auto v = co_await par.async_run(tagged(3 + c, c * 1000 + k), asio::use_awaitable);
                    if (v != expected(3 + c, c * 1000 + k)) ++wrong;
                    ++done;
                }
            }, asio::detached);
        }
        co_return;
    }, 50s);
    blocking.join();
    CHECK(done.load() == 60);
    CHECK(wrong.load() == 0);
    CHECK(pool_pids(par) == pool);  // the same two workers served everything
}

TEST_CASE("processes: a worker crash fails the call that had tasks on it; the call beside it completes",
          "[process][concurrent][crash]") {
    watchdog dog(60s, "crash beside other calls");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    bool died = false;
    const bool ok = fast_calls_beside(par, [&] {
        try {
            (void)par(std::views::iota(0L, 4L) | std::views::transform([](long) { return cojob::delayed(die_after)(30L); }));
        } catch (const cojob::worker_died&) {
            died = true;
        }
    });
    CHECK(died);
    CHECK(ok);
    CHECK(par(squares(5)) == expected_squares(5));
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    CHECK(kit::eventually([] { return running_and_zombies().first == 2; }, 3s));
}

TEST_CASE("processes: a timeout ends its own call; the call beside it completes", "[process][concurrent][timeout]") {
    watchdog dog(60s, "timeout beside other calls");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .timeout = 1s}};
    bool timed_out = false;
    const bool ok = fast_calls_beside(par, [&] {
        try {
            (void)par(std::views::iota(0L, 2L) | std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, stuck_ms); }));
        } catch (const cojob::timeout_error&) {
            timed_out = true;
        }
    });
    CHECK(timed_out);
    CHECK(ok);
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    CHECK(kit::eventually([] { return running_and_zombies().first == 2; }, 3s));
}

TEST_CASE("processes: cancelling one async_run leaves the call beside it running to its end",
          "[process][concurrent][cancel]") {
    watchdog dog(60s, "cancel beside other calls");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    asio::cancellation_signal stop;
    std::atomic<bool> cancelled_done{false};
    std::exception_ptr cancelled_error;
    par.async_run(std::views::iota(0L, 2L) | std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, stuck_ms); }),
                  asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e, std::vector<long>) {
                      cancelled_error = e;
                      cancelled_done = true;
                  }));
    const bool ok = fast_calls_beside(par, [&] {
        std::this_thread::sleep_for(50ms);
        stop.emit(asio::cancellation_type::terminal);
    });
    REQUIRE(kit::eventually([&] { return cancelled_done.load(); }, 10s));
    CHECK(is_operation_aborted(cancelled_error));
    CHECK(ok);
    CHECK(par(squares(5)) == expected_squares(5));
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
}

TEST_CASE("processes: a one-task call is served while a long call keeps every worker busy",
          "[process][concurrent][fair]") {
    watchdog dog(60s, "short call beside a long one");
    std::atomic<std::size_t> long_completed{0};
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .progress = [&](const cojob::progress_event& e) {
        if (e.total == 300u) long_completed = e.completed;
    }}};
    (void)pool_pids(par);  // the workers are up
    std::thread long_call([&] {
        (void)par(std::views::iota(0L, 300L) | std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, 10L); }));
    });
    std::this_thread::sleep_for(100ms);
    const std::size_t before = long_completed.load();
    CHECK(par(tagged(1, 7)) == expected(1, 7));
    // Its batch takes the place of one the long call holds behind a running one: it waits
    // about one 10 ms task, not for a worker to idle (near the long call's end).
    CHECK(long_completed.load() < before + 20);
    long_call.join();
}

TEST_CASE("processes: 1,000 short calls from 8 coroutines and 4 threads leave the pool as it was",
          "[process][concurrent][stress]") {
    watchdog dog(200s, "process stress");
    const auto fds_before = open_fds();
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes}};
        const auto pool = pool_pids(par);
        std::atomic<int> wrong{0};
        std::atomic<int> done{0};
        auto one = [&](long who, long k, const std::vector<long>& v) {
            if (v != expected(1 + k % 5, who * 1000 + k)) ++wrong;
            ++done;
        };
        std::vector<std::thread> threads;
        for (long t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (long k = 0; k < 100; ++k) one(t, k, par(tagged(1 + k % 5, t * 1000 + k)));
            });
        }
        kit::run_coroutine([&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            for (long c = 10; c < 18; ++c) {
                asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                    for (long k = 0; k < 75; ++k) one(c, k, co_await par.async_run(tagged(1 + k % 5, c * 1000 + k), asio::use_awaitable));
                }, asio::detached);
            }
            co_return;
        }, 180s);
        for (auto& t : threads) t.join();
        CHECK(done.load() == 1000);
        CHECK(wrong.load() == 0);
        CHECK(pool_pids(par) == pool);
        CHECK(running_and_zombies().second == 0);
    }
    // The object kept what concurrent calls need (an event loop per blocking caller) until its end.
    CHECK(open_fds() == fds_before);
    CHECK(kit::eventually([] { return running_and_zombies().first + running_and_zombies().second == 0; }, 3s));
}

TEST_CASE("processes: async_submit from many coroutines runs each task on the pool", "[process][concurrent][submit]") {
    watchdog dog(60s, "async_submit on processes");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    long wrong = 0;
    long done = 0;
    std::string error;
    const auto failure = submits_beside(par, cojob::delayed(throw_at)(5L, 5L), done, wrong);
    REQUIRE(failure);
    try {
        std::rethrow_exception(failure);
    } catch (const std::invalid_argument& e) {
        error = e.what();
    }
    CHECK(done == 200);
    CHECK(wrong == 0);
    CHECK(error.starts_with("bad 5"));  // a worker's exception carries its traceback after the message
}

TEST_CASE("processes: a submission whose task kills its worker fails alone; those beside it succeed",
          "[process][concurrent][submit]") {
    watchdog dog(60s, "a crash among async_submits");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    long wrong = 0;
    long done = 0;
    bool died = false;
    const auto failure = submits_beside(par, cojob::delayed(die_after)(20L), done, wrong);
    REQUIRE(failure);
    try {
        std::rethrow_exception(failure);
    } catch (const cojob::worker_died&) {
        died = true;
    }
    CHECK(died);
    CHECK(done == 200);
    CHECK(wrong == 0);
    CHECK(par(tagged(10, 7)) == expected(10, 7));  // the pool replaced the worker
}

TEST_CASE("processes: one Ctrl-C ends every blocking call running at once with cojob::cancelled",
          "[process][concurrent][cancel]") {
    watchdog dog(60s, "Ctrl-C during two blocking calls");
    cojob::pool workers{2, processes};
    // Each call's first task is quick: once it has come back, its call watches for Ctrl-C. Two
    // runners on one pool, so that each call's progress callback is its own; one batch out per
    // call, so that neither call's stuck tasks hold both workers before the other's first task.
    std::atomic<int> watching{0};
    auto call = [&](std::atomic<bool>& cancelled_seen) {
        return std::thread([&] {
            std::atomic<bool> counted{false};
            cojob::parallel par{workers, {.pre_dispatch = 1, .batch_size = 1, .progress = [&](const cojob::progress_event& e) {
                                              if (e.completed >= 1 && !counted.exchange(true)) ++watching;
                                          }}};
            try {
                (void)par(std::views::iota(0L, 4L) | std::views::transform([](long i) {
                              return cojob::delayed(sleep_then)(i, i == 0 ? 1L : stuck_ms);
                          }));
            } catch (const cojob::cancelled&) {
                cancelled_seen = true;
            }
        });
    };
    std::atomic<bool> first{false}, second{false};
    std::thread a = call(first), b = call(second);
    if (kit::eventually([&] { return watching.load() == 2; }, 20s)) ::kill(::getpid(), SIGINT);
    a.join();
    b.join();
    CHECK(first.load());
    CHECK(second.load());
    CHECK(kit::eventually([] { return kit::sigint_is_default(); }, 5s));  // the default disposition is back
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
    cojob::parallel after{workers};
    CHECK(after(tagged(3, 7)) == expected(3, 7));
}
