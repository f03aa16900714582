// cojob/detail/shared_arrays.hpp - how arrays cross to process workers: std::span<const T>
// inline and aligned (the worker's span points into the request) below max_nbytes, or as a
// reference to a shared segment above it; large binary blocks (std::vector, std::string) the
// same way; cojob::memmap always by reference to its file. Included by cojob/detail/wire_archive.hpp.
#pragma once

#include <cojob/detail/elements.hpp>
#include <cojob/memmap.hpp>
#include <cojob/mmap_mode.hpp>

#include <cereal/cereal.hpp>

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace cojob::detail {

class wire_out;
class wire_in;

/// Where a worker finds bytes the parent placed in shared memory.
struct shared_ref {
    std::string path;         ///< a path the worker can open (the parent's descriptor under /proc)
    std::uint64_t bytes = 0;  ///< mapped from offset 0
    std::uint8_t mode = 0;    ///< cojob::mmap_mode the worker maps it with
    std::uint64_t id = 0;     ///< the segment's identity: a worker keeps its mapping by it

    template <class Ar>
    void serialize(Ar& ar) {
        ar(path, bytes, mode, id);
    }
};

/// Receives bytes piece by piece (whole elements in every piece).
using piece_sink = void (*)(void* ctx, const char* p, std::size_t n);

/// What encoding a request may do with a large array: place it in shared memory once, and
/// send a reference instead of its bytes. Given to the request's wire_out by whoever encodes it
/// (the process backend's call_sharing, an MPI rank's block_sender; compiled in src/).
class array_placer {
public:
    /// When `bytes` at `data` are to be shared: places them, fills `ref` and returns true.
    virtual bool share(const void* data, std::size_t bytes, shared_ref& ref) = 0;

protected:
    array_placer() = default;
    array_placer(const array_placer&) = default;
    array_placer& operator=(const array_placer&) = default;
    ~array_placer() = default;
};

/// Where decoding finds bytes that did not travel inline. Given to a payload's wire_in by
/// whoever decodes it (a worker's arrays, MPI's blocks, the worker whose response lent results;
/// compiled in src/).
class outside_bytes {
public:
    /// The bytes `ref` names, mapped until the current request has been answered.
    /// @throws cojob::error when they cannot be opened or mapped.
    virtual const char* map_shared(const shared_ref& ref) = 0;
    /// Copies the worker's bytes [address, address + n), which its response lent, to `sink`.
    /// @throws worker_died when that worker is gone.
    virtual void copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) = 0;

protected:
    outside_bytes() = default;
    outside_bytes(const outside_bytes&) = default;
    outside_bytes& operator=(const outside_bytes&) = default;
    ~outside_bytes() = default;
};

// ---- compiled in src/sharing.cpp ---------------------------------------------------------

/// @throws wire_error: a payload names bytes outside it, and its reader was given no outside_bytes.
[[noreturn]] void no_outside_bytes();
/// A memmap's mapping as a request delivers it: in a process worker, mappings of files in mode r or r+
/// are kept across consecutive requests that use them (while the path names the same file),
/// so tasks of a batch and batches of a call map each file once; elsewhere a new mapping.
std::shared_ptr<file_mapping> request_file_mapping(const std::string& path, mmap_mode mode, std::uint64_t offset,
                                                   std::int64_t bytes, std::size_t element_size, std::size_t alignment);
/// The absolute form of a memmap's path, so a worker finds it whatever its directory.
std::string absolute_path(const std::string& path);
/// @throws wire_error: a span's bytes in a request are not aligned for its elements.
[[noreturn]] void misaligned_span();
/// @throws wire_error: a shared block's size disagrees with its container's.
[[noreturn]] void throw_size_mismatch();

/// Blocks this small always travel inline, with no marker byte.
inline constexpr std::size_t blob_floor = 64;

template <class Ar>
concept wire_output = std::same_as<Ar, wire_out>;
template <class Ar>
concept wire_input = std::same_as<Ar, wire_in>;

/// A vector of numbers this large is a "large vector": read in one pass (load_large_vector),
/// and lent by a process worker whose parent can read its memory.
inline constexpr std::size_t large_vector_bytes = std::size_t{4} << 20;

/// The zero bytes between an inline block's marker, which ends at `position` of the payload,
/// and the block: a large block starts on a 64-byte boundary of the payload, so that its
/// reader finds whole, aligned elements and copies them with memmove (payloads start at
/// least 16-byte aligned).
[[nodiscard]] constexpr std::size_t blob_padding(std::size_t position, std::size_t bytes) noexcept {
    return bytes >= large_vector_bytes ? (64 - position % 64) % 64 : 0;
}

