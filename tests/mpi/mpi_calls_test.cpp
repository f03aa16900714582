// tests/mpi/mpi_calls_test.cpp - backend::mpi: calls made at once and async calls, on one
// runner or on runners sharing a pool of ranks (run by mpi_tests, see mpi_test.cpp).
#include <catch2/catch.hpp>

#include "kit.hpp"
#include "mpi_tasks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace mpi_tasks;
using namespace std::chrono_literals;
namespace asio = boost::asio;

TEST_CASE("mpi: async_run completes in a coroutine", "[mpi][async]") {
    cojob::parallel par(on_ranks());
    std::vector<long> got;
    kit::run_coroutine(
        [&]() -> asio::awaitable<void> {
            got = co_await par.async_run(
                std::views::iota(0, 100) | std::views::transform([](int i) { return cojob::delayed(square)(i); }),
                asio::use_awaitable);
        },
        30s);
    REQUIRE(got.size() == 100);
    CHECK(got[99] == 99L * 99);
}

TEST_CASE("mpi: async_submits from many coroutines each get their own result or exception", "[mpi][async]") {
    cojob::parallel par(on_ranks());
    long wrong = 0;
    long refused = 0;
    kit::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            for (int c = 0; c < 20; ++c) {
                asio::co_spawn(ex, [&, c]() -> asio::awaitable<void> {
                    for (int k = 0; k < 10; ++k) {
                        const int x = c * 10 + k;
                        try {
                            if (co_await par.async_submit(cojob::delayed(picky)(x), asio::use_awaitable) != x) ++wrong;
                        } catch (const std::invalid_argument& e) {
                            refused += x == 37 && std::string(e.what()).find("picky refuses 37") != std::string::npos;
                        }
                    }
                }, asio::detached);
            }
            co_return;
        },
        60s);
    CHECK(wrong == 0);
    CHECK(refused == 1);
}

TEST_CASE("mpi: two runners on one pool of ranks, called at once, each get their own results", "[mpi][pool]") {
    cojob::pool ranks{-1, cojob::backend::mpi};
    CHECK(ranks.n_jobs() == 2);
    cojob::parallel one_by_one{ranks, {.batch_size = 1}};
    cojob::parallel batched{ranks, {.batch_size = 16}};
    std::vector<int> seen;
    std::thread other([&] {
        seen = batched(std::views::iota(0, 400) | std::views::transform([](int i) { return cojob::delayed(rank_of)(i); }));
    });
    const auto r = one_by_one(std::views::iota(0, 300) | std::views::transform([](int i) { return cojob::delayed(square)(i); }));
    other.join();
    REQUIRE(r.size() == 300);
    for (int i = 0; i < 300; ++i) REQUIRE(r[static_cast<std::size_t>(i)] == square(i));
    REQUIRE(seen.size() == 400);
    CHECK(std::set<int>(seen.begin(), seen.end()).size() <= 2);
    CHECK_THROWS_WITH((cojob::parallel{ranks, {.backend = cojob::backend::processes}}), Catch::Contains("backend=processes"));
}

TEST_CASE("mpi: a one-task call is served while a long call has every batch queued", "[mpi][fair]") {
    std::atomic<long> completed{0};
    cojob::options o = on_ranks();
    o.batch_size = 1;
    cojob::parallel par(o);
    cojob::options all = o;
    all.pre_dispatch = "all";
    all.progress = [&completed](const cojob::progress_event& e) { completed = static_cast<long>(e.completed); };
    cojob::parallel queue_everything{all};
    std::atomic<bool> long_done{false};
    std::thread long_call([&] {
        (void)queue_everything(std::views::iota(0, 300) | std::views::transform([](int) { return cojob::delayed(nap_ms)(10); }));
        long_done = true;
    });
    REQUIRE(kit::eventually([&] { return completed.load() >= 4; }, 20s));
    // Round robin: the short call waits about one 10 ms batch per rank, the long one ~1.5 s.
    CHECK(par(std::views::iota(0, 1) | std::views::transform([](int i) { return cojob::delayed(square)(i + 7); })) ==
          std::vector<long>{49});
    CHECK_FALSE(long_done.load());
    long_call.join();
}
