// tests/process/roles.hpp - programs the process suite runs as separate processes.
#pragma once

namespace roles {
/// Starts a pool whose workers block, prints the worker pids on stdout, then waits to be killed.
int orphan_maker();
/// Makes a processes call and prints how it ended ("worker_died: ...", "error: ...", "ok").
/// Returns 0 unless cojob refused the call itself.
int forgetful_main();
}  // namespace roles
