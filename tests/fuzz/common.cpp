// tests/fuzz/common.cpp - the table of fuzz targets and what they share: scratch files and
// the checksum.
#include "targets.hpp"

#include "scratch_dir.hpp"

#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace cojob_fuzz {

namespace {

constexpr target table[] = {
    {"frame_worker", &frame_worker, &frame_worker_seeds},
    {"frame_parent", &frame_parent, &frame_parent_seeds},
    {"load_vector", &load_vector, &load_vector_seeds},
    {"load_map", &load_map, &load_map_seeds},
    {"load_tuple", &load_tuple, &load_tuple_seeds},
    {"load_struct", &load_struct, &load_struct_seeds},
    {"load_mmap", &load_mmap, &load_mmap_seeds},
    {"verify", &verify_dump, &verify_dump_seeds},
    {"memory_entry", &memory_entry, &memory_entry_seeds},
    {"pre_dispatch", &pre_dispatch, &pre_dispatch_seeds},
};

}  // namespace

std::span<const target> all_targets() { return table; }

const target* find_target(std::string_view name) {
    for (const target& t : table)
        if (name == t.name) return &t;
    return nullptr;
}

std::string scratch_file(const char* name) {
    static const kit::scratch_dir dir("cojob-fuzz");
    return dir.file(name);
}

void write_file(const std::string& path, const void* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("cojob fuzz: cannot write " + path);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t write_seeds(const target& t, const std::string& dir) {
    std::vector<std::string> seeds;
    t.seeds(seeds);
    std::filesystem::create_directories(dir);
    for (std::size_t i = 0; i < seeds.size(); ++i) {
        const std::filesystem::path file = std::filesystem::path(dir) / ("seed-" + std::to_string(i));
        write_file(file.string(), seeds[i].data(), seeds[i].size());
    }
    return seeds.size();
}

std::string with_flags(std::uint8_t flags, std::string_view bytes) {
    std::string s(1, static_cast<char>(flags));
    s += bytes;
    return s;
}

std::uint64_t xxh64(const void* data, std::size_t size) noexcept { return XXH3_64bits(data, size); }

}  // namespace cojob_fuzz
