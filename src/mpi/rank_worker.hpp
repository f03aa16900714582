// src/mpi/rank_worker.hpp - private: what a rank other than 0 does once MPI has started.
#pragma once

namespace cojob::detail::mpi {

/// Serves rank 0's requests until it says stop, then ends MPI and exits this process.
[[noreturn]] void serve_rank();

}  // namespace cojob::detail::mpi
