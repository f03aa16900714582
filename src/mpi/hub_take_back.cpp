// src/mpi/hub_take_back.cpp - the hub's take-backs (src/request_gate.hpp): when a rank has
// nothing to do and no batch waits, the hub asks a busy rank for the batch it holds behind its
// running one; the rank's listener (rank_listener.hpp) gives it back unless the rank has
// started it, and a batch given back goes to the front of the queue, where the idle rank finds
// it. A fast task then never waits behind a slow one while a rank is free.
#include "hub.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace cojob::detail::mpi {

namespace {
// A take-back costs a round trip to the busy rank's listener, which polls every 4 ms when
// idle, and most batches are over sooner than that: a rank is asked only when its running
// batch has been out for longer, as a slow task's is.
constexpr std::int64_t take_back_after_ns = 10'000'000;
}  // namespace

bool hub::take_back() {
    if (!threads_multiple) return false;
    // The idle ranks, less those a take-back under way is meant for (this runs at every turn
    // of the hub's loop: the common case, no idle rank, costs one pass over the ranks).
    std::size_t idle = 0;
    int first_idle = world;
    for (int r = 1; r < world; ++r) {
        const auto& s = ranks_[static_cast<std::size_t>(r)];
        if (s.gone || !s.jobs.empty()) continue;
        ++idle;
        first_idle = std::min(first_idle, r);
    }
    if (idle <= asked_) return false;
    {
        std::lock_guard lock(m_);
        if (!queue_.empty()) return false;
    }
    std::size_t spare = idle - asked_;
    bool asked = false;
    const std::int64_t now = batch_base::now_ns();
    for (int r = 1; r < world && spare > 0; ++r) {
        auto& s = ranks_[static_cast<std::size_t>(r)];
        if (s.gone || s.jobs.size() < depth || now - s.jobs.front().batch->dispatched_ns < take_back_after_ns) continue;
        mpi_job& held = s.jobs.back();
        // The batch may only go to a rank among the first `ranks` (its call's n_jobs).
        if (held.taking_back || first_idle > held.ranks) continue;
        auto o = std::make_unique<outgoing>();
        const auto at = begin_frame(o->bytes);
        {
            wire_out ar(o->bytes);
            ar(held.request);
        }
        seal_frame(o->bytes, at, mpi_frame_kind::take_back);
        start_send(r, std::move(o), control_tag);
        held.taking_back = true;
        ++asked_;
        --spare;
        asked = true;
    }
    return asked;
}

bool hub::receive_answers() {
    if (asked_ == 0) return false;  // no probe for answers nobody awaits
    int flag = 0;
    MPI_Message msg;
    MPI_Status st;
    check(MPI_Improbe(MPI_ANY_SOURCE, control_tag, comm, &flag, &msg, &st), "improbe");
    if (!flag) return false;
    --asked_;
    const int from = st.MPI_SOURCE;
    std::uint64_t n = 0;
    std::uint8_t given_back = 0;
    try {
        const frame_header h = receive_frame(msg, st, in_);
        if (h.kind != static_cast<std::uint16_t>(mpi_frame_kind::taken_back))
            throw wire_error("cojob: MPI rank " + std::to_string(from) + " sent a control frame of kind " +
                             std::to_string(h.kind));
        wire_in ar(in_.data() + sizeof(frame_header), static_cast<std::size_t>(h.length));
        ar(n, given_back);
    } catch (const wire_error&) {
        give_up_rank(from, std::current_exception());
        return true;
    }
    auto& jobs = ranks_[static_cast<std::size_t>(from)].jobs;
    const auto it = std::find_if(jobs.begin(), jobs.end(), [&](const mpi_job& j) { return j.request == n; });
    if (it == jobs.end()) return true;  // answered meanwhile, or the rank was given up
    it->taking_back = false;
    if (!given_back) return true;  // the rank had started it
    mpi_job j = std::move(*it);
    jobs.erase(it);
    std::lock_guard lock(m_);
    const void* key = j.call.get();
    queue_.push_front(key, std::move(j));
    return true;
}

}  // namespace cojob::detail::mpi
