// tests/process/roles.hpp - programs the process suite runs as separate processes.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>

namespace roles {
/// Runs this test program again with `role_env` ("COJOB_TEST_ROLE=<name>") added to its
/// environment and its stdout on a pipe; returns its pid and the pipe's read end.
/// @throws std::runtime_error when it cannot be started.
std::pair<pid_t, int> start(const std::string& role_env);
/// What a role run to its end wrote on stdout, and its wait status.
struct ended {
    std::string out;
    int status = 0;
};
/// Starts a role (as start does) and waits for it to end.
/// @throws std::runtime_error when it cannot be started or waited for.
ended run(const std::string& role_env);

/// Cached with cojob::memory in the role below and in the test that resumes it: notes each
/// computation in `dir`/computed (a line per run), kills the role's process (its worker's
/// parent) the first time task `victim` runs, and returns i * i.
int resume_task(int i, int victim, std::string dir);
/// A map of 40 resume_task tasks on processes, cached in the directory COJOB_TEST_DIR names;
/// task 20 kills this process midway.
int cached_map();

/// Starts a pool whose workers block, prints the worker pids on stdout, then waits to be killed.
int orphan_maker();
/// Makes a blocking call on processes, prints "called", then sends itself SIGINT at once,
/// while cojob's handler is still installed but no call watches: the signal ends it.
int ctrl_c_after_call();
/// Makes a processes call and prints how it ended ("worker_died: ...", "error: ...", "ok").
/// Returns 0 unless cojob refused the call itself.
int forgetful_main();
}  // namespace roles
