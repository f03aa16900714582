// cojob/persist.hpp - `cojob::dump` / `cojob::load` (joblib's persistence): a value in one
// file, its arrays stored aligned so that `cojob::load_mmap` maps them without copying.
#pragma once

#include <cojob/detail/cache_archive.hpp>
#include <cojob/memmap.hpp>
#include <cojob/mmap_mode.hpp>

#include <cereal/types/array.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace cojob {

namespace detail {

std::uint64_t type_name_key(const char* mangled) noexcept;  // src/persist.cpp

/// What a dump file says about the value it holds.
struct dump_type {
    std::uint64_t type_key = 0;     ///< hash of the value type's name
    std::uint64_t element_key = 0;  ///< arrays: hash of the element type's name, else 0
    std::uint64_t element_size = 0;
    const char* type_name = "";     ///< mangled; demangled in messages
};

/// Element type of the arrays whose dump is one aligned block (and can be mapped): vectors,
/// spans and memmaps of arithmetic types. They are all written alike, so any of them loads as
/// any other.
template <class T>
struct dump_array {
    using element = void;
};
template <class E>
    requires std::is_arithmetic_v<E>
struct dump_array<std::vector<E>> {
    using element = E;
};
template <class E, std::size_t N>
    requires std::is_arithmetic_v<std::remove_const_t<E>>
struct dump_array<std::span<E, N>> {
    using element = std::remove_const_t<E>;
};
template <class E>
    requires std::is_arithmetic_v<E>
struct dump_array<memmap<E>> {
    using element = E;
};

template <class T>
dump_type dump_type_of() {
    dump_type t;
    using E = typename dump_array<T>::element;
    t.type_name = typeid(T).name();
    if constexpr (!std::is_void_v<E>) {
        t.element_key = type_name_key(typeid(E).name());
        t.element_size = sizeof(E);
        t.type_name = typeid(std::vector<E>).name();
    }
    t.type_key = type_name_key(t.type_name);
    return t;
}

/// Bytes reserved at the start of a dump file for its header (a multiple of the archive's
/// 64-byte array alignment, so arrays are aligned in the file).
inline constexpr std::size_t dump_header_bytes = 256;

// ---- compiled in src/persist.cpp --------------------------------------------------------
/// Fills the header room of the sink's buffer, compresses at `level`, and writes the sink's
/// bytes to `path` atomically; gathered arrays go to the file (or to zstd) from where they are.
void write_dump(const std::filesystem::path& path, byte_sink& sink, int level, const dump_type& type);

/// A dump file read back (decompressed when needed) and checked against the expected type.
class dump_reader {
public:
    /// Maps a raw file (read-only, private) and decompresses a compressed one.
    dump_reader(const std::filesystem::path& path, const dump_type& expected);
    ~dump_reader();
    dump_reader(const dump_reader&) = delete;
    dump_reader& operator=(const dump_reader&) = delete;
    [[nodiscard]] byte_source source() const noexcept {
        return {payload_, payload_ + payload_bytes_, dump_header_bytes, layout_};
    }
    /// @throws cojob::error naming the path when bytes are left over.
    void finish(const byte_source& s) const;
    /// @throws cojob::error naming the path and `why` (the payload did not parse as the type).
    [[noreturn]] void damaged(const char* why) const;

private:
    std::string path_;
    std::string decompressed_;     ///< a compressed file's payload
    void* mapped_ = nullptr;       ///< a raw file, whole
    std::size_t mapped_bytes_ = 0;
    const char* payload_ = nullptr;
    std::size_t payload_bytes_ = 0;
    array_layout layout_;  ///< of the file's format
};

/// Where a dumped array's elements start in its file and how many there are. `writable`: the
/// array is about to be mapped for writing, so the file's payload checksum is dropped first.
/// @throws cojob::error when the file is compressed, not an array of that element, or damaged.
void locate_array(const std::filesystem::path& path, const dump_type& expected, bool writable, std::uint64_t& offset,
                  std::uint64_t& count);

// Spans and memmaps are written like vectors.
template <class E, std::size_t N>
void CEREAL_SAVE_FUNCTION_NAME(cache_output_archive& ar, const std::span<E, N>& s) {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
    if constexpr (std::is_arithmetic_v<std::remove_const_t<E>>)
        ar(cereal::binary_data(s.data(), s.size_bytes()));
    else
        for (const auto& e : s) ar(e);
}
template <class E>
void CEREAL_SAVE_FUNCTION_NAME(cache_output_archive& ar, const memmap<E>& m) {
    ar(m.view());
}

}  // namespace detail

