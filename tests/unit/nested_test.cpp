// Nested parallelism: a task that itself makes a blocking parallel call neither deadlocks nor
// multiplies threads; an inner failure reaches the outer caller.
#include "kit.hpp"

#include <cojob/parallel.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

template <class Make>
auto nested_tasks_of(int n, Make make) {
    return std::views::iota(0, n) | std::views::transform(make);
}

}  // namespace

// The process's thread count once `outer`'s pool has started: its workers, the caller, and
// whatever a runtime starts along with the first thread (ThreadSanitizer starts a background
// thread then). Nested calls must never add to it.
constexpr long runtime_threads = kit::tsan ? 1 : 0;  // ThreadSanitizer's background thread

static long started_pool_threads(cojob::parallel& outer) {
    (void)outer(nested_tasks_of(4, [](int i) { return cojob::delayed([](int x) { return x; })(i); }));
    return static_cast<long>(kit::thread_count());
}

TEST_CASE("inner blocking calls inside a two-thread outer call complete on the outer pool's threads", "[nested][threads]") {
    cojob::parallel outer{{.n_jobs = 2}};
    const long before = started_pool_threads(outer);
    std::atomic<long> most_threads{0};
    auto leaf = [&most_threads](int i, int j) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));  // both workers end up inside inner calls
        kit::raise_to(most_threads, static_cast<long>(kit::thread_count()));
        return 100 * i + j;
    };
    auto middle = [&leaf](int i) {
        cojob::parallel inner{{.n_jobs = 2}};
        const std::vector<int> r = inner(nested_tasks_of(16, [&leaf, i](int j) { return cojob::delayed(leaf)(i, j); }));
        if (r.size() != 16) throw std::logic_error("inner call lost results");
        for (int j = 0; j < 16; ++j)
            if (r[static_cast<std::size_t>(j)] != 100 * i + j) throw std::logic_error("inner call out of order");
        return std::accumulate(r.begin(), r.end(), 0);
    };
    const std::vector<int> sums = outer(nested_tasks_of(16, [&middle](int i) { return cojob::delayed(middle)(i); }));
    REQUIRE(sums.size() == 16);
    for (int i = 0; i < 16; ++i) CHECK(sums[static_cast<std::size_t>(i)] == 1600 * i + 120);
    CHECK(most_threads > 0);
    CHECK(most_threads <= before);
}

TEST_CASE("inner calls with batch_size 1 and a tight pre_dispatch still complete", "[nested][threads]") {
    cojob::parallel outer{{.n_jobs = 2, .pre_dispatch = 2, .batch_size = 1}};
    const long before = started_pool_threads(outer);
    std::atomic<long> most_threads{0};
    auto middle = [&most_threads](int i) {
        cojob::parallel inner{{.n_jobs = 2, .pre_dispatch = 1, .batch_size = 1}};
        const std::vector<int> r = inner(nested_tasks_of(16, [&most_threads, i](int j) {
            return cojob::delayed([&most_threads](int a, int b) {
                kit::raise_to(most_threads, static_cast<long>(kit::thread_count()));
                return a + b;
            })(i, j);
        }));
        return std::accumulate(r.begin(), r.end(), 0);
    };
    const std::vector<int> sums = outer(nested_tasks_of(16, [&middle](int i) { return cojob::delayed(middle)(i); }));
    REQUIRE(sums.size() == 16);
    for (int i = 0; i < 16; ++i) CHECK(sums[static_cast<std::size_t>(i)] == 16 * i + 120);
    CHECK(most_threads <= before);
}

TEST_CASE("three levels of nested calls complete without adding threads", "[nested][threads]") {
    cojob::parallel outer{{.n_jobs = 2}};
    const long before = started_pool_threads(outer);
    std::atomic<long> most_threads{0};
    std::atomic<int> leaves{0};
    auto leaf = [&](int a, int b, int c) {
        kit::raise_to(most_threads, static_cast<long>(kit::thread_count()));
        ++leaves;
        return a * 100 + b * 10 + c;
    };
    auto level2 = [&](int a, int b) {
        cojob::parallel p{{.n_jobs = 2}};
        const std::vector<int> r = p(nested_tasks_of(4, [&, a, b](int c) { return cojob::delayed(leaf)(a, b, c); }));
        return std::accumulate(r.begin(), r.end(), 0);
    };
    auto level1 = [&](int a) {
        cojob::parallel p{{.n_jobs = 2}};
        const std::vector<int> r = p(nested_tasks_of(4, [&, a](int b) { return cojob::delayed(level2)(a, b); }));
        return std::accumulate(r.begin(), r.end(), 0);
    };
    const std::vector<int> sums = outer(nested_tasks_of(4, [&](int a) { return cojob::delayed(level1)(a); }));
    REQUIRE(sums.size() == 4);
    // sum over b, c in 0..3 of (100a + 10b + c) = 1600a + 240 + 24
    for (int a = 0; a < 4; ++a) CHECK(sums[static_cast<std::size_t>(a)] == 1600 * a + 264);
    CHECK(leaves == 64);
    CHECK(most_threads <= before);
}

