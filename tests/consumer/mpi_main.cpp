// A program linked with cojob-mpi, started without an MPI launcher: it is in no MPI job.
#include <cojob/mpi.hpp>

#include <cstdio>

int main() {
    const int rank = cojob::mpi::rank();
    const int size = cojob::mpi::size();
    std::printf("consumer_mpi: rank %d of %d (outside an MPI job: -1 of 0)\n", rank, size);
    return rank == -1 && size == 0 ? 0 : 1;
}
