// src/wire.cpp - frames, function identities, the invoker table, and the identity of this
// build (the failures that cross the process boundary are in src/remote_failure.cpp).
#include "wire.hpp"

#include "util.hpp"

#include <cojob/detail/describe.hpp>

#include <xxhash.h>

#include <cxxabi.h>
#include <elf.h>
#include <link.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace cojob::detail {

// ---- frames -------------------------------------------------------------------------------

std::size_t begin_frame(byte_buffer& b) {
    const std::size_t at = b.size();
    b.resize(at + sizeof(frame_header));
    return at;
}

void end_frame(byte_buffer& b, std::size_t at, frame_kind kind) {
    frame_header h;
    h.kind = static_cast<std::uint16_t>(kind);
    h.length = b.size() - at - sizeof(frame_header);
    h.checksum = XXH3_64bits(b.data() + at + sizeof(frame_header), h.length);
    std::memcpy(b.data() + at, &h, sizeof h);
}

frame_header arena_header(const byte_buffer& b, bool failed) {
    frame_header h;
    h.kind = static_cast<std::uint16_t>(frame_kind::arena_response);
    h.length = b.size() - sizeof(frame_header);
    h.checksum = 0;  // nothing crossed a byte stream: there is no framing to lose (see the parent)
    h.reserved = failed ? arena_response_failed : 0;
    return h;
}

frame_header parse_header(const char* bytes, std::uint16_t last_kind) {
    frame_header h;
    std::memcpy(&h, bytes, sizeof h);
    if (h.magic != frame_magic) throw wire_error("cojob: corrupt frame on the worker pipe (bad magic number)");
    if (h.version != wire_version)
        throw wire_error("cojob: frame of wire version " + std::to_string(h.version) + " on the worker pipe; this build speaks version " +
                         std::to_string(wire_version));
    if (h.kind < static_cast<std::uint16_t>(frame_kind::hello) || h.kind > last_kind)
        throw wire_error("cojob: corrupt frame on the worker pipe (unknown kind " + std::to_string(h.kind) + ")");
    if (h.length > max_frame_payload)
        throw wire_error("cojob: corrupt frame on the worker pipe (length " + std::to_string(h.length) + ")");
    return h;
}

void check_payload(const frame_header& h, const char* payload) {
    if (XXH3_64bits(payload, h.length) != h.checksum)
        throw wire_error("cojob: corrupt frame on the worker pipe (checksum mismatch over " + std::to_string(h.length) +
                         " bytes)");
}

void answered_too_many() { throw wire_error("cojob: a worker answered more tasks than it was sent"); }

void read_trailing_times(const char* payload, std::size_t size, std::size_t completed, std::vector<std::int64_t>& times) {
    times.clear();
    const std::uint64_t count = 2 * static_cast<std::uint64_t>(completed);
    if (completed == 0 || completed > size / 16 || size < sizeof(count) * (count + 1)) return;
    const char* tail = payload + size - sizeof(std::int64_t) * count;
    std::uint64_t written = 0;
    std::memcpy(&written, tail - sizeof written, sizeof written);
    if (written != count) return;
    times.resize(static_cast<std::size_t>(count));
    std::memcpy(times.data(), tail, sizeof(std::int64_t) * count);
}

pipe_io& pipe_seam() noexcept {
    static pipe_io io{&::read, &::write};
    return io;
}

bool read_exact(int fd, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = pipe_seam().read(fd, p + got, n - got);
        if (r > 0) {
            got += static_cast<std::size_t>(r);
        } else if (r == 0) {
            if (got == 0) return false;
            throw wire_error("cojob: the pipe closed inside a frame (" + std::to_string(got) + " of " + std::to_string(n) +
                             " bytes read)");
        } else if (errno != EINTR && errno != EAGAIN) {
            throw std::system_error(errno, std::generic_category(), "cojob: reading a worker pipe");
        }
    }
    return true;
}

void read_payload(int fd, std::uint64_t length, byte_buffer& out) {
    out.clear();
    read_rest_of_payload(fd, length, out);
}

void read_rest_of_payload(int fd, std::uint64_t length, byte_buffer& out) {
    constexpr std::size_t step = 256 * 1024;
    while (out.size() < length) {
        const std::size_t at = out.size();
        const auto left = static_cast<std::size_t>(length - at);
        const std::size_t n = std::min(left, std::max(step, at));
        out.resize(at + n);
        if (!read_exact(fd, out.data() + at, n))
            throw wire_error("cojob: the pipe closed inside a frame (" + std::to_string(at) + " of " +
                             std::to_string(length) + " payload bytes read)");
    }
}

