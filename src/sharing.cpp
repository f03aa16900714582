// src/sharing.cpp - shared segments for large array arguments (see sharing.hpp), and the
// worker's mappings of them.
#include "sharing.hpp"

#include <cojob/detail/wire.hpp>
#include <cojob/errors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace cojob::detail {

namespace {

thread_local array_placer* current = nullptr;
thread_local const block_store* current_blocks = nullptr;

std::atomic<std::uint64_t> total_arrays{0}, total_segments{0}, total_bytes{0};

[[noreturn]] void placement_failed(const std::string& folder, std::size_t bytes, int err) {
    throw error("cojob: cannot place a shared argument of " + std::to_string(bytes) + " bytes in temp_folder \"" +
                folder + "\": " + std::strerror(err) + "; choose another temp_folder, or raise max_nbytes");
}

int nameless_file(const std::string& folder, std::size_t bytes) {
    int fd = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT)) {
        // No O_TMPFILE on this file system: a named file, unlinked at once.
        std::string name = folder + "/cojob-shared-XXXXXX";
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd >= 0) ::unlink(name.c_str());
    }
    if (fd < 0) placement_failed(folder, bytes, errno);
    return fd;
}

void write_at(int fd, const void* data, std::size_t bytes, const std::string& folder) {
    std::size_t done = 0;
    while (done < bytes) {
        const ssize_t n = ::pwrite(fd, static_cast<const char*>(data) + done, bytes - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) placement_failed(folder, bytes, n < 0 ? errno : ENOSPC);
        done += static_cast<std::size_t>(n);
    }
}

/// A worker's mapping of a segment, kept until its request is answered.
struct worker_mapping {
    std::string path;
    std::uint64_t bytes;
    std::uint8_t mode;
    void* base;
};
std::vector<worker_mapping>& worker_mappings() {
    static std::vector<worker_mapping> m;
    return m;
}

}  // namespace

segment_pool::~segment_pool() {
    for (const segment& s : free_) ::close(s.fd);
}

segment segment_pool::take(const std::string& folder, std::size_t bytes) {
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->capacity >= bytes && (best == free_.end() || it->capacity < best->capacity)) best = it;
    if (best != free_.end()) {
        segment s = *best;
        free_.erase(best);
        return s;
    }
    total_segments.fetch_add(1, std::memory_order_relaxed);
    return segment{nameless_file(folder, bytes), 0};
}

void segment_pool::give_back(segment s) noexcept {
    if (s.fd < 0) return;
    free_.push_back(s);
    if (free_.size() > max_kept) {
        // Keep the largest: they serve every smaller array too.
        auto smallest = free_.begin();
        for (auto it = free_.begin(); it != free_.end(); ++it)
            if (it->capacity < smallest->capacity) smallest = it;
        ::close(smallest->fd);
        free_.erase(smallest);
    }
}

call_sharing::~call_sharing() {
    for (segment& s : segments_) pool_->give_back(s);
}

bool call_sharing::share(const void* data, std::size_t bytes, shared_ref& ref) {
    if (!settings_.max_nbytes || bytes < *settings_.max_nbytes || bytes == 0) return false;
    const auto key = std::make_pair(data, bytes);
    if (auto it = placed_.find(key); it != placed_.end()) {
        ref = it->second;
        return true;
    }
    segment s = pool_->take(settings_.temp_folder, bytes);
    try {
        write_at(s.fd, data, bytes, settings_.temp_folder);
    } catch (...) {
        pool_->give_back(s);
        throw;
    }
    s.capacity = std::max(s.capacity, bytes);
    segments_.push_back(s);
    ref.path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(s.fd);
    ref.bytes = bytes;
    ref.mode = static_cast<std::uint8_t>(settings_.mode);
    placed_.emplace(key, ref);
    total_arrays.fetch_add(1, std::memory_order_relaxed);
    total_bytes.fetch_add(bytes, std::memory_order_relaxed);
    return true;
}

sharing_scope::sharing_scope(array_placer* s) noexcept : previous_(std::exchange(current, s)) {}
sharing_scope::~sharing_scope() { current = previous_; }

blocks_scope::blocks_scope(const block_store& s) noexcept : previous_(std::exchange(current_blocks, &s)) {}
blocks_scope::~blocks_scope() { current_blocks = previous_; }

bool share_bytes(const void* data, std::size_t bytes, shared_ref& ref) {
    return current && current->share(data, bytes, ref);
}

const char* map_shared(const shared_ref& ref) {
    if (ref.path.starts_with("mpi:")) {
        if (const char* p = current_blocks ? current_blocks->find(ref) : nullptr) return p;
        throw wire_error("cojob: a request names an array (" + ref.path + ") that this rank never received");
    }
    auto& maps = worker_mappings();
    for (const auto& m : maps)
        if (m.path == ref.path && m.bytes == ref.bytes && m.mode == ref.mode) return static_cast<const char*>(m.base);
    if (ref.mode > static_cast<std::uint8_t>(mmap_mode::c)) throw wire_error("cojob: bad mode in a shared reference");
    const auto mode = static_cast<mmap_mode>(ref.mode);
    const int fd = ::open(ref.path.c_str(), (mode == mmap_mode::r_plus ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        throw error("cojob: worker cannot open the shared argument " + ref.path + ": " + std::strerror(errno));
    const int prot = mode == mmap_mode::r ? PROT_READ : PROT_READ | PROT_WRITE;
    void* p = ::mmap(nullptr, static_cast<std::size_t>(ref.bytes), prot, mode == mmap_mode::c ? MAP_PRIVATE : MAP_SHARED,
                     fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED)
        throw error("cojob: worker cannot map the shared argument " + ref.path + ": " + std::strerror(err));
    maps.push_back(worker_mapping{ref.path, ref.bytes, ref.mode, p});
    return static_cast<const char*>(p);
}

void release_request_mappings() noexcept {
    auto& maps = worker_mappings();
    for (const auto& m : maps) ::munmap(m.base, static_cast<std::size_t>(m.bytes));
    maps.clear();
}

std::string absolute_path(const std::string& path) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(path, ec);
    return ec ? path : abs.string();
}

void misaligned_span() { throw wire_error("cojob: a span's elements arrived misaligned in the request"); }
void throw_size_mismatch() { throw wire_error("cojob: an array's size disagrees with its shared block"); }

sharing_counters sharing_totals() noexcept {
    return {total_arrays.load(), total_segments.load(), total_bytes.load()};
}

}  // namespace cojob::detail
