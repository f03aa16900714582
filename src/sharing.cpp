// src/sharing.cpp - shared segments for large array arguments (see sharing.hpp), and the
// worker's mappings of them.
#include "sharing.hpp"

#include <cojob/detail/wire.hpp>
#include <cojob/errors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace cojob::detail {

namespace {

std::atomic<std::uint64_t> total_arrays{0}, total_segments{0}, total_bytes{0}, total_unchanged{0};

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

/// Writes [from, from + n) at `offset` of the file; returns 0 or the error number.
int write_at(int fd, const char* from, std::size_t n, std::size_t offset) noexcept {
    std::size_t done = 0;
    while (done < n) {
        const ssize_t w = ::pwrite(fd, from + done, n - done, static_cast<off_t>(offset + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : ENOSPC;
        done += static_cast<std::size_t>(w);
    }
    return 0;
}

/// A worker's mapping of a segment, kept while consecutive requests use it.
struct worker_mapping {
    std::uint64_t id;
    std::uint64_t bytes;
    std::uint8_t mode;
    void* base;
    bool used;  ///< by the request being served
};
std::vector<worker_mapping>& worker_mappings() {
    static std::vector<worker_mapping> m;
    return m;
}

/// A worker's mapping of a memmap's file, kept while consecutive requests use it, and only while
/// the path still names the same file (device, inode) of the same size.
struct worker_file {
    std::string path;
    std::uint8_t mode;
    std::uint64_t offset;
    std::int64_t bytes;
    dev_t dev;
    ino_t ino;
    off_t size;
    std::shared_ptr<file_mapping> map;
    bool used;
};
std::vector<worker_file>& worker_files() {
    static std::vector<worker_file> f;
    return f;
}

std::atomic<std::uint64_t> next_segment_id{1};

/// Set in a process worker, whose loop calls release_request_mappings after every request.
bool keep_mappings = false;

constexpr std::size_t chunk_bytes = std::size_t{1} << 20;
constexpr std::size_t two_threads_from = std::size_t{16} << 20;

/// Goes through [0, bytes) in 1 MiB chunks from both ends: this thread takes chunks from the
/// front with front(begin, end), a helper thread takes them from the back with back(begin, end),
/// until they meet. A step returns 0, or an error number that stops both threads; the first
/// such error is returned. The chunks are handed out one at a time, so a thread that gets less
/// CPU (a busy machine) simply does fewer of them. Below 16 MiB, or without a thread to be had,
/// this thread does them all with front.
template <class Front, class Back>
int from_both_ends(std::size_t bytes, Front front, Back back) noexcept {
    std::mutex m;
    std::size_t next = 0, end = (bytes + chunk_bytes - 1) / chunk_bytes;
    int failed = 0;
    // Claims the next chunk from the front or the back; false once they have met or a step failed.
    const auto claim = [&](bool from_front, std::size_t& chunk, int err) {
        const std::lock_guard lock(m);
        if (err != 0 && failed == 0) failed = err;
        if (failed != 0 || next == end) return false;
        chunk = from_front ? next++ : --end;
        return true;
    };
    const auto run = [&](bool from_front, auto& step) {
        std::size_t chunk = 0;
        int err = 0;
        while (claim(from_front, chunk, err)) {
            const std::size_t begin = chunk * chunk_bytes;
            err = step(begin, std::min(begin + chunk_bytes, bytes));
        }
    };
    std::thread helper;
    if (bytes >= two_threads_from) {
        try {
            helper = std::thread([&] { run(false, back); });
        } catch (const std::system_error&) {
        }
    }
    run(true, front);
    if (helper.joinable()) helper.join();
    return failed;
}

/// Makes the segment's content equal to [data, data + bytes), writing only the chunks that
/// differ. The segment is mapped already.
void bring_up_to_date(segment& s, const void* data, std::size_t bytes) {
    const char* from = static_cast<const char*>(data);
    char* to = s.map;
    std::atomic<std::uint64_t> written{0};
    // Two threads compare, one from each end: the workers wait for this call's first request,
    // so the CPUs are free, and one thread alone does not reach the memory's bandwidth here
    // (80 MB: 13-16 ms alone, 8 ms with two, on an idle machine).
    const auto sync = [from, to, &written](std::size_t begin, std::size_t end) noexcept {
        if (std::memcmp(to + begin, from + begin, end - begin) != 0) {
            std::memcpy(to + begin, from + begin, end - begin);
            written.fetch_add(end - begin, std::memory_order_relaxed);
        }
        return 0;
    };
    (void)from_both_ends(bytes, sync, sync);
    total_bytes.fetch_add(written.load(), std::memory_order_relaxed);
    if (written.load() == 0) total_unchanged.fetch_add(1, std::memory_order_relaxed);
}

/// Fills a new segment of `bytes` bytes with [data, data + bytes) and maps it. Returns 0 or an
/// error number, with s.fd and s.map left for the caller to destroy.
///
/// This thread writes chunks from the front with pwrite, the cheapest way into fresh tmpfs pages
/// (~2.9 GB/s here: no page is zeroed, no page table filled); pwrites to one file are serialized
/// by its inode lock, so the helper thread fills chunks from the back through the mapping instead
/// (MADV_POPULATE_WRITE allocates and maps them without that lock, ~1.2 GB/s), and the two meet
/// where the work balances (80 MB: ~23 ms instead of ~28, lightly loaded). Any chunk that cannot
/// be populated is written with pwrite as well, so a full folder is reported with the error
/// pwrite gives.
int fill_new(segment& s, const void* data, std::size_t bytes) noexcept {
    while (::ftruncate(s.fd, static_cast<off_t>(bytes)) != 0)
        if (errno != EINTR) return errno;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd, 0);
    if (p == MAP_FAILED) return errno;
    s.map = static_cast<char*>(p);
    const char* from = static_cast<const char*>(data);
    char* to = s.map;
    const int fd = s.fd;
    const auto write = [fd, from](std::size_t begin, std::size_t end) noexcept {
        return write_at(fd, from + begin, end - begin, begin);
    };
    const auto populate_and_copy = [fd, from, to](std::size_t begin, std::size_t end) noexcept {
#ifdef MADV_POPULATE_WRITE
        if (::madvise(to + begin, end - begin, MADV_POPULATE_WRITE) == 0) {
            std::memcpy(to + begin, from + begin, end - begin);
            return 0;
        }
#endif
        return write_at(fd, from + begin, end - begin, begin);
    };
    return from_both_ends(bytes, write, populate_and_copy);
}

void destroy(segment& s) noexcept {
    if (s.map) ::munmap(s.map, s.capacity);
    if (s.fd >= 0) ::close(s.fd);
    s.map = nullptr;
    s.fd = -1;
}

}  // namespace

segment_store::~segment_store() {
    for (auto& s : all_) destroy(*s);
}

segment& segment_store::acquire(const std::string& folder, const void* data, std::size_t bytes) {
    // The segment kept for this very array: compare, and copy what changed.
    for (auto& s : all_) {
        if (s->data != data || s->bytes != bytes) continue;
        if (s->users == 0) {
            bring_up_to_date(*s, data, bytes);
            ++s->users;
            return *s;
        }
        // Another call reads it now: share it only if it holds these bytes already.
        if (s->map && std::memcmp(s->map, data, bytes) == 0) {
            total_unchanged.fetch_add(1, std::memory_order_relaxed);
            ++s->users;
            return *s;
        }
        break;
    }
    // Below the limits, a new segment, so that the arrays of earlier calls stay placed; past
    // them, the least recently used segment that is free and large enough, refilled.
    if (all_.size() >= max_kept || kept_bytes() + bytes > max_kept_bytes) {
        segment* oldest = nullptr;
        for (auto& s : all_)
            if (s->users == 0 && s->capacity >= bytes && (!oldest || s->last_use < oldest->last_use)) oldest = s.get();
        if (oldest) {
            oldest->data = nullptr;  // its old array is gone from it whatever happens next
            bring_up_to_date(*oldest, data, bytes);
            oldest->data = data;
            oldest->bytes = bytes;
            ++oldest->users;
            return *oldest;
        }
    }
    // A new one.
    all_.reserve(all_.size() + 1);  // so that keeping it cannot fail once it is made
    auto s = std::make_unique<segment>();
    s->fd = nameless_file(folder, bytes);
    s->capacity = bytes;
    if (const int err = fill_new(*s, data, bytes); err != 0) {
        destroy(*s);
        placement_failed(folder, bytes, err);
    }
    total_segments.fetch_add(1, std::memory_order_relaxed);
    total_bytes.fetch_add(bytes, std::memory_order_relaxed);
    s->id = next_segment_id.fetch_add(1, std::memory_order_relaxed);
    s->data = data;
    s->bytes = bytes;
    s->users = 1;
    all_.push_back(std::move(s));
    return *all_.back();
}

void segment_store::release(segment& s) noexcept {
    --s.users;
    s.last_use = ++clock_;
    trim();
}

std::size_t segment_store::kept_bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& s : all_) n += s->capacity;
    return n;
}