TEST_CASE("an exception thrown by an inner task reaches the outer caller with its type", "[nested][error]") {
    cojob::parallel outer{{.n_jobs = 2, .batch_size = 1}};
    auto middle = [](int i) {
        cojob::parallel inner{{.n_jobs = 2, .batch_size = 1}};
        const std::vector<int> r = inner(nested_tasks_of(16, [i](int j) {
            return cojob::delayed([](int a, int b) {
                if (a == 3 && b == 7) throw std::range_error("inner 3/7");
                return a + b;
            })(i, j);
        }));
        return static_cast<int>(r.size());
    };
    auto tasks = nested_tasks_of(8, [&middle](int i) { return cojob::delayed(middle)(i); });
    CHECK_THROWS_MATCHES(outer(tasks), std::range_error, Catch::Message("inner 3/7"));
    REQUIRE(outer.last_failure().has_value());
    CHECK(outer.last_failure()->index == 3);
    CHECK(outer.last_failure()->exception == "std::range_error");

    // The outer object, and its pool, are still usable.
    const std::vector<int> sizes = outer(nested_tasks_of(8, [](int i) { return cojob::delayed([](int k) { return k; })(i); }));
    CHECK(sizes.size() == 8);
}

TEST_CASE("an inner call under a sequential outer call uses its own pool and releases it", "[nested][threads]") {
    cojob::parallel outer;
    const long before = static_cast<long>(kit::thread_count());
    std::atomic<long> most_threads{0};
    auto middle = [&most_threads](int i) {
        cojob::parallel inner{{.n_jobs = 2}};
        const std::vector<int> r = inner(nested_tasks_of(8, [&most_threads, i](int j) {
            return cojob::delayed([&most_threads](int a, int b) {
                kit::raise_to(most_threads, static_cast<long>(kit::thread_count()));
                return a * b;
            })(i, j);
        }));
        return std::accumulate(r.begin(), r.end(), 0);
    };
    const std::vector<int> sums = outer(nested_tasks_of(4, [&middle](int i) { return cojob::delayed(middle)(i); }));
    REQUIRE(sums.size() == 4);
    for (int i = 0; i < 4; ++i) CHECK(sums[static_cast<std::size_t>(i)] == 28 * i);
    CHECK(most_threads <= before + 2 + runtime_threads);
}

TEST_CASE("a blocking call inside a task of an async call completes on the pool's threads", "[nested][async]") {
    cojob::parallel outer{{.n_jobs = 2}};
    const long before = started_pool_threads(outer);
    std::atomic<long> most_threads{0};
    auto middle = [&most_threads](int i) {
        cojob::parallel inner{{.n_jobs = 2}};
        const std::vector<int> r = inner(nested_tasks_of(8, [&most_threads, i](int j) {
            return cojob::delayed([&most_threads](int a, int b) {
                kit::raise_to(most_threads, static_cast<long>(kit::thread_count()));
                return a + b;
            })(i, j);
        }));
        return std::accumulate(r.begin(), r.end(), 0);
    };
    auto tasks = nested_tasks_of(8, [&middle](int i) { return cojob::delayed(middle)(i); });
    boost::asio::io_context ctx;
    std::vector<int> sums;
    bool done = false;
    outer.async_run(tasks, boost::asio::bind_executor(ctx, [&](std::exception_ptr e, std::vector<int> r) {
                        done = !e;
                        sums = std::move(r);
                    }));
    ctx.run_for(std::chrono::seconds(10));
    REQUIRE(done);
    REQUIRE(sums.size() == 8);
    for (int i = 0; i < 8; ++i) CHECK(sums[static_cast<std::size_t>(i)] == 8 * i + 28);
    CHECK(most_threads <= before);
}