void write_all(int fd, const void* buf, std::size_t n, void (*before_waiting)() noexcept) {
    const auto* p = static_cast<const char*>(buf);
    std::size_t put = 0;
    while (put < n) {
        const ssize_t r = pipe_seam().write(fd, p + put, n - put);
        if (r >= 0) {
            put += static_cast<std::size_t>(r);
        } else if (errno == EAGAIN) {
            if (before_waiting) before_waiting();
            pollfd room{fd, POLLOUT, 0};
            (void)::poll(&room, 1, -1);
        } else if (errno != EINTR) {
            throw std::system_error(errno, std::generic_category(), "cojob: writing a worker pipe");
        }
    }
}

// ---- modules and function identities -------------------------------------------------------

namespace {

struct loaded_module {
    std::uint64_t name_hash = 0;
    std::uintptr_t base = 0;
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> code;  ///< executable [begin, end)
    std::string build_id;                                         ///< hex, "" when absent
};

std::uint64_t fnv1a(const void* data, std::size_t n) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

std::string hex(const unsigned char* p, std::size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

std::vector<loaded_module> scan_modules() {
    std::vector<loaded_module> mods;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* out) -> int {
            loaded_module m;
            const char* name = info->dlpi_name ? info->dlpi_name : "";
            m.name_hash = fnv1a(name, std::strlen(name));
            m.base = info->dlpi_addr;
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const auto& ph = info->dlpi_phdr[i];
                if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
                    m.code.emplace_back(m.base + ph.p_vaddr, m.base + ph.p_vaddr + ph.p_memsz);
                } else if (ph.p_type == PT_NOTE && m.build_id.empty()) {
                    const auto* p = reinterpret_cast<const unsigned char*>(m.base + ph.p_vaddr);
                    const auto* end = p + ph.p_memsz;
                    while (p + sizeof(ElfW(Nhdr)) <= end) {
                        ElfW(Nhdr) note;
                        std::memcpy(&note, p, sizeof note);
                        const auto* desc = p + sizeof note + ((note.n_namesz + 3) & ~3u);
                        if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && desc + note.n_descsz <= end &&
                            std::memcmp(p + sizeof note, "GNU", 4) == 0) {
                            m.build_id = hex(desc, note.n_descsz);
                            break;
                        }
                        p = desc + ((note.n_descsz + 3) & ~3u);
                    }
                }
            }
            static_cast<std::vector<loaded_module>*>(out)->push_back(std::move(m));
            return 0;
        },
        &mods);
    return mods;
}

class module_table {
public:
    /// The module whose code holds `address`, or null (rescans once: a library may be new).
    const loaded_module* by_address(std::uintptr_t address) {
        std::lock_guard lock(mutex_);
        for (int pass = 0; pass < 2; ++pass) {
            if (pass == 1 || mods_.empty()) mods_ = scan_modules();
            for (const auto& m : mods_)
                for (const auto& [b, e] : m.code)
                    if (address >= b && address < e) return &m;
        }
        return nullptr;
    }
    const loaded_module* by_name(std::uint64_t name_hash) {
        std::lock_guard lock(mutex_);
        for (int pass = 0; pass < 2; ++pass) {
            if (pass == 1 || mods_.empty()) mods_ = scan_modules();
            for (const auto& m : mods_)
                if (m.name_hash == name_hash) return &m;
        }
        return nullptr;
    }

private:
    std::mutex mutex_;
    std::vector<loaded_module> mods_;
};

module_table& modules() {
    static module_table t;
    return t;
}

constexpr std::size_t fingerprint_bytes = 16;

std::uint64_t fingerprint(std::uintptr_t address, std::uintptr_t segment_end) noexcept {
    const std::size_t n = std::min<std::uintptr_t>(fingerprint_bytes, segment_end - address);
    return fnv1a(reinterpret_cast<const void*>(address), n);
}

std::uintptr_t segment_end_of(const loaded_module& m, std::uintptr_t address) noexcept {
    for (const auto& [b, e] : m.code)
        if (address >= b && address < e) return e;
    return 0;
}

struct identity {
    std::uintptr_t address = 0;
    std::uint64_t module = 0, offset = 0, print = 0;
};

}  // namespace

void encode_function(wire_out& out, std::uintptr_t address) {
    // Batches carry the same function over and over: remember the last one per thread.
    thread_local identity last;
    if (last.address != address || address == 0) {
        const loaded_module* m = modules().by_address(address);
        if (!m) throw error("cojob: the task's function is not in the code of any loaded module");
        last = {address, m->name_hash, address - m->base, fingerprint(address, segment_end_of(*m, address))};
    }
    out(last.module, last.offset, last.print);
}

