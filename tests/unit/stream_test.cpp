// parallel::stream consumed by blocking code: input and completion order, empty input, errors at
// every position, dropping the stream at every stage, backpressure against a slow consumer,
// return_as, and many synchronously ready results. (Coroutine consumers: stream_async_test.cpp.)
#include "kit.hpp"
#include "stream_kit.hpp"

#include <cojob/errors.hpp>
#include <cojob/parallel.hpp>
#include <cojob/stream.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace stream_kit;

// --- order ------------------------------------------------------------------------------------

TEST_CASE("a stream hands every result out in input order for any n_jobs and batch_size", "[stream][order]") {
    watchdog dog(60s, "input order");
    const std::vector<cojob::batch_size_spec> batch_sizes{1, 7, "auto"};
    for (int n_jobs : {1, 2, 4}) {
        for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
            INFO("n_jobs=" << n_jobs << " batch_size#" << b);
            cojob::parallel par{{.n_jobs = n_jobs, .batch_size = batch_sizes[b]}};
            std::vector<long> got;
            for (auto&& r : par.stream(uneven_squares(2000))) got.push_back(r);
            REQUIRE(got == expected_squares(2000));
        }
    }
}

TEST_CASE("an unordered stream hands results out as tasks finish, each once", "[stream][order]") {
    watchdog dog(30s, "completion order");
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    // Task 0 takes 300 ms, the others 1 ms: on two workers they all finish before it.
    auto tasks = std::views::iota(0L, 20L) | std::views::transform([](long i) {
                     return cojob::delayed(sleep_then_return)(i, i == 0 ? 300L : 1L);
                 });
    std::vector<long> got;
    for (auto&& r : par.stream(tasks, cojob::order::completion)) got.push_back(r);
    REQUIRE(got.size() == 20);
    CHECK(got.front() != 0);
    CHECK(got.back() == 0);
    CHECK(std::set<long>(got.begin(), got.end()).size() == 20);

    SECTION("and an ordered stream of the same tasks waits for task 0") {
        std::vector<long> ordered;
        for (auto&& r : par.stream(tasks, cojob::order::input)) ordered.push_back(r);
        std::vector<long> expected(20);
        for (long i = 0; i < 20; ++i) expected[static_cast<std::size_t>(i)] = i;
        CHECK(ordered == expected);
    }
}

TEST_CASE("return_as chooses the order of par.stream(range) and makes par(range) refuse", "[stream][options]") {
    watchdog dog(30s, "return_as");
    auto tasks = std::views::iota(0L, 20L) | std::views::transform([](long i) {
                     return cojob::delayed(sleep_then_return)(i, i == 0 ? 300L : 1L);
                 });
    cojob::parallel unordered{{.n_jobs = 2, .batch_size = 1, .return_as = cojob::return_as::generator_unordered}};
    std::vector<long> got;
    for (auto&& r : unordered.stream(tasks)) got.push_back(r);
    CHECK(got.back() == 0);

    cojob::parallel ordered{{.n_jobs = 2, .batch_size = 1, .return_as = cojob::return_as::generator}};
    got.clear();
    for (auto&& r : ordered.stream(tasks)) got.push_back(r);
    CHECK(got.front() == 0);

    const std::string message = kit::message_of<cojob::error>([&] { ordered(tasks); });
    CHECK_THAT(message, Catch::Contains("return_as=generator") && Catch::Contains("par.stream(range)"));
    cojob::parallel list{{.n_jobs = 2}};
    CHECK(list(tasks).size() == 20);  // list is the default and par(range) is unchanged
}

TEST_CASE("a stream over an empty input ends at once", "[stream]") {
    watchdog dog(10s, "empty input");
    for (int n_jobs : {1, 2}) {
        cojob::parallel par{{.n_jobs = n_jobs}};
        for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
            auto s = par.stream(squares(0), o);
            CHECK(s.begin() == s.end());
        }
        CHECK(par(squares(3)).size() == 3);
    }
}

TEST_CASE("a stream takes a range by value and a one-pass input lazily", "[stream]") {
    watchdog dog(30s, "lazy input");
    cojob::parallel par{{.n_jobs = 2, .pre_dispatch = 3, .batch_size = 1}};
    std::vector<decltype(cojob::delayed(stream_kit::square)(0L))> owned;
    for (long i = 0; i < 10; ++i) owned.push_back(cojob::delayed(stream_kit::square)(i));
    auto s = par.stream(std::move(owned));
    long sum = 0;
    for (auto&& r : s) sum += r;
    CHECK(sum == 285);

    kit::producer_log log;
    kit::input_generator gen(50, [](std::size_t i) { return cojob::delayed(stream_kit::square)(static_cast<long>(i)); }, &log);
    std::size_t seen = 0;
    for (auto&& r : par.stream(gen)) {
        (void)r;
        ++seen;
        std::this_thread::sleep_for(1ms);
        // Tasks produced: consumed + the window (3) + the one being handed out, at most.
        CHECK(log.produced.load() <= seen + 4);
    }
    CHECK(seen == 50);
}

