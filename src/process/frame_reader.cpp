// src/process/frame_reader.cpp - reading requests with as few system calls as they allow.
#include "frame_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

namespace cojob::detail::process {

bool frame_reader::fill() {
    if (begin_ > 0) {
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    for (;;) {
        const ssize_t r = pipe_seam().read(fd_, buf_.data() + end_, buf_.size() - end_);
        if (r > 0) {
            end_ += static_cast<std::size_t>(r);
            return true;
        }
        if (r == 0) return false;
        if (errno != EINTR && errno != EAGAIN)
            throw std::system_error(errno, std::generic_category(), "cojob: reading a worker pipe");
    }
}

bool frame_reader::read_header(char (&head)[header_bytes]) {
    while (!header_ready()) {
        if (!fill()) {
            if (end_ == begin_) return false;
            throw wire_error("cojob: the pipe closed inside a frame (" + std::to_string(end_ - begin_) + " of " +
                             std::to_string(header_bytes) + " bytes read)");
        }
    }
    std::memcpy(head, buf_.data() + begin_, header_bytes);
    begin_ += header_bytes;
    return true;
}

void frame_reader::read_payload(std::uint64_t length, byte_buffer& out) {
    const auto here = static_cast<std::size_t>(std::min<std::uint64_t>(length, end_ - begin_));
    out.clear();
    out.resize(here);
    if (here > 0) std::memcpy(out.data(), buf_.data() + begin_, here);
    begin_ += here;
    // The rest is still in the pipe (the buffer is then empty): read into place.
    if (here < length) read_rest_of_payload(fd_, length, out);
}

}  // namespace cojob::detail::process
