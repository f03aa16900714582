// tests/process/task_events_process_test.cpp - options::on_task on backend::processes: the pid
// of the worker that ran each task, and its start and end times on the parent's clock.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include <unistd.h>

#include <chrono>
#include <map>
#include <ranges>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

// Outside the anonymous namespace: tasks name their function in another process.
namespace task_events_process {
long pid_of_runner(long i, long bad) {
    if (i == bad) throw std::invalid_argument("bad task");
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 3));
    return static_cast<long>(::getpid());
}
}  // namespace task_events_process

namespace {

using task_events_process::pid_of_runner;
using cojob::task_status;

auto event_tasks(long n, long bad = -1) {
    return std::views::iota(0L, n) | std::views::transform([bad](long i) { return cojob::delayed(pid_of_runner)(i, bad); });
}

}  // namespace

TEST_CASE("processes: on_task names the worker process and times the task on one clock", "[process][task_events]") {
    std::map<std::size_t, std::vector<cojob::task_event>> by_task;
    cojob::parallel par{{.n_jobs = 2,
                         .backend = cojob::backend::processes,
                         .on_task = [&](const cojob::task_event& e) { by_task[e.index].push_back(e); }}};
    const auto before = std::chrono::steady_clock::now();
    const auto pids = par(event_tasks(60));
    const auto after = std::chrono::steady_clock::now();
    REQUIRE(by_task.size() == 60);
    for (const auto& [index, ev] : by_task) {
        INFO("task " << index);
        REQUIRE(ev.size() == 3);
        CHECK(ev[0].what == task_status::dispatched);
        CHECK(ev[1].what == task_status::started);
        CHECK(ev[2].what == task_status::finished);
        CHECK(ev[2].backend == cojob::backend::processes);
        CHECK(ev[2].worker == pids[index]);  // the pid the task itself saw
        CHECK(ev[2].worker != static_cast<long>(::getpid()));
        // The worker's clock is the parent's: the times fall inside the call, in order.
        CHECK(before <= ev[2].dispatched_at);
        CHECK(ev[2].dispatched_at <= ev[2].started_at);
        CHECK(ev[2].started_at <= ev[2].ended_at);
        CHECK(ev[2].ended_at <= after);
    }
    by_task.clear();
    CHECK_THROWS_AS(par(event_tasks(30, 11)), std::invalid_argument);
    REQUIRE(by_task.count(11) == 1);
    REQUIRE(by_task[11].size() == 3);
    CHECK(by_task[11][2].what == task_status::failed);
    CHECK(by_task[11][1].started_at <= by_task[11][2].ended_at);
}