/// Writes a binary block (the body of a vector of arithmetic values or of a string).
template <wire_output Ar>
void save_blob(Ar& ar, const void* data, std::size_t bytes) {
    if (bytes < blob_floor) {
        ar.write(data, bytes);
        return;
    }
    shared_ref ref;
    const std::uint8_t shared = ar.placer() && ar.placer()->share(data, bytes, ref) ? 1 : 0;
    ar.write(&shared, 1);
    if (shared) {
        ar(ref);
        return;
    }
    static constexpr char zeros[64] = {};
    ar.write(zeros, blob_padding(ar.position(), bytes));
    ar.write(data, bytes);
}
/// Where the `bytes` bytes of a block save_blob wrote are: inline (past its marker and padding)
/// or in shared memory. Everything is checked before a caller allocates room for them.
template <wire_input Ar>
const char* take_blob(Ar& ar, std::size_t bytes) {
    if (bytes < blob_floor) return ar.take(bytes);
    std::uint8_t shared = 0;
    ar.read(&shared, 1);
    if (shared == 0) {
        ar.skip(blob_padding(ar.position(), bytes));
        return ar.take(bytes);
    }
    if (shared != 1) throw_size_mismatch();  // lent bytes come only as a whole result (read_large_vector)
    shared_ref ref;
    ar(ref);
    if (ref.bytes != bytes) throw_size_mismatch();
    return ar.source().map_shared(ref);
}
template <wire_input Ar>
void load_blob(Ar& ar, void* data, std::size_t bytes) {
    const char* p = take_blob(ar, bytes);
    if (bytes) std::memcpy(data, p, bytes);
}

/// save_blob's marker byte after a vector's size tag: 0 the bytes follow (after blob_padding),
/// 1 a shared segment, and this one, in results only: the address of the bytes in the
/// worker, which keeps the vector alive until the parent has read it straight from its memory
/// (one copy, and none in the worker).
inline constexpr std::uint8_t blob_lent = 2;

/// Worker side of a lent vector: its size tag, the marker and the address of its elements.
template <wire_output Ar>
void save_lent(Ar& ar, const void* data, std::size_t count) {
    const auto n = static_cast<std::uint64_t>(count);
    const auto address = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(data));
    ar.write(&n, sizeof n);
    ar.write(&blob_lent, 1);
    ar.write(&address, sizeof address);
}

/// Reads a large vector of numbers (large_vector_bytes or more) whose bytes are inline, or lent,
/// in one pass: its storage is reserved (fill_fresh) and filled straight from the bytes,
/// where cereal would zero it first and copy after. Where the bytes are is the caller's:
/// `inline_bytes(n, sink, ctx)` passes the next n bytes of `ar` to the sink, `lent_bytes(address,
/// n, sink, ctx)` copies them out of the worker. Returns false, having read nothing, for
/// anything else (small, shared, truncated), which the caller then reads the ordinary way.
template <wire_input Ar, class E, class A, class Inline, class Lent>
    requires std::is_arithmetic_v<E> && (!std::same_as<E, bool>)
bool read_large_vector(Ar& ar, std::vector<E, A>& v, Inline inline_bytes, Lent lent_bytes) {
    unsigned char head[sizeof(std::uint64_t) + 1];  // cereal's size tag, then save_blob's marker
    if (!ar.peek(head, sizeof head)) return false;
    std::uint64_t n = 0;
    std::memcpy(&n, head, sizeof n);
    const std::uint8_t marker = head[sizeof n];
    if (marker == blob_lent) {
        ar.skip(sizeof head);
        std::uint64_t address = 0;
        ar.read(&address, sizeof address);
        if (n > (std::uint64_t{1} << 40) / sizeof(E)) throw_size_mismatch();
        const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(E);
        if (bytes) {  // the last element is read first: no room is made for bytes the worker lacks
            struct tail {
                char bytes[sizeof(E)];
                std::size_t at = 0;
            } last;
            lent_bytes(address + bytes - sizeof(E), sizeof(E),
                       [](void* t, const char* data, std::size_t k) {
                           auto& to = *static_cast<tail*>(t);
                           if (k > sizeof to.bytes - to.at) throw_size_mismatch();
                           std::memcpy(to.bytes + to.at, data, k);
                           to.at += k;
                       },
                       &last);
        }
        fill_fresh(v, static_cast<std::size_t>(n), [&] { lent_bytes(address, bytes, &append_elements<E, A>, &v); });
        return true;
    }
    if (marker != 0 || n > (ar.remaining() - sizeof head) / sizeof(E)) return false;
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(E);
    if (bytes < large_vector_bytes) return false;
    const std::size_t padding = blob_padding(ar.position() + sizeof head, bytes);
    if (padding > ar.remaining() - sizeof head - bytes) return false;
    ar.skip(sizeof head + padding);
    fill_fresh(v, static_cast<std::size_t>(n), [&] { inline_bytes(bytes, &append_elements<E, A>, &v); });
    return true;
}

