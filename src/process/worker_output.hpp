// src/process/worker_output.hpp - private: the parent's end of a worker process's standard output
// and error. What a worker writes reaches this process's own stdout and stderr whole lines at a
// time, above any progress bar (progress_bar.hpp), so that neither tears the other; the last
// lines of its standard error are kept for the report when it dies (task_failure::stderr_tail).
#pragma once

#include "pool_guard.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace cojob::detail::process {

/// The tail of what a worker wrote to standard error that a report shows: at most this many
/// lines, and at most this many bytes.
inline constexpr std::size_t stderr_tail_lines = 20;
inline constexpr std::size_t stderr_tail_bytes = 4096;

/// The last `stderr_tail_lines` whole lines of `text`, within its last `stderr_tail_bytes`.
[[nodiscard]] std::string tail_of(const std::string& text);

/// A worker's standard output and error pipes. Every member is called with the pool guard held
/// (the I/O thread's handlers take it as the channel's do).
class worker_output final : public std::enable_shared_from_this<worker_output> {
public:
    /// Takes over the read ends `out` and `err` (non-blocking); relays nothing before start().
    worker_output(int out, int err, std::shared_ptr<pool_guard> guard, const boost::asio::any_io_executor& io);
    ~worker_output();
    worker_output(const worker_output&) = delete;
    worker_output& operator=(const worker_output&) = delete;

    /// Relays what comes, as it comes, from the I/O thread.
    void start();
    /// Relays what the pipes hold now, without waiting: a worker writes what its tasks printed
    /// before it answers, so this keeps their output before their results. `also`, another
    /// descriptor of the worker's (or -1), is polled with them, in the same system call:
    /// returns whether it has bytes to read.
    bool drain(int also = -1) noexcept;
    /// Drains, relays a last unfinished line (with a newline), and closes both pipes.
    void close() noexcept;
    /// The last lines the worker wrote to standard error, an unfinished one included.
    [[nodiscard]] std::string stderr_tail() const;

private:
    struct stream {
        int fd = -1;
        std::FILE* to = nullptr;  ///< this process's stdout or stderr
        std::unique_ptr<boost::asio::posix::stream_descriptor> watch;
        std::string pending;  ///< an unfinished line
    };
    void wait(stream& s);
    /// Reads what `s` holds now; false once it reached end of file or failed.
    bool read(stream& s) noexcept;
    void forward(stream& s, std::string_view bytes) noexcept;
    void shut(stream& s) noexcept;

    std::shared_ptr<pool_guard> guard_;
    stream out_, err_;
    std::string err_seen_;  ///< the end of what went to stderr, for the tail
};

}  // namespace cojob::detail::process
