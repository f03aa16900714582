// src/process/spawn.hpp - private: starting a worker process. A worker is this program started
// again (/proc/self/exe, with posix_spawn: a multithreaded parent must not fork without exec),
// with its two pipes, its status page and its result arena on the descriptors the worker guard
// looks for, and the environment variable that tells cojob::init to serve instead of running
// main (worker_loop.cpp is the other side).
#pragma once

#include "../worker.hpp"
#include "arena.hpp"

#include <sys/types.h>

#include <memory>

namespace cojob::detail::process {

/// A worker just started, and the parent's ends of what it was given.
struct spawned_worker {
    pid_t pid = -1;
    int to = -1;    ///< request pipe, parent's end (non-blocking)
    int from = -1;  ///< response pipe, parent's end (non-blocking)
    /// The shared status page (mapped) and the result arena (mapped read-only when read).
    std::shared_ptr<worker_status> status;
    std::shared_ptr<shared_arena> arena;
    /// Its memory, for lent results; every reaping goes through it (worker_memory::reap).
    std::shared_ptr<worker_memory> memory;
};

/// Starts a worker. `inner_threads`: what OMP_NUM_THREADS and its kin say in the worker, unless
/// the user set them (joblib's guard against oversubscription).
/// @throws std::system_error when a pipe, the status page or the process cannot be made.
[[nodiscard]] spawned_worker spawn_worker(int inner_threads);

}  // namespace cojob::detail::process
