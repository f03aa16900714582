// src/process/frame_reader.hpp - the worker's reads of the parent's requests. What the request
// pipe holds is read at once, up to a small buffer's size, so that a small request's header and
// payload come in one system call; bytes after that frame wait here for the next one.
#pragma once

#include "../wire.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

namespace cojob::detail::process {

class frame_reader {
public:
    static constexpr std::size_t header_bytes = sizeof(frame_header);

    explicit frame_reader(int fd) noexcept : fd_(fd) {}
    frame_reader(const frame_reader&) = delete;
    frame_reader& operator=(const frame_reader&) = delete;

    /// A whole header is here already: no need to wait on the pipe for the next frame.
    [[nodiscard]] bool header_ready() const noexcept { return end_ - begin_ >= header_bytes; }
    /// Blocking: the next frame's header bytes. Returns false on end of file before the first.
    /// @throws wire_error on end of file inside the header, or an I/O error.
    bool read_header(char (&head)[header_bytes]);
    /// Blocking: the frame's payload of `length` bytes into `out` (resized to it); what is not
    /// buffered yet is read into place, the buffer growing as the bytes come (read_payload).
    /// @throws wire_error when the pipe closes first, or an I/O error.
    void read_payload(std::uint64_t length, byte_buffer& out);

private:
    /// Reads what the pipe holds, at least one byte, after the buffered bytes (moved to the
    /// front first). Returns false on end of file.
    bool fill();

    int fd_;
    std::size_t begin_ = 0, end_ = 0;  ///< the buffered bytes not taken yet
    std::array<char, 16 * 1024> buf_{};
};

}  // namespace cojob::detail::process
