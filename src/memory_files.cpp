// src/memory_files.cpp - the entry file format of cojob::memory (header, checksums, zstd) and
// the file operations it is built from: atomic writes, directories, removal through a trash.
#include "memory_internal.hpp"
#include "pieces.hpp"
#include "util.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace cojob::detail {

namespace {

constexpr char entry_magic[8] = {'C', 'O', 'J', 'O', 'B', 'M', 'E', 'M'};
constexpr std::size_t map_threshold = 64 * 1024;  // smaller files are read: mapping costs more
constexpr std::uint64_t max_payload = std::uint64_t(1) << 40;

std::uint64_t header_checksum(const entry_header& h) {
    return hash64(&h, offsetof(entry_header, header_checksum));
}

/// A name no other writer (thread or process) uses at the same time.
std::string unique_suffix() {
    static std::atomic<std::uint64_t> counter{0};
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    char buf[64];
    std::snprintf(buf, sizeof buf, ".%d.%llx.%llx", static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed)),
                  static_cast<unsigned long long>(now));
    return buf;
}

bool read_all(int fd, char* out, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

entry_file::~entry_file() {
    if (map_) ::munmap(map_, map_size_);
    if (fd_ >= 0) ::close(fd_);
}

entry_file::status entry_file::open(const std::string& path, const key128& key, bool map) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return status::missing;
        why_ = std::string("cannot be opened: ") + std::strerror(errno);
        return status::corrupt;
    }
    struct stat st{};
    if (::fstat(fd_, &st) != 0) {
        why_ = std::string("cannot be examined: ") + std::strerror(errno);
        return status::corrupt;
    }
    used_ns_ = std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size < sizeof(entry_header)) {
        why_ = "is truncated (" + std::to_string(size) + " bytes, shorter than its header)";
        return status::corrupt;
    }
    const char* data = nullptr;
    if (map && size >= map_threshold) {
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd_, 0);
        if (p != MAP_FAILED) {
            map_ = p;
            map_size_ = size;
            data = static_cast<const char*>(p);
        }
    }
    if (!data) {
        buffer_.resize(size);
        if (!read_all(fd_, buffer_.data(), size)) {
            why_ = "is truncated (short read)";
            return status::corrupt;
        }
        data = buffer_.data();
    }
    std::memcpy(&header_, data, sizeof header_);
    if (std::memcmp(header_.magic, entry_magic, sizeof entry_magic) != 0) {
        why_ = "is not a cojob cache entry (bad magic)";
        return status::corrupt;
    }
    if (header_.format != entry_format && header_.format != 1) {
        why_ = "has a foreign format version (" + std::to_string(header_.format) + ", this build reads 1 to " +
               std::to_string(entry_format) + ")";
        return status::corrupt;
    }
    if (header_.header_checksum != header_checksum(header_)) {
        why_ = "has a corrupt header (checksum mismatch)";
        return status::corrupt;
    }
    if (header_.key_low != key.low || header_.key_high != key.high) {
        why_ = "belongs to another key";
        return status::corrupt;
    }
    if (header_.stored_bytes != size - sizeof(entry_header) || header_.payload_bytes > max_payload) {
        why_ = "is truncated (" + std::to_string(size - sizeof(entry_header)) + " of " +
               std::to_string(header_.stored_bytes) + " payload bytes)";
        return status::corrupt;
    }
    const char* stored = data + sizeof(entry_header);
    if (hash64(stored, header_.stored_bytes) != header_.payload_checksum) {
        why_ = "is corrupt (payload checksum mismatch)";
        return status::corrupt;
    }
    if (header_.flags & flag_zstd) {
        if (const char* bad = decompress_frame(std::string_view(stored, header_.stored_bytes), header_.payload_bytes,
                                               decompressed_)) {
            why_ = std::string("is corrupt (") + bad + ")";
            return status::corrupt;
        }
        payload_ = decompressed_.data();
        payload_size_ = decompressed_.size();
    } else {
        if (header_.payload_bytes != header_.stored_bytes) {
            why_ = "is corrupt (sizes disagree)";
            return status::corrupt;
        }
        payload_ = stored;
        payload_size_ = header_.stored_bytes;
    }
    return status::ok;
}

