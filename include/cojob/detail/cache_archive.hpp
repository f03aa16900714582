// cojob/detail/cache_archive.hpp - the cereal archive pair `memory` stores results and hashes
// arguments with: raw native bytes like cereal's binary archive, except that arrays start on an
// aligned offset of the entry file (array_layout), so a mapped file serves them in place.
#pragma once

#include <cojob/detail/cereal_safe.hpp>
#include <cojob/detail/elements.hpp>

#include <cereal/cereal.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace cojob::detail {

/// A 128-bit hash (XXH3-128), low and high halves.
struct key128 {
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    friend bool operator==(const key128&, const key128&) = default;
};

/// Streaming XXH3-128, compiled so that public headers need no xxhash.h.
class key_hasher {
public:
    key_hasher();
    ~key_hasher();
    key_hasher(const key_hasher&) = delete;
    key_hasher& operator=(const key_hasher&) = delete;

    void update(const void* data, std::size_t size) noexcept;
    [[nodiscard]] key128 digest() const noexcept;

private:
    void* state_;
};

/// Where arrays start in an entry or dump file: from 64 bytes up on a 64-byte boundary (a cache
/// line), smaller ones on a 16-byte boundary (enough for any arithmetic element and for SIMD
/// loads, as joblib promises for every array). Files of the first format left arrays under 64
/// bytes unaligned; their readers use `first_format`.
struct array_layout {
    static constexpr std::size_t large_bytes = 64;
    std::size_t small_alignment = 16;

    [[nodiscard]] constexpr std::size_t alignment(std::size_t bytes) const noexcept {
        return bytes >= large_bytes ? large_bytes : bytes > 0 ? small_alignment : 1;
    }
    /// Zero bytes written before an array of `bytes` bytes at file offset `position`.
    [[nodiscard]] constexpr std::size_t padding(std::size_t position, std::size_t bytes) const noexcept {
        const std::size_t a = alignment(bytes);
        return (a - position % a) % a;
    }
    static constexpr array_layout first_format() noexcept { return {1}; }
};

/// Where `cache_output_archive` writes: a byte buffer (an entry being stored; it starts with
/// room for the entry header so positions are file offsets), or a `key_hasher` (small writes
/// gathered, large ones hashed in place). Only a buffer aligns arrays.
class byte_sink {
public:
    /// Arrays this large are referred to, not copied, by a gathering sink.
    static constexpr std::size_t gather_bytes = 64 * 1024;

    /// An array a gathering sink refers to: its bytes come after the buffer's first `at` bytes
    /// (and after the arrays gathered before it), and before the buffer's next ones.
    struct gathered {
        std::size_t at;
        const char* data;
        std::size_t size;
    };
    struct gather_t {};
    static constexpr gather_t gather{};

    /// A buffer that starts with `reserved` zero bytes (the entry header).
    explicit byte_sink(std::size_t reserved) : buffer_(reserved, '\0') {}
    /// The same, gathering: arrays of gather_bytes or more stay where they are and are only
    /// listed (`gathered_arrays()`), so they must outlive the sink's bytes (`cojob::dump` writes them to
    /// its file straight from the value).
    byte_sink(std::size_t reserved, gather_t) : gathering_(true), buffer_(reserved, '\0') {}
    /// A sink that feeds `hasher`.
    explicit byte_sink(key_hasher& hasher) : hasher_(&hasher) {}

    void write(const void* data, std::size_t size) {
        if (hasher_ && size >= direct_bytes) {
            flush();
            hasher_->update(data, size);
            return;
        }
        buffer_.append(static_cast<const char*>(data), size);
        if (hasher_ && buffer_.size() >= flush_bytes) flush();
    }

