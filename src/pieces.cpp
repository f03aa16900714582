// src/pieces.cpp - zstd and XXH3 over a gathering byte_sink's pieces (src/pieces.hpp).
#include "pieces.hpp"

#include <cojob/errors.hpp>

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string_view>

namespace cojob::detail {

namespace {

/// Calls `f(data, size)` for the sink's bytes after its first `skip`.
template <class F>
void for_each_piece_after(const byte_sink& sink, std::size_t skip, F f) {
    for_each_piece(sink, [&](const char* data, std::size_t size) {
        const std::size_t drop = std::min(skip, size);
        skip -= drop;
        if (size > drop) f(data + drop, size - drop);
    });
}

}  // namespace

std::vector<std::string_view> pieces_of(const byte_sink& sink) {
    std::vector<std::string_view> pieces;
    pieces.reserve(2 * sink.gathered_arrays().size() + 1);
    for_each_piece(sink, [&pieces](const char* data, std::size_t size) { pieces.emplace_back(data, size); });
    return pieces;
}

std::string compress_pieces(const byte_sink& sink, std::size_t header_bytes, int level, const char* who) {
    struct cctx_deleter {
        void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
    };
    const std::unique_ptr<ZSTD_CCtx, cctx_deleter> cctx(ZSTD_createCCtx());
    if (!cctx) throw std::bad_alloc();
    const auto check = [who](std::size_t r) {
        if (ZSTD_isError(r)) throw error(std::string(who) + ": zstd failed: " + ZSTD_getErrorName(r));
        return r;
    };
    const std::size_t payload_bytes = sink.size() - header_bytes;
    check(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level));
    check(ZSTD_CCtx_setPledgedSrcSize(cctx.get(), payload_bytes));
    std::string packed(header_bytes + ZSTD_compressBound(payload_bytes), '\0');
    ZSTD_outBuffer out{packed.data() + header_bytes, packed.size() - header_bytes, 0};
    for_each_piece_after(sink, header_bytes, [&](const char* data, std::size_t size) {
        ZSTD_inBuffer in{data, size, 0};
        while (in.pos < in.size) check(ZSTD_compressStream2(cctx.get(), &out, &in, ZSTD_e_continue));
    });
    ZSTD_inBuffer none{nullptr, 0, 0};
    while (check(ZSTD_compressStream2(cctx.get(), &out, &none, ZSTD_e_end)) != 0) {
    }
    packed.resize(header_bytes + out.pos);
    return packed;
}

const char* decompress_frame(std::string_view stored, std::uint64_t payload_bytes, std::string& out) {
    if (ZSTD_getFrameContentSize(stored.data(), stored.size()) != payload_bytes) return "compressed frame of unexpected size";
    struct dctx_deleter {
        void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
    };
    const std::unique_ptr<ZSTD_DCtx, dctx_deleter> dctx(ZSTD_createDCtx());
    if (!dctx) throw std::bad_alloc();
    // Levels up to 19 use windows of 8 MiB at most; a frame asking for more was not written here.
    if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 23))) return "zstd refused its settings";
    out.clear();
    std::size_t room = static_cast<std::size_t>(std::min<std::uint64_t>(payload_bytes, 4 * stored.size() + 4096));
    out.resize(room);
    ZSTD_inBuffer in{stored.data(), stored.size(), 0};
    ZSTD_outBuffer put{out.data(), out.size(), 0};
    for (;;) {
        const std::size_t consumed = in.pos, made = put.pos;
        const std::size_t r = ZSTD_decompressStream(dctx.get(), &put, &in);
        if (ZSTD_isError(r)) return "cannot be decompressed";
        if (r == 0) break;  // the frame is complete
        if (put.pos == put.size && room < payload_bytes) {
            room = static_cast<std::size_t>(std::min<std::uint64_t>(payload_bytes, std::uint64_t{room} * 2 + 4096));
            out.resize(room);
            put = ZSTD_outBuffer{out.data(), out.size(), put.pos};
            continue;
        }
        if (in.pos == consumed && put.pos == made)
            return in.pos == in.size ? "compressed frame cut short" : "compressed frame longer than it says";
    }
    if (put.pos != payload_bytes || in.pos != in.size) return "compressed frame of unexpected size";
    out.resize(put.pos);
    return nullptr;
}

std::uint64_t hash_pieces(const byte_sink& sink, std::size_t header_bytes) {
    struct state_deleter {
        void operator()(XXH3_state_t* s) const noexcept { XXH3_freeState(s); }
    };
    const std::unique_ptr<XXH3_state_t, state_deleter> state(XXH3_createState());
    if (!state) throw std::bad_alloc();
    XXH3_64bits_reset(state.get());
    for_each_piece_after(sink, header_bytes,
                         [&](const char* data, std::size_t size) { XXH3_64bits_update(state.get(), data, size); });
    return XXH3_64bits_digest(state.get());
}

}  // namespace cojob::detail
