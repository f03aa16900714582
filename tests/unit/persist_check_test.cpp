// tests/unit/persist_check_test.cpp - what protects a dump's reader from damaged and hostile
// bytes: the raw payload checksum, cojob::verify, writable maps dropping the checksum, and the
// checking input archive refusing lengths the bytes cannot hold.
#include <cojob/persist.hpp>

#include <cojob/errors.hpp>

#include <catch2/catch.hpp>

#include "kit.hpp"
#include "scratch_dir.hpp"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::vector<double> half_ramp_of(std::size_t n) {
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = 0.5 + static_cast<double>(i);
    return v;
}

/// Loads T from `payload` as the dump and entry readers do: the checking input archive over the
/// bytes after a header of `header` bytes.
template <class T>
T decode(const std::string& payload, std::size_t header = cojob::detail::dump_header_bytes) {
    cojob::detail::byte_source s(payload.data(), payload.data() + payload.size(), header);
    T value{};
    cojob::detail::cache_input_archive ar(s);
    ar(value);
    return value;
}

template <class T>
std::string encode(const T& value) {
    cojob::detail::byte_sink sink(cojob::detail::dump_header_bytes);
    {
        cojob::detail::cache_output_archive ar(sink);
        ar(value);
    }
    return sink.buffer().substr(cojob::detail::dump_header_bytes);
}

}  // namespace

TEST_CASE("a single bit flipped in a raw dump's data is refused by load, naming the file", "[persist][checksum][error]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp_of(1000), dir.file("good"));
    const std::string good = kit::raw_bytes(dir.file("good"));
    for (std::size_t at : {cojob::detail::dump_header_bytes + 64, good.size() / 2, good.size() - 1}) {
        for (int bit : {0, 7}) {
            CAPTURE(at, bit);
            std::string bytes = good;
            bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
            write_bytes(dir.file("flipped"), bytes);
            CHECK_THROWS_WITH(cojob::load<std::vector<double>>(dir.file("flipped")),
                              Catch::Contains("flipped") && Catch::Contains("checksum mismatch"));
            CHECK_THROWS_WITH(cojob::verify(dir.file("flipped")), Catch::Contains("flipped") && Catch::Contains("checksum"));
        }
    }
    CHECK(cojob::load<std::vector<double>>(dir.file("good")) == half_ramp_of(1000));
}

TEST_CASE("values other than arrays are checksummed too", "[persist][checksum][error]") {
    kit::scratch_dir dir;
    using value = std::map<std::string, std::vector<double>>;
    const value v{{"a", half_ramp_of(3)}, {"b", {}}, {"c", half_ramp_of(100)}};
    cojob::dump(v, dir.file("map"));
    CHECK(cojob::load<value>(dir.file("map")) == v);
    std::string bytes = kit::raw_bytes(dir.file("map"));
    bytes[bytes.size() - 5] ^= 0x10;
    write_bytes(dir.file("map"), bytes);
    CHECK_THROWS_WITH(cojob::load<value>(dir.file("map")), Catch::Contains("checksum mismatch"));
}

TEST_CASE("verify checks raw and compressed dumps in full and says when it checked a checksum", "[persist][verify]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp_of(50000), dir.file("raw"));
    cojob::dump(half_ramp_of(50000), dir.file("packed"), 3);
    cojob::dump(std::tuple<int, std::string>{3, "three"}, dir.file("tuple"));
    cojob::dump(std::vector<double>{}, dir.file("empty"));
    CHECK(cojob::verify(dir.file("raw")));
    CHECK(cojob::verify(dir.file("packed")));
    CHECK(cojob::verify(dir.file("tuple")));
    CHECK(cojob::verify(dir.file("empty")));

    CHECK_THROWS_WITH(cojob::verify(dir.file("none")), Catch::Contains("cojob::verify") && Catch::Contains("cannot be opened"));
    std::string bytes = kit::raw_bytes(dir.file("packed"));
    write_bytes(dir.file("cut"), bytes.substr(0, bytes.size() - 1));
    CHECK_THROWS_WITH(cojob::verify(dir.file("cut")), Catch::Contains("cut") && Catch::Contains("truncated"));
    bytes[bytes.size() - 2] ^= 1;
    write_bytes(dir.file("packed"), bytes);
    CHECK_THROWS_WITH(cojob::verify(dir.file("packed")), Catch::Contains("packed") && Catch::Contains("checksum"));
}