void segment_store::trim() noexcept {
    while (all_.size() > max_kept || (all_.size() > 1 && kept_bytes() > max_kept_bytes)) {
        auto oldest = all_.end();
        for (auto it = all_.begin(); it != all_.end(); ++it)
            if ((*it)->users == 0 && (oldest == all_.end() || (*it)->last_use < (*oldest)->last_use)) oldest = it;
        if (oldest == all_.end()) return;  // all in use: trimmed when they come back
        destroy(**oldest);
        all_.erase(oldest);
    }
}

call_sharing::~call_sharing() {
    for (segment* s : segments_) store_->release(*s);
}

bool call_sharing::share(const void* data, std::size_t bytes, shared_ref& ref) {
    if (!settings_.max_nbytes || bytes < *settings_.max_nbytes || bytes == 0) return false;
    const auto key = std::make_pair(data, bytes);
    if (auto it = placed_.find(key); it != placed_.end()) {
        ref = it->second;
        return true;
    }
    segment& s = store_->acquire(settings_.temp_folder, data, bytes);
    segments_.push_back(&s);
    ref.path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(s.fd);
    ref.bytes = bytes;
    ref.mode = static_cast<std::uint8_t>(settings_.mode);
    ref.id = s.id;
    placed_.emplace(key, ref);
    total_arrays.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void no_outside_bytes() {
    throw wire_error("cojob: a payload names bytes it does not hold (a shared array or a lent result), and its reader "
                     "has no way to reach them");
}

const char* map_shared_file(const shared_ref& ref) {
    auto& maps = worker_mappings();
    for (auto& m : maps)
        if (m.id == ref.id && m.bytes == ref.bytes && m.mode == ref.mode) {
            m.used = true;
            return static_cast<const char*>(m.base);
        }
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
    maps.push_back(worker_mapping{ref.id, ref.bytes, ref.mode, p, true});
    return static_cast<const char*>(p);
}

const char* worker_arrays::map_shared(const shared_ref& ref) { return map_shared_file(ref); }

void worker_arrays::copy_lent(std::uint64_t, std::size_t, piece_sink, void*) {
    throw wire_error("cojob: a request names a lent result; only responses lend");
}

std::shared_ptr<file_mapping> request_file_mapping(const std::string& path, mmap_mode mode, std::uint64_t offset,
                                                   std::int64_t bytes, std::size_t element_size, std::size_t alignment) {
    // Only a worker keeps them, and only shared mappings: a copy-on-write one would carry one
    // task's private writes into the next.
    if (!keep_mappings || (mode != mmap_mode::r && mode != mmap_mode::r_plus))
        return file_mapping::open(path, mode, offset, bytes, element_size, alignment);
    struct stat st {};
    const bool found = ::stat(path.c_str(), &st) == 0;
    auto& files = worker_files();
    for (auto& f : files)
        if (found && f.path == path && f.mode == static_cast<std::uint8_t>(mode) && f.offset == offset && f.bytes == bytes &&
            f.dev == st.st_dev && f.ino == st.st_ino && f.size == st.st_size) {
            f.used = true;
            return f.map;
        }
    auto map = file_mapping::open(path, mode, offset, bytes, element_size, alignment);
    if (found)
        files.push_back(worker_file{path, static_cast<std::uint8_t>(mode), offset, bytes, st.st_dev, st.st_ino, st.st_size, map, true});
    return map;
}

void release_request_mappings() noexcept {
    auto& maps = worker_mappings();
    std::erase_if(maps, [](worker_mapping& m) {
        const bool keep = m.used && m.mode != static_cast<std::uint8_t>(mmap_mode::c);
        if (!keep) ::munmap(m.base, static_cast<std::size_t>(m.bytes));
        m.used = false;
        return !keep;
    });
    auto& files = worker_files();
    std::erase_if(files, [](worker_file& f) { return !std::exchange(f.used, false); });
}

void keep_worker_mappings() noexcept { keep_mappings = true; }

std::size_t worker_mapping_count() noexcept { return worker_mappings().size() + worker_files().size(); }

std::string absolute_path(const std::string& path) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(path, ec);
    return ec ? path : abs.string();
}

void misaligned_span() { throw wire_error("cojob: a span's elements arrived misaligned in the request"); }
void throw_size_mismatch() { throw wire_error("cojob: an array's size disagrees with its shared block"); }

sharing_counters sharing_totals() noexcept {
    return {total_arrays.load(), total_segments.load(), total_bytes.load(), total_unchanged.load()};
}

}  // namespace cojob::detail
