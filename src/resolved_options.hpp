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
};

/// The folder for shared arguments: `chosen`, else COJOB_TEMP_FOLDER, else /dev/shm when it
/// is 2 GB or more and writable, else the system's temporary directory.
/// @throws cojob::error naming temp_folder when the folder is not a writable directory.
std::string resolve_temp_folder(const std::optional<std::string>& chosen);

/// @throws cojob::error naming the first invalid option.
resolved_options resolve(const options& explicit_options);

}  // namespace cojob::detail
