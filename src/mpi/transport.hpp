// src/mpi/transport.hpp - private: frames as MPI messages. The messages are the process
// backend's frames (src/wire.hpp: versioned, checksummed header; cereal payload; function
// identity by module offset and fingerprint), sent on a private duplicate of MPI_COMM_WORLD
// with errors returned, not fatal. Also the backoff both sides poll with, and the buffers that
// large frames reuse.
#pragma once

#include "../wire.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace cojob::detail::mpi {

/// The kinds of frame ranks exchange: the process wire's first four, with their numbers, then
/// MPI's own, numbered after the process wire's kinds (the numbers are the wire format).
enum class mpi_frame_kind : std::uint16_t {
    hello = static_cast<std::uint16_t>(frame_kind::hello),        ///< rank -> rank 0, once (write_hello)
    request = static_cast<std::uint16_t>(frame_kind::request),    ///< rank 0 -> rank: a batch of tasks
    response = static_cast<std::uint16_t>(frame_kind::response),  ///< rank -> rank 0: results
    fault = static_cast<std::uint16_t>(frame_kind::fault),        ///< rank -> rank 0: it could not read a request
    progress = 6,  ///< rank -> rank 0: the index of the tracked task that just started
    stop = 7,      ///< rank 0 -> rank: finish and leave
    bye = 8,       ///< rank -> rank 0: nothing more will come from this rank
    block = 9,     ///< rank 0 -> rank: a large array argument, kept for the rest of the call
    end_call = 10, ///< rank 0 -> rank: a call ended; drop its arrays
    take_back = 11,   ///< rank 0 -> rank (control_tag): give back request n unless started
    taken_back = 12,  ///< rank -> rank 0 (control_tag): request n, and whether it was given back
};
static_assert(static_cast<std::uint16_t>(mpi_frame_kind::progress) > last_frame_kind,
              "MPI's own kinds must not reuse a number of the process wire");
/// The highest kind a frame between ranks may have (parse_header's bound).
inline constexpr std::uint16_t last_mpi_frame_kind = static_cast<std::uint16_t>(mpi_frame_kind::taken_back);

inline constexpr int frame_tag = 0x636a;            // one tag: frames from one rank arrive in order
/// Take-back questions and answers (src/request_gate.hpp): one message each, on a tag of their
/// own, since a rank answers from a second thread and its answer must not fall between the
/// pieces of a large frame.
inline constexpr int control_tag = 0x636b;
inline constexpr std::size_t chunk = std::size_t{1} << 30;  // MPI counts are int: larger frames go in pieces

// Set by mpi_runtime.cpp when MPI starts.
extern MPI_Comm comm;         ///< the duplicate of MPI_COMM_WORLD every frame travels on
extern int my_rank;           ///< this rank, -1 outside an MPI job
extern int world;             ///< ranks in the job
extern bool we_initialised;   ///< cojob called MPI_Init_thread, so it calls MPI_Finalize
/// MPI may be called from two threads at once: a worker rank then answers take-backs from a
/// thread of its own while it runs a task, and rank 0 asks for them.
extern bool threads_multiple;

/// @throws error naming the MPI call and MPI's text for `rc`.
[[noreturn]] void throw_mpi(int rc, const char* what);

inline void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) throw_mpi(rc, what);
}

/// Polls fast at first, then sleeps longer and longer (to `longest`, 1 ms unless told): an idle
/// rank costs no CPU, a busy one answers within microseconds.
class backoff {
public:
    explicit backoff(std::chrono::microseconds longest = std::chrono::microseconds(1000)) : longest_(longest.count()) {}
    void pause() {
        if (++rounds_ < 200) return;
        const auto sleep = std::chrono::microseconds(std::min<long>(10L << std::min(rounds_ - 200, 10), longest_));
        std::this_thread::sleep_for(sleep);
    }
    void reset() noexcept { rounds_ = 0; }

private:
    long longest_;
    int rounds_ = 0;
};

/// Fills in the header of the frame that starts at `at`, without a checksum: MPI delivers a
/// message whole or reports an error, so the checksum that guards the pipes' byte streams
/// would only add a pass over every byte on each side (a sixth of a large transfer's time).
/// `reserved`: see frame_header.
inline void seal_frame(byte_buffer& b, std::size_t at, mpi_frame_kind kind, std::uint64_t reserved = 0) {
    frame_header h;
    h.kind = static_cast<std::uint16_t>(kind);
    h.reserved = reserved;
    h.length = b.size() - at - sizeof(frame_header);
    std::memcpy(b.data() + at, &h, sizeof h);
}

/// Appends a frame without a payload.
void append_frame(byte_buffer& b, mpi_frame_kind kind);

/// Starts sending the frame in `b` to `dest`, in pieces MPI's int counts can hold; the
/// requests to complete go to `requests`, and `b` must live until they have.
void isend_frame(int dest, const byte_buffer& b, std::vector<MPI_Request>& requests, int tag = frame_tag);

/// Receives the frame whose first message `msg` matched: its header tells how many more
/// pieces follow from the same rank. Returns the header; the frame is in `in`.
/// @throws wire_error when the frame is malformed, error when MPI fails.
frame_header receive_frame(MPI_Message& msg, const MPI_Status& first, byte_buffer& in);

/// Large buffers kept for reuse: faulting in fresh pages for 64 MB costs more than copying it.
class buffer_pool {
public:
    /// A buffer of at least `bytes` capacity if one is kept, else an empty one.
    byte_buffer take(std::size_t bytes) {
        auto best = kept_.end();
        for (auto it = kept_.begin(); it != kept_.end(); ++it)
            if (it->capacity() >= bytes && (best == kept_.end() || it->capacity() < best->capacity())) best = it;
        if (best == kept_.end()) return byte_buffer();
        byte_buffer b = std::move(*best);
        kept_.erase(best);
        return b;
    }
    void give(byte_buffer b) {
        if (b.capacity() < min_kept) return;
        b.clear();
        kept_.push_back(std::move(b));
        if (kept_.size() > max_kept)
            kept_.erase(std::min_element(kept_.begin(), kept_.end(),
                                         [](const byte_buffer& x, const byte_buffer& y) { return x.capacity() < y.capacity(); }));
    }

private:
    static constexpr std::size_t min_kept = std::size_t{1} << 20;
    static constexpr std::size_t max_kept = 4;
    std::vector<byte_buffer> kept_;
};

}  // namespace cojob::detail::mpi
