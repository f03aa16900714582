// src/trace_file.hpp - private: a Chrome trace-event file (`options::trace`, COJOB_TRACE) that
// any number of calls add events to, and that is valid JSON after every addition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace cojob::detail {

/// One trace file of this program, shared by every `parallel` that names it.
///
/// The file is a JSON array of trace events. It always ends with the closing bracket: each
/// addition overwrites the bracket with its events and writes it again after them, so a
/// program that stops (an exception, an exit) between calls leaves a file that parses.
/// Tracks (one per worker, scheduler or I/O thread) are numbered here, and named in the file
/// when first used. All members may be called from any thread.
class trace_file {
public:
    /// The file at `path`, created or emptied when this program first asks for it; later
    /// requests for the same path share it. `option` names where the path came from.
    /// @throws cojob::error naming the option and the path when it cannot be written.
    static std::shared_ptr<trace_file> open(const std::string& path, const char* option);
    ~trace_file();
    trace_file(const trace_file&) = delete;
    trace_file& operator=(const trace_file&) = delete;

    /// Adds events: a sequence of JSON objects, each preceded by a comma (",{...},{...}").
    void append(std::string_view events);
    /// The track of `key` ("tid 123", "pid 456", "rank 2"), created on first use and then
    /// shown as `name`. `order` sorts tracks in viewers (smaller first).
    [[nodiscard]] long track(const std::string& key, const std::string& name, int order);
    /// Microseconds since the trace began, for a steady-clock time in nanoseconds.
    [[nodiscard]] double micros(std::int64_t steady_ns) const noexcept {
        return static_cast<double>(steady_ns - origin_ns_) / 1000.0;
    }
    /// The pid the trace's events carry: this program's.
    [[nodiscard]] long pid() const noexcept { return pid_; }
    /// A new number for a call, to tell concurrent calls' counters apart.
    [[nodiscard]] std::size_t next_call() noexcept;

private:
    trace_file(std::string path, int fd);
    void write_locked(std::string_view events);

    const std::string path_;
    const int fd_;
    const long pid_;
    const std::int64_t origin_ns_;
    std::mutex mutex_;
    std::uint64_t end_ = 0;  ///< where the closing bracket starts
    bool empty_ = true;      ///< no event yet: the next one takes no comma
    bool failed_ = false;    ///< a write failed (told once on standard error)
    std::map<std::string, long, std::less<>> tracks_;
    std::size_t calls_ = 0;
};

}  // namespace cojob::detail
