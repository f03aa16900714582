// cojob/memmap.hpp - `cojob::memmap<T>`: an array of T whose bytes live in a file, mapped into
// memory (numpy's `np.memmap`). Workers of the process backend receive it by reference.
#pragma once

#include <cojob/mmap_mode.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cojob {

namespace detail {

/// One mapping of a byte range of a file; the copies of a memmap share it (src/memmap.cpp).
class file_mapping {
public:
    /// Maps `bytes` bytes of `path` from `offset` (`bytes` < 0: up to the end of the file,
    /// a whole number of `element_size`). `w_plus` creates or truncates the file first.
    /// @throws cojob::error naming the path and what failed.
    static std::shared_ptr<file_mapping> open(const std::string& path, mmap_mode mode, std::uint64_t offset,
                                              std::int64_t bytes, std::size_t element_size, std::size_t alignment);
    file_mapping(const file_mapping&) = delete;
    file_mapping& operator=(const file_mapping&) = delete;
    ~file_mapping();

    [[nodiscard]] char* data() const noexcept { return data_; }
    [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }
    /// Writes dirty pages of a shared mapping back to the file (msync); no-op otherwise.
    void flush() const;
    /// @throws cojob::error: the mapping is read-only (mode r).
    [[noreturn]] static void refuse_write(const std::string& path);

private:
    file_mapping() = default;
    void* base_ = nullptr;  ///< page-aligned start of the mapping
    std::size_t length_ = 0;
    char* data_ = nullptr;
    std::uint64_t bytes_ = 0;
    bool shared_writable_ = false;
};

/// Tags memmap's constructor over a mapping already made (cojob's wire code).
struct adopt_mapping_t {
    explicit adopt_mapping_t() = default;
};
inline constexpr adopt_mapping_t adopt_mapping{};

}  // namespace detail

/// An array of `T` backed by a file (numpy's `np.memmap`): `shape` gives its dimensions
/// (row-major, the product is `size()`), `offset` where it starts in the file.
///
/// @param path   the file.
/// @param mode   `r` (default), `r_plus`, `w_plus` or `c`; see `cojob::mmap_mode`.
/// @param shape  required for `w_plus` (the file is created if missing and sized to `offset + size()*sizeof(T)`
///               bytes; the bytes before `offset` are kept, the array starts zeroed); otherwise optional: empty means one dimension running to the end of
///               the file, which must then hold a whole number of T.
/// @param offset in bytes, a multiple of `alignof(T)`.
/// @throws cojob::error naming the path on a missing or short file, a bad offset or shape.
///
/// Copies share the mapping (as numpy views do): a write through one is seen by the others, and
/// the file stays mapped until the last copy goes. On `backend::processes` a memmap travels by
/// reference (path, offset, shape, mode) and each worker maps the file itself, so in mode
/// `r_plus` or `w_plus` what the workers write reaches the parent's array; in mode `c` it does not.
///
/// @par Read-only enforcement
/// In mode `r` the pages are mapped read-only: `mutable_span()` throws `cojob::error`, and a write
/// through `data()` or `operator[]` faults (SIGSEGV), as numpy's "assignment destination is read-only".
///
/// @par Thread safety
/// Reading from many threads is safe; concurrent writes to the same elements race as for any array.
///
/// @par Example
/// @code
/// cojob::memmap<double> out("out.bin", cojob::mmap_mode::w_plus, {95});
/// par(tasks_that_write_into(out));   // workers fill it; the parent sees the values
/// @endcode
template <class T>
class memmap {
    static_assert(std::is_trivially_copyable_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T>,
                  "cojob::memmap<T>: T must be a trivially copyable, non-const type");

public:
    /// The element type.
    using value_type = T;
    /// The type of sizes and indices.
    using size_type = std::size_t;

    /// An empty array mapped to no file.
    memmap() = default;

