// src/trace_file.cpp - the trace file shared by every call that writes to it.
#include "trace_file.hpp"

#include <cojob/detail/batch.hpp>
#include <cojob/errors.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace cojob::detail {

namespace {

// Every trace file this program opened, by absolute path. They stay open until the program
// ends: a trace is one run of the program, however many `parallel` objects come and go.
struct registry {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<trace_file>> files;
};

registry& files() {
    static registry r;
    return r;
}

std::string event_line(const boost::json::object& event) { return ",\n" + boost::json::serialize(event); }

}  // namespace

std::shared_ptr<trace_file> trace_file::open(const std::string& path, const char* option) {
    if (path.empty())
        throw error(std::string("cojob::options: ") + option + "=\"\" is not valid; expected the path of a file to write");
    std::error_code ec;
    std::string key = std::filesystem::absolute(path, ec).lexically_normal().string();
    if (ec) key = path;
    registry& r = files();
    std::lock_guard lock(r.mutex);
    auto& slot = r.files[key];
    if (slot) return slot;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int err = errno;
        r.files.erase(key);
        throw error(std::string("cojob::options: ") + option + "=\"" + path + "\" cannot be written: " + std::strerror(err));
    }
    slot.reset(new trace_file(path, fd));
    return slot;
}

trace_file::trace_file(std::string path, int fd)
    : path_(std::move(path)), fd_(fd), pid_(static_cast<long>(::getpid())), origin_ns_(batch_base::now_ns()) {
    std::lock_guard lock(mutex_);
    if (::pwrite(fd_, "[", 1, 0) != 1) failed_ = true;
    end_ = 1;
    write_locked(event_line({{"name", "process_name"},
                             {"ph", "M"},
                             {"pid", pid_},
                             {"args", {{"name", std::string("cojob: ") + program_invocation_short_name}}}}));
}

trace_file::~trace_file() { ::close(fd_); }

void trace_file::append(std::string_view events) {
    if (events.empty()) return;
    std::lock_guard lock(mutex_);
    write_locked(events);
}

void trace_file::write_locked(std::string_view events) {
    if (failed_) return;
    if (empty_) events.remove_prefix(1);  // the first event takes no comma
    std::string text(events);
    text += "\n]\n";
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(end_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            failed_ = true;
            std::fprintf(stderr, "cojob: cannot write the trace %s: %s; tracing stops\n", path_.c_str(),
                         std::strerror(errno));
            return;
        }
        done += static_cast<std::size_t>(n);
    }
    end_ += text.size() - 3;  // the next events overwrite "\n]\n"
    empty_ = false;
}

long trace_file::track(const std::string& key, const std::string& name, int order) {
    std::lock_guard lock(mutex_);
    if (auto it = tracks_.find(key); it != tracks_.end()) return it->second;
    const long id = static_cast<long>(tracks_.size()) + 1;
    tracks_.emplace(key, id);
    write_locked(event_line({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid_}, {"tid", id}, {"args", {{"name", name}}}}) +
                 event_line({{"name", "thread_sort_index"},
                             {"ph", "M"},
                             {"pid", pid_},
                             {"tid", id},
                             {"args", {{"sort_index", order * 100000 + id}}}}));
    return id;
}

std::size_t trace_file::next_call() noexcept {
    std::lock_guard lock(mutex_);
    return ++calls_;
}

}  // namespace cojob::detail
