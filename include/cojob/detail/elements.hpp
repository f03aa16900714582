// cojob/detail/elements.hpp - appending elements of a vector of numbers from raw bytes without
// zeroing them first, into storage made ready for it: the process backend's large results and
// the cache archive's vectors (dumps, memory's entries) are read this way.
#pragma once

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
