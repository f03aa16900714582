// src/mpi_link.hpp - private: how the optional cojob-mpi library (src/mpi/) plugs into cojob.
// cojob itself never links MPI: a program that includes <cojob/mpi.hpp> and links cojob-mpi
// registers the MPI support below during static initialisation, before main runs, and
// `cojob::init` then starts MPI when the program was launched by mpirun or srun.
#pragma once

#include "backend.hpp"
#include "resolved_options.hpp"

#include <memory>

namespace cojob::detail {

/// What cojob-mpi provides.
struct mpi_support {
    /// Called by `cojob::init` when an MPI launcher started this process: initialises MPI; on
    /// ranks other than 0, serves tasks until rank 0 ends, then exits without returning.
    void (*start)(int& argc, char**& argv);
    /// Ranks other than 0 once `start` has run on rank 0, else -1.
    int (*worker_ranks)() noexcept;
    std::unique_ptr<backend_base> (*make_backend)(const resolved_options& opts);
};

/// Called once by cojob-mpi's static initialiser.
void register_mpi_support(const mpi_support& s) noexcept;
/// The registered support, or null when the program does not link cojob-mpi.
[[nodiscard]] const mpi_support* linked_mpi_support() noexcept;

/// Whether an MPI launcher (mpirun, mpiexec, srun) started this process, by its environment.
[[nodiscard]] bool launched_by_mpi() noexcept;

/// Worker ranks available to backend::mpi.
/// @throws cojob::error saying what is missing (cojob-mpi not linked, no launcher, one rank).
[[nodiscard]] int mpi_worker_ranks();

}  // namespace cojob::detail
