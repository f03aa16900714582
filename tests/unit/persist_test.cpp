// tests/unit/persist_test.cpp - cojob::dump / load / load_mmap and cojob::memmap: round trips,
// compression, every mmap mode, and the errors for bad files and bad arguments.
#include <cojob/memmap.hpp>
#include <cojob/persist.hpp>

#include <cojob/errors.hpp>

#include <catch2/catch.hpp>

#include "kit.hpp"
#include "scratch_dir.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

namespace {

struct stored_point {
    double x = 0;
    int tag = 0;
    std::string label;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(x, tag, label);
    }
    friend bool operator==(const stored_point&, const stored_point&) = default;
};

template <class T>
void round_trip(const T& value, int compress = 0) {
    kit::scratch_dir dir;
    const auto path = dir.file("value.cojob");
    cojob::dump(value, path, compress);
    CHECK(cojob::load<T>(path) == value);
    CHECK(dir.entries() == std::vector<std::string>{"value.cojob"});  // no temporary file left
}

std::vector<double> half_ramp(std::size_t n) {
    std::vector<double> v(n);
    std::iota(v.begin(), v.end(), 0.5);
    return v;
}

}  // namespace

TEST_CASE("dump then load gives back every supported kind of value", "[persist][dump]") {
    round_trip(42);
    round_trip(3.25);
    round_trip(std::string("hello, memmap"));
    round_trip(half_ramp(1000));
    round_trip(std::vector<double>{});
    round_trip(std::vector<std::int16_t>{1, -2, 3});
    round_trip(std::vector<std::string>{"a", "", "ccc"});
    round_trip(std::vector<std::vector<float>>{{1.f}, {}, {2.f, 3.f}});
    round_trip(std::map<std::string, int>{{"one", 1}, {"two", 2}});
    round_trip(std::tuple<int, std::string, double>{7, "x", 1.5});
    round_trip(std::array<std::uint8_t, 5>{1, 2, 3, 4, 5});
    round_trip(stored_point{1.5, 3, "p"});
    round_trip(std::vector<stored_point>{{1, 2, "a"}, {3, 4, "b"}});
}

TEST_CASE("compressed dumps load back and are smaller for repetitive data", "[persist][compress]") {
    round_trip(std::vector<double>(100000, 1.0), 3);
    round_trip(std::string(10000, 'z'), 19);
    round_trip(std::vector<std::string>{"a", "b"}, 1);
    kit::scratch_dir dir;
    cojob::dump(std::vector<double>(100000, 1.0), dir.file("raw"));
    cojob::dump(std::vector<double>(100000, 1.0), dir.file("packed"), 3);
    CHECK(std::filesystem::file_size(dir.file("packed")) * 50 < std::filesystem::file_size(dir.file("raw")));
}

TEST_CASE("large arrays are written from the value itself, in the same file format", "[persist][dump]") {
    // Arrays of byte_sink::gather_bytes or more go to the file (or to zstd) from where they
    // are; the bytes must be those a copying sink makes, whatever sits between the arrays.
    using value = std::tuple<std::string, std::vector<double>, int, std::vector<std::int16_t>,
                             std::vector<std::vector<float>>, std::vector<double>>;
    const value v{"head", half_ramp(20000), 7, std::vector<std::int16_t>(40001, -3),
                  {std::vector<float>(17000, 1.5f), {}, std::vector<float>(3, 2.f)}, half_ramp(9000)};
    cojob::detail::byte_sink copied(cojob::detail::dump_header_bytes);
    {
        cojob::detail::cache_output_archive ar(copied);
        ar(v);
    }
    const std::string expected = copied.buffer().substr(cojob::detail::dump_header_bytes);
    kit::scratch_dir dir;
    cojob::dump(v, dir.file("raw"));
    CHECK(kit::raw_bytes(dir.file("raw")).substr(cojob::detail::dump_header_bytes) == expected);
    CHECK(cojob::load<value>(dir.file("raw")) == v);
    for (int level : {1, 19}) {
        CAPTURE(level);
        round_trip(v, level);
    }
    cojob::dump(half_ramp(100000), dir.file("array"));
    const cojob::memmap<double> m = cojob::load_mmap<double>(dir.file("array"));
    CHECK(std::equal(m.view().begin(), m.view().end(), half_ramp(100000).begin()));
}

TEST_CASE("an array dumped from a span or a memmap loads as a vector", "[persist][dump]") {
    kit::scratch_dir dir;
    const auto data = half_ramp(300);
    cojob::dump(std::span<const double>(data), dir.file("span"));
    CHECK(cojob::load<std::vector<double>>(dir.file("span")) == data);
    cojob::dump(data, dir.file("vec"));
    const cojob::memmap<double> m = cojob::load_mmap<double>(dir.file("vec"));
    cojob::dump(m, dir.file("memmap"));
    CHECK(cojob::load<std::vector<double>>(dir.file("memmap")) == data);
}

