// cojob::keep_going and options::retry in one process (sequential, threads): an outcome per
// task in order, timeouts that end one task, retries with attempts counted, streams in both
// orders, cancellation during a backoff, and the policy's bad values refused.
#include "kit.hpp"

#include <cojob/cojob.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

/// Every 50th task sleeps `slow` (past the timeout), every other 7th throws, the rest return i.
int mixed(int i, double slow) {
    if (i % 50 == 0) {
        std::this_thread::sleep_for(std::chrono::duration<double>(slow));
        return -1;
    }
    if (i % 7 == 0) throw std::invalid_argument("bad " + std::to_string(i));
    return i;
}

auto mixed_tasks(int n, double slow) {
    return kit::iota(n) | std::views::transform([slow](int i) { return cojob::delayed(mixed)(i, slow); });
}

/// Fails (throws std::runtime_error) the first `failures` times it runs for `i`, counted in
/// `runs`; then returns i.
int flaky(int i, int failures, std::shared_ptr<std::map<int, std::atomic<int>>> runs) {
    if (runs->at(i).fetch_add(1) < failures) throw std::runtime_error("flaky " + std::to_string(i));
    return i;
}

std::shared_ptr<std::map<int, std::atomic<int>>> run_counts(int n) {
    auto m = std::make_shared<std::map<int, std::atomic<int>>>();
    for (int i = 0; i < n; ++i) (*m)[i] = 0;
    return m;
}

std::atomic<int> void_calls{0};
void maybe_throw(int i) {
    ++void_calls;
    if (i == 3) throw std::logic_error("three");
}

/// Checks the outcomes of mixed_tasks(n, ...) with or without timeouts.
void check_mixed(const std::vector<cojob::outcome<int>>& out, int n, bool timeouts) {
    REQUIRE(out.size() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        INFO("task " << i);
        const auto& o = out[static_cast<std::size_t>(i)];
        if (i % 50 == 0 && timeouts) {
            REQUIRE(!o.has_value());
            CHECK(o.failure().kind == cojob::failure_kind::timeout);
            CHECK(o.failure().index == static_cast<std::size_t>(i));
            CHECK_THROWS_AS(o.value(), cojob::timeout_error);
        } else if (i % 50 != 0 && i % 7 == 0) {
            REQUIRE(!o.has_value());
            CHECK(o.failure().kind == cojob::failure_kind::exception);
            CHECK(o.failure().index == static_cast<std::size_t>(i));
            CHECK(o.failure().message == "bad " + std::to_string(i));
            CHECK(o.failure().exception == "std::invalid_argument");
            CHECK_THROWS_AS(o.value(), std::invalid_argument);
        } else {
            REQUIRE(o.has_value());
            CHECK(o.value() == (i % 50 == 0 ? -1 : i));
            CHECK(o.attempts() == 1);
        }
    }
}

}  // namespace

TEST_CASE("keep_going: every task gets its outcome, in order, on every in-process backend", "[keep_going]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs " << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        check_mixed(par(cojob::keep_going, mixed_tasks(1000, 0)), 1000, false);
        CHECK(!par.last_failure());
        // Without the tag, the first failure still ends the call.
        CHECK_THROWS_AS(par(mixed_tasks(1000, 0)), std::invalid_argument);
    }
}

TEST_CASE("keep_going: a task past the timeout ends alone on threads", "[keep_going][timeout]") {
    const std::size_t threads_before = kit::thread_count();
    {
        cojob::parallel par{{.n_jobs = 2, .timeout = 0.2s}};
        // Every 50th sleeps 1 s: a timeout outcome each, while replacement threads keep two
        // tasks running; the others finish.
        check_mixed(par(cojob::keep_going, mixed_tasks(1000, 1.0)), 1000, true);
        // The pool is usable at once, and runs plain calls as before.
        const auto again = par(kit::iota(6) | std::views::transform([](int i) { return cojob::delayed(mixed)(i + 1, 0); }));
        CHECK(again == std::vector<int>{1, 2, 3, 4, 5, 6});
    }
    // The stuck threads left once their tasks returned, and the destructor joined the rest.
    CHECK(kit::eventually([&] { return kit::thread_count() <= threads_before; }, 10s));
}

TEST_CASE("keep_going: void tasks get outcome<void>", "[keep_going]") {
    void_calls = 0;
    cojob::parallel par{{.n_jobs = 2}};
    const auto out = par(cojob::keep_going, kit::iota(8) | std::views::transform([](int i) {
                                                  return cojob::delayed(maybe_throw)(i);
                                              }));
    REQUIRE(out.size() == 8);
    CHECK(void_calls == 8);
    for (int i = 0; i < 8; ++i) CHECK(out[static_cast<std::size_t>(i)].has_value() == (i != 3));
    CHECK_THROWS_AS(out[3].value(), std::logic_error);
    CHECK(out[3].failure().index == 3);
    CHECK_NOTHROW(out[2].value());
    CHECK_THROWS_AS(out[2].failure(), cojob::error);
    CHECK(out[2].error() == nullptr);
}

