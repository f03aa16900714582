// cojob/mpi.hpp - backend::mpi: the other ranks of an MPI job run the tasks.
//
// Include this header in one file of the program and link the cojob-mpi library
// (`dependency('cojob-mpi')`, or pkg-config cojob-mpi), then start the program with an MPI
// launcher: `mpirun -n 3 ./app` or `srun -n 3 ./app`. `cojob::init(argc, argv)` starts MPI;
// rank 0 returns from it and runs main, ranks 1..K-1 serve rank 0's tasks inside it and exit
// when rank 0 ends. `cojob::parallel par{{.n_jobs = -1, .backend = cojob::backend::mpi}}` then
// spreads tasks over all worker ranks. Tasks travel as on backend::processes (free functions,
// cereal-serializable arguments and results), so every rank must run the same build.
// docs/scaling.md tells how to run it and where it stops scaling.
#pragma once

namespace cojob::mpi {

/// This process's rank in the job (0 runs main), or -1 outside an MPI job.
[[nodiscard]] int rank() noexcept;
/// Ranks in the job, rank 0 included, or 0 outside an MPI job.
[[nodiscard]] int size() noexcept;

}  // namespace cojob::mpi

namespace cojob::detail {

/// Defined in cojob-mpi: makes backend::mpi available to cojob. Named here so that every
/// program including this header keeps the library even when linked with --as-needed.
bool link_mpi_support() noexcept;
inline const bool mpi_support_linked = link_mpi_support();

}  // namespace cojob::detail
