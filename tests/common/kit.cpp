// tests/common/kit.cpp - the parts of the test kit that touch the operating system.
#include "kit.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <sstream>
#include <system_error>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#include <sanitizer/common_interface_defs.h>
#define KIT_EXTERNAL_SYMBOLIZER 1
#endif
#endif

namespace kit {

#ifdef KIT_EXTERNAL_SYMBOLIZER
namespace {
// clang's ThreadSanitizer names functions through an llvm-symbolizer child process, started at
// the first report it must match against the suppressions. Started here, before any test
// counts this process's children and descriptors (children.hpp leaves it out); worker
// processes, which are this program started again, go without.
[[maybe_unused]] const bool symbolizer_started = [] {
    if (std::getenv("COJOB_WORKER")) return false;
    char where[256];
    __sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", where, sizeof where);
    return true;
}();
}  // namespace
#endif

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
}

namespace {
void flush_all() noexcept {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(stdout);
    std::fflush(stderr);
}
}  // namespace

stream_capture::stream_capture(int fd) : fd_(fd) {
    std::FILE* tmp = std::tmpfile();
    if (!tmp) throw std::system_error(errno, std::generic_category(), "tmpfile");
    file_ = ::dup(::fileno(tmp));  // keep the descriptor, let the FILE go
    std::fclose(tmp);
    if (file_ < 0) throw std::system_error(errno, std::generic_category(), "dup");
    flush_all();
    saved_ = ::dup(fd_);
    if (saved_ < 0 || ::dup2(file_, fd_) < 0) {
        const int e = errno;
        if (saved_ >= 0) ::close(saved_);
        ::close(file_);
        throw std::system_error(e, std::generic_category(), "dup2");
    }
}

stream_capture::~stream_capture() {
    restore();
    if (file_ >= 0) ::close(file_);
}

void stream_capture::restore() noexcept {
    if (saved_ < 0) return;
    flush_all();
    ::dup2(saved_, fd_);
    ::close(saved_);
    saved_ = -1;
}

std::string stream_capture::text() {
    restore();
    std::string out;
    char buf[4096];
    for (off_t at = 0;;) {
        const ssize_t got = ::pread(file_, buf, sizeof buf, at);
        if (got <= 0) break;
        out.append(buf, static_cast<std::size_t>(got));
        at += got;
    }
    return out;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::string raw_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

long fails_on(long i, long bad) {
    if (i == bad) throw std::invalid_argument("bad " + std::to_string(i));
    return i;
}

}  // namespace kit
