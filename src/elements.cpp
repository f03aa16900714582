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

void advise_huge_pages(void* p, std::size_t bytes) noexcept {
    constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
    const auto begin = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) & ~(huge - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(huge - 1);
    if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

void populate_absent(const void* p, std::size_t bytes) noexcept {
    if (bytes < populate_bytes) return;
    static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));  // mincore's unit
    static std::atomic<bool> refused{false};  // the kernel has no MADV_POPULATE_WRITE
    if (refused.load(std::memory_order_relaxed)) return;
    auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
    // Which pages are present, a window at a time; each run of absent ones populated at once.
    constexpr std::size_t window = 1024;
    unsigned char present[window];
    while (begin < end) {
        const std::size_t pages = std::min<std::size_t>(window, (end - begin) / page);
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
    constexpr std::uintptr_t page = 4096;
    const auto begin = (reinterpret_cast<std::uintptr_t>(p) + bytes / 2 + page - 1) & ~(page - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
    if (end <= begin) return;
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
