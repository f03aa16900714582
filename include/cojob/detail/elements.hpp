// cojob/detail/elements.hpp - storage made ready before it is filled: absent pages made present
// in one system call (a call's task lists, batch results and result vector), huge pages, and
// appending elements of a vector of numbers from raw bytes without zeroing them first (the
// process backend's large results and the cache archive's vectors are read this way).
#pragma once

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <vector>

namespace cojob::detail {

/// Asks for transparent huge pages over the whole 2 MiB pages inside [p, p + bytes): filling
/// a fresh multi-megabyte vector then takes a few page faults instead of thousands, which
/// halves its cost on this kind of machine. Best effort.
void advise_huge_pages(void* p, std::size_t bytes) noexcept;

/// Storage this large is worth the advice (a system call) before it is filled.
inline constexpr std::size_t huge_fill_bytes = std::size_t{4} << 20;

/// Makes the pages of [p, p + bytes) that are not in memory yet present and writable, a run of
/// them per system call, without changing what the range holds. Fresh heap memory otherwise
/// costs a page fault per 4 KiB when first written, and a fault costs far more than the
/// system call's share of a page (on a virtual machine, about 20 times more). Finding which
/// pages are absent costs a few microseconds for megabytes, so it is worth calling on any
/// buffer that may be fresh before it is filled; ranges under populate_bytes are left alone.
/// Best effort: a kernel without MADV_POPULATE_WRITE (before 5.14) leaves the faults.
void populate_absent(const void* p, std::size_t bytes) noexcept;
inline constexpr std::size_t populate_bytes = std::size_t{64} << 10;

/// A container that keeps its elements in one array (std::vector<bool> does not).
template <class V>
concept one_array = requires(V& v) { v.data(); };

/// v.reserve(n), and the spare capacity made present (populate_absent) when that moved v's
/// storage: a buffer about to be filled.
template <class V>
void reserve_present(V& v, std::size_t n) {
    if constexpr (one_array<V>) {
        const auto* before = v.data();
        v.reserve(n);
        if (v.data() != before)
            populate_absent(v.data() + v.size(), (v.capacity() - v.size()) * sizeof(*v.data()));
    } else {
        v.reserve(n);
    }
}

/// Keeps the reserved storage of a vector that is appended to in runs made present
/// (populate_absent) ahead of its end: at least an eighth of its capacity at a time, so that a
/// run costs a system call only now and then.
class present_ahead {
public:
    /// The next n elements of v, as far as its capacity reaches, are present.
    template <class V>
    void room(V& v, std::size_t n) noexcept {
        if constexpr (one_array<V>) {
            if (v.data() != data_) {  // other storage: nothing of it is known yet
                data_ = v.data();
                ready_ = 0;
            }
            const std::size_t want = std::min(v.size() + n, v.capacity());
            if (want <= ready_) return;
            const std::size_t from = std::max(ready_, v.size());
            const std::size_t to = std::min(std::max(want, from + v.capacity() / 8), v.capacity());
            populate_absent(v.data() + from, (to - from) * sizeof(*v.data()));
            ready_ = to;
        }
    }

private:
    const void* data_ = nullptr;
    std::size_t ready_ = 0;  ///< elements from data_ on that are present
};

/// v.reserve(n), with huge pages asked for when that is large (advise_huge_pages): a vector of
/// results about to be filled.
template <class V>
void reserve_huge(V& v, std::size_t n) {
    v.reserve(n);
    if constexpr (one_array<V>)
        if (n * sizeof(*v.data()) >= huge_fill_bytes) advise_huge_pages(v.data(), n * sizeof(*v.data()));
}

/// While it lives, the fresh storage [p, p + bytes) that the caller is about to fill from its
/// front is made cheaper to fill (how is compiled in src/elements.cpp). Best effort.
class fresh_storage {
public:
    fresh_storage(void* p, std::size_t bytes) noexcept;
    ~fresh_storage();
    fresh_storage(const fresh_storage&) = delete;
    fresh_storage& operator=(const fresh_storage&) = delete;

private:
    void* helper_ = nullptr;
};

/// Empties `v`, reserves `count` elements, and runs `fill()`, which appends them into storage
/// made ready for it (fresh_storage).
template <class E, class A, class Fill>
void fill_fresh(std::vector<E, A>& v, std::size_t count, Fill fill) {
    v.clear();
    v.reserve(count);
    const fresh_storage ready(v.data(), count * sizeof(E));
    fill();
}

/// Reads elements of E from bytes that need not be aligned for E (a random-access iterator
/// for `vector::insert`, which then copies without first zeroing the new elements).
template <class E>
struct unaligned_reader {
    using iterator_category = std::random_access_iterator_tag;
    using value_type = E;
    using difference_type = std::ptrdiff_t;
    using pointer = const E*;
    using reference = E;

    const char* p = nullptr;

    E operator*() const noexcept {
        E e;
        std::memcpy(&e, p, sizeof e);
        return e;
    }
    E operator[](difference_type d) const noexcept { return *(*this + d); }
    unaligned_reader& operator++() noexcept { return *this += 1; }
    unaligned_reader operator++(int) noexcept {
        auto t = *this;
        *this += 1;
        return t;
    }
    unaligned_reader& operator--() noexcept { return *this -= 1; }
    unaligned_reader operator--(int) noexcept {
        auto t = *this;
        *this -= 1;
        return t;
    }
    unaligned_reader& operator+=(difference_type d) noexcept {
        p += d * static_cast<difference_type>(sizeof(E));
        return *this;
    }
    unaligned_reader& operator-=(difference_type d) noexcept { return *this += -d; }
    friend unaligned_reader operator+(unaligned_reader i, difference_type d) noexcept { return i += d; }
    friend unaligned_reader operator+(difference_type d, unaligned_reader i) noexcept { return i += d; }
    friend unaligned_reader operator-(unaligned_reader i, difference_type d) noexcept { return i -= d; }
    friend difference_type operator-(const unaligned_reader& a, const unaligned_reader& b) noexcept {
        return (a.p - b.p) / static_cast<difference_type>(sizeof(E));
    }
    friend bool operator==(const unaligned_reader& a, const unaligned_reader& b) noexcept { return a.p == b.p; }
    friend auto operator<=>(const unaligned_reader& a, const unaligned_reader& b) noexcept { return a.p <=> b.p; }
};

/// Appends bytes holding whole elements of E, not necessarily aligned, to a std::vector<E, A>
/// (shaped as a piece_sink of shared_arrays.hpp; `ctx` is the vector).
template <class E, class A>
void append_elements(void* ctx, const char* p, std::size_t n) {
    auto& v = *static_cast<std::vector<E, A>*>(ctx);
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(E) == 0) {
        // Aligned bytes are elements already: insert copies them with memmove, which is what
        // large vectors need (the element loop below runs at half its speed or less).
        const E* first = reinterpret_cast<const E*>(p);
        v.insert(v.end(), first, first + n / sizeof(E));
    } else {
        v.insert(v.end(), unaligned_reader<E>{p}, unaligned_reader<E>{p + n});
    }
}

}  // namespace cojob::detail
