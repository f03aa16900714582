// src/mpi/rank_memory.hpp - private: options::worker_memory_limit on an MPI rank. The ranks
// exist before any runner and cannot be replaced, so the limit is the request's (its frame
// carries it) and holds only while its tasks run: the rank's address space is capped, and an
// allocation past the cap fails the running task with memory_limit_reached instead of ending
// the job. Open MPI's own allocations between requests are never capped.
#pragma once

#include <sys/resource.h>

#include <cstddef>
#include <new>

namespace cojob::detail::mpi {

/// Caps this rank's address space at `bytes` (0: no cap) for as long as it lives.
class memory_cap {
public:
    explicit memory_cap(std::size_t bytes) noexcept;
    ~memory_cap();
    memory_cap(const memory_cap&) = delete;
    memory_cap& operator=(const memory_cap&) = delete;

private:
    bool on_ = false;
    struct rlimit before_{};
    std::new_handler handler_before_ = nullptr;
};

}  // namespace cojob::detail::mpi
