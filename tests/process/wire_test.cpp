// tests/process/wire_test.cpp - the wire alone: frames, checksums, the pipe seam under EINTR and
// short transfers, bounds-checked payloads, function identities, and the worker's frame_reader
// (frames that share a read come out one by one; the pipe's end only between frames is clean).
#include <catch2/catch.hpp>

#include "fresh_storage.hpp"
#include "process/frame_reader.hpp"
#include "wire.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace cojob::detail;
using cojob::detail::process::frame_reader;

double twice(double x) { return 2 * x; }

/// Swaps the pipe seam for the duration of a test.
struct pipe_seam_swap {
    pipe_io saved = pipe_seam();
    pipe_seam_swap(decltype(pipe_io::read) r, decltype(pipe_io::write) w) { pipe_seam() = pipe_io{r, w}; }
    ~pipe_seam_swap() { pipe_seam() = saved; }
};

int read_calls = 0;
// Every other call fails with EINTR; the others move at most 3 bytes.
ssize_t flaky_read(int fd, void* buf, std::size_t n) {
    if (++read_calls % 2) {
        errno = EINTR;
        return -1;
    }
    return ::read(fd, buf, std::min<std::size_t>(n, 3));
}
ssize_t flaky_write(int fd, const void* buf, std::size_t n) {
    if (++read_calls % 2) {
        errno = EINTR;
        return -1;
    }
    return ::write(fd, buf, std::min<std::size_t>(n, 3));
}

byte_buffer frame_of(const std::string& text) {
    byte_buffer b;
    const auto at = begin_frame(b);
    wire_out ar(b);
    ar(text);
    end_frame(b, at, frame_kind::response);
    return b;
}

/// The text of the next frame, checked against its header's checksum.
std::string next_text(frame_reader& reader, byte_buffer& payload) {
    char head[frame_reader::header_bytes];
    REQUIRE(reader.read_header(head));
    const frame_header h = parse_header(head);
    reader.read_payload(h.length, payload);
    REQUIRE(payload.size() == h.length);
    check_payload(h, payload.data());
    wire_in in(payload.data(), payload.size());
    std::string text;
    in(text);
    return text;
}

void reads_frames_in_turn(bool stutter) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    REQUIRE(::fcntl(p[1], F_SETPIPE_SZ, 256 * 1024) >= 256 * 1024);  // room for every frame below
    const std::string big(100'000, 'x');  // more than the reader's buffer
    const std::vector<std::string> texts{"first", "second", big, "after the big one"};
    for (const auto& t : texts) {
        const auto f = frame_of(t);
        write_all(p[1], f.data(), f.size());
    }
    ::close(p[1]);
    std::optional<pipe_seam_swap> faults;
    if (stutter) faults.emplace(&flaky_read, pipe_seam().write);
    frame_reader reader(p[0]);
    byte_buffer payload;
    std::vector<std::string> got;
    char head[frame_reader::header_bytes];
    for (std::size_t i = 0; i < texts.size(); ++i) got.push_back(next_text(reader, payload));
    const bool ended = !reader.read_header(head);  // the end, between frames
    faults.reset();
    ::close(p[0]);
    CHECK(got == texts);
    CHECK(ended);
}

}  // namespace

TEST_CASE("wire: a frame round-trips through a pipe under EINTR and short reads and writes", "[wire]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    const auto frame = frame_of("hello through a flaky pipe");
    {
        pipe_seam_swap faults(&flaky_read, &flaky_write);
        write_all(p[1], frame.data(), frame.size());
        char head[sizeof(frame_header)];
        REQUIRE(read_exact(p[0], head, sizeof head));
        const frame_header h = parse_header(head);
        CHECK(h.kind == static_cast<std::uint16_t>(frame_kind::response));
        std::vector<char> payload(h.length);
        REQUIRE(read_exact(p[0], payload.data(), payload.size()));
        check_payload(h, payload.data());
        wire_in in(payload.data(), payload.size());
        std::string text;
        in(text);
        CHECK(text == "hello through a flaky pipe");
        CHECK(in.remaining() == 0);
    }
    ::close(p[1]);
    char c;
    CHECK_FALSE(read_exact(p[0], &c, 1));  // end of file before a frame: a clean end
    ::close(p[0]);
}

TEST_CASE("wire: end of file inside a frame is an error, not a short frame", "[wire]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    REQUIRE(::write(p[1], "abc", 3) == 3);
    ::close(p[1]);
    char buf[8];
    CHECK_THROWS_AS(read_exact(p[0], buf, sizeof buf), wire_error);
    ::close(p[0]);
}

