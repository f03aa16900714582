// tests/process/frame_reader_test.cpp - the worker's reader of requests: frames that share a
// read come out one by one, a payload larger than its buffer is read into place, and the
// pipe's end is a clean end only between frames.
#include <catch2/catch.hpp>

#include "process/frame_reader.hpp"
#include "wire.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace cojob::detail;
using cojob::detail::process::frame_reader;

byte_buffer request_frame(const std::string& text) {
    byte_buffer b;
    const auto at = begin_frame(b);
    wire_out ar(b);
    ar(text);
    end_frame(b, at, frame_kind::request);
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

int reader_calls = 0;
// Every other call fails with EINTR; the others move at most 5 bytes.
ssize_t stuttering_read(int fd, void* buf, std::size_t n) {
    if (++reader_calls % 2) {
        errno = EINTR;
        return -1;
    }
    return ::read(fd, buf, std::min<std::size_t>(n, 5));
}

void reads_frames_in_turn(bool stutter) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    const std::string big(100'000, 'x');  // more than the reader's buffer and the pipe's room
    const std::vector<std::string> texts{"first", "second", big, "after the big one"};
    std::thread writer([&] {
        for (const auto& t : texts) {
            const auto f = request_frame(t);
            write_all(p[1], f.data(), f.size());
        }
        ::close(p[1]);
    });
    const pipe_io saved = pipe_seam();
    if (stutter) pipe_seam().read = &stuttering_read;
    frame_reader reader(p[0]);
    byte_buffer payload;
    for (const auto& t : texts) CHECK(next_text(reader, payload) == t);
    char head[frame_reader::header_bytes];
    CHECK_FALSE(reader.read_header(head));  // the end, between frames
    pipe_seam() = saved;
    writer.join();
    ::close(p[0]);
}

}  // namespace

TEST_CASE("frame_reader: frames come out one by one, whatever each read brings", "[wire]") {
    SECTION("reads as they come") { reads_frames_in_turn(false); }
    SECTION("EINTR and five bytes at a time") { reads_frames_in_turn(true); }
}

TEST_CASE("frame_reader: a second small frame is already there after the first", "[wire]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    for (const char* t : {"one", "two"}) {
        const auto f = request_frame(t);
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
    const auto f = request_frame("cut short");
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
