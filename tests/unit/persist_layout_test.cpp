// tests/unit/persist_layout_test.cpp - where arrays lie in a dump file: every array on a 16-byte
// boundary of the file, from 64 bytes up on a 64-byte one, for every arithmetic element type and
// every size from 1 to 130 bytes; and files of the first format (small arrays unaligned) still
// load and map.
#include <cojob/persist.hpp>

#include <catch2/catch.hpp>

#include "scratch_dir.hpp"

#include <cereal/types/tuple.hpp>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

namespace {

template <class E>
void check_alignment_of_small_arrays() {
    kit::scratch_dir dir;
    const auto path = dir.file("a.cojob");
    for (std::size_t bytes = sizeof(E); bytes <= 130; bytes += sizeof(E)) {
        const std::size_t n = bytes / sizeof(E);
        INFO(n << " elements of " << sizeof(E) << " bytes");
        std::vector<E> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<E>(i % 100 + 1);
        cojob::dump(v, path);
        const auto m = cojob::load_mmap<E>(path);
        const std::size_t want = bytes >= 64 ? 64 : 16;
        CHECK(m.offset() % want == 0);
        CHECK(reinterpret_cast<std::uintptr_t>(m.data()) % want == 0);
        CHECK(std::vector<E>(m.begin(), m.end()) == v);
        CHECK(cojob::load<std::vector<E>>(path) == v);
    }
}

template <class... E>
void check_alignment_for() {
    (check_alignment_of_small_arrays<E>(), ...);
}

void write_hex(const std::string& path, const char* hex) {
    std::string bytes;
    for (const char* p = hex; p[0] && p[1]; p += 2) bytes.push_back(static_cast<char>(std::stoi(std::string(p, 2), nullptr, 16)));
    std::ofstream(path, std::ios::binary) << bytes;
}

// Written by the first format: a vector of three doubles (its array at offset 264, 8 mod 64),
// and a tuple of a vector of five ints, a string and a vector of twenty floats.
constexpr const char* format1_small =
    "434f4a4f42444d500100000002000000ae7d1aac84a74cb8caa7c7c97402f84508000000000000002000000000000000"
    "20000000000000000000000000000000537436766563746f724964536149644545000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000092b3c47673bd5dfe0000000000000000"
    "000000000000000000000000000000000300000000000000000000000000f83f00000000000004400000000000000c40";
constexpr const char* format1_tuple =
    "434f4a4f42444d5001000000000000000d64b657ad51a326000000000000000000000000000000009000000000000000"
    "900000000000000000000000000000005374357475706c65494a537436766563746f7249695361496945454e5374375f"
    "5f6378783131313262617369635f737472696e67496353743131636861725f7472616974734963455361496345454553"
    "305f49665361496645454545000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000955609e7ef43afa10000000000000000"
    "000000000000000000000000000000000500000000000000010000000200000003000000040000000500000005000000"
    "00000000736576656e14000000000000000000000000000000000000000000000000803e0000803e0000803e0000803e"
    "0000803e0000803e0000803e0000803e0000803e0000803e0000803e0000803e0000803e0000803e0000803e0000803e"
    "0000803e0000803e0000803e0000803e";

}  // namespace

TEST_CASE("every array of a dump lies on a 16-byte boundary, from 64 bytes up on a 64-byte one", "[persist][mmap]") {
    check_alignment_for<char, signed char, unsigned char, wchar_t, char8_t, char16_t, char32_t, short,
                        unsigned short, int, unsigned, long, unsigned long, long long, unsigned long long, float,
                        double, long double>();
}

TEST_CASE("small arrays inside a value are 16-byte aligned in the file too", "[persist][dump]") {
    kit::scratch_dir dir;
    const auto path = dir.file("t.cojob");
    using value_type = std::tuple<std::vector<char>, std::vector<double>, std::vector<short>>;
    const value_type value{{'a'}, {1, 2}, {3}};
    cojob::dump(value, path);
    CHECK(cojob::load<value_type>(path) == value);
    std::ifstream f(path, std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    // Each vector is its 8-byte count, zero padding up to a 16-byte boundary, then its elements.
    std::size_t at = cojob::detail::dump_header_bytes;
    for (std::size_t size : {std::size_t{1}, std::size_t{16}, std::size_t{2}}) {
        at += sizeof(std::uint64_t);
        at = (at + 15) / 16 * 16;
        at += size;
    }
    CHECK(bytes.size() == at);
}

TEST_CASE("dumps of the first format, small arrays unaligned, still load and map", "[persist][compat]") {
    kit::scratch_dir dir;
    write_hex(dir.file("small"), format1_small);
    CHECK(cojob::load<std::vector<double>>(dir.file("small")) == std::vector<double>{1.5, 2.5, 3.5});
    const auto m = cojob::load_mmap<double>(dir.file("small"));
    CHECK(m.offset() == 264);
    CHECK(std::vector<double>(m.begin(), m.end()) == std::vector<double>{1.5, 2.5, 3.5});

    write_hex(dir.file("tuple"), format1_tuple);
    using tuple = std::tuple<std::vector<int>, std::string, std::vector<float>>;
    CHECK(cojob::load<tuple>(dir.file("tuple")) == tuple{{1, 2, 3, 4, 5}, "seven", std::vector<float>(20, 0.25f)});
}
