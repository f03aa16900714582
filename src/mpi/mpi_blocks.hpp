// src/mpi/mpi_blocks.hpp - large array arguments on backend::mpi. Ranks share no memory with
// rank 0, so an array of max_nbytes or more is sent to a rank once per call, as a `block`
// frame ahead of the first request that uses it; requests then name it ("mpi:<call>:<address>:<size>",
// unique within the job while the call runs) instead of carrying it, and the rank keeps it until the call's
// `end_call` frame. A cojob::memmap still travels by path, for a file system all ranks see.
#pragma once

#include "../engine.hpp"
#include "../sharing.hpp"
#include "../wire.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

namespace cojob::detail {

/// Rank 0, while one request for one rank is encoded: places each large array of the call,
/// sending it first when the rank does not hold it yet.
class block_sender final : public array_placer {
public:
    using sent_set = std::set<std::pair<const void*, std::size_t>>;

    block_sender(const call_state& call, sent_set& sent, std::function<void(byte_buffer&)> send)
        : call_(call_prefix(&call)), limit_(call.eng->opts.max_nbytes), sent_(sent), send_(std::move(send)) {}

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
            byte_buffer frame;
            const auto at = begin_frame(frame);
            {
                wire_out ar(frame);
                ar(ref.path, static_cast<std::uint64_t>(bytes));
                ar.write(data, bytes);
            }
            end_frame(frame, at, frame_kind::block);
            send_(frame);
        }
        return true;
    }

private:
    std::string call_;
    std::optional<std::size_t> limit_;
    sent_set& sent_;
    std::function<void(byte_buffer&)> send_;
};

/// A worker rank's arrays of the current call.
class rank_blocks final : public block_store {
public:
    rank_blocks() = default;
    rank_blocks(const rank_blocks&) = delete;
    rank_blocks& operator=(const rank_blocks&) = delete;
    ~rank_blocks() = default;

    /// Keeps the array a `block` frame carries.
    void store(const char* payload, std::size_t n) {
        wire_in ar(payload, n);
        std::string path;
        std::uint64_t bytes = 0;
        ar(path, bytes);
        const char* p = ar.take(static_cast<std::size_t>(bytes));
        // Aligned for any element type a span may view it as.
        std::unique_ptr<char, free_deleter> copy(static_cast<char*>(std::aligned_alloc(64, round_up(bytes))));
        if (!copy) throw std::bad_alloc();
        std::memcpy(copy.get(), p, static_cast<std::size_t>(bytes));
        blocks_[path] = block{std::move(copy), static_cast<std::size_t>(bytes)};
    }
    /// Drops the arrays whose names start with `prefix` (one call's: block_sender::call_prefix).
    void drop(const std::string& prefix) noexcept {
        auto it = blocks_.lower_bound(prefix);
        while (it != blocks_.end() && it->first.starts_with(prefix)) it = blocks_.erase(it);
    }
    void clear() noexcept { blocks_.clear(); }

    const char* find(const shared_ref& ref) const noexcept override {
        const auto it = blocks_.find(ref.path);
        return it != blocks_.end() && it->second.bytes == ref.bytes ? it->second.data.get() : nullptr;
    }

private:
    struct free_deleter {
        void operator()(char* p) const noexcept { std::free(p); }
    };
    struct block {
        std::unique_ptr<char, free_deleter> data;
        std::size_t bytes = 0;
    };
    static std::size_t round_up(std::uint64_t n) { return static_cast<std::size_t>((n + 63) / 64 * 64); }

    std::map<std::string, block> blocks_;
};

}  // namespace cojob::detail
