// src/pieces.hpp - private: the bytes of a gathering byte_sink as pieces (runs of its buffer and
// the arrays it refers to), and what the files cojob writes (dumps, memory's entries) do with
// them: compress them with zstd and hash them, each in one pass over the pieces where they are.
#pragma once

#include <cojob/detail/cache_archive.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cojob::detail {

/// Calls `f(data, size)` for the sink's bytes in order: runs of its buffer and the arrays it
/// gathered between them.
template <class F>
void for_each_piece(const byte_sink& sink, F f) {
    const std::string& buffer = sink.buffer();
    std::size_t from = 0;
    for (const byte_sink::gathered& g : sink.gathered_arrays()) {
        if (g.at > from) f(buffer.data() + from, g.at - from);
        f(g.data, g.size);
        from = g.at;
    }
    if (buffer.size() > from) f(buffer.data() + from, buffer.size() - from);
}

/// The sink's bytes as views, in order (for write_atomically).
[[nodiscard]] std::vector<std::string_view> pieces_of(const byte_sink& sink);

/// zstd at `level` over the sink's bytes after its first `header_bytes` (its header room):
/// `header_bytes` zero bytes followed by one frame, which records its content size.
/// @throws cojob::error starting with `who` when zstd fails.
[[nodiscard]] std::string compress_pieces(const byte_sink& sink, std::size_t header_bytes, int level, const char* who);

/// Decompresses the one zstd frame `stored` into `out`, which must come to `payload_bytes`
/// bytes. `out` grows as bytes come out of the frame, never from a size the frame claims, so
/// a few hostile bytes cannot make it allocate much: memory follows what the input really holds.
/// Returns null, or what is wrong ("compressed frame of unexpected size", ...).
[[nodiscard]] const char* decompress_frame(std::string_view stored, std::uint64_t payload_bytes, std::string& out);

/// XXH3-64 of the sink's bytes after its first `header_bytes` (the value XXH3_64bits gives for
/// them in one block).
[[nodiscard]] std::uint64_t hash_pieces(const byte_sink& sink, std::size_t header_bytes);

}  // namespace cojob::detail
