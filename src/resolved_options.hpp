// src/resolved_options.hpp - private: the options of a `parallel` object once merged with the
// active `parallel_config` scopes and checked (implemented in src/options.cpp).
#pragma once

#include <cojob/errors.hpp>
#include <cojob/options.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace cojob::detail {

class trace_file;  // src/trace_file.hpp

/// Options after merging with the active `parallel_config` scopes and validating.
struct resolved_options {
    int n_jobs_requested = 1;  ///< as the user wrote it (shown in verbose lines)
    int n_jobs = 1;            ///< effective worker count
    cojob::backend kind = cojob::backend::sequential;
    int verbose = 0;
    std::optional<std::size_t> pre_dispatch;  ///< tasks; nullopt = "all"
    std::size_t batch_size = 0;               ///< 0 = auto
    std::optional<std::chrono::duration<double>> timeout;
    std::function<void(const progress_event&)> progress;
    cojob::progress_bar progress_bar = cojob::progress_bar::off;
    std::function<void(const task_event&)> on_task;
    std::shared_ptr<trace_file> trace;  ///< null: no trace
    cojob::return_as return_as = cojob::return_as::list;
    // Large arrays (processes and mpi): see src/sharing.hpp.
    std::string temp_folder;                ///< resolved (processes backend only)
    std::optional<std::size_t> max_nbytes;  ///< nullopt: never share
    cojob::mmap_mode mmap_mode = cojob::mmap_mode::r;
    // Failures.
    cojob::retry_policy retry;                       ///< attempts = 1: no retry
    std::optional<std::size_t> worker_memory_limit;  ///< processes: bytes of address space
};

/// n_jobs and backend resolved together: the workers a runner, or a `cojob::pool`, is made of.
struct resolved_workers {
    int n_jobs_requested = 1;  ///< as the user wrote it
    int n_jobs = 1;            ///< effective worker count
    cojob::backend kind = cojob::backend::sequential;
    std::optional<cojob::backend> kind_requested;  ///< as the user wrote it
    bool nested = false;  ///< processes or mpi asked for inside a worker: threads instead
};

/// joblib's rules: n_jobs counted from the CPUs (or the MPI ranks), `sequential` for one
/// worker, `threads` by default, and threads inside a worker process.
/// @throws cojob::error naming n_jobs or backend when one is invalid.
resolved_workers resolve_workers(std::optional<int> n_jobs, std::optional<cojob::backend> kind);

/// The folder for shared arguments: `chosen`, else COJOB_TEMP_FOLDER, else /dev/shm when it
/// is 2 GB or more and writable, else the system's temporary directory.
/// @throws cojob::error naming temp_folder when the folder is not a writable directory.
std::string resolve_temp_folder(const std::optional<std::string>& chosen);

/// @throws cojob::error naming the first invalid option.
resolved_options resolve(const options& explicit_options);
/// The options of a runner built on a pool of `workers`: its n_jobs and backend are the pool's.
/// @throws cojob::error naming the first invalid option, or n_jobs or backend when the options
/// ask for other workers than the pool's.
resolved_options resolve(const options& explicit_options, const resolved_workers& workers);

}  // namespace cojob::detail
