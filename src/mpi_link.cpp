// src/mpi_link.cpp - the registry through which cojob-mpi plugs backend::mpi into cojob: what
// the library registered, whether a launcher started us, and the errors when backend::mpi
// cannot run.
#include "mpi_link.hpp"

#include <cojob/errors.hpp>

#include <atomic>
#include <cstdlib>

namespace cojob::detail {

namespace {
std::atomic<const mpi_support*> mpi_linked{nullptr};
}

void register_mpi_support(const mpi_support& s) noexcept { mpi_linked.store(&s); }
const mpi_support* linked_mpi_support() noexcept { return mpi_linked.load(); }

bool launched_by_mpi() noexcept {
    // Open MPI's mpirun, PMIx launchers (srun --mpi=pmix, prun) and PMI-1/2 ones (MPICH, srun).
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
        if (std::getenv(var)) return true;
    return false;
}

int mpi_worker_ranks() {
    const mpi_support* s = linked_mpi_support();
    if (!s)
        throw error("cojob::options: backend=mpi needs the cojob-mpi library: include <cojob/mpi.hpp> in the "
                    "program and link it with dependency('cojob-mpi') (pkg-config cojob-mpi)");
    const int ranks = s->worker_ranks();
    if (ranks < 0)
        throw error("cojob::options: backend=mpi needs the program started by an MPI launcher, such as "
                    "`mpirun -n 3 ./app` or `srun -n 3 ./app`, and cojob::init(argc, argv) called first in main");
    if (ranks == 0)
        throw error("cojob::options: backend=mpi found a single rank; start more (`mpirun -n 3 ./app` gives rank 0 "
                    "two workers)");
    return ranks;
}

std::unique_ptr<backend_base> make_mpi_backend(const resolved_options& opts) {
    return linked_mpi_support()->make_backend(opts);  // resolve() checked it is there
}

}  // namespace cojob::detail
