// src/dump_format.hpp - private: the header of a dump file and its checked reading, shared by
// the reader and writer (persist.cpp) and the full check (persist_verify.cpp).
#pragma once

#include <cojob/persist.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace cojob::detail {

/// 3: raw payloads carry a checksum (flag_checksum); 2: arrays under 64 bytes start on a 16-byte
/// boundary; 1 left them unaligned. All three are read.
inline constexpr std::uint32_t dump_format_version = 3;
inline constexpr std::uint32_t dump_flag_zstd = 1;
inline constexpr std::uint32_t dump_flag_array = 2;
/// `payload_checksum` holds XXH3-64 of a raw payload. Cleared when the file is mapped writable.
inline constexpr std::uint32_t dump_flag_checksum = 4;
inline constexpr std::uint64_t dump_max_payload = std::uint64_t(1) << 40;

struct dump_header {
    char magic[8];
    std::uint32_t format;
    std::uint32_t flags;
    std::uint64_t type_key;
    std::uint64_t element_key;
    std::uint64_t element_size;
    std::uint64_t payload_bytes;  ///< after decompression
    std::uint64_t stored_bytes;   ///< in the file, after the header
    std::uint64_t payload_checksum;  ///< XXH3-64 of the stored bytes (zstd, or raw with flag_checksum)
    char type_name[160];  ///< mangled, for messages
    std::uint64_t header_checksum;
};
static_assert(sizeof(dump_header) <= dump_header_bytes);

/// The 8 bytes a dump file starts with.
[[nodiscard]] const char* dump_magic() noexcept;
/// XXH3-64 of the header's bytes before `header_checksum`.
[[nodiscard]] std::uint64_t dump_header_checksum(const dump_header& h) noexcept;

/// An open file descriptor, closed on destruction.
struct fd_closer {
    int fd = -1;
    fd_closer() = default;
    fd_closer(const fd_closer&) = delete;
    fd_closer& operator=(const fd_closer&) = delete;
    ~fd_closer();
};

/// @throws cojob::error "<who>: <path> <what>".
[[noreturn]] void dump_failure(const char* who, const std::filesystem::path& path, const std::string& what);

/// Reads `size` bytes at `at`; false on a short read or an error.
[[nodiscard]] bool read_at(int fd, void* out, std::size_t size, std::uint64_t at);

/// Opens a dump file (read-only) and checks its header: magic, format, header checksum, sizes,
/// and, when `expected` is given, the type.
/// @throws cojob::error starting with `who` and naming the path.
dump_header read_dump_header(const char* who, const std::filesystem::path& path, const dump_type* expected,
                             fd_closer& fd, std::uint64_t& file_size);

/// Where the array of a raw array dump starts in its file, and how many elements it has.
/// @throws cojob::error when the count does not fit the file.
void array_extent(const char* who, const std::filesystem::path& path, const dump_header& h, int fd,
                  std::uint64_t file_size, std::uint64_t& offset, std::uint64_t& count);

[[nodiscard]] inline array_layout layout_of(const dump_header& h) noexcept {
    return h.format == 1 ? array_layout::first_format() : array_layout{};
}

}  // namespace cojob::detail
