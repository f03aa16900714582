// src/call_trace.hpp - private: what one call adds to its trace file (`options::trace`):
// a slice per task on the track of the worker that ran it, the scheduler's dispatch and
// delivery of each batch, a backend's encoding and decoding, the transfers to and from worker
// processes, and counters of the work in flight.
#pragma once

#include "trace_file.hpp"

#include <cojob/detail/batch.hpp>
#include <cojob/options.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace cojob::detail {

/// Collects a call's events and hands them to the file after the call, or every ~1 MB.
/// Used on the call's executor, except `late`.
class call_trace {
public:
    call_trace(std::shared_ptr<trace_file> file, cojob::backend kind);
    /// Writes what is left.
    ~call_trace();
    call_trace(const call_trace&) = delete;
    call_trace& operator=(const call_trace&) = delete;

    /// The scheduler cut batch `number` (`size` tasks from input position `first`) and handed
    /// it to the backend, from `begin_ns` to `end_ns`, on this thread.
    void dispatched(std::size_t number, std::size_t first, std::size_t size, std::int64_t begin_ns, std::int64_t end_ns);
    /// Batch `b` is back (`now_ns`): its tasks, and the backend's steps for it.
    void ran(const batch_base& b, std::int64_t now_ns);
    /// The results of batch `number` went to the caller's list or stream, from `begin_ns` on.
    void delivered(std::size_t number, std::int64_t begin_ns, std::int64_t end_ns);
    /// Tasks in flight now and, for a stream, results waiting for its consumer.
    void load(std::size_t in_flight, std::optional<std::size_t> waiting);
    /// Hands the collected events to the file.
    void flush();
    /// A batch whose outcome was given already, or that came back after its call ended (then
    /// on any thread, never beside `ran`): written at once.
    void late(const batch_base& b, std::int64_t now_ns) const noexcept;

private:
    /// `track_ends`: where the last task slice of each worker track ended, to start untimed
    /// ones after it (null: unknown).
    void batch_events(std::string& out, const batch_base& b, std::int64_t now_ns,
                      std::map<long, std::int64_t>* track_ends) const;
    [[nodiscard]] long scheduler_track() const;

    std::shared_ptr<trace_file> file_;
    cojob::backend kind_;
    std::size_t call_;
    std::string buffer_;
    /// Used by `ran`, and by `late` under late_mutex_ (late batches may come on several
    /// threads at once after the call's end).
    mutable std::map<long, std::int64_t> track_ends_;
    mutable std::mutex late_mutex_;
};

}  // namespace cojob::detail
