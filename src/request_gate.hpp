// src/request_gate.hpp - private: how the parent takes back a batch a worker holds but has not
// started. A worker (a process, an MPI rank) holds the batch after its running one, so that it
// never waits for the parent between two batches; when another worker has nothing to do, the
// parent takes that held batch back for it, so that no task waits behind a slow one.
//
// The requests sent to one worker are numbered from 1 and decided in order, each once: the
// worker moves the gate from n-1 to n to start request n, the parent moves it from n-1 to n to
// take request n back, and the first one wins. The parent takes back the first request the
// worker has not started (the one held behind its running one, or, from a worker still
// starting up, the first it was sent), so every request taken back lies past the worker's last
// start; a worker skips a request it finds decided (no answer). The gate lives where both sides reach it: the status page a
// process worker shares with its parent, or, on an MPI rank, the rank's memory (its listener
// thread takes back for rank 0).
#pragma once

#include <atomic>
#include <cstdint>

namespace cojob::detail {

/// A worker checks its gate before every request: a process worker that cannot map its status
/// page exits, and an MPI rank is asked only when it has a listener.
struct request_gate {
    /// The number of the last request decided (started, or taken back).
    std::atomic<std::uint64_t> decided{0};
};

/// Worker side: whether request n may start; when not, it was taken back and is skipped.
inline bool start_request(request_gate& g, std::uint64_t n) noexcept {
    std::uint64_t expected = n - 1;
    return g.decided.compare_exchange_strong(expected, n, std::memory_order_acq_rel);
}

/// Parent side: takes request n back, unless the worker has started it or has not decided
/// request n-1 yet.
inline bool take_back_request(request_gate& g, std::uint64_t n) noexcept {
    std::uint64_t expected = n - 1;
    return g.decided.compare_exchange_strong(expected, n, std::memory_order_acq_rel);
}

}  // namespace cojob::detail
