// src/process/spawn.hpp - private: what a worker process is started with, and starting one. A
// worker is this program started again (/proc/self/exe, with posix_spawn: a multithreaded
// parent must not fork without exec). It finds its two pipes, its status page and its result
// arena on fixed descriptors, named by an environment variable that tells cojob::init to serve
// instead of running main: spawn.cpp sets them up, worker_loop.cpp takes them over.
#pragma once

#include "../request_gate.hpp"
#include "../wire.hpp"
#include "arena.hpp"

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace cojob::detail::process {

/// The environment variable that marks a process as a worker cojob started; its value is
/// "<request fd>,<response fd>,<status fd>,<arena fd>,<parent pid>,<doorbell fd or -1>".
inline constexpr const char* worker_env = "COJOB_WORKER";
/// The descriptors a worker finds its pipes and status page on.
inline constexpr int worker_request_fd = 3;
inline constexpr int worker_response_fd = 4;
inline constexpr int worker_status_fd = 5;
inline constexpr int worker_arena_fd = 6;  ///< the result arena (arena.hpp)
inline constexpr int worker_bell_fd = 7;   ///< the doorbell (worker_status::doorbell)
/// The environment variable that gives a worker its address-space limit in bytes
/// (options::worker_memory_limit), and the exit status of a worker that ran out under it.
inline constexpr const char* worker_memory_env = "COJOB_WORKER_MEMORY_LIMIT";
inline constexpr int memory_limit_exit = 111;

/// The largest request frame (header included) that goes through the status page's request slot.
inline constexpr std::size_t request_slot_bytes = 16 * 1024;

/// The status page a worker and its parent both map: the task it runs, and the words by which
/// each side tells the other what it sent, answered or holds.
struct worker_status {
    std::atomic<std::uint64_t> running{0};       ///< index inside the batch
    std::atomic<std::int64_t> running_since{0};  ///< steady ns when tracked, else 0
    std::atomic<std::uint32_t> arena_held{0};    ///< non-zero while the parent reads a response in the arena
    /// Set by the parent once it has read this worker's memory (the hello's probe), to the
    /// number of workers it reads from: large vector results may then be lent
    /// (cojob/detail/shared_arrays.hpp, blob_lent; worker_context::lend_readers).
    std::atomic<std::uint32_t> lend{0};
    /// Whether the parent may take back the batch it holds (src/request_gate.hpp).
    request_gate gate;
    /// Answers the worker has given. With a doorbell, an answer crosses no pipe: its header is
    /// `answer` below and its payload waits in `answer_slot` or the arena until the parent has
    /// read it; the parent takes it when this count moves. Without one, answers are frames on
    /// the response pipe, counted once written whole.
    std::atomic<std::uint64_t> answers{0};
    /// With a doorbell: the header of the last answer counted, written before the count moves
    /// and not again before the parent released the answer (a payload read in place). A
    /// response, smaller than arena_min_response, has its payload in `answer_slot`, held until
    /// the parent has decoded it (`answer_held`, the arena's flag protocol); an arena_response
    /// has it in the arena, held by `arena_held`.
    frame_header answer{};
    std::atomic<std::uint32_t> answer_held{0};
    /// Requests the parent has sent, counted once each is in the request slot or the pipe (or
    /// queued behind a full one): a worker waiting for its next request watches this, a load
    /// per turn of its spin. A line of its own, since the worker reads it in a loop while the
    /// parent writes the fields above.
    alignas(64) std::atomic<std::uint64_t> sent{0};
    /// Set by a worker about to sleep until `sent` moves; the parent, having moved it, then
    /// bumps `wake` and wakes it (a futex on `wake`). Each side sets its word, then reads the
    /// other's.
    std::atomic<std::uint32_t> asleep{0};
    std::atomic<std::uint32_t> wake{0};
    /// The request slot: a request frame small enough comes here instead of through the pipe.
    /// `slot_request` is the number of the request it holds (src/request_gate.hpp numbering),
    /// `slot_taken` the last one the worker copied out; the parent writes the slot only when
    /// they are equal. A request not in the slot is in the pipe, in order.
    alignas(64) std::atomic<std::uint64_t> slot_request{0};
    std::atomic<std::uint64_t> slot_taken{0};
    alignas(64) char request_slot[request_slot_bytes];
    /// Set by the parent while no thread of its reads this worker's answers as they come (an
    /// asynchronous call or a stream, whose answers the pool's I/O thread reads; a blocking
    /// caller about to sleep): the worker then rings its doorbell, an eventfd the I/O thread
    /// waits on, after each answer. Clear while a blocking caller reads them itself, so that
    /// an answer wakes nobody but that caller (channel.hpp).
    std::atomic<std::uint32_t> doorbell{1};
    /// With a doorbell: the payload of a response smaller than arena_min_response. Copied here
    /// out of the arena, so that the worker's next batch may write the arena while the parent
    /// decodes this one.
    alignas(64) char answer_slot[arena_min_response];
};

/// A worker just started, and the parent's ends of what it was given.
struct spawned_worker {
    pid_t pid = -1;
    int to = -1;    ///< request pipe, parent's end (non-blocking)
    int from = -1;  ///< response pipe, parent's end (non-blocking)
    int out = -1;   ///< the read end of its standard output (non-blocking)
    int err = -1;   ///< the read end of its standard error (non-blocking)
    int bell = -1;  ///< its doorbell (an eventfd, non-blocking); -1: none, its pipe is waited on
    int exit = -1;  ///< a pidfd, readable once it has ended; -1 with no doorbell
    /// The shared status page (mapped) and the result arena (mapped read-only when read).
    std::shared_ptr<worker_status> status;
    std::shared_ptr<shared_arena> arena;
    /// Its memory, for lent results; every reaping goes through it (worker_memory::reap).
    std::shared_ptr<worker_memory> memory;
};

/// Starts a worker, from a thread that lasts as long as this process (so that the worker does
/// not end with the calling thread: spawn.cpp). `inner_threads`: what OMP_NUM_THREADS and its
/// kin say in the worker, unless the user set them (joblib's guard against oversubscription).
/// @throws std::system_error when a pipe, the status page, that thread or the process cannot
/// be made. `memory_limit` (bytes, 0: none): the address space the worker may take.
[[nodiscard]] spawned_worker spawn_worker(int inner_threads, std::size_t memory_limit = 0);

// Every signal to a worker and every wait for one goes through kill_worker and wait_worker,
// which do nothing unless `pid` names a process (> 0): a worker's pid is -1 once it is reaped,
// and kill(-1, SIGKILL) would kill every process this user owns, kill(0, ...) this process
// group, waitpid(-1) or waitpid(0) reap some other child.

/// Sends SIGKILL to the worker `pid`. Returns whether the signal was sent.
bool kill_worker(pid_t pid) noexcept;
/// waitpid(pid, &status, options) for the worker `pid` (wait4, filling `usage` when given):
/// what it returned, -1 when `pid` names no process.
pid_t wait_worker(pid_t pid, int& status, int options, struct rusage* usage = nullptr) noexcept;

/// The system calls under kill_worker and wait_worker, and the pidfd a worker's end is waited
/// on through; tests swap them to see which pids they reach, and to run without pidfds.
struct process_calls {
    int (*kill)(pid_t pid, int sig);
    pid_t (*wait4)(pid_t pid, int* status, int options, struct rusage* usage);
    int (*pidfd_open)(pid_t pid, unsigned flags);
};
process_calls& process_seam() noexcept;

}  // namespace cojob::detail::process
