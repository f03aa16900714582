// src/mpi/mpi_runtime.cpp - MPI's start and end on every rank: cojob::init starts MPI through
// the support registered here; rank 0 then starts the hub and returns to main, the other ranks
// serve (rank_worker.cpp). Also the ranks' numbers, as <cojob/mpi.hpp> gives them.
#include <cojob/mpi.hpp>

#include "../mpi_link.hpp"
#include "backend_mpi.hpp"
#include "hub.hpp"
#include "rank_worker.hpp"
#include "transport.hpp"

#include <mpi.h>

#include <cstdlib>
#include <iostream>
#include <utility>

namespace cojob::detail::mpi {
namespace {

void finish_rank0() {
    if (the_hub) {
        the_hub->stop();
        delete std::exchange(the_hub, nullptr);
    }
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (we_initialised && !finalized) MPI_Finalize();
}

void start(int& argc, char**& argv) {
    int already = 0;
    MPI_Initialized(&already);
    int provided = 0;
    if (!already) {
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
            std::cerr << "cojob: MPI_Init_thread failed\n";
            std::exit(1);
        }
        we_initialised = true;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED) {
        std::cerr << "cojob: backend=mpi needs MPI_THREAD_SERIALIZED or more; this MPI gives level " << provided << '\n';
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    threads_multiple = provided >= MPI_THREAD_MULTIPLE;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &my_rank);
    MPI_Comm_size(comm, &world);
    if (my_rank != 0) serve_rank();
    the_hub = new hub();
    std::atexit(finish_rank0);
}

int worker_ranks() noexcept { return my_rank == 0 ? world - 1 : -1; }

const mpi_support support{&start, &worker_ranks, &make_backend};

}  // namespace
}  // namespace cojob::detail::mpi

namespace cojob::detail {

bool link_mpi_support() noexcept {
    register_mpi_support(mpi::support);
    return true;
}

}  // namespace cojob::detail

namespace cojob::mpi {

int rank() noexcept { return detail::mpi::my_rank; }
int size() noexcept { return detail::mpi::my_rank < 0 ? 0 : detail::mpi::world; }

}  // namespace cojob::mpi
