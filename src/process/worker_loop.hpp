// src/process/worker_loop.hpp - private: the worker's side of backend::processes, entered from
// cojob::init when the environment marks this process as a worker (spawn.hpp).
#pragma once

namespace cojob::detail::process {

/// `spec`: the value of worker_env. When it names the descriptors this process was started
/// with, serves the parent's requests until the parent closes the request pipe or dies, then
/// exits without returning. Otherwise (inherited from a worker by a program it started, or set
/// by hand) forgets the marker and returns, and main runs.
void serve(const char* spec);

}  // namespace cojob::detail::process
