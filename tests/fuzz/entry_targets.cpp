// tests/fuzz/entry_targets.cpp - the reader of `memory`'s cache entries: the entry file's
// checks, then the stored result through the checking input archive.
#include "targets.hpp"

#include "memory_internal.hpp"

#include <cojob/errors.hpp>

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace cojob_fuzz {

namespace {

using cojob::detail::entry_header;
using result = std::map<std::string, std::vector<double>>;

/// Writes the input's entry file, with checksums and sizes made to agree when the flags ask;
/// the key the reader expects is the one the header names.
std::string entry_file_of(const std::uint8_t* data, std::size_t size, cojob::detail::key128& key) {
    const std::string path = scratch_file("output.bin");
    std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    if (bytes.size() >= sizeof(entry_header)) {
        entry_header h;
        std::memcpy(&h, bytes.data(), sizeof h);
        key = {h.key_low, h.key_high};
        if (data[0] & (fix_checksums | fix_sizes)) {
            const std::uint64_t stored = bytes.size() - sizeof h;
            if (data[0] & fix_sizes) {
                h.stored_bytes = stored;
                if (!(h.flags & cojob::detail::flag_zstd)) h.payload_bytes = stored;
            }
            if (data[0] & fix_checksums) h.payload_checksum = xxh64(bytes.data() + sizeof h, stored);
            h.header_checksum = xxh64(&h, offsetof(entry_header, header_checksum));
            std::memcpy(bytes.data(), &h, sizeof h);
        }
    }
    write_file(path, bytes.data(), bytes.size());
    return path;
}

}  // namespace

bool memory_entry(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return false;
    cojob::detail::key128 key;
    const std::string path = entry_file_of(data, size, key);
    cojob::detail::entry_file file;
    if (file.open(path, key, (data[0] & map_file) != 0) != cojob::detail::entry_file::status::ok) return false;
    try {
        cojob::detail::byte_source source(file.payload(), file.payload() + file.payload_size(),
                                          cojob::detail::function_cache::header_bytes, file.layout());
        result value;
        {
            cojob::detail::cache_input_archive ar(source);
            ar(value);
        }
        return source.at_end();
    } catch (const cojob::error&) {
        return false;
    }
}

void memory_entry_seeds(std::vector<std::string>& seeds) {
    const result values[] = {
        {},
        {{"one", {1.0}}, {"", {}}},
        {{"big", std::vector<double>(20000, 0.5)}, {"small", {1, 2, 3}}},
    };
    for (const result& v : values) {
        for (const int level : {0, 3}) {
            cojob::detail::byte_sink sink(cojob::detail::function_cache::header_bytes);
            {
                cojob::detail::cache_output_archive ar(sink);
                ar(v);
            }
            const cojob::detail::key128 key{0x1234, 0x5678};
            std::string packed = cojob::detail::seal_entry(sink, key, level, std::chrono::system_clock::now(),
                                                           std::chrono::milliseconds(5));
            const std::string& bytes = packed.empty() ? sink.buffer() : packed;
            for (const std::uint8_t flags : {0, fix_checksums | fix_sizes, fix_checksums | map_file})
                seeds.push_back(with_flags(flags, bytes));
        }
    }
}

}  // namespace cojob_fuzz
