// src/mpi/transport.cpp - frames as MPI messages: the communicator, MPI's errors as exceptions,
// and a frame sent and received in pieces of at most `chunk` bytes.
#include "transport.hpp"

#include <cojob/errors.hpp>

#include <string>

namespace cojob::detail::mpi {

MPI_Comm comm = MPI_COMM_NULL;
int my_rank = -1;
int world = 0;
bool we_initialised = false;
bool threads_multiple = false;

void throw_mpi(int rc, const char* what) {
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw error(std::string("cojob: MPI ") + what + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

void isend_frame(int dest, const byte_buffer& b, std::vector<MPI_Request>& requests, int tag) {
    for (std::size_t at = 0; at < b.size(); at += chunk) {
        MPI_Request r;
        check(MPI_Isend(b.data() + at, static_cast<int>(std::min(chunk, b.size() - at)), MPI_BYTE, dest, tag, comm,
                        &r),
              "isend");
        requests.push_back(r);
    }
}

frame_header receive_frame(MPI_Message& msg, const MPI_Status& first, byte_buffer& in) {
    int count = 0;
    check(MPI_Get_count(&first, MPI_BYTE, &count), "get_count");
    in.resize(static_cast<std::size_t>(count));
    check(MPI_Mrecv(in.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "mrecv");
    if (in.size() < sizeof(frame_header))
        throw wire_error("cojob: an MPI message from rank " + std::to_string(first.MPI_SOURCE) +
                         " is too short for a frame");
    const frame_header h = parse_header(in.data(), last_mpi_frame_kind);
    const std::size_t total = sizeof(frame_header) + static_cast<std::size_t>(h.length);
    while (in.size() < total) {
        const std::size_t at = in.size();
        const std::size_t piece = std::min(chunk, total - at);
        in.resize(at + piece);
        check(MPI_Recv(in.data() + at, static_cast<int>(piece), MPI_BYTE, first.MPI_SOURCE, first.MPI_TAG, comm,
                       MPI_STATUS_IGNORE),
              "recv");
    }
    if (in.size() != total) throw wire_error("cojob: an MPI frame longer than its header says");
    return h;  // not checksummed: see seal_frame
}

void append_frame(byte_buffer& b, mpi_frame_kind kind) {
    const auto at = begin_frame(b);
    seal_frame(b, at, kind);
}

}  // namespace cojob::detail::mpi