    void write_array(const void* data, std::size_t size) {
        if (!hasher_) {  // a key is not a file: nothing to align
            buffer_.append(array_layout{}.padding(buffer_.size() + gathered_bytes_, size), '\0');
            if (gathering_ && size >= gather_bytes) {
                gathered_.push_back({buffer_.size(), static_cast<const char*>(data), size});
                gathered_bytes_ += size;
                return;
            }
        }
        write(data, size);
    }

    /// Hands gathered bytes to the hasher (no-op for a buffer).
    void flush() {
        if (hasher_ && !buffer_.empty()) {
            hasher_->update(buffer_.data(), buffer_.size());
            buffer_.clear();
        }
    }

    /// The bytes written, except the gathered arrays.
    [[nodiscard]] std::string& buffer() noexcept { return buffer_; }
    [[nodiscard]] const std::string& buffer() const noexcept { return buffer_; }
    /// The gathered arrays, in order (none unless gathering).
    [[nodiscard]] const std::vector<gathered>& gathered_arrays() const noexcept { return gathered_; }
    /// All the bytes written: the buffer's and the gathered arrays'.
    [[nodiscard]] std::size_t size() const noexcept { return buffer_.size() + gathered_bytes_; }

private:
    static constexpr std::size_t direct_bytes = 256;
    static constexpr std::size_t flush_bytes = 4096;
    key_hasher* hasher_ = nullptr;
    bool gathering_ = false;
    std::string buffer_;
    std::vector<gathered> gathered_;
    std::size_t gathered_bytes_ = 0;
};

/// Reads what a buffer `byte_sink` wrote; `offset` is the position of `begin` in that buffer
/// (the entry header's size), so array padding is skipped exactly where it was written, by the
/// layout of the file's format.
class byte_source {
public:
    byte_source(const char* begin, const char* end, std::size_t offset, array_layout layout = {}) noexcept
        : begin_(begin), cur_(begin), end_(end), offset_(offset), layout_(layout) {}

    void read(void* out, std::size_t size) {
        if (size > static_cast<std::size_t>(end_ - cur_)) truncated();
        if (size) std::memcpy(out, cur_, size);
        cur_ += size;
    }

    void read_array(void* out, std::size_t size) {
        const char* p = take_array(size);
        if (size) std::memcpy(out, p, size);
    }

    /// The next array's `size` bytes where they are (past the padding read_array skips).
    const char* take_array(std::size_t size) {
        const std::size_t pad = layout_.padding(offset_ + static_cast<std::size_t>(cur_ - begin_), size);
        if (pad > static_cast<std::size_t>(end_ - cur_)) truncated();
        cur_ += pad;
        if (size > static_cast<std::size_t>(end_ - cur_)) truncated();
        const char* p = cur_;
        cur_ += size;
        return p;
    }

    [[nodiscard]] bool at_end() const noexcept { return cur_ == end_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - cur_); }

    /// @throws cojob::error ("truncated").
    [[noreturn]] static void truncated();
    /// @throws cojob::error: a container claims `count` elements with only `left` bytes after it.
    [[noreturn]] static void implausible_count(std::uint64_t count, std::size_t left);

private:
    const char* begin_;
    const char* cur_;
    const char* end_;
    std::size_t offset_;
    array_layout layout_;
};

class cache_output_archive : public cereal::OutputArchive<cache_output_archive, cereal::AllowEmptyClassElision> {
public:
    explicit cache_output_archive(byte_sink& sink)
        : cereal::OutputArchive<cache_output_archive, cereal::AllowEmptyClassElision>(this), sink_(&sink) {}
    void save_bytes(const void* data, std::size_t size) { sink_->write(data, size); }
    void save_array(const void* data, std::size_t size) { sink_->write_array(data, size); }

private:
    byte_sink* sink_;
};