/// read_large_vector from a payload in this process, lent bytes from the worker whose response
/// it is (the reader's outside_bytes).
template <wire_input Ar, class E, class A>
    requires std::is_arithmetic_v<E> && (!std::same_as<E, bool>)
bool load_large_vector(Ar& ar, std::vector<E, A>& v) {
    return read_large_vector(
        ar, v, [&ar](std::size_t bytes, piece_sink sink, void* ctx) { sink(ctx, ar.take(bytes), bytes); },
        [&ar](std::uint64_t address, std::size_t bytes, piece_sink sink, void* ctx) {
            ar.source().copy_lent(address, bytes, sink, ctx);
        });
}

template <wire_output Ar, class E, std::size_t N>
    requires std::is_trivially_copyable_v<E>
void CEREAL_SAVE_FUNCTION_NAME(Ar& ar, const std::span<E, N>& s) {
    const std::size_t bytes = s.size_bytes();
    shared_ref ref;
    const std::uint8_t shared = ar.placer() && ar.placer()->share(s.data(), bytes, ref) ? 1 : 0;
    ar(shared, static_cast<std::uint64_t>(s.size()));
    if (shared) {
        ar(ref);
        return;
    }
    // Inline, padded so the worker's span is aligned: request payloads start on a 16-byte
    // boundary in the worker, and positions count from the payload's start.
    static_assert(alignof(E) <= 16, "cojob: span elements aligned beyond 16 bytes cannot travel inline");
    static constexpr char zeros[16] = {};
    ar.write(zeros, (alignof(E) - ar.position() % alignof(E)) % alignof(E));
    ar.write(s.data(), bytes);
}

template <wire_input Ar, class E, std::size_t N>
    requires std::is_trivially_copyable_v<E> && std::is_const_v<E>
void CEREAL_LOAD_FUNCTION_NAME(Ar& ar, std::span<E, N>& s) {
    std::uint8_t shared = 0;
    std::uint64_t n = 0;
    ar(shared, n);
    const char* p = nullptr;
    if (shared) {
        shared_ref ref;
        ar(ref);
        if (ref.bytes / sizeof(E) != n) throw_size_mismatch();
        p = ref.bytes ? ar.source().map_shared(ref) : nullptr;
    } else {
        ar.skip((alignof(E) - ar.position() % alignof(E)) % alignof(E));
        if (n > ar.remaining() / sizeof(E)) throw_size_mismatch();
        p = ar.take(static_cast<std::size_t>(n) * sizeof(E));
    }
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(E) != 0) misaligned_span();
    if constexpr (N == std::dynamic_extent)
        s = std::span<E, N>(reinterpret_cast<E*>(p), static_cast<std::size_t>(n));
    else if (n != N)
        throw_size_mismatch();
    else
        s = std::span<E, N>(reinterpret_cast<E*>(p), N);
}

/// A memmap travels by reference: each worker maps the same file (w+ as r+: never re-created).
template <wire_output Ar, class E>
void CEREAL_SAVE_FUNCTION_NAME(Ar& ar, const memmap<E>& m) {
    const std::uint8_t mode = static_cast<std::uint8_t>(m.mode() == mmap_mode::w_plus ? mmap_mode::r_plus : m.mode());
    const std::vector<std::size_t>& shape = m.shape();
    ar(m.path().empty() ? std::string() : absolute_path(m.path()), mode, m.offset(), static_cast<std::uint64_t>(shape.size()));
    for (std::size_t d : shape) ar(static_cast<std::uint64_t>(d));
}
template <wire_input Ar, class E>
void CEREAL_LOAD_FUNCTION_NAME(Ar& ar, memmap<E>& m) {
    std::string path;
    std::uint8_t mode = 0;
    std::uint64_t offset = 0, dims = 0;
    ar(path, mode, offset, dims);
    if (dims > 64 || mode > static_cast<std::uint8_t>(mmap_mode::c)) throw_size_mismatch();
    std::vector<std::size_t> shape(static_cast<std::size_t>(dims));
    for (auto& d : shape) {
        std::uint64_t v = 0;
        ar(v);
        d = static_cast<std::size_t>(v);
    }
    if (path.empty()) {
        m = memmap<E>();
        return;
    }
    std::int64_t bytes = -1;
    if (!shape.empty()) {
        std::size_t n = 1;
        for (std::size_t d : shape) n *= d;
        bytes = static_cast<std::int64_t>(n * sizeof(E));
    }
    auto map = request_file_mapping(path, static_cast<mmap_mode>(mode), offset, bytes, sizeof(E), alignof(E));
    m = memmap<E>(adopt_mapping, std::move(path), static_cast<mmap_mode>(mode), std::move(shape), offset, std::move(map));
}

/// Views whose bytes live in a request: arguments only, never results.
template <class T>
inline constexpr bool is_request_view = false;
template <class E, std::size_t N>
inline constexpr bool is_request_view<std::span<E, N>> = true;

}  // namespace cojob::detail
