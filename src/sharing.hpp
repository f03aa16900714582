// src/sharing.hpp - private: the shared segments of the process backend (issue 5). A call
// places each large array argument once in a segment: a nameless file in temp_folder (O_TMPFILE,
// or created and unlinked at once), which workers open through /proc/<parent>/fd/<n> and map.
// Nothing has a name, so nothing can be left behind: the kernel frees a segment when its last
// descriptor and mapping go, whether the call ends well, fails, is cancelled or the parent dies.
// Segments go back to a pool of the backend after the call: refilling pages that already exist
// runs ~5x faster than faulting in fresh ones.
#pragma once

#include <cojob/detail/shared_arrays.hpp>
#include <cojob/mmap_mode.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
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

/// A nameless file and how many bytes it can hold without growing.
struct segment {
    int fd = -1;
    std::size_t capacity = 0;
};

/// Segments kept between calls by one backend.
class segment_pool {
public:
    segment_pool() = default;
    segment_pool(const segment_pool&) = delete;
    segment_pool& operator=(const segment_pool&) = delete;
    ~segment_pool();

    /// The smallest pooled segment that holds `bytes`, else a new one in `folder`.
    segment take(const std::string& folder, std::size_t bytes);
    void give_back(segment s) noexcept;

private:
    static constexpr std::size_t max_kept = 8;
    std::vector<segment> free_;
};

/// Places the large arguments of the requests this thread encodes: a call of the process
/// backend (call_sharing), or one MPI rank's share of a call (src/mpi/mpi_blocks.hpp).
class array_placer {
public:
    /// When `bytes` at `data` are to be shared: places them, fills `ref` and returns true.
    virtual bool share(const void* data, std::size_t bytes, shared_ref& ref) = 0;

protected:
    array_placer() = default;
    ~array_placer() = default;
};

/// The arrays one call has placed, by address and size.
class call_sharing final : public array_placer {
public:
    call_sharing(sharing_settings settings, segment_pool& pool) : settings_(std::move(settings)), pool_(&pool) {}
    call_sharing(const call_sharing&) = delete;
    call_sharing& operator=(const call_sharing&) = delete;
    ~call_sharing();  ///< the segments go back to the pool

    bool share(const void* data, std::size_t bytes, shared_ref& ref) override;

private:
    sharing_settings settings_;
    segment_pool* pool_;
    std::map<std::pair<const void*, std::size_t>, shared_ref> placed_;
    std::vector<segment> segments_;
};

/// Makes `s` the placer of the requests this thread encodes, until the scope ends.
class sharing_scope {
public:
    explicit sharing_scope(array_placer* s) noexcept;
    ~sharing_scope();
    sharing_scope(const sharing_scope&) = delete;
    sharing_scope& operator=(const sharing_scope&) = delete;

private:
    array_placer* previous_;
};

/// Worker side: arrays kept in memory rather than in files, named by references whose path
/// starts with "mpi:" (an MPI rank receives them ahead of the requests that use them).
class block_store {
public:
    /// The bytes `ref` names, or null.
    [[nodiscard]] virtual const char* find(const shared_ref& ref) const noexcept = 0;

protected:
    block_store() = default;
    ~block_store() = default;
};

/// Makes `s` where this thread's requests find "mpi:" references, until the scope ends.
class blocks_scope {
public:
    explicit blocks_scope(const block_store& s) noexcept;
    ~blocks_scope();
    blocks_scope(const blocks_scope&) = delete;
    blocks_scope& operator=(const blocks_scope&) = delete;

private:
    const block_store* previous_;
};

/// Worker side: unmaps what the request just answered mapped.
void release_request_mappings() noexcept;

/// Counters for tests and benchmarks (parent side, all calls of the process).
struct sharing_counters {
    std::uint64_t arrays = 0;    ///< distinct arrays placed
    std::uint64_t segments = 0;  ///< segments created (not taken from a pool)
    std::uint64_t bytes = 0;     ///< bytes copied into segments
};
[[nodiscard]] sharing_counters sharing_totals() noexcept;

}  // namespace cojob::detail
