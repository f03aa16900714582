// tests/unit/driver_test.cpp - one call's life (src/call_driver.cpp, src/scheduler.cpp) driven
// step by step: a scripted backend hands batches back when the test says, and the call's
// executor runs only when the test steps it, so each error, crash and cancellation path is
// reached in a known order, with no thread or process timing involved.
#include <catch2/catch.hpp>

#include "backend.hpp"
#include "kit.hpp"
#include "scripted_backend.hpp"

#include <cojob/cojob.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <exception>
#include <optional>
#include <ranges>
#include <system_error>
#include <vector>

namespace asio = boost::asio;

namespace {

int triple(int x) { return 3 * x; }

auto triple_tasks(int n) {
    return std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed(triple)(i); });
}

/// An async_run whose handler records its outcome, on a manual executor.
struct outcome {
    bool done = false;
    std::exception_ptr error;
    std::vector<int> results;
};

template <class Range>
void start(cojob::parallel& par, Range&& r, kit::manual_executor& ex, outcome& o,
           asio::cancellation_slot slot = {}) {
    par.async_run(std::forward<Range>(r),
                  asio::bind_cancellation_slot(slot, asio::bind_executor(ex.get(), [&o](std::exception_ptr e,
                                                                                       std::vector<int> v) {
                                                   o.done = true;
                                                   o.error = e;
                                                   o.results = std::move(v);
                                               })));
}

std::string message(const std::exception_ptr& e) {
    try {
        if (e) std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    }
    return "<none>";
}

}  // namespace

TEST_CASE("driver: a call dispatches its window, then a batch for each one back, in input order", "[driver]") {
    kit::scripted_scope scope;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    outcome o;
    start(par, triple_tasks(6), ex, o);
    ex.step();
    auto& be = scope.backend();
    CHECK(be.queued() == 4);  // pre_dispatch = 2*n_jobs batches of one task
    CHECK(be.calls_begun() == 1);
    while (be.run_next()) ex.step();
    REQUIRE(o.done);
    CHECK_FALSE(o.error);
    CHECK(o.results == std::vector<int>{0, 3, 6, 9, 12, 15});
    CHECK(be.calls_ended() == 1);
    CHECK(be.interrupts() == 0);
}

TEST_CASE("driver: a batch the backend could not run ends the call with its error; the object serves the next call",
          "[driver][error]") {
    kit::scripted_scope scope;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    outcome o;
    start(par, triple_tasks(6), ex, o);
    ex.step();
    auto& be = scope.backend();
    be.run_next();
    ex.step();
    be.fail_next(std::make_exception_ptr(cojob::error("scripted: no room for this batch")));
    ex.step();
    REQUIRE(o.done);
    CHECK(message(o.error) == "scripted: no room for this batch");
    CHECK(be.interrupts() == 1);  // the batches still waiting were stopped, once
    CHECK(be.queued() == 0);
    CHECK(be.calls_ended() == 1);

    outcome next;
    start(par, triple_tasks(3), ex, next);
    ex.step();
    while (be.run_next()) ex.step();
    REQUIRE(next.done);
    CHECK_FALSE(next.error);
    CHECK(next.results == std::vector<int>{0, 3, 6});
}

TEST_CASE("driver: a batch lost with its worker ends the call with cojob::worker_died", "[driver][error]") {
    kit::scripted_scope scope;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    outcome o;
    start(par, triple_tasks(4), ex, o);
    ex.step();
    scope.backend().lose_next();
    ex.step();
    REQUIRE(o.done);
    CHECK_THROWS_AS(std::rethrow_exception(o.error), cojob::worker_died);
}

TEST_CASE("driver: cancelling through the slot stops the running batches once and completes with operation_aborted",
          "[driver][cancel]") {
    kit::scripted_scope scope;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    asio::cancellation_signal cancel;
    outcome o;
    start(par, triple_tasks(100), ex, o, cancel.slot());
    ex.step();
    auto& be = scope.backend();
    be.run_next();
    ex.step();
    cancel.emit(asio::cancellation_type::terminal);
    ex.step();
    REQUIRE(o.done);
    CHECK(kit::is_operation_aborted(o.error));
    CHECK(be.interrupts() == 1);
    CHECK(be.queued() == 0);
    CHECK(be.calls_ended() == 1);
}

