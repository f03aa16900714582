// src/fresh_storage.hpp - private: how cojob::detail::fresh_storage makes fresh storage cheap to
// fill (compiled in src/elements.cpp; its helper is declared here for the tests; the huge-page
// advice, in cojob/detail/elements.hpp).
#pragma once

#include <cstddef>

namespace cojob::detail {

/// While it lives, a helper thread faults in the back half of [p, p + bytes), fresh storage
/// that the caller is about to fill from its front. The kernel clears a fresh page when it is
/// first touched, and for a vector filled from bytes in memory that clearing is about half the
/// cost; this way it runs beside the copy, on another CPU, instead of before each page's share
/// of it. The helper only populates pages that are absent (MADV_POPULATE_WRITE), so it never
/// changes what the range holds. Below fresh_fill_bytes, or when no thread can be started, it
/// does nothing. The destructor waits for the helper.
class back_half_faulting {
public:
    static constexpr std::size_t fresh_fill_bytes = std::size_t{4} << 20;
    back_half_faulting(void* p, std::size_t bytes) noexcept;
    ~back_half_faulting();
    back_half_faulting(const back_half_faulting&) = delete;
    back_half_faulting& operator=(const back_half_faulting&) = delete;

private:
    void* helper_ = nullptr;
};

}  // namespace cojob::detail
