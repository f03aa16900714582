// src/process/worker_output.cpp - relaying a worker's standard output and error, whole lines at a
// time, and keeping the end of its standard error.
#include "worker_output.hpp"

#include "../progress_bar.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <utility>

namespace cojob::detail::process {

namespace asio = boost::asio;

namespace {
/// Longer than this, an unfinished line is relayed as it is: a worker that writes without
/// newlines still shows its output.
constexpr std::size_t longest_line = 4096;
}  // namespace

std::string tail_of(const std::string& text) {
    std::size_t from = text.size() > stderr_tail_bytes ? text.size() - stderr_tail_bytes : 0;
    if (from > 0) {  // start at a whole line when there is one
        const auto nl = text.find('\n', from);
        if (nl != std::string::npos && nl + 1 < text.size()) from = nl + 1;
    }
    std::size_t end = text.size();
    while (end > from && text[end - 1] == '\n') --end;  // the last line's newline does not count
    std::size_t at = end, lines = 0;
    while (at > from) {
        const auto nl = text.rfind('\n', at - 1);
        if (nl == std::string::npos || nl < from) break;
        if (++lines == stderr_tail_lines) {
            from = nl + 1;
            break;
        }
        at = nl;
    }
    return text.substr(from, end - from);
}

worker_output::worker_output(int out, int err, std::shared_ptr<pool_guard> guard, const asio::any_io_executor& io)
    : guard_(std::move(guard)) {
    out_.fd = out;
    out_.to = stdout;
    err_.fd = err;
    err_.to = stderr;
    for (stream* s : {&out_, &err_}) {
        if (s->fd < 0) continue;
        try {
            s->watch = std::make_unique<asio::posix::stream_descriptor>(io, s->fd);
        } catch (...) {  // no relay for it: the worker's writes then fail, nothing else does
            shut(*s);
        }
    }
}

worker_output::~worker_output() {
    shut(out_);
    shut(err_);
}

void worker_output::start() {
    wait(out_);
    wait(err_);
}

void worker_output::wait(stream& s) {
    if (!s.watch) return;
    s.watch->async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this(), which = &s == &out_](boost::system::error_code ec) {
                            const pool_guard::held lock(*self->guard_);
                            stream& s = which ? self->out_ : self->err_;
                            if (ec || !s.watch) return;  // shut since it was queued
                            if (self->read(s))
                                self->wait(s);
                            else
                                self->shut(s);
                        });
}

bool worker_output::read(stream& s) noexcept {
    if (s.fd < 0) return false;
    char buf[16384];
    for (;;) {
        const ssize_t r = ::read(s.fd, buf, sizeof buf);
        if (r > 0) {
            forward(s, std::string_view(buf, static_cast<std::size_t>(r)));
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            return r < 0 && errno == EAGAIN;
        }
    }
}

void worker_output::forward(stream& s, std::string_view bytes) noexcept {
    try {
        if (&s == &err_) {
            err_seen_.append(bytes);
            if (err_seen_.size() > 4 * stderr_tail_bytes) err_seen_.erase(0, err_seen_.size() - stderr_tail_bytes);
        }
        s.pending.append(bytes);
        const auto last = s.pending.rfind('\n');
        const std::size_t whole = last == std::string::npos ? 0 : last + 1;
        const std::size_t n = s.pending.size() - whole > longest_line ? s.pending.size() : whole;
        if (n == 0) return;
        progress_bar_line::write_above(s.to, std::string_view(s.pending).substr(0, n));
        s.pending.erase(0, n);
    } catch (...) {  // out of memory: the bytes are lost, the relay goes on
        s.pending.clear();
    }
}

void worker_output::shut(stream& s) noexcept {
    if (!s.pending.empty()) {
        try {
            s.pending += '\n';
        } catch (...) {  // out of memory: the line goes without its newline
        }
        progress_bar_line::write_above(s.to, s.pending);
        s.pending.clear();
    }
    if (s.watch) {
        (void)s.watch->release();  // the descriptor is closed below, once
        s.watch.reset();
    }
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
}

bool worker_output::drain(int also) noexcept {
    // One poll for all: most batches print nothing, and this runs for every response.
    pollfd p[3] = {{out_.fd, POLLIN, 0}, {err_.fd, POLLIN, 0}, {also, POLLIN, 0}};
    if (::poll(p, 3, 0) <= 0) return false;
    for (int i = 0; i < 2; ++i) {
        stream& s = i == 0 ? out_ : err_;
        if (s.fd >= 0 && p[i].revents != 0 && !read(s)) shut(s);
    }
    return also >= 0 && (p[2].revents & POLLIN) != 0;
}

void worker_output::close() noexcept {
    drain();
    shut(out_);
    shut(err_);
}

std::string worker_output::stderr_tail() const { return tail_of(err_seen_); }

}  // namespace cojob::detail::process