TEST_CASE("wire: bad magic, version, kind, length and checksum are refused by name", "[wire]") {
    auto frame = frame_of("payload");
    CHECK_NOTHROW(parse_header(frame.data()));
    auto corrupt = [&](std::size_t at, char value) {
        std::vector<char> copy(frame.data(), frame.data() + frame.size());
        copy[at] = value;
        return copy;
    };
    CHECK_THROWS_WITH(parse_header(corrupt(0, 'x').data()), Catch::Contains("bad magic"));
    CHECK_THROWS_WITH(parse_header(corrupt(4, 7).data()), Catch::Contains("wire version 7"));
    CHECK_THROWS_WITH(parse_header(corrupt(6, 42).data()), Catch::Contains("unknown kind 42"));
    CHECK_THROWS_WITH(parse_header(corrupt(15, 0x7f).data()), Catch::Contains("length"));
    auto flipped = corrupt(sizeof(frame_header) + 9, 'Z');
    const frame_header h = parse_header(flipped.data());
    CHECK_THROWS_WITH(check_payload(h, flipped.data() + sizeof(frame_header)), Catch::Contains("checksum"));
}

TEST_CASE("wire: reading past the payload, or an absurd count, throws instead of allocating", "[wire]") {
    byte_buffer b;
    wire_out out(b);
    out(std::uint64_t{1} << 40);  // a vector length no payload of 8 bytes can hold
    wire_in in(b.data(), b.size());
    std::vector<int> v;
    CHECK_THROWS_AS(in(v), wire_error);
    wire_in short_in(b.data(), 4);
    double d = 0;
    CHECK_THROWS_AS(short_in(d), wire_error);
}

TEST_CASE("wire: values round-trip, vectors of numbers as one block", "[wire]") {
    byte_buffer b;
    wire_out out(b);
    const std::vector<double> v(1000, 0.25);
    const std::map<std::string, std::pair<int, std::optional<float>>> m{{"a", {1, 2.5f}}, {"b", {2, std::nullopt}}};
    out(v, m, std::string("x"));
    CHECK(b.size() < 1000 * sizeof(double) + 200);
    wire_in in(b.data(), b.size());
    std::vector<double> v2;
    std::map<std::string, std::pair<int, std::optional<float>>> m2;
    std::string s;
    in(v2, m2, s);
    CHECK(v2 == v);
    CHECK(m2 == m);
    CHECK(s == "x");
}

TEST_CASE("wire: a large vector's elements start on a 64-byte boundary of the payload, whatever came before", "[wire]") {
    const std::size_t n = large_vector_bytes / sizeof(double) + 3;
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<double>(i) * 0.5;
    for (const std::string& prefix : {std::string(), std::string("a"), std::string("seven b"), std::string(61, 'c')}) {
        CAPTURE(prefix.size());
        byte_buffer b;
        wire_out out(b);
        out(prefix, v);
        const std::size_t start = b.size() - n * sizeof(double);
        CHECK(start % 64 == 0);
        CHECK(std::memcmp(b.data() + start, v.data(), n * sizeof(double)) == 0);
        // Both readers skip the padding: cereal's (load_blob) and the one-pass one (read_result).
        std::string p1, p2;
        std::vector<double> through_cereal, one_pass;
        wire_in in(b.data(), b.size());
        in(p1, through_cereal);
        CHECK(p1 == prefix);
        CHECK(through_cereal == v);
        CHECK(in.remaining() == 0);
        wire_in in2(b.data(), b.size());
        in2(p2);
        read_result(in2, one_pass);
        CHECK(one_pass == v);
        CHECK(in2.remaining() == 0);
        // Cut short inside the elements: refused, not read past the end.
        wire_in cut(b.data(), b.size() - 8);
        std::string p3;
        std::vector<double> partial;
        cut(p3);
        CHECK_THROWS_AS(read_result(cut, partial), wire_error);
    }
}

