// src/process/arena.cpp - the result arena: a memfd that grows by ftruncate + mremap, the futex
// that hands it from the worker to the parent and back, and the reading of lent results.
#include "arena.hpp"

#include "../wire.hpp"
#include "../worker.hpp"
#include "futex_word.hpp"
#include "spawn.hpp"

#include <cojob/errors.hpp>

#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <ctime>
#include <string>
#include <system_error>
#include <utility>

namespace cojob::detail {

namespace {

constexpr std::size_t granule = 2u << 20;  // grow in 2 MiB steps (and let THP use them)

std::size_t round_up(std::size_t n) { return (n + granule - 1) / granule * granule; }

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

}  // namespace

shared_arena::~shared_arena() {
    if (map_) ::munmap(map_, mapped_);
    if (fd_ >= 0) ::close(fd_);
}

int shared_arena::make_fd() {
    const int fd = ::memfd_create("cojob-result-arena", MFD_CLOEXEC);
    if (fd < 0) fail("cojob: memfd_create of a result arena");
    return fd;
}

void shared_arena::remap(std::size_t bytes) {
    if (bytes == mapped_) return;
    if (bytes == 0) {
        ::munmap(map_, mapped_);
        map_ = nullptr;
        mapped_ = 0;
        return;
    }
    const int prot = PROT_READ | (writable_ ? PROT_WRITE : 0);
    void* p = map_ ? ::mremap(map_, mapped_, bytes, MREMAP_MAYMOVE)
                   : ::mmap(nullptr, bytes, prot, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) fail("cojob: mapping a result arena");
    map_ = static_cast<char*>(p);
    mapped_ = bytes;
}

char* shared_arena::resize_storage(std::size_t want, std::size_t keep, std::size_t& capacity) {
    const std::size_t bytes = want == 0 ? 0 : round_up(want);
    if (bytes > mapped_) {
        if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) fail("cojob: growing a result arena");
        remap(bytes);
        // The arena grows when results stop being lent (or at the first large response): the
        // heap then holds the freed chunks of lent vectors, which the arena now replaces.
        if (writable_) (void)::malloc_trim(0);
    } else if (bytes < mapped_ && keep <= bytes) {
        remap(bytes);  // unmap first: nothing may touch the pages the file gives back
        if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) fail("cojob: shrinking a result arena");
    }
    capacity = mapped_;
    return map_;
}

const char* shared_arena::view(std::size_t n) {
    if (n > mapped_) {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) fail("cojob: fstat of a result arena");
        const auto size = static_cast<std::size_t>(st.st_size);
        if (size < n)
            throw wire_error("cojob: a worker announced a " + std::to_string(n) + "-byte response in its arena, which holds " +
                             std::to_string(size) + " bytes");
        remap(size);
    }
    return map_;
}

void shared_arena::forget_pages() noexcept {
    if (map_) (void)::madvise(map_, mapped_, MADV_DONTNEED);
}

namespace {

/// Small enough to stay in the cache between a read and the sink's copy.
constexpr std::size_t piece = 256 * 1024;

char* piece_buffer() {
    thread_local std::unique_ptr<char[]> buffer;
    if (!buffer) buffer.reset(new char[piece]);
    return buffer.get();
}

}  // namespace

void shared_arena::copy_out(std::size_t offset, std::size_t n, piece_sink sink, void* ctx) {
    char* const buffer = piece_buffer();
    while (n > 0) {
        const std::size_t want = std::min(n, piece);
        const ssize_t r = ::pread(fd_, buffer, want, static_cast<off_t>(offset));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail("cojob: reading a result arena");
        if (r == 0) throw wire_error("cojob: a worker's arena ended inside a response");
        sink(ctx, buffer, static_cast<std::size_t>(r));
        offset += static_cast<std::size_t>(r);
        n -= static_cast<std::size_t>(r);
    }
}

bool worker_memory::probe(std::uint64_t address) noexcept {
    std::uint64_t value = 0;
    const iovec local{&value, sizeof value};
    const iovec remote{reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), sizeof value};
    std::lock_guard lock(m_);
    return pid_ > 0 && ::process_vm_readv(pid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(sizeof value) &&
           value == lend_probe_value;
}

void worker_memory::copy(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) {
    char* const buffer = piece_buffer();
    std::lock_guard lock(m_);  // the worker is not reaped meanwhile
    const auto gone = [this](const std::string& why) {
        return lent_result_lost("cojob: worker process " + std::to_string(known_) +
                           " ended before the parent read a result it held (" + why + "); a vector of " +
                           std::to_string(large_vector_bytes >> 20) + " MiB or more stays in its worker until it is taken");
    };
    if (pid_ <= 0) throw gone("reaped");
    while (n > 0) {
        // A whole piece before the sink sees it: pieces then hold whole elements.
        const std::size_t want = std::min(n, piece);
        std::size_t got = 0;
        while (got < want) {
            const iovec local{buffer + got, want - got};
            const iovec remote{reinterpret_cast<void*>(static_cast<std::uintptr_t>(address + got)), want - got};
            const ssize_t r = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) throw gone(r < 0 ? std::system_category().message(errno) : std::string("nothing read"));
            got += static_cast<std::size_t>(r);
        }
        sink(ctx, buffer, want);
        address += want;
        n -= want;
    }
}

pid_t worker_memory::reap(int& st, int options, struct rusage* usage) noexcept {
    std::lock_guard lock(m_);
    if (pid_ <= 0) return -1;
    const pid_t r = process::wait_worker(pid_, st, options, usage);
    if (r == pid_) pid_ = -1;
    return r;
}

const char* worker_memory::map_shared(const shared_ref& /*ref*/) {
    throw wire_error("cojob: a worker's response names a shared array; only requests do");
}

arena_payload::~arena_payload() {
    arena_->forget_pages();
    arena_flag::release(*held_);
}

const char* arena_payload::data() { return arena_->view(sizeof(frame_header) + bytes_) + sizeof(frame_header); }

void arena_payload::copy_out(std::size_t offset, std::size_t n, piece_sink sink, void* ctx) {
    if (offset > bytes_ || n > bytes_ - offset) throw wire_error("cojob: a read past the end of a worker's arena");
    arena_->copy_out(sizeof(frame_header) + offset, n, sink, ctx);
}

void arena_payload::copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) {
    memory_->copy(address, n, sink, ctx);
}

namespace arena_flag {

void wait_released(std::atomic<std::uint32_t>& held) noexcept {
    // The parent decodes a response as soon as it sees it: spin a little first.
    for (int i = 0; i < 2000 && held.load(std::memory_order_acquire) != 0; ++i) {
    }
    for (;;) {
        std::uint32_t v = held.load(std::memory_order_acquire);
        if (v == 0) return;
        // Say that a waiter sleeps (2), so that the parent wakes it; a release in between
        // fails the exchange, and the loop sees it.
        if (v == 1 && !held.compare_exchange_strong(v, 2, std::memory_order_acq_rel)) continue;
        const timespec limit{0, 100'000'000};  // re-check now and then, whatever happens to wakes
        process::futex_wait(held, 2, limit);
    }
}

void release(std::atomic<std::uint32_t>& held) noexcept {
    // A system call only when the worker sleeps on it.
    if (held.exchange(0, std::memory_order_acq_rel) == 2) process::futex_wake(held);
}

}  // namespace arena_flag

}  // namespace cojob::detail