// --- errors -----------------------------------------------------------------------------------

TEST_CASE("a failing task surfaces at its position in an ordered stream, after every result before it",
          "[stream][error]") {
    watchdog dog(60s, "ordered errors");
    for (int n_jobs : {1, 2, 4}) {
        for (long bad : {0L, 57L, 199L}) {
            INFO("n_jobs=" << n_jobs << " failing task " << bad);
            cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 3}};
            std::vector<long> got;
            auto consume = [&] {
                for (auto&& r : par.stream(failing_at(200, bad))) got.push_back(r);
            };
            CHECK(kit::message_of<std::invalid_argument>(consume) == "bad " + std::to_string(bad));
            std::vector<long> expected(static_cast<std::size_t>(bad));
            for (long i = 0; i < bad; ++i) expected[static_cast<std::size_t>(i)] = i;
            CHECK(got == expected);
            REQUIRE(par.last_failure().has_value());
            CHECK(par.last_failure()->index == static_cast<std::size_t>(bad));
            CHECK(par(squares(5)).size() == 5);  // usable again
        }
    }
}

TEST_CASE("a failing task surfaces when it finishes in an unordered stream", "[stream][error]") {
    watchdog dog(60s, "unordered errors");
    for (int n_jobs : {1, 2}) {
        for (long bad : {0L, 57L, 199L}) {
            INFO("n_jobs=" << n_jobs << " failing task " << bad);
            cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
            std::vector<long> got;
            auto consume = [&] {
                for (auto&& r : par.stream(failing_at(200, bad), cojob::order::completion)) got.push_back(r);
            };
            CHECK(kit::message_of<std::invalid_argument>(consume) == "bad " + std::to_string(bad));
            CHECK(std::find(got.begin(), got.end(), bad) == got.end());
            CHECK(std::set<long>(got.begin(), got.end()).size() == got.size());
            if (n_jobs == 1) CHECK(got.size() == static_cast<std::size_t>(bad));  // one at a time: all before it
            CHECK(par(squares(5)).size() == 5);
        }
    }
}

// --- dropping early ---------------------------------------------------------------------------

TEST_CASE("dropping a stream at any stage stops its tasks and frees the parallel object at once",
          "[stream][cancel]") {
    watchdog dog(60s, "drop");
    for (int n_jobs : {1, 2}) {
        for (int stage : {0, 1, 2, 3, 4}) {  // unconsumed, after 1, in the middle, after all, at the end
            INFO("n_jobs=" << n_jobs << " stage " << stage);
            probe p;
            cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
            constexpr long n = 40;
            {
                auto s = par.stream(counted_tasks(p, n, 5));
                if (stage > 0) {
                    long taken = 0;
                    const long stop_after = stage == 1 ? 1 : stage == 2 ? n / 2 : n;
                    for (auto it = s.begin(); it != s.end(); ++it) {
                        if (++taken == stop_after && stage != 4) break;
                    }
                }
                if (stage == 3 || stage == 4) CHECK(p.started.load() == n);
                s.cancel();  // then destroyed: both are fine
            }
            if (stage <= 2) CHECK(p.started.load() < n);
            CHECK(par(squares(3)).size() == 3);  // no "already running"
            // Results are freed: those of tasks still running when the stream went are freed
            // as they finish.
            CHECK(kit::eventually([&] { return p.counts.alive() == 0; }, 5s));
        }
    }
}

namespace {
kit::gate running_tasks_gate;
std::atomic<long> gated_started{0};
std::atomic<long> gated_finished{0};
/// Task 0 returns at once; the others wait for the gate (at most 20 s).
long wait_for_gate(long i) {
    ++gated_started;
    if (i > 0) (void)running_tasks_gate.wait_for(20s);
    ++gated_finished;
    return i;
}
}  // namespace