TEST_CASE("a compression level out of range is refused naming compress", "[persist][error]") {
    kit::scratch_dir dir;
    CHECK_THROWS_WITH(cojob::dump(1, dir.file("x"), 20), Catch::Contains("compress=20") && Catch::Contains("1..19"));
    CHECK_THROWS_WITH(cojob::dump(1, dir.file("x"), -1), Catch::Contains("compress=-1"));
    CHECK(dir.entries().empty());
}

TEST_CASE("loading a dump as another type names both types", "[persist][error]") {
    kit::scratch_dir dir;
    cojob::dump(std::string("text"), dir.file("s"));
    CHECK_THROWS_WITH(cojob::load<std::vector<double>>(dir.file("s")),
                      Catch::Contains("holds a std::__cxx11::basic_string") && Catch::Contains("not a std::vector<double"));
    CHECK_THROWS_WITH(cojob::load_mmap<double>(dir.file("s")), Catch::Contains("not a std::vector<double"));
    cojob::dump(half_ramp(10), dir.file("d"));
    CHECK_THROWS_WITH(cojob::load_mmap<float>(dir.file("d")), Catch::Contains("not a std::vector<float"));
}

TEST_CASE("missing, foreign, truncated and corrupt files are clear errors", "[persist][error]") {
    kit::scratch_dir dir;
    CHECK_THROWS_WITH(cojob::load<int>(dir.file("none")), Catch::Contains("none") && Catch::Contains("cannot be opened"));
    {
        std::ofstream(dir.file("foreign")) << std::string(400, 'x');
    }
    CHECK_THROWS_WITH(cojob::load<int>(dir.file("foreign")), Catch::Contains("not a cojob dump"));
    cojob::dump(half_ramp(1000), dir.file("good"));
    std::string bytes = kit::raw_bytes(dir.file("good"));
    {
        std::ofstream(dir.file("short"), std::ios::binary) << bytes.substr(0, bytes.size() - 8);
    }
    CHECK_THROWS_WITH(cojob::load<std::vector<double>>(dir.file("short")), Catch::Contains("truncated"));
    CHECK_THROWS_WITH(cojob::load_mmap<double>(dir.file("short")), Catch::Contains("truncated"));
    cojob::dump(half_ramp(1000), dir.file("packed"), 3);
    bytes = kit::raw_bytes(dir.file("packed"));
    bytes[bytes.size() - 3] ^= 0x40;
    {
        std::ofstream(dir.file("flipped"), std::ios::binary) << bytes;
    }
    CHECK_THROWS_WITH(cojob::load<std::vector<double>>(dir.file("flipped")), Catch::Contains("checksum"));
    // A raw file's element count claims more than the file holds: refused before any
    // allocation, by the payload checksum (load) or by the header's sizes (load_mmap).
    bytes = kit::raw_bytes(dir.file("good"));
    for (const std::uint64_t count : {std::uint64_t{1001}, std::uint64_t{1} << 61, ~std::uint64_t{0}}) {
        CAPTURE(count);
        std::memcpy(bytes.data() + cojob::detail::dump_header_bytes, &count, sizeof count);
        {
            std::ofstream(dir.file("counted"), std::ios::binary) << bytes;
        }
        CHECK_THROWS_WITH(cojob::load<std::vector<double>>(dir.file("counted")), Catch::Contains("counted") && Catch::Contains("checksum"));
        CHECK_THROWS_WITH(cojob::load_mmap<double>(dir.file("counted")), Catch::Contains("counted") && Catch::Contains("damaged"));
    }
}

TEST_CASE("a compressed dump asked for with mmap is an error that says how to load it", "[persist][compress][error]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp(1000), dir.file("packed"), 3);
    CHECK_THROWS_WITH(cojob::load_mmap<double>(dir.file("packed")),
                      Catch::Contains("compressed") && Catch::Contains("cojob::load<std::vector<T>>"));
    CHECK_THROWS_WITH(cojob::load<double>(dir.file("packed"), cojob::mmap_mode::r), Catch::Contains("compressed"));
    CHECK(cojob::load<std::vector<double>>(dir.file("packed")) == half_ramp(1000));
}

TEST_CASE("load_mmap maps the dumped array in place, 64-byte aligned", "[persist][mmap]") {
    kit::scratch_dir dir;
    const auto data = half_ramp(5000);
    cojob::dump(data, dir.file("d"));
    const auto m = cojob::load<double>(dir.file("d"), cojob::mmap_mode::r);
    REQUIRE(m.size() == data.size());
    CHECK(m.shape() == std::vector<std::size_t>{5000});
    CHECK(m.offset() % 64 == 0);
    CHECK(std::equal(m.begin(), m.end(), data.begin()));
    const auto small = half_ramp(3);
    cojob::dump(small, dir.file("small"));
    const auto s = cojob::load_mmap<double>(dir.file("small"));
    CHECK(std::vector<double>(s.begin(), s.end()) == small);
    cojob::dump(std::vector<double>{}, dir.file("empty"));
    CHECK(cojob::load_mmap<double>(dir.file("empty")).empty());
}

