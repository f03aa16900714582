// src/persist_verify.cpp - cojob::verify: a dump file checked in full, read in chunks (memory
// stays small whatever the file's size), without loading its value.
#include <cojob/persist.hpp>

#include <cojob/errors.hpp>

#include "dump_format.hpp"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace cojob {

namespace {

constexpr const char* who = "cojob::verify";
constexpr std::size_t chunk_bytes = std::size_t{1} << 20;

struct state_deleter {
    void operator()(XXH3_state_t* s) const noexcept { XXH3_freeState(s); }
};
struct dctx_deleter {
    void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
};

/// Decompresses stored chunks as they come, counting the bytes out and throwing them away.
class frame_counter {
public:
    explicit frame_counter(const std::filesystem::path& path) : path_(path), dctx_(ZSTD_createDCtx()), out_(chunk_bytes) {
        if (!dctx_) throw std::bad_alloc();
        (void)ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, 23);
    }
    /// Takes the next stored bytes; the first problem is kept for `finish` (the checksum,
    /// checked first, names damage more plainly).
    void feed(const char* data, std::size_t size) {
        ZSTD_inBuffer in{data, size, 0};
        while (in.pos < in.size && problem_.empty()) {
            if (done_) {
                problem_ = "bytes after its compressed frame";
                return;
            }
            ZSTD_outBuffer put{out_.data(), out_.size(), 0};
            const std::size_t r = ZSTD_decompressStream(dctx_.get(), &put, &in);
            if (ZSTD_isError(r)) {
                problem_ = std::string("cannot be decompressed: ") + ZSTD_getErrorName(r);
                return;
            }
            produced_ += put.pos;
            done_ = r == 0;
        }
    }
    void finish(std::uint64_t payload_bytes) {
        if (!problem_.empty()) detail::dump_failure(who, path_, "is corrupt (" + problem_ + ")");
        // Output may still wait inside zstd when the last input filled the buffer.
        for (;;) {
            ZSTD_inBuffer none{nullptr, 0, 0};
            ZSTD_outBuffer put{out_.data(), out_.size(), 0};
            const std::size_t r = done_ ? 0 : ZSTD_decompressStream(dctx_.get(), &put, &none);
            if (ZSTD_isError(r)) detail::dump_failure(who, path_, "is corrupt (cannot be decompressed)");
            produced_ += put.pos;
            done_ = r == 0;
            if (done_ || put.pos == 0) break;
        }
        if (!done_) detail::dump_failure(who, path_, "is corrupt (compressed frame cut short)");
        if (produced_ != payload_bytes)
            detail::dump_failure(who, path_, "is corrupt (decompresses to " + std::to_string(produced_) + " bytes, not " +
                                                 std::to_string(payload_bytes) + ")");
    }

private:
    const std::filesystem::path& path_;
    std::unique_ptr<ZSTD_DCtx, dctx_deleter> dctx_;
    std::vector<char> out_;
    std::uint64_t produced_ = 0;
    bool done_ = false;
    std::string problem_;
};

}  // namespace

bool verify(const std::filesystem::path& path) {
    detail::fd_closer fd;
    std::uint64_t size = 0;
    const detail::dump_header h = detail::read_dump_header(who, path, nullptr, fd, size);
    const bool zstd = (h.flags & detail::dump_flag_zstd) != 0;
    const bool checked = zstd || (h.flags & detail::dump_flag_checksum) != 0;
    if (!zstd && (h.flags & detail::dump_flag_array)) {
        std::uint64_t offset = 0, count = 0;
        detail::array_extent(who, path, h, fd.fd, size, offset, count);
    }
    const std::unique_ptr<XXH3_state_t, state_deleter> state(XXH3_createState());
    if (!state) throw std::bad_alloc();
    XXH3_64bits_reset(state.get());
    std::unique_ptr<frame_counter> frame = zstd ? std::make_unique<frame_counter>(path) : nullptr;
    std::vector<char> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, h.stored_bytes)));
    for (std::uint64_t at = 0; at < h.stored_bytes;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), h.stored_bytes - at));
        if (!detail::read_at(fd.fd, chunk.data(), n, detail::dump_header_bytes + at))
            detail::dump_failure(who, path, "is truncated (short read)");
        XXH3_64bits_update(state.get(), chunk.data(), n);
        if (frame) frame->feed(chunk.data(), n);
        at += n;
    }
    if (checked && XXH3_64bits_digest(state.get()) != h.payload_checksum)
        detail::dump_failure(who, path, "is corrupt (payload checksum mismatch)");
    if (frame) frame->finish(h.payload_bytes);
    return checked;
}

}  // namespace cojob
