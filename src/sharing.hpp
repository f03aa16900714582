// src/sharing.hpp - private: the shared segments of the process backend. A call
// places each large array argument once in a segment: a nameless file in temp_folder (O_TMPFILE,
// or created and unlinked at once), which workers open through /proc/<parent>/fd/<n> and map.
// Nothing has a name, so nothing can be left behind: the kernel frees a segment when its last
// descriptor and mapping go, whether the call ends well, fails, is cancelled or the parent dies.
//
// Segments outlive the call (joblib keeps its memmaps for the whole `with Parallel` block): the
// backend keeps up to 8 (and, past 2 GiB in all, only one), each remembering the array
// (address, size) it was filled from. When a later call passes an array at the same address and
// size, its bytes are compared with the segment's and only the 1 MiB chunks that differ are
// copied again, so a kept segment never serves stale data; an unchanged 80 MB array costs a
// compare (8-14 ms here) instead of a copy (22-38 ms) and the faults that follow. The segments
// go when the backend does.
#pragma once

#include <cojob/detail/shared_arrays.hpp>
#include <cojob/mmap_mode.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cojob::detail {

struct sharing_settings {
    std::string temp_folder;
    std::optional<std::size_t> max_nbytes;  ///< nullopt: never share
    mmap_mode mode = mmap_mode::r;
};

/// A nameless file, the parent's mapping of it (made when the file is), and the array it was
/// last filled from.
struct segment {
    int fd = -1;
    std::size_t capacity = 0;  ///< the file's size
    std::uint64_t id = 0;      ///< unique in this process: workers key their mappings by it
    char* map = nullptr;       ///< read-write, MAP_SHARED, over [0, capacity)
    const void* data = nullptr;  ///< the array it holds a copy of
    std::size_t bytes = 0;
    int users = 0;               ///< calls using it now: a segment in use is never rewritten
    std::uint64_t last_use = 0;  ///< for eviction, least recently used first
};

/// The segments of one backend, kept across its calls.
class segment_store {
public:
    segment_store() = default;
    segment_store(const segment_store&) = delete;
    segment_store& operator=(const segment_store&) = delete;
    ~segment_store();

    /// A segment holding exactly the `bytes` bytes at `data`, for one call: the segment kept
    /// for this array (brought up to date), else an unused one large enough, else a new one in
    /// `folder`. Give it back with release() when the call ends.
    /// @throws cojob::error when the folder cannot hold it.
    segment& acquire(const std::string& folder, const void* data, std::size_t bytes);
    void release(segment& s) noexcept;

    /// Segments kept (in use or not), for tests.
    [[nodiscard]] std::size_t kept() const noexcept { return all_.size(); }

private:
    static constexpr std::size_t max_kept = 8;
    /// Past this, unused segments go (least recently used first), down to a single one.
    static constexpr std::size_t max_kept_bytes = std::size_t{2} << 30;
    [[nodiscard]] std::size_t kept_bytes() const noexcept;
    void trim() noexcept;
    std::vector<std::unique_ptr<segment>> all_;
    std::uint64_t clock_ = 0;
};

/// The arrays one call has placed, by address and size.
class call_sharing final : public array_placer {
public:
    call_sharing(sharing_settings settings, segment_store& store) : settings_(std::move(settings)), store_(&store) {}
    call_sharing(const call_sharing&) = delete;
    call_sharing& operator=(const call_sharing&) = delete;
    ~call_sharing();  ///< the segments go back to the store

    bool share(const void* data, std::size_t bytes, shared_ref& ref) override;

private:
    sharing_settings settings_;
    segment_store* store_;
    std::map<std::pair<const void*, std::size_t>, shared_ref> placed_;
    std::vector<segment*> segments_;
};

/// Worker side: the bytes of a shared segment `ref` names (opened through its path), mapped
/// until the current request has been answered. @throws cojob::error when it cannot be.
const char* map_shared_file(const shared_ref& ref);

/// What a process worker's requests read shared arrays from: its mappings of the parent's
/// segments (map_shared_file).
class worker_arrays final : public outside_bytes {
public:
    const char* map_shared(const shared_ref& ref) override;
    void copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) override;
};

/// Worker side, once, in a worker whose loop calls release_request_mappings after every
/// request (a process worker): memmap files may then stay mapped between requests. Elsewhere
/// (an MPI rank, the parent decoding results) every memmap maps its file afresh.
void keep_worker_mappings() noexcept;

/// Worker side, after each request: unmaps the segments and memmap files this request did not
/// use (and every copy-on-write mapping); the others stay mapped for the next request, which
/// is usually the next batch of the same call or the next call on the same array.
void release_request_mappings() noexcept;

/// Counters for tests and benchmarks (parent side, all calls of the process).
struct sharing_counters {
    std::uint64_t arrays = 0;    ///< arrays placed, once per call
    std::uint64_t segments = 0;  ///< segments created (not reused)
    std::uint64_t bytes = 0;     ///< bytes copied into segments
    std::uint64_t unchanged = 0;  ///< arrays a kept segment already held, byte for byte
};
[[nodiscard]] sharing_counters sharing_totals() noexcept;

/// Worker side, for tests: segments and memmap files mapped right now.
[[nodiscard]] std::size_t worker_mapping_count() noexcept;

}  // namespace cojob::detail