/// Writes `value` to `path` (joblib's `dump`), replacing the file atomically (a reader sees the
/// old file or the new one). Any value cereal serializes; `std::vector`s of arithmetic types,
/// `std::span`s and `cojob::memmap`s of them are stored as one aligned block: on 64 bytes from 64
/// bytes up, on 16 below.
///
/// @param compress 0 (default): raw, mappable by `load_mmap`; 1-19: zstd at that level (`true`
///                 is level 1). Compressed files load with `load` only.
/// @throws cojob::error naming the path or the bad `compress` value; the old file, if any, is
///         left as it was.
template <class T>
void dump(const T& value, const std::filesystem::path& path, int compress = 0) {
    detail::byte_sink sink(detail::dump_header_bytes, detail::byte_sink::gather);  // large arrays are not copied
    {
        detail::cache_output_archive ar(sink);
        ar(value);
    }
    detail::write_dump(path, sink, compress, detail::dump_type_of<T>());
}

/// Reads back a value `dump` wrote (joblib's `load` without mmap_mode). A file written from an
/// array (vector, span or memmap of E) loads as `std::vector<E>`. The payload's checksum is
/// checked first (raw files written by older builds, and raw files mapped for writing, have
/// none), then every length in it against the bytes that remain, before anything is allocated.
/// @throws cojob::error naming the path when the file is missing, is not a dump, holds another
///         type (named in the message), or is damaged (checksum, lengths, trailing bytes).
template <class T>
[[nodiscard]] T load(const std::filesystem::path& path) {
    static_assert(std::is_default_constructible_v<T>, "cojob::load<T>: T must be default constructible");
    detail::dump_reader reader(path, detail::dump_type_of<T>());
    detail::byte_source s = reader.source();
    T value{};
    try {
        detail::cache_input_archive ar(s);
        ar(value);
    } catch (const std::exception& e) {
        reader.damaged(e.what());
    }
    reader.finish(s);
    return value;
}

/// Maps the array a raw (uncompressed) `dump` of a vector, span or memmap of `E` wrote, in
/// place: nothing is read or copied until touched (joblib's `load(path, mmap_mode=...)`).
/// `w_plus` keeps the array's place in the file but zeroes it (numpy's "create or overwrite").
/// Only the header is checked (magic, format, its own checksum, the type, and that the array
/// fits the file): the elements are not read, so a damaged element is not noticed; `verify`
/// checks a file in full. Mapping `r_plus` or `w_plus` drops the file's payload checksum
/// (the writes change the payload in place, as joblib's do), so later loads do not check it.
/// @throws cojob::error naming the path when the file is compressed (load it with
///         `load<std::vector<E>>` instead, which decompresses), holds something else, or is damaged.
template <class E>
[[nodiscard]] memmap<E> load_mmap(const std::filesystem::path& path, mmap_mode mode = mmap_mode::r) {
    static_assert(std::is_arithmetic_v<E>, "cojob::load_mmap<E>: E is the element type, an arithmetic type");
    std::uint64_t offset = 0, count = 0;
    const bool writable = mode == mmap_mode::r_plus || mode == mmap_mode::w_plus;
    detail::locate_array(path, detail::dump_type_of<std::vector<E>>(), writable, offset, count);
    return memmap<E>(path.string(), mode, {static_cast<std::size_t>(count)}, offset);
}

/// Checks a dump file in full without loading its value: the header, the sizes, the payload
/// checksum over every byte (raw or compressed), that a compressed payload decompresses to its
/// announced size (streamed: memory stays small), and that an array fits the file. Raw files
/// written by older builds, and raw files mapped `r_plus` / `w_plus`, carry no payload checksum:
/// for those only the structure is checked, and `verify` returns false.
/// @returns true when a payload checksum was checked and matched.
/// @throws cojob::error naming the path and what is wrong.
bool verify(const std::filesystem::path& path);

/// `load_mmap<E>(path, mode)`, spelled as joblib's `load(path, mmap_mode=...)`: E is the
/// element type, and the result a `memmap<E>`.
template <class E>
[[nodiscard]] memmap<E> load(const std::filesystem::path& path, mmap_mode mode) {
    return load_mmap<E>(path, mode);
}

}  // namespace cojob