TEST_CASE("driver: batches that cannot be stopped are waited for after an error, then the call ends",
          "[driver][error]") {
    kit::scripted_scope scope({.workers = 2, .stops_batches = false, .refusal = {}});
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    outcome o;
    start(par, triple_tasks(6), ex, o);
    ex.step();
    auto& be = scope.backend();
    be.fail_next(std::make_exception_ptr(std::runtime_error("first")));
    ex.step();
    CHECK_FALSE(o.done);  // three batches still run
    CHECK(be.queued() == 3);
    while (be.run_next()) ex.step();  // they see the stop flag and come back without running a task
    REQUIRE(o.done);
    CHECK(message(o.error) == "first");
    CHECK(be.interrupts() == 1);
}

TEST_CASE("driver: destroying the object while an async call waits completes it with operation_aborted",
          "[driver][cancel]") {
    kit::scripted_scope scope;
    kit::manual_executor ex;
    outcome o;
    {
        cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
        start(par, triple_tasks(10), ex, o);
        ex.step();
    }
    ex.step();
    REQUIRE(o.done);
    CHECK(kit::is_operation_aborted(o.error));
}

TEST_CASE("driver: a backend that refuses a call ends it before any batch, and the object stays free",
          "[driver][error]") {
    kit::scripted_scope scope({.workers = 2, .stops_batches = true, .refusal = "scripted: not today"});
    cojob::parallel par{{.n_jobs = 2}};
    kit::manual_executor ex;
    outcome o;
    start(par, triple_tasks(5), ex, o);
    ex.step();
    REQUIRE(o.done);
    CHECK(message(o.error) == "scripted: not today");
    CHECK(scope.backend().queued() == 0);
    CHECK_THROWS_WITH(par(triple_tasks(2)), "scripted: not today");  // refused again, not "already running"
}

TEST_CASE("driver: two calls run at once on one object, each with its own results", "[driver][concurrent]") {
    kit::scripted_scope scope;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    outcome first, second;
    start(par, triple_tasks(5), ex, first);
    start(par, triple_tasks(3), ex, second);
    ex.step();
    CHECK_FALSE(first.done);
    CHECK_FALSE(second.done);
    while (scope.backend().run_next()) ex.step();
    REQUIRE(first.done);
    REQUIRE(second.done);
    CHECK_FALSE(first.error);
    CHECK_FALSE(second.error);
    CHECK(first.results == std::vector<int>{0, 3, 6, 9, 12});
    CHECK(second.results == std::vector<int>{0, 3, 6});
}

TEST_CASE("driver: an error ends its own call only; the call beside it completes", "[driver][concurrent][error]") {
    kit::scripted_scope scope;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    kit::manual_executor ex;
    outcome failing, healthy;
    start(par, triple_tasks(4), ex, failing);
    ex.step();
    auto& be = scope.backend();
    be.fail_next(std::make_exception_ptr(std::runtime_error("only mine")));
    start(par, triple_tasks(4), ex, healthy);
    while (be.run_next()) ex.step();
    REQUIRE(failing.done);
    REQUIRE(healthy.done);
    CHECK(message(failing.error) == "only mine");
    CHECK_FALSE(healthy.error);
    CHECK(healthy.results == std::vector<int>{0, 3, 6, 9});
}

TEST_CASE("threads: a pool that cannot start its threads ends the call with cojob::error; the next call runs",
          "[driver][error]") {
    cojob::parallel par{{.n_jobs = 2}};
    cojob::detail::before_thread_start = [] {
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again), "pthread_create");
    };
    struct restore {
        ~restore() { cojob::detail::before_thread_start = nullptr; }
    } restore_hook;
    CHECK_THAT(kit::message_of<cojob::error>([&] { par(triple_tasks(20)); }),
               Catch::Contains("could not start its worker threads"));
    cojob::detail::before_thread_start = nullptr;
    CHECK(par(triple_tasks(20)).at(19) == 57);
}