class cache_input_archive : public cereal::InputArchive<cache_input_archive, cereal::AllowEmptyClassElision> {
public:
    explicit cache_input_archive(byte_source& source)
        : cereal::InputArchive<cache_input_archive, cereal::AllowEmptyClassElision>(this), source_(&source) {}
    void load_bytes(void* data, std::size_t size) { source_->read(data, size); }
    void load_array(void* data, std::size_t size) { source_->read_array(data, size); }
    const char* array_in_place(std::size_t size) { return source_->take_array(size); }
    /// Bytes not read yet.
    [[nodiscard]] std::size_t remaining() const noexcept { return source_->remaining(); }

private:
    byte_source* source_;
};

// The archive's primitives, found by argument-dependent lookup from cereal's dispatch.
template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(cache_output_archive& ar, const T& t) {
    ar.save_bytes(std::addressof(t), sizeof t);
}
template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(cache_input_archive& ar, T& t) {
    ar.load_bytes(std::addressof(t), sizeof t);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(cache_output_archive& ar, cereal::NameValuePair<T>& t) {
    ar(t.value);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(cache_input_archive& ar, cereal::NameValuePair<T>& t) {
    ar(t.value);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(cache_output_archive& ar, cereal::SizeTag<T>& t) {
    ar(t.size);
}
/// Every element a container writes takes a byte or more, so a count above the bytes left is
/// damage: refused here, before cereal's containers size themselves by it (allocation stays
/// within a small multiple of the input). Containers of empty classes (which write nothing) are
/// held to the same bound.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(cache_input_archive& ar, cereal::SizeTag<T>& t) {
    ar(t.size);
    if (static_cast<std::uint64_t>(t.size) > ar.remaining())
        byte_source::implausible_count(static_cast<std::uint64_t>(t.size), ar.remaining());
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(cache_output_archive& ar, const cereal::BinaryData<T>& bd) {
    ar.save_array(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(cache_input_archive& ar, cereal::BinaryData<T>& bd) {
    ar.load_array(bd.data, static_cast<std::size_t>(bd.size));
}

/// A vector of numbers loads in one pass: its storage is reserved (fill_fresh) and filled from
/// the bytes where they are (cereal's own load zeroes the elements, then copies over them).
template <class E, class A>
    requires std::is_arithmetic_v<E> && (!std::is_same_v<E, bool>)
void CEREAL_LOAD_FUNCTION_NAME(cache_input_archive& ar, std::vector<E, A>& v) {
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    if (n > v.max_size() || n > SIZE_MAX / sizeof(E)) byte_source::truncated();
    const std::size_t count = static_cast<std::size_t>(n);
    const char* p = ar.array_in_place(count * sizeof(E));
    fill_fresh(v, count, [&] { append_elements<E, A>(&v, p, count * sizeof(E)); });
}

/// A vector of other values grows as its elements are read (cereal's own load sizes it from the
/// count first: a count of small elements, say one byte each, would make it allocate the full
/// size of each element, which may be many times larger).
template <class T, class A>
    requires(!std::is_arithmetic_v<T>) && std::is_default_constructible_v<T>
void CEREAL_LOAD_FUNCTION_NAME(cache_input_archive& ar, std::vector<T, A>& v) {
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    v.clear();
    v.reserve(static_cast<std::size_t>(std::min<cereal::size_type>(n, 4096 / sizeof(T) + 1)));
    for (cereal::size_type i = 0; i < n; ++i) ar(v.emplace_back());
}

/// Whether `memory` can store a T (results) or key on it (arguments).
template <class T>
inline constexpr bool cache_storable = cereal::traits::is_output_serializable<T, cache_output_archive>::value &&
                                       cereal::traits::is_input_serializable<T, cache_input_archive>::value;
template <class T>
inline constexpr bool cache_keyable =
    cereal_safe<T>::value && cereal::traits::is_output_serializable<T, cache_output_archive>::value;

}  // namespace cojob::detail

CEREAL_REGISTER_ARCHIVE(cojob::detail::cache_output_archive)
CEREAL_REGISTER_ARCHIVE(cojob::detail::cache_input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(cojob::detail::cache_input_archive, cojob::detail::cache_output_archive)
