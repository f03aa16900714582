// src/mpi/hub.cpp - rank 0's hub thread: it sends each batch to the least loaded rank that
// may take it, with the call's large arrays ahead of it, takes in the ranks' progress, answers
// and faults, hands each batch back to its call, and tells the ranks to stop at exit.
#include "hub.hpp"

#include <cojob/errors.hpp>

#include "../sharing.hpp"
#include "../task_events.hpp"
#include "../worker.hpp"

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>

namespace cojob::detail::mpi {

hub* the_hub = nullptr;

hub::hub() : ranks_(static_cast<std::size_t>(world)) { thread_ = std::thread([this] { loop(); }); }

void hub::submit(mpi_job j) {
    {
        std::lock_guard lock(m_);
        if (broken_) {
            j.batch->error = broken_;
            j.batch->completed = 0;
        } else {
            ++outstanding_[j.owner];
            const void* key = j.call.get();
            queue_.push(key, std::move(j));
            cv_.notify_one();
            return;
        }
    }
    call_state::finished(std::move(j.call), std::move(j.batch));
}

void hub::withdraw(const call_state& call) {
    std::deque<mpi_job> back;
    {
        std::lock_guard lock(m_);
        queue_.remove(&call, [&back](mpi_job j) { back.push_back(std::move(j)); });
    }
    for (auto& j : back) {
        j.batch->error = std::make_exception_ptr(cancelled("cojob: the call stopped before this batch ran"));
        j.batch->completed = 0;
        returned(j.owner);
        call_state::finished(std::move(j.call), std::move(j.batch));
    }
}

void hub::end_call(const call_state& call) {
    std::lock_guard lock(m_);
    ended_calls_.push_back(&call);
    cv_.notify_one();
}

void hub::wait_idle(const void* owner) {
    std::unique_lock lock(m_);
    idle_cv_.wait(lock, [&] { return outstanding_[owner] == 0; });
    outstanding_.erase(owner);
}

void hub::stop() {
    {
        std::lock_guard lock(m_);
        stopping_ = true;
        cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
}

void hub::returned(const void* owner) {
    std::lock_guard lock(m_);
    if (--outstanding_[owner] == 0) idle_cv_.notify_all();
}

void hub::loop() {
    backoff wait;
    bool stop_sent = false;
    try {
        for (;;) {
            bool busy = dispatch();
            busy |= take_back();
            busy |= drop_ended_calls();
            busy |= progress_sends();
            busy |= receive();
            busy |= receive_answers();
            bool want_stop = false;
            {
                std::unique_lock lock(m_);
                want_stop = stopping_;
                if (!want_stop && queue_.empty() && ended_calls_.empty() && sends_.empty() && !in_flight()) {
                    cv_.wait(lock, [&] {
                        return stopping_ || !queue_.empty() || !ended_calls_.empty();
                    });
                    wait.reset();
                    continue;
                }
            }
            if (want_stop && !stop_sent) {
                for (int r = 1; r < world; ++r) post(r, mpi_frame_kind::stop);
                stop_sent = true;
                busy = true;
            }
            if (stop_sent && sends_.empty() && all_gone()) return;
            // A large send moves one fragment per progress call: while one is under way,
            // sleeping between calls would cap it at a fragment per sleep.
            if (busy || !sends_.empty())
                wait.reset();
            else
                wait.pause();
        }
    } catch (...) {
        fail_everything(std::current_exception());
    }
}

bool hub::in_flight() const {
    for (const auto& r : ranks_)
        if (!r.jobs.empty()) return true;
    return false;
}

bool hub::all_gone() const {
    for (std::size_t r = 1; r < ranks_.size(); ++r)
        if (!ranks_[r].gone) return false;
    return true;
}

bool hub::dispatch() {
    bool any = false;
    for (;;) {
        std::optional<mpi_job> next;
        int to = -1;
        {
            std::lock_guard lock(m_);
            if (queue_.empty()) return any;
            // The next call's batch, round robin, that the least loaded rank with room among
            // those it may use can take; or one whose ranks are all gone, to fail it.
            next = queue_.take_first([&](const mpi_job& q) {
                const int limit = std::min(q.ranks, world - 1);
                bool usable = false;
                to = -1;
                for (int r = 1; r <= limit; ++r) {
                    const auto& s = ranks_[static_cast<std::size_t>(r)];
                    usable |= !s.gone;
                    if (s.gone || s.jobs.size() >= depth) continue;
                    if (to < 0 || s.jobs.size() < ranks_[static_cast<std::size_t>(to)].jobs.size()) to = r;
                }
                return to >= 0 || !usable;
            });
            if (!next) return any;
        }
        mpi_job& j = *next;
        any = true;
        if (to < 0) {  // every rank it may use broke the protocol (another build, garbage)
            j.batch->error = std::make_exception_ptr(
                error("cojob: backend=mpi has no rank left to run this batch: every rank among the first " +
                      std::to_string(j.ranks) + " was given up (see the error of the call that lost them)"));
            j.batch->completed = 0;
            returned(j.owner);
            call_state::finished(std::move(j.call), std::move(j.batch));
            continue;
        }
        send_request(to, std::move(j));
    }
}

void hub::send_request(int to, mpi_job j) {
    auto o = std::make_unique<outgoing>();
    auto& rank = ranks_[static_cast<std::size_t>(to)];
    try {
        // Large arrays go ahead of the request, once per call and rank (mpi_blocks.hpp).
        block_sender blocks(*j.call, j.max_nbytes, rank.blocks[j.call.get()], pool_, [&](byte_buffer& frame) {
            auto b = std::make_unique<outgoing>();
            b->bytes = std::move(frame);
            start_send(to, std::move(b));
        });
        const auto at = begin_frame(o->bytes);
        {
            wire_out ar(o->bytes, &blocks);
            j.batch->worker = to;
            j.batch->placed_ns = batch_base::now_ns();
            timed_step(*j.batch, j.batch->encoded, [&] { j.batch->encode(ar, j.call->tracks_tasks()); });
        }
        seal_frame(o->bytes, at, mpi_frame_kind::request, j.call->options().worker_memory_limit.value_or(0));
    } catch (...) {
        j.batch->error = std::current_exception();
        j.batch->completed = 0;
        returned(j.owner);
        call_state::finished(std::move(j.call), std::move(j.batch));
        return;
    }
    start_send(to, std::move(o));
    j.request = ++rank.requests;
    rank.jobs.push_back(std::move(j));
}

void hub::start_send(int to, std::unique_ptr<outgoing> o, int tag) {
    isend_frame(to, o->bytes, o->requests, tag);
    sends_.push_back(std::move(o));
}

void hub::post(int to, mpi_frame_kind kind) {
    auto o = std::make_unique<outgoing>();
    append_frame(o->bytes, kind);
    start_send(to, std::move(o));
}

bool hub::drop_ended_calls() {
    std::vector<const call_state*> ended;
    {
        std::lock_guard lock(m_);
        ended.swap(ended_calls_);
    }
    for (const call_state* c : ended) {
        for (int r = 1; r < world; ++r) {
            auto& held = ranks_[static_cast<std::size_t>(r)].blocks;
            const auto it = held.find(c);
            if (it == held.end()) continue;
            if (!it->second.empty()) {
                auto o = std::make_unique<outgoing>();
                const auto at = begin_frame(o->bytes);
                {
                    wire_out ar(o->bytes);
                    ar(block_sender::call_prefix(c));
                }
                seal_frame(o->bytes, at, mpi_frame_kind::end_call);
                start_send(r, std::move(o));
            }
            held.erase(it);
        }
    }
    return !ended.empty();
}

bool hub::progress_sends() {
    bool any = false;
    for (auto it = sends_.begin(); it != sends_.end();) {
        int done = 0;
        check(MPI_Testall(static_cast<int>((*it)->requests.size()), (*it)->requests.data(), &done,
                          MPI_STATUSES_IGNORE),
              "testall");
        if (done) {
            pool_.give(std::move((*it)->bytes));
            it = sends_.erase(it);
            any = true;
        } else {
            ++it;
        }
    }
    return any;
}

bool hub::receive() {
    int flag = 0;
    MPI_Message msg;
    MPI_Status st;
    check(MPI_Improbe(MPI_ANY_SOURCE, frame_tag, comm, &flag, &msg, &st), "improbe");
    if (!flag) return false;
    const int from = st.MPI_SOURCE;
    auto& rank = ranks_[static_cast<std::size_t>(from)];
    frame_header h;
    try {
        h = receive_frame(msg, st, in_);
    } catch (const wire_error& e) {
        give_up_rank(from, std::current_exception());
        return true;
    }
    wire_in ar(in_.data() + sizeof(frame_header), static_cast<std::size_t>(h.length));
    switch (static_cast<mpi_frame_kind>(h.kind)) {
        case mpi_frame_kind::hello: {
            const hello_facts hi = read_hello(ar);
            if (hi.identity != build_identity()) {
                give_up_rank(from, std::make_exception_ptr(wire_error(
                                       "cojob: MPI rank " + std::to_string(from) + " (pid " + std::to_string(hi.pid) +
                                       ") runs another build (" + hi.identity + ", expected " + build_identity() +
                                       "); start the same program on every rank")));
                return true;
            }
            return true;
        }
        case mpi_frame_kind::progress: {
            std::uint64_t index = 0;
            ar(index);
            if (!rank.jobs.empty()) {
                batch_base& b = *rank.jobs.front().batch;
                b.running.store(static_cast<std::size_t>(index), std::memory_order_relaxed);
                b.running_since.store(batch_base::now_ns(), std::memory_order_release);
            }
            return true;
        }
        case mpi_frame_kind::response:
        case mpi_frame_kind::fault: {
            if (rank.jobs.empty()) {
                give_up_rank(from, std::make_exception_ptr(wire_error(
                                       "cojob: MPI rank " + std::to_string(from) + " answered a request it was not sent")));
                return true;
            }
            mpi_job j = std::move(rank.jobs.front());
            rank.jobs.pop_front();
            try {
                if (h.kind == static_cast<std::uint16_t>(mpi_frame_kind::fault)) {
                    std::string message;
                    ar(message);
                    throw wire_error(message);
                }
                timed_step(*j.batch, j.batch->decoded, [&] { j.batch->decode(ar); });
                if (j.batch->record_times) rank.clock.align(j.batch->encoded.end, j.batch->decoded.begin, j.batch->times);
            } catch (...) {
                j.batch->error = std::current_exception();
                j.batch->completed = 0;
            }
            in_.shrink_if_above(64u << 20);
            returned(j.owner);
            call_state::finished(std::move(j.call), std::move(j.batch));
            return true;
        }
        case mpi_frame_kind::bye: rank.gone = true; return true;
        default:
            give_up_rank(from, std::make_exception_ptr(wire_error("cojob: MPI rank " + std::to_string(from) +
                                                                  " sent a frame of kind " +
                                                                  std::to_string(h.kind))));
            return true;
    }
}

void hub::give_up_rank(int r, std::exception_ptr why) {
    auto& rank = ranks_[static_cast<std::size_t>(r)];
    rank.gone = true;
    for (auto& j : rank.jobs) {
        j.batch->error = why;
        j.batch->completed = 0;
        returned(j.owner);
        call_state::finished(std::move(j.call), std::move(j.batch));
    }
    rank.jobs.clear();
}

void hub::fail_everything(std::exception_ptr why) noexcept {
    std::deque<mpi_job> all;
    {
        std::lock_guard lock(m_);
        broken_ = why;
        while (!queue_.empty()) all.push_back(queue_.pop());
    }
    for (auto& r : ranks_)
        for (auto& j : r.jobs) all.push_back(std::move(j));
    for (auto& j : all) {
        j.batch->error = why;
        j.batch->completed = 0;
        returned(j.owner);
        call_state::finished(std::move(j.call), std::move(j.batch));
    }
    try {
        std::rethrow_exception(why);
    } catch (const std::exception& e) {
        std::cerr << "cojob: backend=mpi stops: " << e.what() << '\n';
    } catch (...) {
    }
}

}  // namespace cojob::detail::mpi
