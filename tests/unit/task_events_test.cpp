// tests/unit/task_events_test.cpp - options::on_task on the in-process backends: every task's
// events in order, on the driving thread, with its worker and ordered times; a failing task.
#include "kit.hpp"

#include <cojob/cojob.hpp>

#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <ranges>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace asio = boost::asio;

namespace {

int twice_or_throw(int x, int bad) {
    if (x == bad) throw std::invalid_argument("bad task");
    return 2 * x;
}

auto event_tasks(int n, int bad = -1) {
    return std::views::iota(0, n) | std::views::transform([bad](int i) { return cojob::delayed(twice_or_throw)(i, bad); });
}

/// What on_task said, per task, and on which thread.
struct event_log {
    std::map<std::size_t, std::vector<cojob::task_event>> by_task;
    std::vector<std::thread::id> threads;

    std::function<void(const cojob::task_event&)> callback() {
        return [this](const cojob::task_event& e) {
            by_task[e.index].push_back(e);
            threads.push_back(std::this_thread::get_id());
        };
    }
};

using cojob::task_status;

/// Checks one task that ran to its end: dispatched, started, then `last`, with one batch, one
/// worker and ordered times.
void check_ran(const std::vector<cojob::task_event>& ev, task_status last, cojob::backend kind) {
    REQUIRE(ev.size() == 3);
    CHECK(ev[0].what == task_status::dispatched);
    CHECK(ev[1].what == task_status::started);
    CHECK(ev[2].what == last);
    for (const auto& e : ev) {
        CHECK(e.batch == ev[0].batch);
        CHECK(e.backend == kind);
        CHECK(e.attempt == 1);
        CHECK(e.dispatched_at == ev[0].dispatched_at);
    }
    CHECK(ev[0].worker == -1);  // not started yet
    CHECK(ev[1].worker == ev[2].worker);
    CHECK(ev[1].dispatched_at <= ev[1].started_at);
    CHECK(ev[2].started_at <= ev[2].ended_at);
}

}  // namespace

TEST_CASE("on_task: every task dispatched, started and finished, on the driving thread", "[task_events]") {
    for (int n_jobs : {1, 2, 3}) {
        INFO("n_jobs=" << n_jobs);
        event_log log;
        cojob::parallel par{{.n_jobs = n_jobs, .on_task = log.callback()}};
        const auto out = par(event_tasks(200));
        REQUIRE(out.size() == 200);
        REQUIRE(log.by_task.size() == 200);
        const auto kind = n_jobs == 1 ? cojob::backend::sequential : cojob::backend::threads;
        std::set<long> workers;
        for (const auto& [index, ev] : log.by_task) {
            check_ran(ev, task_status::finished, kind);
            workers.insert(ev[1].worker);
        }
        for (long w : workers) {
            CHECK(w >= -1);  // -1: the calling thread ran a batch of its own call
            CHECK(w < n_jobs);
        }
        for (const auto& t : log.threads) CHECK(t == std::this_thread::get_id());
    }
}

TEST_CASE("on_task: a failing task is reported failed, after the tasks that ran before it", "[task_events]") {
    event_log log;
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .on_task = log.callback()}};
    CHECK_THROWS_AS(par(event_tasks(40, 7)), std::invalid_argument);
    REQUIRE(log.by_task.count(7) == 1);
    check_ran(log.by_task[7], task_status::failed, cojob::backend::threads);
    for (const auto& [index, ev] : log.by_task) {
        if (index == 7) continue;
        REQUIRE_FALSE(ev.empty());
        CHECK(ev.front().what == task_status::dispatched);
        if (ev.size() > 1) check_ran(ev, task_status::finished, cojob::backend::threads);
        else CHECK(index > 7);  // dispatched, never run: the call ended first
    }
}

TEST_CASE("on_task: an async call reports on its executor's thread", "[task_events][async]") {
    event_log log;
    cojob::parallel par{{.n_jobs = 2, .on_task = log.callback()}};
    std::thread::id loop_thread;
    kit::run_coroutine([&]() -> asio::awaitable<void> {
        loop_thread = std::this_thread::get_id();
        const auto out = co_await par.async_run(event_tasks(50), asio::use_awaitable);
        CHECK(out.size() == 50);
    });
    REQUIRE(log.by_task.size() == 50);
    for (const auto& [index, ev] : log.by_task) check_ran(ev, task_status::finished, cojob::backend::threads);
    for (const auto& t : log.threads) CHECK(t == loop_thread);
}
