// src/elements.cpp - storage made ready for a large fill from bytes (cojob/detail/elements.hpp):
// huge pages, absent pages made present in one system call, and a helper thread that faults in
// the back half while the caller copies.
#include <cojob/detail/elements.hpp>

#include "fresh_storage.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <new>
#include <thread>

namespace cojob::detail {

namespace {

/// The whole units (a power of two) inside [p, p + bytes): what madvise and mincore take.
struct aligned_span {
    std::uintptr_t begin = 0, end = 0;
    aligned_span(const void* p, std::size_t bytes, std::uintptr_t unit) noexcept
        : begin((reinterpret_cast<std::uintptr_t>(p) + unit - 1) & ~(unit - 1)),
          end((reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(unit - 1)) {}
    [[nodiscard]] bool empty() const noexcept { return end <= begin; }
};

std::uintptr_t page_size() noexcept {
    static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    return page;
}

}  // namespace

void advise_huge_pages(void* p, std::size_t bytes) noexcept {
    const aligned_span huge(p, bytes, std::uintptr_t{2} << 20);
    if (!huge.empty()) (void)::madvise(reinterpret_cast<void*>(huge.begin), huge.end - huge.begin, MADV_HUGEPAGE);
}

void populate_absent(const void* p, std::size_t bytes) noexcept {
    if (bytes < populate_bytes) return;
    static std::atomic<bool> refused{false};  // the kernel has no MADV_POPULATE_WRITE
    if (refused.load(std::memory_order_relaxed)) return;
    const std::uintptr_t page = page_size();  // mincore's unit
    const aligned_span range(p, bytes, page);
    // Which pages are present, a window at a time; each run of absent ones populated at once.
    constexpr std::size_t window = 1024;
    unsigned char present[window];
    for (auto begin = range.begin; begin < range.end;) {
        const std::size_t pages = std::min<std::size_t>(window, (range.end - begin) / page);
        if (::mincore(reinterpret_cast<void*>(begin), pages * page, present) != 0) return;
        for (std::size_t i = 0; i < pages;) {
            if (present[i] & 1) {
                ++i;
                continue;
            }
            std::size_t j = i + 1;
            while (j < pages && !(present[j] & 1)) ++j;
            if (::madvise(reinterpret_cast<void*>(begin + i * page), (j - i) * page, MADV_POPULATE_WRITE) != 0) {
                if (errno == EINVAL) refused.store(true, std::memory_order_relaxed);
                return;
            }
            i = j;
        }
        begin += pages * page;
    }
}

back_half_faulting::back_half_faulting(void* p, std::size_t bytes) noexcept {
    if (bytes < fresh_fill_bytes) return;
    const aligned_span back(static_cast<char*>(p) + bytes / 2, bytes - bytes / 2, page_size());
    if (back.empty()) return;
    const auto begin = back.begin, end = back.end;
    try {
        // A kernel before 5.14 refuses the advice (EINVAL): the copy then faults the pages
        // itself, as without the helper.
        helper_ = new std::thread([begin, end] {
            (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
        });
    } catch (...) {
        helper_ = nullptr;  // no thread (or no memory for one): the copy faults them itself
    }
}

back_half_faulting::~back_half_faulting() {
    auto* helper = static_cast<std::thread*>(helper_);
    if (!helper) return;
    helper->join();
    delete helper;
}

fresh_storage::fresh_storage(void* p, std::size_t bytes) noexcept {
    advise_huge_pages(p, bytes);
    if (bytes < back_half_faulting::fresh_fill_bytes) return;
    try {
        helper_ = new back_half_faulting(p, bytes);
    } catch (...) {
        helper_ = nullptr;  // no memory for it: the copy faults the pages itself
    }
}

fresh_storage::~fresh_storage() { delete static_cast<back_half_faulting*>(helper_); }

}  // namespace cojob::detail