    /// Maps `path` in `mode` as an array of `shape` starting `offset` bytes into the file; an
    /// empty shape takes the rest of the file. @throws cojob::error naming the file on failure.
    memmap(std::string path, mmap_mode mode = mmap_mode::r, std::vector<std::size_t> shape = {},
           std::uint64_t offset = 0)
        : path_(std::move(path)), mode_(mode), offset_(offset), shape_(std::move(shape)) {
        std::int64_t bytes = -1;
        if (!shape_.empty()) {
            std::size_t n = 1;
            for (std::size_t d : shape_) n *= d;
            bytes = static_cast<std::int64_t>(n * sizeof(T));
        }
        map_ = detail::file_mapping::open(path_, mode_, offset_, bytes, sizeof(T), alignof(T));
        if (shape_.empty()) shape_ = {static_cast<std::size_t>(map_->bytes() / sizeof(T))};
        size_ = static_cast<std::size_t>(map_->bytes() / sizeof(T));
    }

    /// For cojob's wire code: the same array over `map`, a mapping of `path` made already.
    memmap(detail::adopt_mapping_t, std::string path, mmap_mode mode, std::vector<std::size_t> shape, std::uint64_t offset,
           std::shared_ptr<detail::file_mapping> map)
        : path_(std::move(path)), mode_(mode), offset_(offset), shape_(std::move(shape)), map_(std::move(map)) {
        if (shape_.empty()) shape_ = {static_cast<std::size_t>(map_->bytes() / sizeof(T))};
        size_ = static_cast<std::size_t>(map_->bytes() / sizeof(T));
    }

    /// The mapped file.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    /// The mode it was opened with.
    [[nodiscard]] mmap_mode mode() const noexcept { return mode_; }
    /// Where the elements start in the file, in bytes.
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
    /// The dimensions given, or the element count when none were.
    [[nodiscard]] const std::vector<std::size_t>& shape() const noexcept { return shape_; }
    /// The number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The size of the elements in bytes.
    [[nodiscard]] std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
    /// Whether there are no elements.
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    /// Whether writes are allowed (every mode but `r`).
    [[nodiscard]] bool writable() const noexcept { return mode_ != mmap_mode::r; }

    /// The first element (null when mapped to no file).
    [[nodiscard]] const T* data() const noexcept { return map_ ? reinterpret_cast<const T*>(map_->data()) : nullptr; }
    /// The first element, writable (null when mapped to no file).
    [[nodiscard]] T* data() noexcept { return map_ ? reinterpret_cast<T*>(map_->data()) : nullptr; }
    /// Element `i`, unchecked.
    [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return data()[i]; }
    /// Element `i`, writable, unchecked.
    [[nodiscard]] T& operator[](std::size_t i) noexcept { return data()[i]; }
    /// The elements as a range.
    [[nodiscard]] const T* begin() const noexcept { return data(); }
    /// The end of the elements.
    [[nodiscard]] const T* end() const noexcept { return data() + size_; }
    /// The elements as a writable range.
    [[nodiscard]] T* begin() noexcept { return data(); }
    /// The end of the writable range.
    [[nodiscard]] T* end() noexcept { return data() + size_; }

    /// The elements, read-only.
    [[nodiscard]] std::span<const T> view() const noexcept { return {data(), size_}; }
    /// The elements, read-only, as `view()`.
    operator std::span<const T>() const noexcept { return view(); }  // NOLINT: a view, like vector's
    /// The elements, writable. @throws cojob::error in mode `r`.
    [[nodiscard]] std::span<T> mutable_span() {
        if (!writable()) detail::file_mapping::refuse_write(path_);
        return {data(), size_};
    }

    /// Writes modified pages back to the file (modes `r_plus`, `w_plus`); they reach it anyway
    /// when the last copy is unmapped, and other mappings see them at once.
    void flush() const {
        if (map_) map_->flush();
    }

private:
    std::string path_;
    mmap_mode mode_ = mmap_mode::r;
    std::uint64_t offset_ = 0;
    std::vector<std::size_t> shape_;
    std::size_t size_ = 0;
    std::shared_ptr<detail::file_mapping> map_;
};

}  // namespace cojob