TEST_CASE("load_mmap checks only the header; verify finds what it does not read", "[persist][verify][mmap]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp_of(100), dir.file("d"));
    std::string bytes = kit::raw_bytes(dir.file("d"));
    bytes[bytes.size() - 8] ^= 0x01;  // the last element's low byte
    write_bytes(dir.file("d"), bytes);
    const auto m = cojob::load_mmap<double>(dir.file("d"));
    CHECK(m.size() == 100);
    CHECK(m[99] != 99.5);
    CHECK_THROWS_WITH(cojob::verify(dir.file("d")), Catch::Contains("checksum mismatch"));
}

TEST_CASE("mapping a dump for writing drops its checksum, so changed files still load", "[persist][verify][mmap]") {
    kit::scratch_dir dir;
    for (const auto mode : {cojob::mmap_mode::r_plus, cojob::mmap_mode::w_plus}) {
        CAPTURE(cojob::to_string(mode));
        cojob::dump(half_ramp_of(100), dir.file("d"));
        {
            auto w = cojob::load_mmap<double>(dir.file("d"), mode);
            w[5] = -1;
        }
        CHECK(cojob::load<std::vector<double>>(dir.file("d"))[5] == -1);
        CHECK_FALSE(cojob::verify(dir.file("d")));
    }
    // Read-only and copy-on-write maps leave the file and its checksum alone.
    cojob::dump(half_ramp_of(100), dir.file("kept"));
    {
        auto c = cojob::load_mmap<double>(dir.file("kept"), cojob::mmap_mode::c);
        c[5] = -1;
        (void)cojob::load_mmap<double>(dir.file("kept"), cojob::mmap_mode::r);
    }
    CHECK(cojob::verify(dir.file("kept")));
}

TEST_CASE("lengths a payload cannot hold are refused before anything is allocated", "[persist][bounds][error]") {
    const std::uint64_t huge[] = {std::uint64_t{1} << 40, std::uint64_t{1} << 62, ~std::uint64_t{0}};
    for (const std::uint64_t n : huge) {
        CAPTURE(n);
        std::string payload(sizeof n, '\0');
        std::memcpy(payload.data(), &n, sizeof n);
        payload += std::string(24, 'x');
        CHECK_THROWS_WITH(decode<std::string>(payload), Catch::Contains("claims") && Catch::Contains("24 bytes"));
        CHECK_THROWS_AS(decode<std::vector<std::string>>(payload), cojob::error);
        CHECK_THROWS_AS(decode<std::vector<double>>(payload), cojob::error);
        CHECK_THROWS_AS((decode<std::map<std::string, std::vector<double>>>(payload)), cojob::error);
    }
    // A count that fits the bytes but not as elements: the vector grows as they are read, and
    // the read fails when the bytes run out.
    std::string payload = encode(std::vector<std::string>{"a", "b"});
    const std::uint64_t more = payload.size() - sizeof(std::uint64_t);  // every byte after the count
    std::memcpy(payload.data(), &more, sizeof more);
    CHECK_THROWS_WITH(decode<std::vector<std::string>>(payload), Catch::Contains("truncated"));
    // Round trips are unchanged.
    using value = std::tuple<std::vector<std::string>, std::map<std::string, std::vector<double>>>;
    const value v{{"x", "", "yz"}, {{"k", half_ramp_of(9)}}};
    CHECK(decode<value>(encode(v)) == v);
}
