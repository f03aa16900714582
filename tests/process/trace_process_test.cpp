// tests/process/trace_process_test.cpp - options::trace on backend::processes: a slice per task
// on the track of the worker process that ran it, the parent's encoding and decoding, the
// transfers between them, and a valid file after a worker crashed or a stream was dropped.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "scratch_dir.hpp"
#include "trace_reader.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

// Outside the anonymous namespace: tasks name their function in another process.
namespace trace_process {
long traced_pid(long i, long crash_at) {
    if (i == crash_at) ::kill(::getpid(), SIGKILL);
    std::this_thread::sleep_for(std::chrono::microseconds(100 * (i % 4)));
    return static_cast<long>(::getpid());
}
}  // namespace trace_process

namespace {

auto traced_tasks(long n, long crash_at = -1) {
    return std::views::iota(0L, n) |
           std::views::transform([crash_at](long i) { return cojob::delayed(trace_process::traced_pid)(i, crash_at); });
}

}  // namespace

TEST_CASE("processes: the trace puts each task on its worker process's track", "[process][trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("processes.json");
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .trace = path}};
    const auto pids = par(traced_tasks(80));
    // A stream: its results stay in the workers until taken, their times come at once.
    std::vector<long> streamed;
    for (long pid : par.stream(traced_tasks(40))) streamed.push_back(pid);
    const auto trace = kit::read_trace(path);
    const auto by_task = trace.tasks();
    REQUIRE(by_task.size() == 120);
    const auto check = [&](long call, long i, long pid) {
        INFO("call " << call << ", task " << i);
        REQUIRE(by_task.at({call, i}).size() == 1);
        const kit::trace_slice& s = *by_task.at({call, i}).front();
        CHECK(trace.track_of(s) == "worker process " + std::to_string(pid));
        CHECK(s.name.find("traced_pid") != std::string::npos);
        CHECK(!s.args.contains("estimated"));  // the worker's own times
    };
    for (long i = 0; i < 80; ++i) check(1, i, pids[static_cast<std::size_t>(i)]);
    for (long i = 0; i < 40; ++i) check(2, i, streamed[static_cast<std::size_t>(i)]);
    CHECK(trace.transfers > 0);           // requests and responses between the processes
    CHECK(trace.count("backend") > 0);    // the parent encoding requests and decoding responses
    CHECK(trace.count("scheduler") > 0);  // dispatch and delivery
}

TEST_CASE("processes: after a worker crash the trace is valid and no task is traced twice", "[process][trace][crash]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("crash.json");
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 1, .trace = path}};
    CHECK_THROWS_AS(par(traced_tasks(60, 25)), cojob::worker_died);
    const auto pids = par(traced_tasks(10));  // the pool recovered; this call adds to the file
    const auto trace = kit::read_trace(path);
    const auto by_task = trace.tasks();
    for (const auto& [task, list] : by_task) {
        INFO("call " << task.first << ", task " << task.second);
        CHECK(list.size() == 1);
        CHECK(trace.track_of(*list.front()).rfind("worker process ", 0) == 0);
    }
    // The task its worker died in: its time is estimated, from the worker's previous task on.
    REQUIRE(by_task.count({1, 25}) == 1);
    CHECK(by_task.at({1, 25}).front()->args.at("status").as_string() == "failed");
    CHECK(by_task.at({1, 25}).front()->args.at("estimated").as_bool());
    for (long i = 0; i < 10; ++i) CHECK(by_task.count({2, i}) == 1);
}

TEST_CASE("processes: a stream dropped early leaves a valid trace", "[process][trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("dropped.json");
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .trace = path}};
        auto results = par.stream(traced_tasks(400));
        int taken = 0;
        for (long pid : results) {
            (void)pid;
            if (++taken == 10) break;
        }
    }
    const auto trace = kit::read_trace(path);
    const auto by_task = trace.tasks();
    CHECK(by_task.size() >= 10);
    CHECK(by_task.size() < 400);
    for (const auto& [task, list] : by_task) CHECK(list.size() == 1);
}
