// src/persist.cpp - the dump file: a 256-byte header (src/dump_format.hpp) followed by the
// payload written with memory's cache archive (arrays aligned in the file, see array_layout),
// optionally zstd-compressed; atomic writes, checked reads, array lookup for mmap.
#include <cojob/persist.hpp>

#include <cojob/detail/describe.hpp>
#include <cojob/errors.hpp>

#include "dump_format.hpp"
#include "pieces.hpp"
#include "util.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace cojob::detail {

namespace {

constexpr char magic_bytes[8] = {'C', 'O', 'J', 'O', 'B', 'D', 'M', 'P'};

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
    dump_failure("cojob::load", path, what);
}

}  // namespace

const char* dump_magic() noexcept { return magic_bytes; }

std::uint64_t dump_header_checksum(const dump_header& h) noexcept {
    return XXH3_64bits(&h, offsetof(dump_header, header_checksum));
}

fd_closer::~fd_closer() {
    if (fd >= 0) ::close(fd);
}

void dump_failure(const char* who, const std::filesystem::path& path, const std::string& what) {
    throw error(std::string(who) + ": " + path.string() + " " + what);
}

bool read_at(int fd, void* out, std::size_t size, std::uint64_t at) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::pread(fd, static_cast<char*>(out) + done, size - done, static_cast<off_t>(at + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

dump_header read_dump_header(const char* who, const std::filesystem::path& path, const dump_type* expected,
                             fd_closer& fd, std::uint64_t& file_size) {
    fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd.fd < 0) dump_failure(who, path, std::string("cannot be opened: ") + std::strerror(errno));
    struct stat st{};
    if (::fstat(fd.fd, &st) != 0) dump_failure(who, path, std::string("cannot be examined: ") + std::strerror(errno));
    file_size = static_cast<std::uint64_t>(st.st_size);
    dump_header h{};
    if (file_size < dump_header_bytes || !read_at(fd.fd, &h, sizeof h, 0))
        dump_failure(who, path, "is not a cojob dump (shorter than its header)");
    if (std::memcmp(h.magic, magic_bytes, sizeof magic_bytes) != 0) dump_failure(who, path, "is not a cojob dump (bad magic)");
    if (h.format < 1 || h.format > dump_format_version)
        dump_failure(who, path, "has dump format " + std::to_string(h.format) + "; this build reads formats 1 to " +
                                    std::to_string(dump_format_version));
    if (h.header_checksum != dump_header_checksum(h)) dump_failure(who, path, "has a corrupt header (checksum mismatch)");
    h.type_name[sizeof h.type_name - 1] = '\0';
    if (expected && h.type_key != expected->type_key)
        dump_failure(who, path, "holds a " + demangle(h.type_name) + ", not a " + demangle(expected->type_name));
    if (h.stored_bytes != file_size - dump_header_bytes || h.payload_bytes > dump_max_payload)
        dump_failure(who, path, "is truncated (" + std::to_string(file_size - dump_header_bytes) + " of " +
                                    std::to_string(h.stored_bytes) + " payload bytes)");
    if (!(h.flags & dump_flag_zstd) && h.payload_bytes != h.stored_bytes)
        dump_failure(who, path, "is corrupt (sizes disagree)");
    return h;
}

void array_extent(const char* who, const std::filesystem::path& path, const dump_header& h, int fd,
                  std::uint64_t file_size, std::uint64_t& offset, std::uint64_t& count) {
    if (!read_at(fd, &count, sizeof count, dump_header_bytes)) dump_failure(who, path, "is truncated (no element count)");
    const std::uint64_t bytes = count <= dump_max_payload && h.element_size <= 64 ? count * h.element_size : 0;
    offset = dump_header_bytes + sizeof count;
    offset += layout_of(h).padding(static_cast<std::size_t>(offset), static_cast<std::size_t>(bytes));
    if (count > dump_max_payload || h.element_size > 64 || offset + bytes != file_size)
        dump_failure(who, path, "is damaged (" + std::to_string(count) + " elements do not fit its " +
                                    std::to_string(file_size) + " bytes)");
}

std::uint64_t type_name_key(const char* mangled) noexcept { return XXH3_64bits(mangled, std::strlen(mangled)); }

void write_dump(const std::filesystem::path& path, byte_sink& sink, int level, const dump_type& type) {
    const int max_level = std::min(ZSTD_maxCLevel(), 19);
    if (level < 0 || level > max_level)
        throw error("cojob::dump: compress=" + std::to_string(level) + " is not valid; expected 0 (raw, mappable) or a zstd level 1.." +
                    std::to_string(max_level));
    dump_header h{};
    std::memcpy(h.magic, magic_bytes, sizeof magic_bytes);
    h.format = dump_format_version;
    h.type_key = type.type_key;
    h.element_key = type.element_key;
    h.element_size = type.element_size;
    if (type.element_key) h.flags |= dump_flag_array;
    std::strncpy(h.type_name, type.type_name, sizeof h.type_name - 1);
    h.payload_bytes = sink.size() - dump_header_bytes;
    h.stored_bytes = h.payload_bytes;
    std::string packed;  // compressed: the header room and the frame
    if (level > 0) {
        packed = compress_pieces(sink, dump_header_bytes, level, "cojob::dump");
        h.flags |= dump_flag_zstd;
        h.stored_bytes = packed.size() - dump_header_bytes;
        h.payload_checksum = XXH3_64bits(packed.data() + dump_header_bytes, h.stored_bytes);
    } else {
        // Raw: hashed where the bytes are (the gathered arrays in the value), in one pass.
        h.flags |= dump_flag_checksum;
        h.payload_checksum = hash_pieces(sink, dump_header_bytes);
    }
    h.header_checksum = dump_header_checksum(h);
    std::memcpy(level > 0 ? packed.data() : sink.buffer().data(), &h, sizeof h);

    // Raw: the gathered arrays go to the file straight from the value (one copy).
    const std::vector<std::string_view> pieces = level > 0 ? std::vector<std::string_view>{packed} : pieces_of(sink);
    if (const int err = write_atomically(path.string(), pieces))
        throw error("cojob::dump: " + path.string() + " cannot be written: " + std::strerror(err));
}

dump_reader::dump_reader(const std::filesystem::path& path, const dump_type& expected) : path_(path.string()) {
    fd_closer fd;
    std::uint64_t size = 0;
    const dump_header h = read_dump_header("cojob::load", path, &expected, fd, size);
    layout_ = layout_of(h);
    if (!(h.flags & dump_flag_zstd)) {
        // Raw: the payload is read where the page cache has it, with no buffer in between
        // (MAP_POPULATE makes the page-table entries in one go instead of a fault per 16 pages).
        mapped_bytes_ = static_cast<std::size_t>(size);
        mapped_ = ::mmap(nullptr, mapped_bytes_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.fd, 0);
        if (mapped_ == MAP_FAILED) {
            mapped_ = nullptr;
            fail(path, std::string("cannot be mapped: ") + std::strerror(errno));
        }
        payload_ = static_cast<const char*>(mapped_) + dump_header_bytes;
        payload_bytes_ = static_cast<std::size_t>(h.payload_bytes);
        if ((h.flags & dump_flag_checksum) && XXH3_64bits(payload_, payload_bytes_) != h.payload_checksum)
            fail(path, "is corrupt (payload checksum mismatch)");
        return;
    }
    std::string stored(h.stored_bytes, '\0');
    if (!read_at(fd.fd, stored.data(), stored.size(), dump_header_bytes)) fail(path, "is truncated (short read)");
    if (XXH3_64bits(stored.data(), stored.size()) != h.payload_checksum) fail(path, "is corrupt (payload checksum mismatch)");
    if (const char* why = decompress_frame(stored, h.payload_bytes, decompressed_)) fail(path, std::string("is corrupt (") + why + ")");
    payload_ = decompressed_.data();
    payload_bytes_ = decompressed_.size();
}

dump_reader::~dump_reader() {
    if (mapped_) ::munmap(mapped_, mapped_bytes_);
}

void dump_reader::finish(const byte_source& s) const {
    if (!s.at_end()) throw error("cojob::load: " + path_ + " has bytes after the value (written by another type?)");
}

void dump_reader::damaged(const char* why) const {
    throw error("cojob::load: " + path_ + " does not parse as the type asked for (" + why + ")");
}

void locate_array(const std::filesystem::path& path, const dump_type& expected, bool writable, std::uint64_t& offset,
                  std::uint64_t& count) {
    fd_closer fd;
    std::uint64_t size = 0;
    dump_header h = read_dump_header("cojob::load", path, &expected, fd, size);
    if (h.flags & dump_flag_zstd)
        throw error("cojob::load_mmap: " + path.string() +
                    " is compressed (zstd) and cannot be memory-mapped; load it into memory with "
                    "cojob::load<std::vector<T>>(path), or dump it with compress=0");
    if (!(h.flags & dump_flag_array) || h.element_size != expected.element_size)
        fail(path, "does not hold one array of " + std::to_string(expected.element_size) + "-byte elements");
    array_extent("cojob::load", path, h, fd.fd, size, offset, count);
    if (!writable || !(h.flags & dump_flag_checksum)) return;
    // Writes through the map will change the payload: the checksum no longer holds, and the
    // header says so before the first write can happen.
    h.flags &= ~dump_flag_checksum;
    h.payload_checksum = 0;
    h.header_checksum = dump_header_checksum(h);
    fd_closer rw;
    rw.fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (rw.fd < 0 || ::pwrite(rw.fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
        throw error("cojob::load_mmap: " + path.string() + " cannot be opened for writing: " + std::strerror(errno));
}

}  // namespace cojob::detail
