// tests/fuzz/targets.hpp - the fuzz targets: each feeds bytes to one of cojob's decoders and
// knows real encodings to start from. libFuzzer drives them (libfuzzer_main.cpp, clang
// builds with -Dfuzz=true); the plain driver (driver.cpp) replays files and checks seeds in
// every build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cojob_fuzz {

/// Decodes one input. Returns true when it decoded as a whole, false when the decoder refused
/// it with a cojob::error (expected for most inputs). Anything else, a crash, a sanitizer
/// report or another exception, is a defect.
using entry = bool (*)(const std::uint8_t* data, std::size_t size);
/// Appends inputs made from real encodings, each of which the entry decodes as a whole.
using seed_maker = void (*)(std::vector<std::string>& seeds);

struct target {
    const char* name;
    entry run;
    seed_maker seeds;
};

/// Every target, in a fixed order.
[[nodiscard]] std::span<const target> all_targets();
/// The target called `name`, or null.
[[nodiscard]] const target* find_target(std::string_view name);

// ---- what the targets share (common.cpp) ----------------------------------------------------

/// The first byte of every input says how to use the rest.
enum input_flags : std::uint8_t {
    fix_checksums = 1,  ///< recompute the checksums a file or frame carries, so mutations reach the payload
    fix_sizes = 2,      ///< also make its size fields agree with the bytes given
    map_file = 4,       ///< memory entries: map the file instead of reading it
};

/// The path of a file in a private temporary directory (removed at exit), rewritten with each
/// input: the readers under test take paths.
[[nodiscard]] std::string scratch_file(const char* name);
/// Writes `size` bytes to `path`, replacing it.
void write_file(const std::string& path, const void* data, std::size_t size);
/// The bytes of a file.
[[nodiscard]] std::string read_file(const std::string& path);
/// Writes the target's seeds to `dir` (created), one file each; returns how many.
std::size_t write_seeds(const target& t, const std::string& dir);
/// `flags` followed by `bytes`.
[[nodiscard]] std::string with_flags(std::uint8_t flags, std::string_view bytes);
/// XXH3-64 (the checksum of dumps, entries and frames).
[[nodiscard]] std::uint64_t xxh64(const void* data, std::size_t size) noexcept;

// ---- the entries, one group per file ---------------------------------------------------------

bool frame_worker(const std::uint8_t* data, std::size_t size);  // frame_targets.cpp
bool frame_parent(const std::uint8_t* data, std::size_t size);
void frame_worker_seeds(std::vector<std::string>& seeds);
void frame_parent_seeds(std::vector<std::string>& seeds);

bool load_vector(const std::uint8_t* data, std::size_t size);  // dump_targets.cpp
bool load_map(const std::uint8_t* data, std::size_t size);
bool load_tuple(const std::uint8_t* data, std::size_t size);
bool load_struct(const std::uint8_t* data, std::size_t size);
bool load_mmap(const std::uint8_t* data, std::size_t size);
bool verify_dump(const std::uint8_t* data, std::size_t size);
void load_vector_seeds(std::vector<std::string>& seeds);
void load_mmap_seeds(std::vector<std::string>& seeds);
void load_map_seeds(std::vector<std::string>& seeds);
void load_tuple_seeds(std::vector<std::string>& seeds);
void load_struct_seeds(std::vector<std::string>& seeds);
void verify_dump_seeds(std::vector<std::string>& seeds);

bool memory_entry(const std::uint8_t* data, std::size_t size);  // entry_targets.cpp
void memory_entry_seeds(std::vector<std::string>& seeds);

bool pre_dispatch(const std::uint8_t* data, std::size_t size);  // text_targets.cpp
void pre_dispatch_seeds(std::vector<std::string>& seeds);

}  // namespace cojob_fuzz
