// tests/process/crash_report_test.cpp - what a worker's death tells: the task it died in (also
// in the middle of a batch), its signal or exit code, its peak memory, in the exception's text
// and in parallel::last_failure().
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "process/failure_text.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <ranges>
#include <string>
#include <vector>

// Outside the anonymous namespace: tasks name their function in another process.
namespace crash_report {
/// Touches `mb` megabytes, then ends its process: by SIGKILL (how 0) or _exit(3) (how 1);
/// how -1 returns.
int grow_then_end(int mb, int how) {
    std::vector<char> block(static_cast<std::size_t>(mb) << 20);
    std::memset(block.data(), 1, block.size());
    if (how == 0) ::kill(::getpid(), SIGKILL);
    if (how == 1) ::_exit(3);
    return block[block.size() / 2];
}
}  // namespace crash_report

namespace {

using crash_report::grow_then_end;

/// Runs 12 tasks in batches of 4; task `victim` ends its worker as `how` says.
cojob::worker_died run_until_death(cojob::parallel& par, int victim, int mb, int how) {
    try {
        (void)par(std::views::iota(0, 12) | std::views::transform([=](int i) {
                      return cojob::delayed(grow_then_end)(i == victim ? mb : 1, i == victim ? how : -1);
                  }));
    } catch (const cojob::worker_died& e) {
        return e;
    }
    FAIL("the call did not fail with worker_died");
    return cojob::worker_died("");
}

}  // namespace

TEST_CASE("processes: a worker killed mid-batch names its task, signal and peak memory", "[process][crash]") {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 4}};
    const auto e = run_until_death(par, 6, 200, 0);
    CHECK_THAT(e.what(), Catch::Contains("task #6"));
    CHECK_THAT(e.what(), Catch::Contains("SIGKILL"));
    CHECK_THAT(e.what(), Catch::Contains("peak RSS"));
    REQUIRE(par.last_failure().has_value());
    const cojob::task_failure& f = *par.last_failure();
    CHECK(f.kind == cojob::failure_kind::worker_died);
    CHECK(f.index == 6);  // the third task of its batch, not the first
    CHECK_THAT(f.function, Catch::Contains("grow_then_end"));
    CHECK(f.arguments == "200, 0");
    CHECK(f.signal == "SIGKILL");
    CHECK(!f.exit_code);
    CHECK(f.pid != ::getpid());
    CHECK(f.peak_rss_bytes >= 200u << 20);  // it touched 200 MiB before it died
    CHECK_THAT(f.report(), Catch::Contains("The worker process was killed by SIGKILL, peak RSS"));
}

TEST_CASE("processes: a worker that exits names its exit code", "[process][crash]") {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 4}};
    const auto e = run_until_death(par, 1, 1, 1);
    CHECK_THAT(e.what(), Catch::Contains("exited with code 3"));
    REQUIRE(par.last_failure().has_value());
    const cojob::task_failure& f = *par.last_failure();
    CHECK(f.kind == cojob::failure_kind::worker_died);
    CHECK(f.index == 1);
    CHECK(f.signal.empty());
    CHECK(f.exit_code == 3);
    CHECK(!f.oom_suspected);
    // A task's own exception is still of kind exception.
    CHECK_THROWS(par(std::views::single(cojob::delayed(grow_then_end)(-1, -1))));
    REQUIRE(par.last_failure().has_value());
    CHECK(par.last_failure()->kind == cojob::failure_kind::exception);
}

TEST_CASE("processes: the OOM kill count is read from the memory cgroup's files", "[process][crash]") {
    using cojob::detail::process::oom_kills_in;
    CHECK(oom_kills_in("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n") == 2);  // cgroup v2
    CHECK(oom_kills_in("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n") == 7);             // cgroup v1
    CHECK(oom_kills_in("low 0\n") == -1);
    CHECK(oom_kills_in("") == -1);
    CHECK(cojob::detail::process::cgroup_oom_kills() >= -1);
}