TEST_CASE("keep_going: streams hand out outcomes in both orders", "[keep_going][stream]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 3}};
    std::vector<cojob::outcome<int>> in_order;
    for (auto&& o : par.stream(cojob::keep_going, mixed_tasks(200, 0), cojob::order::input)) in_order.push_back(o);
    check_mixed(in_order, 200, false);

    std::multiset<int> values;
    std::set<int> failed;
    for (auto&& o : par.stream(cojob::keep_going, mixed_tasks(200, 0), cojob::order::completion)) {
        if (o)
            values.insert(o.value());
        else
            failed.insert(static_cast<int>(o.failure().index));
    }
    CHECK(values.size() + failed.size() == 200);
    CHECK(values.count(-1) == 4);  // tasks 0, 50, 100, 150
    for (int i = 1; i < 200; ++i) CHECK((failed.count(i) == 1) == (i % 7 == 0 && i % 50 != 0));
}

TEST_CASE("keep_going: async_run completes with the outcomes", "[keep_going][async]") {
    cojob::parallel par{{.n_jobs = 2}};
    std::vector<cojob::outcome<int>> out;
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        out = co_await par.async_run(cojob::keep_going, mixed_tasks(300, 0), asio::use_awaitable);
    });
    check_mixed(out, 300, false);
}

TEST_CASE("retry: a task that throws runs again and counts its attempts", "[retry]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs " << n_jobs);
        auto runs = run_counts(40);
        cojob::retry_policy policy{.attempts = 3, .backoff = 0s, .max_backoff = 0s};
        policy.retry_if = [](const cojob::task_failure& f) { return f.exception == "std::runtime_error"; };
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 4, .retry = policy}};
        // Task i fails i % 3 times: 0, 1 or 2 retries, all within 3 attempts.
        const auto out = par(cojob::keep_going, kit::iota(40) | std::views::transform([runs](int i) {
                                                    return cojob::delayed(flaky)(i, i % 3, runs);
                                                }));
        REQUIRE(out.size() == 40);
        for (int i = 0; i < 40; ++i) {
            INFO("task " << i);
            REQUIRE(out[static_cast<std::size_t>(i)].has_value());
            CHECK(out[static_cast<std::size_t>(i)].value() == i);
            CHECK(out[static_cast<std::size_t>(i)].attempts() == i % 3 + 1);
            CHECK(runs->at(i) == i % 3 + 1);
        }
    }
}

TEST_CASE("retry: the last attempt's failure ends the call without keep_going", "[retry]") {
    auto runs = run_counts(10);
    cojob::parallel par{{.n_jobs = 2, .retry = cojob::retry_policy{.attempts = 3,
                                                                   .backoff = 0s,
                                                                   .max_backoff = 0s,
                                                                   .on = {cojob::failure_kind::exception}}}};
    const auto tasks = kit::iota(10) | std::views::transform([runs](int i) {
                           return cojob::delayed(flaky)(i, i == 6 ? 5 : 0, runs);
                       });
    CHECK_THROWS_WITH(par(tasks), "flaky 6");
    REQUIRE(par.last_failure());
    CHECK(par.last_failure()->index == 6);
    CHECK(par.last_failure()->attempts == 3);
    CHECK_THAT(par.last_failure()->report(), Catch::Contains("attempt 3"));
    CHECK(runs->at(6) == 3);
    // A predicate that says no: no retry.
    auto runs2 = run_counts(10);
    cojob::retry_policy no{.attempts = 3, .backoff = 0s, .max_backoff = 0s};
    no.retry_if = [](const cojob::task_failure&) { return false; };
    cojob::parallel strict{{.n_jobs = 2, .retry = no}};
    const auto out = strict(cojob::keep_going, kit::iota(10) | std::views::transform([runs2](int i) {
                                                   return cojob::delayed(flaky)(i, i == 6 ? 1 : 0, runs2);
                                               }));
    CHECK(!out[6].has_value());
    CHECK(out[6].attempts() == 1);
    CHECK(runs2->at(6) == 1);
}

TEST_CASE("retry: verbose output says which task runs again", "[retry][verbose]") {
    auto runs = run_counts(4);
    cojob::retry_policy policy{.attempts = 2, .backoff = 0s, .max_backoff = 0s, .on = {cojob::failure_kind::exception}};
    std::string text;
    {
        kit::stream_capture err(STDERR_FILENO);
        cojob::parallel par{{.n_jobs = 2, .verbose = 1, .retry = policy}};
        (void)par(kit::iota(4) | std::views::transform([runs](int i) {
                      return cojob::delayed(flaky)(i, i == 2 ? 1 : 0, runs);
                  }));
        text = err.text();
    }
    CHECK_THAT(text, Catch::Contains("Retrying task #2 (attempt 2 of 2) in 0 s: it threw (flaky 2)"));
}

