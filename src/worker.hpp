// src/worker.hpp - private: what the worker guard knows about this process, and the shared
// status page through which a worker tells its parent which task runs.
#pragma once

#include <cojob/detail/wire.hpp>

#include <atomic>
#include <cstdint>
#include <string>

namespace cojob::detail {

/// The environment variable that marks a process as a worker cojob started; its value is
/// "<request fd>,<response fd>,<status fd>,<arena fd>,<parent pid>".
inline constexpr const char* worker_env = "COJOB_WORKER";
/// The descriptors a worker finds its pipes and status page on.
inline constexpr int worker_request_fd = 3;
inline constexpr int worker_response_fd = 4;
inline constexpr int worker_status_fd = 5;
inline constexpr int worker_arena_fd = 6;  ///< the result arena (src/arena.hpp)

/// Written by the worker, read by the parent: the task running in the current batch.
struct worker_status {
    std::atomic<std::uint64_t> running{0};    ///< index inside the batch
    std::atomic<std::int64_t> running_since{0};  ///< steady ns when tracked, else 0
    std::atomic<std::uint32_t> arena_held{0};    ///< 1 while the parent reads a response in the arena
    /// Set by the parent once it has read this worker's memory (the hello's probe), to the
    /// number of workers it reads from: large vector results may then be lent
    /// (cojob/detail/shared_arrays.hpp, blob_lent; worker_context::lend_readers).
    std::atomic<std::uint32_t> lend{0};
};

/// What the probe a worker's hello points at holds: the parent reads it with
/// process_vm_readv to learn whether it may read lent results that way.
inline constexpr std::uint64_t lend_probe_value = 0x636f6a6f622d6c64;  // "cojob-ld"
/// The address of this process's probe (in a worker, sent with its hello).
[[nodiscard]] std::uint64_t lend_probe_address() noexcept;

/// argv[0] as `init` saw it ("" before `init`).
[[nodiscard]] const std::string& program_name();
/// Whether this process is a worker serving tasks (inside `init`).
[[nodiscard]] bool in_worker_process() noexcept;
/// Marks this process as a worker serving tasks: its inner parallel calls run on threads.
void enter_worker_mode() noexcept;

/// Appends the hello frame a worker starts with (build identity, pid, lend probe address) to `out`.
void write_hello(byte_buffer& out);
/// Runs the request whose payload is [payload, payload + n) and leaves its response in `out`
/// (cleared first) as a frame whose header the caller fills in (end_frame, arena_header).
/// @throws what reading the request throws; the worker reports it as a fault.
void run_request(const char* payload, std::size_t n, byte_buffer& out, const worker_context& ctx);

}  // namespace cojob::detail
