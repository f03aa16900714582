// tests/process/doorbell_test.cpp - how the parent learns of a worker's answers and end: read by
// the blocking caller itself, rung for when nobody reads, and, without pidfds, waited for on
// the worker's pipes; each way serves quick and slow tasks, asynchronous calls and crashes.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "kit.hpp"
#include "process/spawn.hpp"

#include <boost/asio/use_future.hpp>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <ranges>
#include <vector>

// Outside the anonymous namespace: reports name functions through the dynamic symbol table.
namespace doorbell_test {
int twice_after_ms(int i, int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return 2 * i;
}
int dies_at(int i, int bad) {
    if (i == bad) ::kill(::getpid(), SIGKILL);
    return 2 * i;
}
}  // namespace doorbell_test

namespace {

using namespace std::chrono_literals;
using cojob::backend::processes;
namespace process = cojob::detail::process;

auto twice_after(int n, int ms) {
    return std::views::iota(0, n) |
           std::views::transform([ms](int i) { return cojob::delayed(doorbell_test::twice_after_ms)(i, ms); });
}

std::vector<int> doubled(int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) v.push_back(2 * i);
    return v;
}

int no_pidfd(pid_t, unsigned) {
    errno = ENOSYS;
    return -1;
}

/// Runs the checks below on a pool whose workers are started while the seam says there are no
/// pidfds (when `without_pidfd`), as on an old kernel or under a seccomp filter.
void serves_every_way(bool without_pidfd) {
    const process::process_calls saved = process::process_seam();
    if (without_pidfd) process::process_seam().pidfd_open = &no_pidfd;
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
        // Warm calls: answers that come while the caller still looks for them.
        for (int round = 0; round < 50; ++round) CHECK(par(twice_after(3, 0)) == doubled(3));
        // Tasks longer than the caller looks: it sleeps, and the answer has to wake it.
        CHECK(par(twice_after(4, 30)) == doubled(4));
        // An asynchronous call: no thread of the caller's reads the answers.
        auto fut = par.async_run(twice_after(6, 5), boost::asio::use_future);
        REQUIRE(fut.wait_for(20s) == std::future_status::ready);
        CHECK(fut.get() == doubled(6));
        // A worker that ends: found, reaped, replaced.
        CHECK_THROWS_AS(par(std::views::iota(0, 4) | std::views::transform([](int i) {
                                return cojob::delayed(doorbell_test::dies_at)(i, 2);
                            })),
                        cojob::worker_died);
        CHECK(kit::eventually([] { return children::zombies() == 0; }, 3s));
        CHECK(par(twice_after(3, 1)) == doubled(3));
    }
    process::process_seam() = saved;
}

}  // namespace

TEST_CASE("processes: answers reach the caller whether it reads them, sleeps or is not there", "[process][doorbell]") {
    serves_every_way(false);
}

TEST_CASE("processes: without pidfds, workers are waited on through their pipes", "[process][doorbell]") {
    serves_every_way(true);
}
