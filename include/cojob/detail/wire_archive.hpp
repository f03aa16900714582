// cojob/detail/wire_archive.hpp - the bytes of the process wire: a growable byte buffer (on
// the heap or in a worker's shared result arena) and the cereal archives that write and read
// raw host-order values into it, every read bounds-checked.
#pragma once

#include <cojob/errors.hpp>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cojob/detail/shared_arrays.hpp>  // spans, memmaps and large blocks

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace cojob::detail {

/// A malformed, truncated or foreign frame or payload: the public cojob::decode_error.
using wire_error = cojob::decode_error;

/// Somewhere other than the heap that a byte_buffer can keep its bytes in (the worker's
/// shared result arena, src/process/arena.hpp).
class buffer_storage {
public:
    /// Makes the storage hold `want` bytes or more (growing) or about `want` (shrinking),
    /// keeping its first `keep` bytes; returns where the bytes now start and sets `capacity`.
    virtual char* resize_storage(std::size_t want, std::size_t keep, std::size_t& capacity) = 0;

protected:
    buffer_storage() = default;
    buffer_storage(const buffer_storage&) = default;
    buffer_storage& operator=(const buffer_storage&) = default;
    ~buffer_storage() = default;
};

/// A growable byte buffer that does not zero what it is about to overwrite. Its bytes live on
/// the heap, or in a `buffer_storage` given at construction.
class byte_buffer {
public:
    byte_buffer() = default;
    explicit byte_buffer(buffer_storage& storage) noexcept : storage_(&storage) {}
    byte_buffer(const byte_buffer&) = delete;
    byte_buffer& operator=(const byte_buffer&) = delete;
    byte_buffer(byte_buffer&& other) noexcept
        : owned_(std::move(other.owned_)),
          data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          capacity_(std::exchange(other.capacity_, 0)),
          storage_(std::exchange(other.storage_, nullptr)) {}
    byte_buffer& operator=(byte_buffer&& other) noexcept {
        if (this != &other) {
            owned_ = std::move(other.owned_);
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
            capacity_ = std::exchange(other.capacity_, 0);
            storage_ = std::exchange(other.storage_, nullptr);
        }
        return *this;
    }
    ~byte_buffer() = default;

    [[nodiscard]] char* data() noexcept { return data_; }
    [[nodiscard]] const char* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    void clear() noexcept { size_ = 0; }
    void reserve(std::size_t n) {
        if (n <= capacity_) return;
        const std::size_t cap = std::max(n, capacity_ * 2);
        if (storage_) {
            data_ = storage_->resize_storage(cap, size_, capacity_);
            return;
        }
        std::unique_ptr<char[]> bigger(new char[cap]);
        if (size_) std::memcpy(bigger.get(), data_, size_);
        owned_ = std::move(bigger);
        data_ = owned_.get();
        capacity_ = cap;
    }
    /// Makes the size n (growing keeps the old bytes; new ones are indeterminate).
    void resize(std::size_t n) {
        reserve(n);
        size_ = n;
    }
    void append(const void* p, std::size_t n) {
        if (size_ + n > capacity_) reserve(size_ + n);
        if (n) std::memcpy(data_ + size_, p, n);
        size_ += n;
    }
    /// Drops the first n bytes.
    void consume(std::size_t n) noexcept {
        if (n >= size_) {
            size_ = 0;
            return;
        }
        std::memmove(data_, data_ + n, size_ - n);
        size_ -= n;
    }
    /// Frees the memory when it is much larger than what is usually needed. A storage (the
    /// result arena) shrinks to about the bytes it holds and keeps them; a heap buffer is
    /// freed only when empty.
    void shrink_if_above(std::size_t limit) noexcept {
        if (capacity_ <= limit) return;
        if (storage_) {
            try {
                data_ = storage_->resize_storage(size_, size_, capacity_);
            } catch (...) {  // keeping the room is harmless
            }
            return;
        }
        if (size_ != 0) return;
        owned_.reset();
        data_ = nullptr;
        capacity_ = 0;
    }

private:
    std::unique_ptr<char[]> owned_;
    char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
    buffer_storage* storage_ = nullptr;
};

/// cereal output archive appending raw host-order bytes to a byte_buffer (both ends are the
/// same binary on the same machine, so no byte swapping or padding rules are needed). With a
/// placer, large arrays are placed in shared memory and sent by reference (shared_arrays.hpp).
class wire_out : public cereal::OutputArchive<wire_out, cereal::AllowEmptyClassElision> {
public:
    explicit wire_out(byte_buffer& b, array_placer* placer = nullptr)
        : OutputArchive(this), buf_(&b), base_(b.size()), placer_(placer) {}
    void write(const void* p, std::size_t n) { buf_->append(p, n); }
    [[nodiscard]] byte_buffer& buffer() noexcept { return *buf_; }
    /// Bytes written since this archive was made (the payload's start, for alignment).
    [[nodiscard]] std::size_t position() const noexcept { return buf_->size() - base_; }
    /// Where large arrays go, or null: every byte inline.
    [[nodiscard]] array_placer* placer() const noexcept { return placer_; }

private:
    byte_buffer* buf_;
    std::size_t base_;
    array_placer* placer_;
};

/// cereal input archive reading from a byte range; every read is bounds-checked and throws
/// `wire_error` past the end. Bytes the payload names but does not hold (shared arrays, lent
/// results) come from its outside_bytes.
class wire_in : public cereal::InputArchive<wire_in, cereal::AllowEmptyClassElision> {
public:
    wire_in(const char* p, std::size_t n, outside_bytes* source = nullptr)
        : InputArchive(this), begin_(p), p_(p), end_(p + n), source_(source) {}
    void read(void* out, std::size_t n) {
        if (static_cast<std::size_t>(end_ - p_) < n) throw wire_error("cojob: truncated payload (wanted " +
                                                                      std::to_string(n) + " more bytes)");
        if (n) std::memcpy(out, p_, n);
        p_ += n;
    }
    [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    /// Bytes read so far (mirrors wire_out::position).
    [[nodiscard]] std::size_t position() const noexcept { return static_cast<std::size_t>(p_ - begin_); }
    /// Passes over n bytes and returns where they start (zero-copy reads of spans).
    const char* take(std::size_t n) {
        if (remaining() < n) throw wire_error("cojob: truncated payload (wanted " + std::to_string(n) + " more bytes)");
        return std::exchange(p_, p_ + n);
    }
    void skip(std::size_t n) { (void)take(n); }
    /// Copies the next n bytes without passing over them; false when fewer remain.
    bool peek(void* out, std::size_t n) const noexcept {
        if (remaining() < n) return false;
        std::memcpy(out, p_, n);
        return true;
    }
    /// Where bytes outside the payload come from. @throws wire_error when it was given none.
    [[nodiscard]] outside_bytes& source() const {
        if (!source_) no_outside_bytes();
        return *source_;
    }

private:
    const char* begin_;
    const char* p_;
    const char* end_;
    outside_bytes* source_;
};

template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(wire_out& ar, const T& v) {
    ar.write(&v, sizeof v);
}
template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(wire_in& ar, T& v) {
    ar.read(&v, sizeof v);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_out& ar, const cereal::NameValuePair<T>& nvp) {
    ar(nvp.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(wire_in& ar, cereal::NameValuePair<T>& nvp) {
    ar(nvp.value);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_out& ar, const cereal::SizeTag<T>& tag) {
    const auto n = static_cast<std::uint64_t>(tag.size);
    ar.write(&n, sizeof n);
}
/// Every element takes a byte or more of the payload (blocks of numbers and strings, whose
/// bytes may be elsewhere, are read below without a size tag), so a count above the bytes left
/// is refused before a container sizes itself by it.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(wire_in& ar, cereal::SizeTag<T>& tag) {
    std::uint64_t n = 0;
    ar.read(&n, sizeof n);
    if (n > ar.remaining())
        throw wire_error("cojob: implausible element count " + std::to_string(n) + " in payload (" +
                         std::to_string(ar.remaining()) + " bytes left)");
    tag.size = static_cast<std::remove_reference_t<T>>(n);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(wire_out& ar, const cereal::BinaryData<T>& bd) {
    save_blob(ar, bd.data, static_cast<std::size_t>(bd.size));  // large ones may be shared
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(wire_in& ar, cereal::BinaryData<T>& bd) {
    load_blob(ar, bd.data, static_cast<std::size_t>(bd.size));
}

/// The count of a block of numbers or characters, checked against where its bytes are
/// (take_blob) before the container is sized.
template <class E>
const E* take_elements(wire_in& ar, std::size_t& count) {
    std::uint64_t n = 0;
    ar.read(&n, sizeof n);
    if (n > (std::uint64_t{1} << 40) / sizeof(E)) throw_size_mismatch();
    count = static_cast<std::size_t>(n);
    return reinterpret_cast<const E*>(take_blob(ar, count * sizeof(E)));
}
template <class E, class A>
    requires std::is_arithmetic_v<E> && (!std::is_same_v<E, bool>)
void CEREAL_LOAD_FUNCTION_NAME(wire_in& ar, std::vector<E, A>& v) {
    std::size_t n = 0;
    const E* p = take_elements<E>(ar, n);
    v.resize(n);
    if (n) std::memcpy(v.data(), p, n * sizeof(E));
}
template <class C, class T, class A>
    requires std::is_arithmetic_v<C>
void CEREAL_LOAD_FUNCTION_NAME(wire_in& ar, std::basic_string<C, T, A>& s) {
    std::size_t n = 0;
    const C* p = take_elements<C>(ar, n);
    s.resize(n);
    if (n) std::memcpy(s.data(), p, n * sizeof(C));
}

}  // namespace cojob::detail

CEREAL_REGISTER_ARCHIVE(cojob::detail::wire_out)
CEREAL_REGISTER_ARCHIVE(cojob::detail::wire_in)
CEREAL_SETUP_ARCHIVE_TRAITS(cojob::detail::wire_in, cojob::detail::wire_out)
