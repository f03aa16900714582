// src/mpi/rank_memory.cpp - a request's memory cap on an MPI rank (rank_memory.hpp).
#include "rank_memory.hpp"

#include "../worker.hpp"

#include <algorithm>

namespace cojob::detail::mpi {

memory_cap::memory_cap(std::size_t bytes) noexcept {
    if (bytes == 0 || ::getrlimit(RLIMIT_AS, &before_) != 0) return;
    struct rlimit capped = before_;
    // Only the soft limit moves, so that it can be raised again afterwards; never above the
    // hard limit the launcher set.
    capped.rlim_cur = before_.rlim_max == RLIM_INFINITY ? static_cast<rlim_t>(bytes)
                                                         : std::min(static_cast<rlim_t>(bytes), before_.rlim_max);
    if (::setrlimit(RLIMIT_AS, &capped) != 0) return;
    on_ = true;
    // operator new asks the handler for memory it could not get: the task fails, the rank stays.
    handler_before_ = std::set_new_handler([] { throw memory_limit_reached(); });
}

memory_cap::~memory_cap() {
    if (!on_) return;
    std::set_new_handler(handler_before_);
    (void)::setrlimit(RLIMIT_AS, &before_);
}

}  // namespace cojob::detail::mpi