TEST_CASE("dropping a stream does not wait for the tasks that are running", "[stream][cancel]") {
    watchdog dog(30s, "drop while running");
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    auto s = par.stream(std::views::iota(0L, 20L) |
                        std::views::transform([](long i) { return cojob::delayed(wait_for_gate)(i); }));
    REQUIRE(s.begin() != s.end());  // task 0 came back; the workers wait for the gate
    s.cancel();
    CHECK(gated_finished.load() == 1);  // cancel() did not wait for the running tasks
    running_tasks_gate.open();
    CHECK(par(squares(3)).size() == 3);  // runs once the workers are back
    CHECK(gated_started.load() <= 3);    // task 0 and one per worker at most: queued ones never started
}

TEST_CASE("breaking out of a range-for over a temporary stream drops it", "[stream][cancel]") {
    watchdog dog(30s, "break");
    probe p;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    for (auto&& r : par.stream(counted_tasks(p, 1000, 2))) {
        if (r.value() == 3) break;
    }
    CHECK(p.started.load() < 20);
    CHECK(par(squares(3)).size() == 3);
}

TEST_CASE("a parallel object runs a stream, a second stream and a blocking call at once", "[stream][concurrent]") {
    watchdog dog(30s, "concurrent streams");
    cojob::parallel par{{.n_jobs = 2}};
    auto s = par.stream(squares(100));
    auto it = s.begin();
    CHECK(par(squares(3)).size() == 3);  // served while the stream is open
    long other_sum = 0;
    for (long r : par.stream(squares(4))) other_sum += r;
    CHECK(other_sum == 0 + 1 + 4 + 9);
    long count = 0;
    for (; it != s.end(); ++it) ++count;
    CHECK(count == 100);
    CHECK(par(squares(3)).size() == 3);
}

TEST_CASE("destroying the parallel object cancels its running stream", "[stream][cancel]") {
    watchdog dog(30s, "destroy parallel");
    probe p;
    auto par = std::make_unique<cojob::parallel>(cojob::options{.n_jobs = 2, .batch_size = 1});
    auto s = par->stream(counted_tasks(p, 200, 5));
    auto it = s.begin();
    par.reset();
    auto drain = [&] {
        for (; it != s.end(); ++it) {
        }
    };
    CHECK_THAT(kit::message_of<cojob::cancelled>(drain), Catch::Contains("cancelled"));
    CHECK(p.started.load() < 200);
}

// --- backpressure -----------------------------------------------------------------------------

TEST_CASE("a slow consumer holds the workers back: results in flight stay within the window", "[stream][backpressure]") {
    watchdog dog(60s, "backpressure");
    for (int n_jobs : {1, 2, 4}) {
        for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
            INFO("n_jobs=" << n_jobs << " order=" << (o == cojob::order::input ? "input" : "completion"));
            probe p;
            const long window = 2L * n_jobs;
            cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};  // pre_dispatch 2*n_jobs
            long seen = 0;
            for (auto&& r : par.stream(counted_tasks(p, 60, 1), o)) {
                ++p.consumed;
                kit::raise_to(p.max_alive, p.counts.values());
                (void)r;
                ++seen;
                std::this_thread::sleep_for(5ms);  // slower than the workers
            }
            CHECK(seen == 60);
            // Dispatched and not consumed yet: never more than the window (inline: one batch).
            CHECK(p.max_outstanding.load() <= (n_jobs == 1 ? 1 : window));
            // Result values alive anywhere (moved-from husks hold nothing): the window plus
            // the ones the consumer and the workers hold; far below the 60 a list would hold.
            CHECK(p.max_alive.load() <= window + n_jobs);
            CHECK(p.counts.alive() == 0);
        }
    }
}

TEST_CASE("with a fixed batch size the window counts batches", "[stream][backpressure]") {
    watchdog dog(60s, "batches");
    probe p;
    cojob::parallel par{{.n_jobs = 2, .pre_dispatch = 3, .batch_size = 5}};
    long seen = 0;
    for (auto&& r : par.stream(counted_tasks(p, 100, 0))) {
        ++p.consumed;
        (void)r;
        if (++seen % 5 == 0) std::this_thread::sleep_for(2ms);
    }
    CHECK(seen == 100);
    CHECK(p.max_outstanding.load() <= 3 * 5);
}

// --- many results -----------------------------------------------------------------------------

TEST_CASE("hundreds of thousands of synchronously ready results stream without deep stacks", "[stream][stress]") {
    watchdog dog(60s, "many results");
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        constexpr long n = kit::sanitized ? 30'000 : 300'000;
        long count = 0;
        long sum = 0;
        for (auto&& r : par.stream(plain_squares(n))) {
            ++count;
            sum += r % 1000;
        }
        CHECK(count == n);
        long expected = 0;
        for (long i = 0; i < n; ++i) expected += (i * i) % 1000;
        CHECK(sum == expected);
    }
}