TEST_CASE("wire: fresh storage for a large fill has its back half faulted in beside the copy, and nothing else changes", "[wire]") {
    constexpr std::size_t page = 4096;
    const std::size_t bytes = 2 * back_half_faulting::fresh_fill_bytes;
    void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    (void)::madvise(m, bytes, MADV_NOHUGEPAGE);  // page by page, whatever the system's THP mode
    const auto resident = [m](std::size_t from, std::size_t to) {
        std::vector<unsigned char> in((to - from) / page);
        REQUIRE(::mincore(static_cast<char*>(m) + from, to - from, in.data()) == 0);
        std::size_t n = 0;
        for (const unsigned char c : in) n += c & 1;
        return n;
    };
    REQUIRE(resident(0, bytes) == 0);
    // The kernel takes the advice from 5.14 on; before, the helper does nothing, which is fine.
    const bool populates = ::madvise(static_cast<char*>(m) + bytes - page, page, MADV_POPULATE_WRITE) == 0;
    { const back_half_faulting faulting(m, bytes); }  // joined here
    if (populates) {
        CHECK(resident(0, bytes / 2) == 0);  // the front is the copy's
        CHECK(resident(bytes / 2, bytes) == bytes / 2 / page);
    }
    CHECK(std::all_of(static_cast<const char*>(m), static_cast<const char*>(m) + bytes, [](char c) { return c == 0; }));
    ::munmap(m, bytes);
    { const back_half_faulting small(nullptr, back_half_faulting::fresh_fill_bytes - 1); }  // below the size: no helper

    // Filled while the helper runs: every element lands, from both readers.
    std::vector<std::int64_t> v(3 * back_half_faulting::fresh_fill_bytes / sizeof(std::int64_t) + 5);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>(i * 7 + 1);
    byte_buffer b;
    wire_out out(b);
    out(v);
    std::vector<std::int64_t> one_pass, through_cereal;
    wire_in in(b.data(), b.size());
    read_result(in, one_pass);
    CHECK(one_pass == v);
    wire_in in2(b.data(), b.size());
    in2(through_cereal);
    CHECK(through_cereal == v);
}

TEST_CASE("wire: a function identity resolves to the same function, and a wrong one is refused", "[wire]") {
    byte_buffer b;
    wire_out out(b);
    encode_function(out, reinterpret_cast<std::uintptr_t>(&twice));
    {
        wire_in in(b.data(), b.size());
        const auto address = decode_function(in);
        CHECK(address == reinterpret_cast<std::uintptr_t>(&twice));
        CHECK(reinterpret_cast<double (*)(double)>(address)(21) == 42);
    }
    std::uint64_t module = 0, offset = 0, print = 0;
    std::memcpy(&module, b.data(), 8);
    std::memcpy(&offset, b.data() + 8, 8);
    std::memcpy(&print, b.data() + 16, 8);
    auto decode = [](std::uint64_t m, std::uint64_t o, std::uint64_t p) {
        byte_buffer c;
        wire_out w(c);
        w(m, o, p);
        wire_in in(c.data(), c.size());
        return decode_function(in);
    };
    CHECK_THROWS_WITH(decode(module ^ 1, offset, print), Catch::Contains("module"));
    CHECK_THROWS_WITH(decode(module, offset + (std::uint64_t{1} << 40), print), Catch::Contains("outside the code"));
    CHECK_THROWS_WITH(decode(module, offset + 1, print), Catch::Contains("code differs"));
}

TEST_CASE("frame_reader: frames come out one by one, whatever each read brings", "[wire]") {
    SECTION("reads as they come") { reads_frames_in_turn(false); }
    SECTION("EINTR and three bytes at a time") { reads_frames_in_turn(true); }
}

TEST_CASE("frame_reader: a second small frame is already there after the first", "[wire]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    for (const char* t : {"one", "two"}) {
        const auto f = frame_of(t);
        write_all(p[1], f.data(), f.size());
    }
    frame_reader reader(p[0]);
    byte_buffer payload;
    CHECK_FALSE(reader.header_ready());
    CHECK(next_text(reader, payload) == "one");
    CHECK(reader.header_ready());  // read with the first: no wait on the pipe for it
    CHECK(next_text(reader, payload) == "two");
    CHECK_FALSE(reader.header_ready());
    ::close(p[1]);
    ::close(p[0]);
}

TEST_CASE("frame_reader: the pipe's end inside a header or a payload is an error", "[wire]") {
    const auto f = frame_of("cut short");
    for (const std::size_t keep : {std::size_t{5}, f.size() - 3}) {
        int p[2];
        REQUIRE(::pipe(p) == 0);
        write_all(p[1], f.data(), keep);
        ::close(p[1]);
        frame_reader reader(p[0]);
        char head[frame_reader::header_bytes];
        byte_buffer payload;
        CHECK_THROWS_AS(reader.read_header(head) && (reader.read_payload(parse_header(head).length, payload), true),
                        wire_error);
        ::close(p[0]);
    }
}
