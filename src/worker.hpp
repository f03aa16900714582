// src/worker.hpp - private: what the worker guard knows about this process, and what every
// worker does whatever carries its frames (a process's pipes, src/process/worker_loop.cpp; MPI,
// src/mpi/rank_worker.cpp): the hello it starts with and the running of one request.
#pragma once

#include <cojob/detail/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

namespace cojob::detail {

/// What the probe a worker's hello points at holds: the parent reads it with
/// process_vm_readv to learn whether it may read lent results that way.
inline constexpr std::uint64_t lend_probe_value = 0x636f6a6f622d6c64;  // "cojob-ld"
/// The address of this process's probe (in a worker, sent with its hello).
[[nodiscard]] std::uint64_t lend_probe_address() noexcept;

/// What a task that allocates past options::worker_memory_limit throws on an MPI rank (a rank
/// cannot be replaced, so it lives on once the task's stack has unwound). The parent reads it
/// as a failure of kind worker_died with oom_suspected (src/remote_failure.cpp).
class memory_limit_reached : public std::bad_alloc {
public:
    [[nodiscard]] const char* what() const noexcept override {
        return "the task needed more memory than options::worker_memory_limit lets a worker take";
    }
};

/// argv[0] as `init` saw it ("" before `init`).
[[nodiscard]] const std::string& program_name();
/// Whether this process is a worker serving tasks (inside `init`).
[[nodiscard]] bool in_worker_process() noexcept;
/// Marks this process as a worker serving tasks: its inner parallel calls run on threads.
void enter_worker_mode() noexcept;

/// Appends the hello frame a worker starts with (build identity, pid, lend probe address) to `out`.
void write_hello(byte_buffer& out);
/// What a worker's hello says.
struct hello_facts {
    std::string identity;     ///< its build_identity()
    std::int32_t pid = 0;
    std::uint64_t probe = 0;  ///< lend_probe_address() in the worker
};
/// Reads the payload write_hello wrote. @throws wire_error when it is cut short.
[[nodiscard]] hello_facts read_hello(wire_in& in);
/// Runs the request whose payload is [payload, payload + n) and leaves its response in `out`
/// (cleared first) as a frame whose header the caller fills in (end_frame, arena_header). The
/// request's shared arrays are read from `arrays`.
/// @throws what reading the request throws; the worker reports it as a fault.
void run_request(const char* payload, std::size_t n, byte_buffer& out, const worker_context& ctx,
                 outside_bytes& arrays);

}  // namespace cojob::detail
