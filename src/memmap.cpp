// src/memmap.cpp - file mappings behind cojob::memmap, and the mmap_mode names.
#include <cojob/memmap.hpp>

#include <cojob/errors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cojob {

const char* to_string(mmap_mode mode) noexcept {
    switch (mode) {
        case mmap_mode::r: return "r";
        case mmap_mode::r_plus: return "r+";
        case mmap_mode::w_plus: return "w+";
        case mmap_mode::c: return "c";
    }
    return "?";
}

mmap_mode parse_mmap_mode(std::string_view text) {
    if (text == "r") return mmap_mode::r;
    if (text == "r+") return mmap_mode::r_plus;
    if (text == "w+") return mmap_mode::w_plus;
    if (text == "c") return mmap_mode::c;
    throw error("cojob: mmap_mode \"" + std::string(text) + "\" is not valid; expected \"r\", \"r+\", \"w+\" or \"c\"");
}

namespace detail {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw error("cojob::memmap: " + path + ": " + what);
}
[[noreturn]] void fail_errno(const std::string& path, const char* what) {
    fail(path, std::string(what) + ": " + std::strerror(errno));
}

struct closing_fd {
    int fd;
    ~closing_fd() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

std::shared_ptr<file_mapping> file_mapping::open(const std::string& path, mmap_mode mode, std::uint64_t offset,
                                                 std::int64_t bytes, std::size_t element_size, std::size_t alignment) {
    if (alignment && offset % alignment != 0)
        fail(path, "offset " + std::to_string(offset) + " is not a multiple of the element alignment (" +
                       std::to_string(alignment) + ")");
    if (mode == mmap_mode::w_plus && bytes < 0) fail(path, "mode w+ needs a shape (the file's new size)");
    int flags = O_CLOEXEC;
    switch (mode) {
        case mmap_mode::r:
        case mmap_mode::c: flags |= O_RDONLY; break;
        case mmap_mode::r_plus: flags |= O_RDWR; break;
        case mmap_mode::w_plus: flags |= O_RDWR | O_CREAT; break;
    }
    closing_fd fd{::open(path.c_str(), flags, 0644)};
    if (fd.fd < 0) fail_errno(path, "cannot be opened");
    struct stat st{};
    if (::fstat(fd.fd, &st) != 0) fail_errno(path, "cannot be examined");
    auto file_size = static_cast<std::uint64_t>(st.st_size);
    if (mode == mmap_mode::w_plus) {
        // Cut at the offset and grow again: the array reads as zeros without being written.
        const std::uint64_t end = offset + static_cast<std::uint64_t>(bytes);
        if ((file_size > offset && ::ftruncate(fd.fd, static_cast<off_t>(offset)) != 0) ||
            ::ftruncate(fd.fd, static_cast<off_t>(end)) != 0)
            fail_errno(path, "cannot be resized");
        file_size = end;
    }
    if (offset > file_size)
        fail(path, "offset " + std::to_string(offset) + " lies past the end of the file (" + std::to_string(file_size) +
                       " bytes)");
    std::uint64_t want = 0;
    if (bytes < 0) {
        want = file_size - offset;
        if (element_size && want % element_size != 0)
            fail(path, std::to_string(want) + " bytes after offset " + std::to_string(offset) +
                           " are not a whole number of " + std::to_string(element_size) + "-byte elements");
    } else {
        want = static_cast<std::uint64_t>(bytes);
        if (offset + want > file_size)
            fail(path, "is too short: " + std::to_string(file_size) + " bytes, the array needs " +
                           std::to_string(offset + want));
    }
    std::shared_ptr<file_mapping> m(new file_mapping());
    m->bytes_ = want;
    if (want == 0) return m;
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t start = offset / page * page;
    m->length_ = static_cast<std::size_t>(offset - start + want);
    const int prot = mode == mmap_mode::r ? PROT_READ : PROT_READ | PROT_WRITE;
    const int share = mode == mmap_mode::c ? MAP_PRIVATE : MAP_SHARED;
    void* p = ::mmap(nullptr, m->length_, prot, share, fd.fd, static_cast<off_t>(start));
    if (p == MAP_FAILED) fail_errno(path, "cannot be mapped");
    m->base_ = p;
    m->data_ = static_cast<char*>(p) + (offset - start);
    m->shared_writable_ = share == MAP_SHARED && (prot & PROT_WRITE);
    return m;
}

file_mapping::~file_mapping() {
    if (base_) ::munmap(base_, length_);
}

void file_mapping::flush() const {
    if (base_ && shared_writable_ && ::msync(base_, length_, MS_SYNC) != 0)
        throw error(std::string("cojob::memmap: flush (msync) failed: ") + std::strerror(errno));
}

void file_mapping::refuse_write(const std::string& path) {
    throw error("cojob::memmap: " + path + " is mapped read-only (mode r); map it with r+, w+ or c to write");
}

}  // namespace detail
}  // namespace cojob
