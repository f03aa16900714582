// tests/process/resume_test.cpp - a map whose task is a memory.cache'd function travels to
// worker processes with its store, and resumes after its process was killed halfway: only the
// tasks with no stored result compute again.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "kit.hpp"
#include "roles.hpp"
#include "scratch_dir.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// Lines in `path` (each one computation of resume_task).
std::size_t computations(const std::string& path) {
    std::ifstream in(path);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
}

/// The resume map, run here on worker processes.
std::vector<int> run_map(const cojob::cached_function<int (*)(int, int, std::string)>& cached, const std::string& dir) {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 2}};
    return par(std::views::iota(0, 40) | std::views::transform([&](int i) {
                   return cojob::delayed(cached)(i, 20, dir);
               }));
}

}  // namespace

TEST_CASE("processes: a cached map resumes after its process was killed halfway", "[process][memory][resume]") {
    kit::watchdog guard(120s, "cached map resume");
    kit::scratch_dir dir;
    const std::string root = dir.path().string();
    const std::string log = root + "/computed";
    // The role's map: task 20 kills the role's process (SIGKILL) while the others run.
    ::setenv("COJOB_TEST_DIR", root.c_str(), 1);
    auto [pid, out] = roles::start("COJOB_TEST_ROLE=cached_map");
    ::unsetenv("COJOB_TEST_DIR");
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    ::close(out);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    std::this_thread::sleep_for(200ms);  // its workers die with it (their parent-death signal)

    cojob::memory mem{root + "/cache", {.verbose = 0}};
    const auto cached = mem.cache(roles::resume_task);
    int stored = 0;
    for (int i = 0; i < 40; ++i) stored += cached.check_call_in_cache(i, 20, root) ? 1 : 0;
    CHECK(stored > 0);   // some finished before the kill
    CHECK(stored < 40);  // and some did not
    const std::size_t before = computations(log);

    // Run again: every result, and only the missing ones computed.
    const auto results = run_map(cached, root);
    REQUIRE(results.size() == 40);
    for (int i = 0; i < 40; ++i) CHECK(results[static_cast<std::size_t>(i)] == i * i);
    CHECK(computations(log) - before == static_cast<std::size_t>(40 - stored));
    // A third run computes nothing.
    const std::size_t after = computations(log);
    CHECK(run_map(cached, root) == results);
    CHECK(computations(log) == after);
}