std::uintptr_t decode_function(wire_in& in) {
    std::uint64_t module = 0, offset = 0, print = 0;
    in(module, offset, print);
    thread_local identity last;
    if (last.module == module && last.offset == offset && last.print == print && last.address) return last.address;
    const loaded_module* m = modules().by_name(module);
    if (!m) throw wire_error("cojob: a task names a module this worker has not loaded");
    const std::uintptr_t address = m->base + offset;
    const std::uintptr_t end = segment_end_of(*m, address);
    if (end == 0) throw wire_error("cojob: a task names a function outside the code of its module");
    if (fingerprint(address, end) != print)
        throw wire_error("cojob: a task names a function whose code differs in this worker (another build?)");
    last = {address, module, offset, print};
    return address;
}

std::string build_identity() {
    static const std::string id = [] {
        std::string s = "cojob-wire-" + std::to_string(wire_version);
        const auto mods = scan_modules();
        const auto self = reinterpret_cast<std::uintptr_t>(&build_identity);
        for (std::size_t i = 0; i < mods.size(); ++i) {
            const bool is_program = i == 0;
            const bool is_cojob = segment_end_of(mods[i], self) != 0;
            if (!is_program && !is_cojob) continue;
            if (!mods[i].build_id.empty()) {
                s += ":" + mods[i].build_id;
            } else if (is_program) {
                struct stat st {};
                if (::stat("/proc/self/exe", &st) == 0)
                    s += ":exe-" + std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
                         std::to_string(st.st_mtim.tv_sec);
            }
        }
        return s;
    }();
    return id;
}

// ---- invokers ----------------------------------------------------------------------------

namespace {
struct invoker_entry {
    invoker_fn fn = nullptr;
    const char* type_name = "";
    const char* other_type = nullptr;  ///< a second type registered under the same key
};
struct invoker_table {
    std::shared_mutex mutex;
    std::unordered_map<std::uint64_t, invoker_entry> by_key;
};
invoker_table& invokers() {
    static invoker_table t;
    return t;
}
}  // namespace

std::uint64_t type_key(const std::type_info& t) noexcept {
    const char* n = t.name();
    return fnv1a(n, std::strlen(n));
}

bool register_invoker(std::uint64_t key, invoker_fn fn, const char* type_name) noexcept {
    try {
        auto& t = invokers();
        std::unique_lock lock(t.mutex);
        auto [it, added] = t.by_key.try_emplace(key, invoker_entry{fn, type_name, nullptr});
        // The same type registered again (from another shared object of the program) is the
        // same invoker; another type under the same key makes the key unusable.
        if (!added && std::strcmp(it->second.type_name, type_name) != 0) it->second.other_type = type_name;
    } catch (...) {
        // Out of memory during static initialisation: the worker will report the type unknown.
    }
    return true;
}

void check_invoker(std::uint64_t key, const char* type_name) {
    auto& t = invokers();
    std::shared_lock lock(t.mutex);
    const auto it = t.by_key.find(key);
    if (it == t.by_key.end() || !it->second.other_type) return;
    const char* other = std::strcmp(it->second.type_name, type_name) == 0 ? it->second.other_type : it->second.type_name;
    throw error("cojob: these tasks cannot run in a worker process: their type " + demangle(type_name) +
                " shares its wire key with " + demangle(other) +
                ", so a worker could not tell them apart; wrap the function or one argument in a type of "
                "your own to give the task another type (backend=threads runs it as it is)");
}

invoker_fn find_invoker(std::uint64_t key) noexcept {
    auto& t = invokers();
    std::shared_lock lock(t.mutex);
    auto it = t.by_key.find(key);
    if (it == t.by_key.end() || it->second.other_type) return nullptr;  // unknown, or ambiguous
    return it->second.fn;
}

// A result is lent only when making it took at least `readers` nanoseconds per byte of it, where
// readers is how many workers the parent reads from: then a parent reading every worker's
// results at 1 GB/s keeps up, and the copy saved here is time won. Faster tasks make the parent
// the bottleneck, and their results go in the arena (the worker copies them, which the parent
// reads faster than a worker's memory).
bool worker_context::worth_lending(std::size_t bytes, std::int64_t made_ns) const noexcept {
    if (!lent || !lend_readers) return false;
    const std::uint32_t readers = lend_readers->load(std::memory_order_acquire);
    const auto took = static_cast<std::uint64_t>(std::max<std::int64_t>(made_ns - lend_mark_ns, 0));
    return readers != 0 && took >= std::uint64_t{readers} * bytes;
}

std::int64_t steady_now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace cojob::detail
