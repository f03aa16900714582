// src/process/arena.hpp - private: a worker's result arena, a memfd both processes map. The worker
// serializes each response into it, and the parent decodes it there, in place. With a doorbell
// every answer stays there and only its header crosses, in the status page; without one a
// response larger than a pipe-sized frame stays there and only its header crosses the pipe.
// Either way: no copy into a pipe, none out of it, and after the first use no page faults on
// either side.
//
// The hand-over: the worker sets `held` in the shared status page before it answers from the
// arena and does not write the arena again until the parent, done decoding, clears it (and
// wakes it when it sleeps: a futex on the shared page). A stream may leave a response there
// until its consumer takes the results (arena_payload).
#pragma once

#include <cojob/detail/wire.hpp>
#include <cojob/errors.hpp>

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

namespace cojob::detail {

/// Responses at least this large are arena responses, which a stream's consumer may keep in
/// the arena until it takes their results. Without a doorbell smaller ones go through the
/// pipe, which is as fast for them and needs no hand-over.
inline constexpr std::size_t arena_min_response = 256 * 1024;
/// An arena that grew past this is given back to the system once its response was read.
inline constexpr std::size_t arena_keep_bytes = 64u << 20;

class shared_arena final : public buffer_storage {
public:
    shared_arena() = default;
    /// Takes `fd`, a memfd (the parent makes it; the worker inherits it), and maps it
    /// writable (worker) or read-only (parent).
    shared_arena(int fd, bool writable) noexcept : fd_(fd), writable_(writable) {}
    shared_arena(const shared_arena&) = delete;
    shared_arena& operator=(const shared_arena&) = delete;
    ~shared_arena();

    /// A new, empty memfd for an arena (close-on-exec). @throws std::system_error.
    [[nodiscard]] static int make_fd();

    [[nodiscard]] int fd() const noexcept { return fd_; }

    /// Worker: grows or shrinks the file and the mapping (buffer_storage).
    char* resize_storage(std::size_t want, std::size_t keep, std::size_t& capacity) override;

    /// Parent: the first `n` bytes, mapped. @throws wire_error when the file is shorter.
    [[nodiscard]] const char* view(std::size_t n);
    /// Parent, after a stream took a response's results (read with copy_out): unmaps the few
    /// pages it mapped, so that the arena's pages are resident in the worker only and not
    /// counted a second time in this process's resident set. A list's response stays mapped:
    /// the next response of the same size then needs no page faults.
    void forget_pages() noexcept;
    /// Parent: copies the file's bytes [offset, offset + n) to `sink` in pieces through a small
    /// buffer (pread), without mapping them into this process. @throws wire_error when the
    /// file is shorter, std::system_error on a read error.
    void copy_out(std::size_t offset, std::size_t n, piece_sink sink, void* ctx);

private:
    void remap(std::size_t bytes);

    int fd_ = -1;
    bool writable_ = false;
    char* map_ = nullptr;
    std::size_t mapped_ = 0;
};

/// Thrown by worker_memory::copy: the worker that lent a result is gone, and the result with it.
class lent_result_lost : public worker_died {
public:
    using worker_died::worker_died;
};

/// A worker's memory as its parent reads lent results out of it (process_vm_readv: one copy,
/// none in the worker). Shared by the worker's record and the deferred payloads of its
/// responses. The worker is reaped through it, under its lock, so a read can never reach
/// another process that was given the pid afterwards.
class worker_memory final : public outside_bytes {
public:
    explicit worker_memory(pid_t pid) noexcept : pid_(pid), known_(pid) {}

    /// Reads the probe a hello points at: true when it holds lend_probe_value, i.e. this
    /// process may read the worker's memory (no seccomp, Yama or dumpable rule against it).
    [[nodiscard]] bool probe(std::uint64_t address) noexcept;
    /// Copies the worker's bytes [address, address + n) to `sink` in pieces through a small
    /// buffer. @throws lent_result_lost when the worker is gone or the read fails.
    void copy(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx);
    /// waitpid(pid, &st, options) under the lock; once it reaped the worker, reads fail.
    /// Returns what waitpid returned (-1 when it was reaped already).
    pid_t reap(int& st, int options, struct rusage* usage = nullptr) noexcept;

    /// What a response decoded in the parent reads lent results from (copy); a response never
    /// names a shared array.
    const char* map_shared(const shared_ref& ref) override;
    void copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) override {
        copy(address, n, sink, ctx);
    }

private:
    std::mutex m_;
    pid_t pid_;     ///< -1 once reaped
    pid_t known_;   ///< the worker's pid, for messages
};

/// A stream's response left in its worker's arena (see deferred_payload), with the results it
/// lent. Destroying it hands the arena back: the pages leave this process, and the worker may
/// write again and drop what it lent.
class arena_payload final : public deferred_payload {
public:
    /// `held`: the arena's hand-over flag (in the worker's status page); `bytes`: the payload's
    /// size, after the frame header at the start of the arena.
    arena_payload(std::shared_ptr<shared_arena> arena, std::shared_ptr<std::atomic<std::uint32_t>> held,
                  std::shared_ptr<worker_memory> memory, std::size_t bytes)
        : arena_(std::move(arena)), held_(std::move(held)), memory_(std::move(memory)), bytes_(bytes) {}
    ~arena_payload() override;
    arena_payload(const arena_payload&) = delete;
    arena_payload& operator=(const arena_payload&) = delete;

    const char* data() override;
    std::size_t size() const noexcept override { return bytes_; }
    void copy_out(std::size_t offset, std::size_t n, piece_sink sink, void* ctx) override;
    void copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) override;

private:
    std::shared_ptr<shared_arena> arena_;
    std::shared_ptr<std::atomic<std::uint32_t>> held_;
    std::shared_ptr<worker_memory> memory_;
    std::size_t bytes_;
};

/// The hand-over flag, a futex word in the shared status page: 0 released, 1 held, 2 held with
/// the worker asleep on it.
namespace arena_flag {
/// Worker: waits until the parent has released the previous response (blocking; returns at
/// once when it has).
void wait_released(std::atomic<std::uint32_t>& held) noexcept;
/// Parent: releases the arena and wakes a waiting worker.
void release(std::atomic<std::uint32_t>& held) noexcept;
}  // namespace arena_flag

}  // namespace cojob::detail
