// src/mpi/mpi_blocks.hpp - large array arguments on backend::mpi. Ranks share no memory with
// rank 0, so an array of max_nbytes or more is sent to a rank once per call, as a `block`
// frame ahead of the first request that uses it; requests then name it ("mpi:<call>:<address>:<size>",
// unique within the job while the call runs) instead of carrying it, and the rank keeps it until the call's
// `end_call` frame. A cojob::memmap still travels by path, for a file system all ranks see.
#pragma once

#include "../call_state.hpp"
#include "../sharing.hpp"
#include "../wire.hpp"
#include "transport.hpp"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cojob::detail::mpi {

/// A block frame's payload: its name, its size, padding, then the bytes, which start 16-byte
/// aligned in a buffer that holds the whole frame from an aligned start.
inline constexpr std::size_t block_alignment = 16;

/// Rank 0, while one request for one rank is encoded: places each large array of the call,
/// sending it first when the rank does not hold it yet.
class block_sender final : public array_placer {
public:
    using sent_set = std::set<std::pair<const void*, std::size_t>>;

    block_sender(const call_state& call, std::optional<std::size_t> max_nbytes, sent_set& sent, buffer_pool& pool,
                 std::function<void(byte_buffer&)> send)
        : call_(call_prefix(&call)), limit_(max_nbytes), sent_(sent), pool_(pool), send_(std::move(send)) {}

    /// What the names of a call's arrays start with: "mpi:<call>:".
    static std::string call_prefix(const void* call) {
        char name[40];
        std::snprintf(name, sizeof name, "mpi:%p:", call);
        return name;
    }

    bool share(const void* data, std::size_t bytes, shared_ref& ref) override {
        if (!limit_ || bytes < *limit_ || bytes == 0) return false;
        char name[48];
        std::snprintf(name, sizeof name, "%p:%zu", data, bytes);
        ref.path = call_ + name;
        ref.bytes = bytes;
        ref.mode = static_cast<std::uint8_t>(mmap_mode::r);
        if (sent_.emplace(data, bytes).second) {
            byte_buffer frame = pool_.take(bytes + 256);
            const auto at = begin_frame(frame);
            {
                wire_out ar(frame);
                ar(ref.path, static_cast<std::uint64_t>(bytes));
                static constexpr char zeros[block_alignment] = {};
                ar.write(zeros, (block_alignment - frame.size() % block_alignment) % block_alignment);
                ar.write(data, bytes);
            }
            seal_frame(frame, at, mpi_frame_kind::block);
            send_(frame);
        }
        return true;
    }

private:
    std::string call_;
    std::optional<std::size_t> limit_;
    sent_set& sent_;
    buffer_pool& pool_;
    std::function<void(byte_buffer&)> send_;
};

/// A worker rank's arrays: each stays in the frame that brought it until its call ends. The
/// rank's requests read their "mpi:" references from here, and memmaps' files as any worker.
class rank_blocks final : public outside_bytes {
public:
    rank_blocks() = default;
    rank_blocks(const rank_blocks&) = delete;
    rank_blocks& operator=(const rank_blocks&) = delete;
    ~rank_blocks() = default;

    /// Keeps the array of the block frame in `frame` (taken over), and puts in `frame` a kept
    /// buffer to receive the next frame into.
    void store(byte_buffer& frame) {
        wire_in ar(frame.data() + sizeof(frame_header), frame.size() - sizeof(frame_header));
        std::string path;
        std::uint64_t bytes = 0;
        ar(path, bytes);
        const std::size_t at = sizeof(frame_header) + ar.position();
        ar.skip((block_alignment - at % block_alignment) % block_alignment);
        const char* p = ar.take(static_cast<std::size_t>(bytes));
        if (reinterpret_cast<std::uintptr_t>(p) % block_alignment != 0) misaligned_span();
        block b{std::move(frame), p, static_cast<std::size_t>(bytes)};
        if (auto old = blocks_.find(path); old != blocks_.end()) pool_.give(std::move(old->second.frame));
        blocks_.insert_or_assign(std::move(path), std::move(b));
        frame = pool_.take(0);
    }
    /// Drops the arrays whose names start with `prefix` (one call's: block_sender::call_prefix).
    void drop(const std::string& prefix) {
        auto it = blocks_.lower_bound(prefix);
        while (it != blocks_.end() && it->first.starts_with(prefix)) {
            pool_.give(std::move(it->second.frame));
            it = blocks_.erase(it);
        }
    }
    void clear() noexcept { blocks_.clear(); }

    const char* map_shared(const shared_ref& ref) override {
        if (!ref.path.starts_with("mpi:")) return map_shared_file(ref);
        const auto it = blocks_.find(ref.path);
        if (it == blocks_.end() || it->second.bytes != ref.bytes)
            throw wire_error("cojob: a request names an array (" + ref.path + ") that this rank never received");
        return it->second.data;
    }
    void copy_lent(std::uint64_t, std::size_t, piece_sink, void*) override {
        throw wire_error("cojob: a request names a lent result; only responses lend");
    }

private:
    struct block {
        byte_buffer frame;
        const char* data = nullptr;
        std::size_t bytes = 0;
    };

    std::map<std::string, block> blocks_;
    buffer_pool pool_;
};

}  // namespace cojob::detail::mpi