TEST_CASE("mode r refuses writes: mutable_span throws and the kernel refuses the pages", "[persist][mmap]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp(100), dir.file("d"));
    auto m = cojob::load_mmap<double>(dir.file("d"), cojob::mmap_mode::r);
    CHECK_FALSE(m.writable());
    CHECK_THROWS_WITH(m.mutable_span(), Catch::Contains("read-only (mode r)"));
    // read(2) into a read-only mapping fails with EFAULT instead of writing.
    int p[2];
    REQUIRE(::pipe(p) == 0);
    const double v = 9;
    REQUIRE(::write(p[1], &v, sizeof v) == sizeof v);
    CHECK(::read(p[0], m.data(), sizeof v) == -1);
    CHECK(errno == EFAULT);
    ::close(p[0]);
    ::close(p[1]);
    CHECK(m[0] == 0.5);
}

TEST_CASE("mode r+ writes reach the file and other mappings", "[persist][mmap]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp(100), dir.file("d"));
    auto a = cojob::load_mmap<double>(dir.file("d"), cojob::mmap_mode::r_plus);
    const auto b = cojob::load_mmap<double>(dir.file("d"), cojob::mmap_mode::r);
    a.mutable_span()[7] = -1;
    a[8] = -2;
    CHECK(b[7] == -1);
    a.flush();
    const auto back = cojob::load<std::vector<double>>(dir.file("d"));
    CHECK(back[7] == -1);
    CHECK(back[8] == -2);
    CHECK(back[9] == 9.5);
}

TEST_CASE("mode w+ on a dump zeroes the array in place and keeps the header", "[persist][mmap]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp(100), dir.file("d"));
    auto w = cojob::load_mmap<double>(dir.file("d"), cojob::mmap_mode::w_plus);
    REQUIRE(w.size() == 100);
    CHECK(std::all_of(w.begin(), w.end(), [](double x) { return x == 0; }));
    w[3] = 42;
    const auto back = cojob::load<std::vector<double>>(dir.file("d"));
    CHECK(back.size() == 100);
    CHECK(back[3] == 42);
}

TEST_CASE("mode c writes stay private to the mapping", "[persist][mmap]") {
    kit::scratch_dir dir;
    cojob::dump(half_ramp(100), dir.file("d"));
    auto c = cojob::load_mmap<double>(dir.file("d"), cojob::mmap_mode::c);
    CHECK(c.writable());
    c.mutable_span()[0] = 123;
    CHECK(c[0] == 123);
    CHECK(cojob::load_mmap<double>(dir.file("d"))[0] == 0.5);
    CHECK(cojob::load<std::vector<double>>(dir.file("d"))[0] == 0.5);
}

TEST_CASE("a memmap in mode w+ creates its file with the shape, and r reads it back", "[memmap]") {
    kit::scratch_dir dir;
    {
        cojob::memmap<float> out(dir.file("out"), cojob::mmap_mode::w_plus, {4, 5});
        CHECK(out.size() == 20);
        CHECK(out.shape() == std::vector<std::size_t>{4, 5});
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(i);
        const cojob::memmap<float> copy = out;  // copies share the mapping
        CHECK(copy[19] == 19.f);
    }
    CHECK(std::filesystem::file_size(dir.file("out")) == 20 * sizeof(float));
    const cojob::memmap<float> in(dir.file("out"));
    CHECK(in.shape() == std::vector<std::size_t>{20});
    CHECK(in[19] == 19.f);
    const cojob::memmap<float> tail(dir.file("out"), cojob::mmap_mode::r, {5}, 15 * sizeof(float));
    CHECK(tail[0] == 15.f);
    std::span<const float> s = tail;
    CHECK(s.size() == 5);
}

TEST_CASE("a memmap refuses bad files, offsets and shapes naming the path", "[memmap][error]") {
    kit::scratch_dir dir;
    CHECK_THROWS_WITH(cojob::memmap<double>(dir.file("none")), Catch::Contains("none") && Catch::Contains("cannot be opened"));
    CHECK_THROWS_WITH(cojob::memmap<double>(dir.file("w"), cojob::mmap_mode::w_plus),
                      Catch::Contains("w+ needs a shape"));
    cojob::memmap<double>(dir.file("f"), cojob::mmap_mode::w_plus, {10});
    CHECK_THROWS_WITH(cojob::memmap<double>(dir.file("f"), cojob::mmap_mode::r, {11}), Catch::Contains("too short"));
    CHECK_THROWS_WITH(cojob::memmap<double>(dir.file("f"), cojob::mmap_mode::r, {}, 4), Catch::Contains("alignment"));
    CHECK_THROWS_WITH(cojob::memmap<double>(dir.file("f"), cojob::mmap_mode::r, {}, 200), Catch::Contains("past the end"));
    using triple = std::array<char, 3>;
    CHECK_THROWS_WITH(cojob::memmap<triple>(dir.file("f")), Catch::Contains("whole number"));
    CHECK_THROWS_WITH(cojob::parse_mmap_mode("rw"), Catch::Contains("\"rw\"") && Catch::Contains("\"r+\""));
    CHECK(cojob::parse_mmap_mode("r+") == cojob::mmap_mode::r_plus);
    CHECK(std::string(cojob::to_string(cojob::mmap_mode::c)) == "c");
}
