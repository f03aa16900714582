// src/wire.hpp - private: frames on the pipes between the parent and its worker processes,
// the seam tests use to inject faults into pipe I/O, and the identity of this build.
#pragma once

#include <cojob/detail/wire.hpp>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace cojob::detail {

inline constexpr std::uint32_t frame_magic = 0x424a4f43;  // "COJB" in memory order
inline constexpr std::uint16_t wire_version = 2;
/// Larger frames are refused as corrupt (a length field gone wrong must not allocate 2^60 bytes).
inline constexpr std::uint64_t max_frame_payload = std::uint64_t{1} << 40;

enum class frame_kind : std::uint16_t {
    hello = 1,     ///< worker -> parent, once: version, build identity, pid
    request = 2,   ///< parent -> worker: a batch of tasks
    response = 3,  ///< worker -> parent: results, and the failure if a task threw
    fault = 4,     ///< worker -> parent: it could not read a request (then it exits)
    arena_response = 5,  ///< worker -> parent: a response whose payload waits in the worker's arena
};
/// The highest kind on the worker pipes. MPI ranks number their own kinds after it (src/mpi/).
inline constexpr std::uint16_t last_frame_kind = static_cast<std::uint16_t>(frame_kind::arena_response);

/// Bytes of a frame that travel through the pipe: an arena response sends its header only.
[[nodiscard]] inline std::uint64_t bytes_on_pipe(std::uint16_t kind, std::uint64_t length) noexcept {
    return kind == static_cast<std::uint16_t>(frame_kind::arena_response) ? 0 : length;
}

/// Every frame starts with this (host byte order: both ends are one binary on one machine).
struct frame_header {
    std::uint32_t magic = frame_magic;
    std::uint16_t version = wire_version;
    std::uint16_t kind = 0;
    std::uint64_t length = 0;    ///< payload bytes after the header (or in the arena)
    std::uint64_t checksum = 0;  ///< XXH3-64 of the payload
    /// Arena responses: arena_response_failed or 0. MPI requests: the call's
    /// options::worker_memory_limit in bytes, or 0 (none).
    std::uint64_t reserved = 0;
};
static_assert(sizeof(frame_header) == 32);

/// Starts a frame at the end of `b` (room for its header); returns where the frame starts.
std::size_t begin_frame(byte_buffer& b);
/// Fills in the header of the frame that starts at `at` and runs to the end of `b`.
void end_frame(byte_buffer& b, std::size_t at, frame_kind kind);
/// The header of an arena response whose payload is `b` after the header at its start (no
/// checksum: the payload does not cross the pipe). `failed`: a task of the batch failed
/// (told in `reserved`, so that the parent knows without reading the results).
[[nodiscard]] frame_header arena_header(const byte_buffer& b, bool failed);
/// `frame_header::reserved` of an arena response whose batch has a failing task.
inline constexpr std::uint64_t arena_response_failed = 1;
/// Reads and checks a header: magic, version, kind (from hello to `last_kind`) and length.
/// @throws wire_error saying what is wrong.
frame_header parse_header(const char* bytes, std::uint16_t last_kind = last_frame_kind);
/// @throws wire_error when the payload does not match the header's checksum.
void check_payload(const frame_header& h, const char* payload);

/// The system calls pipe I/O goes through; tests swap them to inject EINTR and short transfers.
struct pipe_io {
    ssize_t (*read)(int fd, void* buf, std::size_t n);
    ssize_t (*write)(int fd, const void* buf, std::size_t n);
};
pipe_io& pipe_seam() noexcept;

/// Blocking: reads exactly n bytes. Returns false on end of file before the first byte.
/// @throws wire_error on end of file inside the n bytes, or an I/O error.
bool read_exact(int fd, void* buf, std::size_t n);
/// Blocking: reads a frame's payload of `length` bytes into `out` (resized to it). The buffer
/// grows as the bytes come (at most doubling), never by the length alone.
/// @throws wire_error when the pipe closes first, or an I/O error.
void read_payload(int fd, std::uint64_t length, byte_buffer& out);
/// The same after the payload's first out.size() bytes, which `out` holds already.
void read_rest_of_payload(int fd, std::uint64_t length, byte_buffer& out);
/// Blocking: writes all n bytes (retries EINTR and short writes). On a non-blocking fd with no
/// room it calls `before_waiting` (when given), then waits for room.
void write_all(int fd, const void* buf, std::size_t n, void (*before_waiting)() noexcept = nullptr);

/// Identifies this build: the wire version and the build ids of the program and of cojob.
[[nodiscard]] std::string build_identity();

/// Finds the invoker registered under `key`, or null.
[[nodiscard]] invoker_fn find_invoker(std::uint64_t key) noexcept;

/// Current local time as ctime() writes it, without the newline.
[[nodiscard]] std::string local_time_text();

}  // namespace cojob::detail
