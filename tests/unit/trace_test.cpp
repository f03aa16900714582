// tests/unit/trace_test.cpp - options::trace and COJOB_TRACE on the in-process backends: the
// file parses after every call, holds one slice per task that ran, on the track of the thread
// that ran it, and several calls and objects add to one file.
#include "kit.hpp"
#include "scratch_dir.hpp"
#include "trace_reader.hpp"

#include <cojob/cojob.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Outside the anonymous namespace: a slice is named after its function's symbol.
namespace trace_unit {
std::atomic<int> runs{0};

long tid_of_runner(int i, int bad) {
    runs.fetch_add(1);
    if (i == bad) throw std::invalid_argument("bad task");
    if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    return static_cast<long>(::gettid());
}
}  // namespace trace_unit

namespace {

using trace_unit::runs;
using trace_unit::tid_of_runner;

auto traced_tasks(int n, int bad = -1) {
    return std::views::iota(0, n) | std::views::transform([bad](int i) { return cojob::delayed(tid_of_runner)(i, bad); });
}

/// Every task of `call` has exactly one slice, named after its function, on the track of the
/// thread that ran it (`tids[index]`).
void check_tasks(const kit::trace_view& trace, long call, const std::vector<long>& tids) {
    const auto by_task = trace.tasks();
    for (std::size_t i = 0; i < tids.size(); ++i) {
        INFO("call " << call << ", task " << i);
        const auto it = by_task.find({call, static_cast<long>(i)});
        REQUIRE(it != by_task.end());
        REQUIRE(it->second.size() == 1);
        const kit::trace_slice& s = *it->second.front();
        CHECK(s.name.find("tid_of_runner") != std::string::npos);
        CHECK(s.args.at("attempt").to_number<int>() == 1);
        CHECK(s.args.at("status").as_string() == "finished");
        CHECK(s.args.at("arguments").as_string().size() > 0);
        CHECK(trace.track_of(s).find("(tid " + std::to_string(tids[i]) + ")") != std::string::npos);
    }
}

}  // namespace

TEST_CASE("trace: threads and sequential calls add to one file, a slice per task on its thread", "[trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("run.json");
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads, .trace = path}};
        const auto first = par(traced_tasks(300));
        auto trace = kit::read_trace(path);  // valid after each call
        check_tasks(trace, 1, first);
        const auto second = par(traced_tasks(50));
        cojob::parallel seq{{.n_jobs = 1, .trace = path}};
        const auto third = seq(traced_tasks(20));
        trace = kit::read_trace(path);
        check_tasks(trace, 1, first);
        check_tasks(trace, 2, second);
        check_tasks(trace, 3, third);
        CHECK(trace.tasks().size() == 370);
        CHECK(trace.count("scheduler") > 0);  // dispatch and deliver slices
        CHECK(trace.counters > 0);
        CHECK(trace.transfers == 0);  // only worker processes and ranks have transfers
        bool scheduler_named = false;
        for (const auto& [tid, name] : trace.track_names) scheduler_named |= name.rfind("scheduler (tid ", 0) == 0;
        CHECK(scheduler_named);
    }
}

TEST_CASE("trace: a failing call leaves a valid file with its failed task", "[trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("failed.json");
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads, .batch_size = 1, .trace = path}};
    CHECK_THROWS_AS(par(traced_tasks(40, 17)), std::invalid_argument);
    const auto trace = kit::read_trace(path);
    const auto by_task = trace.tasks();
    REQUIRE(by_task.count({1, 17}) == 1);
    CHECK(by_task.at({1, 17}).front()->args.at("status").as_string() == "failed");
}

TEST_CASE("trace: a task that runs again gets a slice per attempt", "[trace][retry]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("retried.json");
    cojob::parallel par{{.n_jobs = 2,
                         .backend = cojob::backend::threads,
                         .batch_size = 1,
                         .trace = path,
                         .retry = cojob::retry_policy{.attempts = 2,
                                                      .backoff = std::chrono::seconds(0),
                                                      .max_backoff = std::chrono::seconds(0),
                                                      .on = {cojob::failure_kind::exception}}}};
    const auto out = par(cojob::keep_going, traced_tasks(10, 4));  // task 4 fails at both attempts
    CHECK(!out[4].has_value());
    CHECK(out[4].attempts() == 2);
    const auto trace = kit::read_trace(path);  // the slices point into it
    const auto by_task = trace.tasks();
    REQUIRE(by_task.count({1, 4}) == 1);
    const auto& slices = by_task.at({1, 4});
    REQUIRE(slices.size() == 2);
    CHECK(slices[0]->args.at("attempt").to_number<int>() + slices[1]->args.at("attempt").to_number<int>() == 3);
    CHECK(by_task.at({1, 3}).size() == 1);
}

TEST_CASE("trace: a stream dropped early still gets a slice for every task that ran", "[trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("dropped.json");
    runs = 0;
    {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads, .batch_size = 2, .trace = path}};
        auto results = par.stream(traced_tasks(400));
        int taken = 0;
        for (long tid : results) {
            (void)tid;
            if (++taken == 10) break;
        }
    }  // the pool's threads are joined: every batch that ran is back
    const auto trace = kit::read_trace(path);
    CHECK(trace.tasks().size() == static_cast<std::size_t>(runs.load()));
    CHECK(runs.load() < 400);
}

TEST_CASE("trace: COJOB_TRACE names the file when options::trace is unset", "[trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("from_env.json");
    ::setenv("COJOB_TRACE", path.c_str(), 1);
    std::vector<long> tids;
    try {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
        tids = par(traced_tasks(30));
    } catch (...) {
        ::unsetenv("COJOB_TRACE");
        throw;
    }
    ::unsetenv("COJOB_TRACE");
    check_tasks(kit::read_trace(path), 1, tids);
}

TEST_CASE("trace: a path that cannot be written is refused when the object is built", "[trace]") {
    kit::scratch_dir dir;
    const std::string path = dir.file("no/such/folder/trace.json");
    try {
        cojob::parallel par{{.n_jobs = 2, .trace = path}};
        FAIL("built");
    } catch (const cojob::error& e) {
        CHECK(std::string(e.what()).find("trace=\"" + path + "\"") != std::string::npos);
    }
    CHECK_THROWS_AS((cojob::parallel{{.trace = ""}}), cojob::error);
}