namespace {
// Every "last use" stamp comes from this clock. The kernel stamps writes from its coarse clock,
// which moves once a tick (4-10 ms, later when a loaded VM misses ticks): entries stored a few
// milliseconds apart could share a time or come out in the wrong order against a touch.
timespec use_time() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return now;
}
}  // namespace

void entry_file::touch() noexcept {
    const timespec now = use_time();
    const std::int64_t now_ns = std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
    if (fd_ < 0 || now_ns - used_ns_ < 1'000'000) return;  // used within the last millisecond
    // The modification time is the last use: atime cannot serve, the kernel moves it on reads
    // under relatime (and never under noatime). The content's own time is in the header.
    const timespec times[2] = {{0, UTIME_OMIT}, now};
    (void)::futimens(fd_, times);  // a read-only (shared) cache keeps its order: fine
}

void stamp_use(const std::string& path) noexcept {
    const timespec times[2] = {{0, UTIME_OMIT}, use_time()};
    (void)::utimensat(AT_FDCWD, path.c_str(), times, 0);  // failing leaves the write's own time
}

std::string seal_entry(byte_sink& sink, const key128& key, int level, std::chrono::system_clock::time_point time,
                       std::chrono::duration<double> took) {
    entry_header h{};
    std::memcpy(h.magic, entry_magic, sizeof entry_magic);
    h.format = entry_format;
    h.key_low = key.low;
    h.key_high = key.high;
    h.payload_bytes = sink.size() - sizeof(entry_header);
    h.stored_bytes = h.payload_bytes;
    std::string packed;
    if (level > 0 && h.payload_bytes > 0) {
        try {
            packed = compress_pieces(sink, sizeof(entry_header), level, "cojob::memory");
        } catch (const error&) {
            // zstd failed: stored raw (packed stays empty), as when compressing does not pay
        }
        if (!packed.empty() && packed.size() - sizeof(entry_header) < h.payload_bytes) {
            h.flags |= flag_zstd;
            h.stored_bytes = packed.size() - sizeof(entry_header);
        } else {
            packed.clear();
        }
    }
    h.payload_checksum = packed.empty() ? hash_pieces(sink, sizeof(entry_header))
                                        : hash64(packed.data() + sizeof(entry_header), h.stored_bytes);
    h.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
    h.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
    h.header_checksum = header_checksum(h);
    std::memcpy(packed.empty() ? sink.buffer().data() : packed.data(), &h, sizeof h);
    return packed;
}

int write_atomically(const std::string& path, std::span<const std::string_view> pieces) {
    const std::string temp = path + unique_suffix() + ".tmp";
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    int error = 0;
    for (const std::string_view data : pieces)
        for (std::size_t done = 0; done < data.size() && !error;) {
            const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                error = n < 0 ? errno : ENOSPC;
            else
                done += static_cast<std::size_t>(n);
        }
    if (::close(fd) != 0 && !error) error = errno;
    if (!error && ::rename(temp.c_str(), path.c_str()) != 0) error = errno;
    if (error) ::unlink(temp.c_str());
    return error;
}

int write_atomically(const std::string& path, std::string_view data) {
    return write_atomically(path, std::span<const std::string_view>(&data, 1));
}

int make_directory(const std::string& path) {
    if (::mkdir(path.c_str(), 0755) == 0) return 0;
    const int e = errno;
    if (e != EEXIST) return e;
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return ENOTDIR;
}

void remove_tree(const std::string& path, const std::string& trash_root) {
    std::error_code ec;
    const std::string trash = trash_root + "/.trash" + unique_suffix();
    if (::rename(path.c_str(), trash.c_str()) == 0)
        std::filesystem::remove_all(trash, ec);
    else if (errno != ENOENT)
        std::filesystem::remove_all(path, ec);
}

std::string json_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        switch (ch) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(ch) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    return out;
}

std::string format_duration(double seconds) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1fs, %.1fmin", seconds, seconds / 60.0);
    return buf;
}

}  // namespace cojob::detail
