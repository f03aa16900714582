// tests/process/spawn_test.cpp - a worker process's life as the parent sees it: workers belong
// to the pool, not to the thread that happened to start them, and the calls that signal and
// reap workers never reach a pid that names none.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "process/arena.hpp"
#include "process/spawn.hpp"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

// Outside the anonymous namespace: reports name functions through the dynamic symbol table.
namespace spawn_test {
int pid_after_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return static_cast<int>(::getpid());
}
}  // namespace spawn_test

namespace {

using namespace cojob::detail;

/// The calls that reached the seam, as text: none goes on to the system while it is swapped in.
std::vector<std::string> calls;

int record_kill(pid_t pid, int sig) {
    calls.push_back("kill(" + std::to_string(pid) + ", " + std::to_string(sig) + ")");
    errno = ESRCH;
    return -1;
}
pid_t record_waitpid(pid_t pid, int*, int, struct rusage*) {
    calls.push_back("waitpid(" + std::to_string(pid) + ")");
    errno = ECHILD;
    return -1;
}

/// Swaps the process seam for the recorders for the duration of a test.
struct process_seam_swap {
    process::process_calls saved = process::process_seam();
    process_seam_swap() {
        calls.clear();
        process::process_seam() = process::process_calls{&record_kill, &record_waitpid, saved.pidfd_open};
    }
    ~process_seam_swap() { process::process_seam() = saved; }
    process_seam_swap(const process_seam_swap&) = delete;
    process_seam_swap& operator=(const process_seam_swap&) = delete;
};

}  // namespace

TEST_CASE("processes: a worker already reaped (pid -1) or no worker (pid 0) is never signalled nor waited for",
          "[process][spawn][error]") {
    const process_seam_swap recorders;
    // kill(-1, SIGKILL) would kill every process of this user, kill(0, ...) this process group;
    // waitpid(-1) or waitpid(0) would reap some other child.
    for (const pid_t none : {pid_t{-1}, pid_t{0}}) {
        INFO("pid " << none);
        int st = 0;
        CHECK_FALSE(process::kill_worker(none));
        CHECK(process::wait_worker(none, st, 0) == -1);
        CHECK(process::wait_worker(none, st, WNOHANG) == -1);
    }
    // A worker's memory that was told of no live process does not wait for one either.
    worker_memory gone(-1);
    int st = 0;
    CHECK(gone.reap(st, 0) == -1);
    CHECK(calls == std::vector<std::string>{});
    // A live pid does reach it.
    calls.clear();
    CHECK_FALSE(process::kill_worker(4242));  // the recorder says: no such process
    CHECK(process::wait_worker(4242, st, WNOHANG) == -1);
    CHECK(calls == std::vector<std::string>{"kill(4242, " + std::to_string(SIGKILL) + ")", "waitpid(4242)"});
}

TEST_CASE("processes: workers first used from a thread that has ended keep serving the pool", "[process][spawn]") {
    using namespace std::chrono_literals;
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 1}};
    const auto pids = [&par] {
        // Tasks long enough that both workers get some.
        auto r = par(std::views::iota(0, 8) |
                     std::views::transform([](int) { return cojob::delayed(spawn_test::pid_after_ms)(30); }));
        return std::set<int>(r.begin(), r.end());
    };
    // The pool starts its workers for a call made from a short-lived thread (an io_context's
    // thread, a nested call's worker thread), which then ends.
    std::set<int> first;
    std::thread([&] { first = pids(); }).join();
    REQUIRE(first.size() == 2);
    std::this_thread::sleep_for(300ms);  // time for a death signal tied to that thread to land
    CHECK(children::zombies() == 0);     // no worker died meanwhile
    // The next call, from this thread, runs on the same workers.
    CHECK(pids() == first);
}
