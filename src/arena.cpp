// src/arena.cpp - the result arena: a memfd that grows by ftruncate + mremap, and the futex
// that hands it from the worker to the parent and back.
#include "arena.hpp"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <ctime>
#include <string>
#include <system_error>

namespace cojob::detail {

namespace {

constexpr std::size_t granule = 2u << 20;  // grow in 2 MiB steps (and let THP use them)

std::size_t round_up(std::size_t n) { return (n + granule - 1) / granule * granule; }

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t value, const timespec* timeout) noexcept {
    // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, value, timeout, nullptr, 0);
}

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

void shared_arena::copy_out(std::size_t offset, std::size_t n, void (*sink)(void*, const char*, std::size_t),
                            void* ctx) {
    // Small enough to stay in the cache between the read and the sink's copy.
    constexpr std::size_t piece = 256 * 1024;
    thread_local std::unique_ptr<char[]> buffer;
    if (!buffer) buffer.reset(new char[piece]);
    while (n > 0) {
        const std::size_t want = std::min(n, piece);
        const ssize_t r = ::pread(fd_, buffer.get(), want, static_cast<off_t>(offset));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail("cojob: reading a result arena");
        if (r == 0) throw wire_error("cojob: a worker's arena ended inside a response");
        sink(ctx, buffer.get(), static_cast<std::size_t>(r));
        offset += static_cast<std::size_t>(r);
        n -= static_cast<std::size_t>(r);
    }
}

namespace arena_flag {

void wait_released(std::atomic<std::uint32_t>& held) noexcept {
    // The parent decodes a response as soon as it reads its header: spin a little first.
    for (int i = 0; i < 2000 && held.load(std::memory_order_acquire) != 0; ++i) {
    }
    while (held.load(std::memory_order_acquire) != 0) {
        const timespec limit{0, 100'000'000};  // re-check now and then, whatever happens to wakes
        (void)futex(held, FUTEX_WAIT, 1, &limit);
    }
}

void release(std::atomic<std::uint32_t>& held) noexcept {
    held.store(0, std::memory_order_release);
    (void)futex(held, FUTEX_WAKE, 1, nullptr);
}

}  // namespace arena_flag

}  // namespace cojob::detail
