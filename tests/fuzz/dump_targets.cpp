// tests/fuzz/dump_targets.cpp - cojob::load<T> of a few value types, cojob::load_mmap and
// cojob::verify, on dump files made from the input.
#include "targets.hpp"

#include "dump_format.hpp"

#include <cojob/errors.hpp>
#include <cojob/persist.hpp>

#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace cojob_fuzz {

namespace {

using cojob::detail::dump_header;
using cojob::detail::dump_header_bytes;

/// A user's own type, serialized by a member function.
struct sample {
    int id = 0;
    std::string name;
    std::vector<float> weights;
    std::map<std::string, std::int64_t> counts;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(id, name, weights, counts);
    }
};

using string_map = std::map<std::string, std::vector<double>>;
using labelled = std::tuple<std::string, std::vector<std::int32_t>, double>;

/// Writes the input's file: its bytes after the flags, with the checksums and sizes made to
/// agree when the flags ask.
std::string dump_file(const std::uint8_t* data, std::size_t size) {
    const std::string path = scratch_file("value.cojob");
    std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    if ((data[0] & (fix_checksums | fix_sizes)) && bytes.size() >= dump_header_bytes) {
        dump_header h;
        std::memcpy(&h, bytes.data(), sizeof h);
        const std::uint64_t stored = bytes.size() - dump_header_bytes;
        if (data[0] & fix_sizes) {
            h.stored_bytes = stored;
            if (!(h.flags & cojob::detail::dump_flag_zstd)) h.payload_bytes = stored;
        }
        if (data[0] & fix_checksums) h.payload_checksum = xxh64(bytes.data() + dump_header_bytes, stored);
        h.header_checksum = cojob::detail::dump_header_checksum(h);
        std::memcpy(bytes.data(), &h, sizeof h);
    }
    write_file(path, bytes.data(), bytes.size());
    return path;
}

template <class T>
bool load_as(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return false;
    const std::string path = dump_file(data, size);
    try {
        (void)cojob::load<T>(path);
        return true;
    } catch (const cojob::error&) {
        return false;
    }
}

/// The dumps of `value`, raw and (unless `raw_only`) compressed.
template <class T>
void add_dumps(std::vector<std::string>& seeds, const T& value, bool raw_only = false) {
    const std::string path = scratch_file("seed.cojob");
    for (const int level : {0, 1}) {
        if (raw_only && level > 0) break;
        cojob::dump(value, path, level);
        const std::string bytes = read_file(path);
        seeds.push_back(with_flags(0, bytes));
        seeds.push_back(with_flags(fix_checksums | fix_sizes, bytes));
    }
}

std::vector<double> ramp(std::size_t n) {
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = 0.25 * static_cast<double>(i);
    return v;
}

}  // namespace

bool load_vector(const std::uint8_t* data, std::size_t size) { return load_as<std::vector<double>>(data, size); }
bool load_map(const std::uint8_t* data, std::size_t size) { return load_as<string_map>(data, size); }
bool load_tuple(const std::uint8_t* data, std::size_t size) { return load_as<labelled>(data, size); }
bool load_struct(const std::uint8_t* data, std::size_t size) { return load_as<sample>(data, size); }

bool load_mmap(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return false;
    const std::string path = dump_file(data, size);
    try {
        const cojob::memmap<double> m = cojob::load_mmap<double>(path);
        double sum = 0;  // every element is readable
        for (const double x : m) sum += x;
        const volatile double kept = sum;
        (void)kept;
        return true;
    } catch (const cojob::error&) {
        return false;
    }
}

bool verify_dump(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return false;
    const std::string path = dump_file(data, size);
    try {
        (void)cojob::verify(path);
        return true;
    } catch (const cojob::error&) {
        return false;
    }
}

void load_vector_seeds(std::vector<std::string>& seeds) {
    for (const std::size_t n : {0, 1, 7, 8, 300}) add_dumps(seeds, ramp(n));
}

void load_mmap_seeds(std::vector<std::string>& seeds) {
    for (const std::size_t n : {0, 1, 7, 8, 300}) add_dumps(seeds, ramp(n), true);
}

void load_map_seeds(std::vector<std::string>& seeds) {
    add_dumps(seeds, string_map{});
    add_dumps(seeds, string_map{{"a", ramp(3)}, {"", {}}, {"long key with spaces", ramp(20)}});
}

void load_tuple_seeds(std::vector<std::string>& seeds) {
    add_dumps(seeds, labelled{"", {}, 0.0});
    add_dumps(seeds, labelled{"seven", {1, 2, 3, 4, 5, 6, 7}, 2.5});
}

void load_struct_seeds(std::vector<std::string>& seeds) {
    add_dumps(seeds, sample{});
    add_dumps(seeds, sample{3, "three", {0.5f, 1.5f, 2.5f}, {{"x", 1}, {"y", -2}}});
    add_dumps(seeds, sample{2, "b", std::vector<float>(40, 1.f), {{"z", 9}, {"", 0}}});
}

void verify_dump_seeds(std::vector<std::string>& seeds) {
    load_vector_seeds(seeds);
    load_struct_seeds(seeds);
}

}  // namespace cojob_fuzz