TEST_CASE("retry: cancelling a call while a task waits out its backoff", "[retry][async]") {
    auto runs = run_counts(4);
    cojob::parallel par{{.n_jobs = 2,
                         .retry = cojob::retry_policy{.attempts = 5,
                                                      .backoff = 30s,
                                                      .max_backoff = 30s,
                                                      .jitter = cojob::backoff_jitter::none,
                                                      .on = {cojob::failure_kind::exception}}}};
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::exception_ptr result;
    bool done = false;
    par.async_run(cojob::keep_going,
                  kit::iota(4) | std::views::transform([runs](int i) { return cojob::delayed(flaky)(i, i == 1 ? 9 : 0, runs); }),
                  asio::bind_cancellation_slot(cancel.slot(),
                                               asio::bind_executor(io, [&](std::exception_ptr e, std::vector<cojob::outcome<int>>) {
                                                   result = e;
                                                   done = true;
                                               })));
    // Once task 1 failed and the others returned, only the 30 s backoff is left.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (runs->at(1) == 0 && std::chrono::steady_clock::now() < deadline) io.run_for(1ms);
    REQUIRE(runs->at(1) == 1);
    io.run_for(20ms);
    CHECK(!done);
    cancel.emit(asio::cancellation_type::terminal);
    while (!done && std::chrono::steady_clock::now() < deadline) io.run_for(1ms);
    REQUIRE(done);
    CHECK(kit::is_operation_aborted(result));
    CHECK(runs->at(1) == 1);  // never ran again
}

TEST_CASE("retry: bad policies and limits are refused, naming the field", "[retry][options]") {
    auto with = [](cojob::retry_policy p) { return cojob::options{.n_jobs = 2, .retry = p}; };
    CHECK_THROWS_WITH(cojob::parallel(with({.attempts = 0})), Catch::Contains("retry.attempts=0"));
    CHECK_THROWS_WITH(cojob::parallel(with({.attempts = 2, .backoff = -1s})), Catch::Contains("retry.backoff="));
    CHECK_THROWS_WITH(cojob::parallel(with({.attempts = 2, .backoff = 2s, .max_backoff = 1s})),
                      Catch::Contains("retry.max_backoff="));
    CHECK_THROWS_WITH(cojob::parallel(cojob::options{.n_jobs = 2, .worker_memory_limit = 0}),
                      Catch::Contains("worker_memory_limit=0"));
    CHECK_NOTHROW(cojob::parallel(with({.attempts = 1, .backoff = 0s, .max_backoff = 0s})));
}

TEST_CASE("outcome: copies share the failure, moves keep the value", "[keep_going]") {
    cojob::outcome<std::string> v(std::string("text"));
    auto copy = v;
    CHECK(copy.value() == "text");
    auto moved = std::move(copy);
    CHECK(moved.value() == "text");
    CHECK(std::move(moved).value() == "text");
    CHECK(v.attempts() == 1);
}

TEST_CASE("retry: on_task tells a failed attempt, the retry, and the next attempt", "[retry][events]") {
    auto runs = run_counts(4);
    std::vector<cojob::task_event> events;  // on the scheduler's thread: this one
    cojob::parallel par{{.n_jobs = 2,
                         .on_task = [&](const cojob::task_event& e) {
                             if (e.index == 2) events.push_back(e);
                         },
                         .retry = cojob::retry_policy{
                             .attempts = 2, .backoff = 0s, .max_backoff = 0s, .on = {cojob::failure_kind::exception}}}};
    (void)par(kit::iota(4) | std::views::transform([runs](int i) { return cojob::delayed(flaky)(i, i == 2 ? 1 : 0, runs); }));
    using s = cojob::task_status;
    std::vector<std::pair<s, unsigned>> seen;
    for (const auto& e : events) seen.emplace_back(e.what, e.attempt);
    CHECK(seen == std::vector<std::pair<s, unsigned>>{{s::dispatched, 1},
                                                      {s::started, 1},
                                                      {s::failed, 1},
                                                      {s::retried, 2},
                                                      {s::dispatched, 2},
                                                      {s::started, 2},
                                                      {s::finished, 2}});
}

TEST_CASE("worker_memory_limit is refused on a runner built on a pool", "[options]") {
    cojob::pool workers(2, cojob::backend::threads);
    CHECK_THROWS_WITH(cojob::parallel(workers, {.worker_memory_limit = std::size_t{1} << 30}),
                      Catch::Contains("worker_memory_limit"));
}
