// src/memory_internal.hpp - private: what the parts of cojob::memory share (the store of one
// `memory` object, code identity, the entry file format and file helpers).
#pragma once

#include <cojob/detail/cache_call.hpp>
#include <cojob/memory.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace cojob::detail {

// ---- code identity (memory_code.cpp) -----------------------------------------------------------

/// What a callable's code version is derived from.
struct code_facts {
    std::string symbol;             ///< demangled symbol with its signature, "" when none was found
    std::string source;             ///< e.g. "machine code of f(int), 96 bytes"
    key128 version{};               ///< the code version
    bool detected = false;          ///< false: code changes cannot be detected
    std::string module;             ///< file the code lives in (for identities without a symbol)
    std::uintptr_t module_offset = 0;
};

/// Finds the callable's symbol and hashes its machine code (x86-64: displacements to code and
/// data outside the function masked, read-only constants it loads mixed in); falls back to the
/// build-id of the module, then to nothing.
[[nodiscard]] code_facts inspect_code(const callable_facts& c);

[[nodiscard]] key128 hash128(std::string_view bytes) noexcept;
[[nodiscard]] std::uint64_t hash64(const void* data, std::size_t size) noexcept;
/// 32 lowercase hex digits, high half first.
[[nodiscard]] std::string hex(const key128& k);

// ---- the store of one `memory` object (memory.cpp) ---------------------------------------------

class memory_store {
public:
    memory_store(std::filesystem::path location, memory_options options);

    const std::filesystem::path location;
    const std::string root;  ///< <location>/cojob
    const memory_options options;
    const std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();

    /// Reports `message` through `on_warning` (or stderr) unless `topic` was reported before.
    void warn(const std::string& topic, const std::string& message);
    /// Writes verbose output to stdout in one piece.
    static void print(const std::string& text);
    /// Creates <location> and <location>/cojob (with a .gitignore); false after a warning.
    bool ensure_root();

private:
    std::mutex mutex_;
    std::set<std::string> warned_;
};

// ---- the entry file format and file helpers (memory_files.cpp) ---------------------------------

/// 2: arrays under 64 bytes start on a 16-byte boundary; 1 (still read) left them unaligned.
inline constexpr std::uint32_t entry_format = 2;
inline constexpr std::uint32_t flag_zstd = 1;

/// The first 128 bytes of output.bin (native byte order).
struct entry_header {
    char magic[8];                  ///< "COJOBMEM"
    std::uint32_t format;           ///< entry_format
    std::uint32_t flags;            ///< flag_zstd
    std::uint64_t key_low;
    std::uint64_t key_high;
    std::uint64_t payload_bytes;    ///< the payload's size once decompressed
    std::uint64_t stored_bytes;     ///< bytes after the header in the file
    std::uint64_t payload_checksum; ///< XXH3-64 of the stored bytes
    std::int64_t time_ns;           ///< system clock, since the epoch
    std::int64_t duration_ns;
    std::uint64_t header_checksum;  ///< XXH3-64 of the bytes before this field
    char reserved[48];
};
static_assert(sizeof(entry_header) == function_cache::header_bytes);

/// An entry file read (or mapped) whole and checked.
class entry_file {
public:
    entry_file() = default;
    entry_file(const entry_file&) = delete;
    entry_file& operator=(const entry_file&) = delete;
    ~entry_file();

    enum class status { ok, missing, corrupt };
    /// Opens, reads (or maps, when `map` and the file is large) and checks the file against
    /// `key`. On `corrupt`, `why()` says what is wrong.
    status open(const std::string& path, const key128& key, bool map);
    [[nodiscard]] const std::string& why() const noexcept { return why_; }
    [[nodiscard]] const entry_header& header() const noexcept { return header_; }
    /// The payload (decompressed when needed); valid until destruction.
    [[nodiscard]] const char* payload() const noexcept { return payload_; }
    [[nodiscard]] std::size_t payload_size() const noexcept { return payload_size_; }
    /// Where the payload's arrays start, by the entry's format.
    [[nodiscard]] array_layout layout() const noexcept {
        return header_.format == 1 ? array_layout::first_format() : array_layout{};
    }
    /// Marks the file as just used (its mtime), for reduce_size's LRU order.
    void touch() noexcept;

private:
    int fd_ = -1;
    void* map_ = nullptr;
    std::size_t map_size_ = 0;
    std::string buffer_;
    std::string decompressed_;
    entry_header header_{};
    const char* payload_ = nullptr;
    std::size_t payload_size_ = 0;
    std::int64_t used_ns_ = 0;
    std::string why_;
};

/// Fills the header room of `sink` (header room + payload, arrays gathered or not) for an
/// entry. With `level` > 0 it compresses the payload with zstd and, when that pays, returns the
/// entry to write (header and frame); else it returns an empty string and the entry is the
/// sink's bytes.
[[nodiscard]] std::string seal_entry(byte_sink& sink, const key128& key, int level, std::chrono::system_clock::time_point time,
                                     std::chrono::duration<double> took);

/// Sets `path`'s mtime (its last use, for reduce_size) from the same clock as `touch`.
void stamp_use(const std::string& path) noexcept;
/// Writes `data` to `path` atomically: a temp file next to it, then rename. Returns 0 or errno.
[[nodiscard]] int write_atomically(const std::string& path, std::string_view data);
/// mkdir that accepts an existing directory. Returns 0 or errno.
[[nodiscard]] int make_directory(const std::string& path);
/// Removes a directory tree by renaming it into `trash_root` first (so nobody sees a half
/// removed entry), then deleting it. Missing paths are fine.
void remove_tree(const std::string& path, const std::string& trash_root);
/// Escapes `text` for a JSON string (without the quotes).
[[nodiscard]] std::string json_escape(std::string_view text);
/// "2.0s, 0.0min" (joblib's format_time).
[[nodiscard]] std::string format_duration(double seconds);

}  // namespace cojob::detail
