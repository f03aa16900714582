// src/process/channel_answer.cpp - what a worker's answers mean, wherever they came from: the
// frames read from its response pipe (hello, fault, and, without a doorbell, responses), and,
// with a doorbell, the answers counted in its status page, whose headers wait there too and
// whose payloads wait in its answer slot or, large ones, in its arena. A response gives its
// batch back, or, a stream's large one, stays in the arena until the stream's consumer takes
// its results.
#include "channel.hpp"

#include "../task_events.hpp"
#include "../wire.hpp"
#include "../worker.hpp"

#include <cojob/errors.hpp>

#include <string>
#include <utility>

namespace cojob::detail::process {

bool channel::failed_reading(std::exception_ptr e) {
    try {
        std::rethrow_exception(std::move(e));
    } catch (const lent_result_lost&) {
        lost(loss::lent_results);  // it died before we read what it lent: tell how
    } catch (...) {
        lost(loss::broke, std::current_exception());
    }
    return true;
}

bool channel::take_frames() {
    while (in_.size() >= sizeof(frame_header)) {
        try {
            const frame_header h = parse_header(in_.data());
            const std::size_t total = sizeof(frame_header) + static_cast<std::size_t>(bytes_on_pipe(h.kind, h.length));
            if (in_.size() < total) return false;
            const char* body = in_.data() + sizeof h;
            if (h.kind == static_cast<std::uint16_t>(frame_kind::response) ||
                h.kind == static_cast<std::uint16_t>(frame_kind::arena_response)) {
                if (arena_answers_) throw wire_error("cojob: a worker sent a response through its pipe");
                const bool in_arena = h.kind == static_cast<std::uint16_t>(frame_kind::arena_response);
                if (in_arena && !arena_) throw wire_error("cojob: a worker without an arena sent an arena response");
                const char* payload = in_arena ? arena_->view(sizeof h + h.length) + sizeof h : body;
                // The checksum guards bytes that crossed the pipe. An arena payload did not: it is
                // memory the worker wrote before it sent the header, and hashing 16 MiB twice
                // would cost more than the rest of the hand-over.
                if (!in_arena) check_payload(h, payload);
                output_->drain();  // what its tasks printed comes before their results
                if (take_response(h, payload, total)) return true;
                continue;
            }
            check_payload(h, body);
            wire_in ar(body, static_cast<std::size_t>(h.length), memory_.get());
            switch (static_cast<frame_kind>(h.kind)) {
                case frame_kind::hello: {
                    const hello_facts hi = read_hello(ar);
                    if (hi.identity != build_identity())
                        throw wire_error("cojob: worker process " + std::to_string(hi.pid) + " is another build (" +
                                         hi.identity + ", expected " + build_identity() + ")");
                    // Large vector results are lent when this process can read the worker's memory.
                    if (memory_->probe(hi.probe)) status_->lend.store(lend_readers_, std::memory_order_release);
                    greeted_ = true;
                    break;
                }
                case frame_kind::fault: {
                    std::string message;
                    ar(message);
                    throw wire_error(message);
                }
                default: throw wire_error("cojob: a worker sent a request frame");
            }
            in_.consume(total);
        } catch (...) {
            return failed_reading(std::current_exception());
        }
    }
    return false;
}

bool channel::take_answers() {
    while (!dead_) {
        const std::uint64_t counted = status_->answers.load(std::memory_order_seq_cst);
        if (counted == answers_taken_) return false;
        try {
            // The worker answers again only once the parent has taken the last answer (it
            // waits for the slot, or for the arena before its next batch's results).
            if (counted != answers_taken_ + 1) throw wire_error("cojob: a worker answered again before its last answer was read");
            // What its tasks printed comes before their results, and what came through its
            // pipe before the answer (its hello; anything else breaks the protocol): one poll.
            if (output_->drain(from_)) {
                read_more(false);  // its end, if it has ended, waits until its answer is taken
                if (dead_) return true;
            }
            ++answers_taken_;
            // Read once, into the copy parse_header checks: the worker writes the page again
            // after the release.
            const frame_header h = parse_header(reinterpret_cast<const char*>(&status_->answer));
            const bool kept = h.kind == static_cast<std::uint16_t>(frame_kind::arena_response);
            if (!kept && h.kind != static_cast<std::uint16_t>(frame_kind::response))
                throw wire_error("cojob: a worker answered with a frame that is not a response");
            if (!kept && h.length > sizeof status_->answer_slot)
                throw wire_error("cojob: a worker's answer overruns its answer slot");
            const char* payload = kept ? arena_->view(sizeof h + h.length) + sizeof h : status_->answer_slot;
            if (!kept) check_payload(h, payload);  // a small one: the check costs little
            if (take_response(h, payload, 0)) return true;
        } catch (...) {
            return failed_reading(std::current_exception());
        }
    }
    return true;
}

bool channel::take_response(const frame_header& h, const char* payload, std::size_t pipe_bytes) {
    if (!greeted_) throw wire_error("cojob: a worker answered before its handshake");
    if (jobs_.empty()) throw wire_error("cojob: a worker answered a request it was not sent");
    const bool kept = h.kind == static_cast<std::uint16_t>(frame_kind::arena_response);
    wire_in ar(payload, static_cast<std::size_t>(h.length), memory_.get());  // lent results come from it
    batch_base& b = *jobs_.front().batch;
    if (kept && h.reserved != arena_response_failed && jobs_.front().call->streams_results()) {
        // A stream reads the results when its consumer takes them; until then they stay in
        // the arena, and the worker waits before writing the next.
        std::uint64_t completed = 0;
        ar(completed);
        if (completed > b.size) answered_too_many();
        b.completed = static_cast<std::size_t>(completed);
        arena_kept_for_ = jobs_.front().call;
        arena_kept_first_ = b.first;
        b.deferred = std::make_unique<arena_payload>(
            arena_, std::shared_ptr<std::atomic<std::uint32_t>>(status_, &status_->arena_held), memory_,
            static_cast<std::size_t>(h.length));
        if (b.record_times) read_trailing_times(payload, static_cast<std::size_t>(h.length), b.completed, b.times);
    } else {
        timed_step(b, b.decoded, [&] { b.decode(ar); });
        // Handed back: the worker may write it again. The arena stays mapped here: unmapping
        // it to keep its pages out of this process's RSS made the next response fault them
        // all in again, a fifth of the parent's time on 16 MB results. They are the worker's
        // pages, shared, not a second copy (PSS counts them once).
        if (kept)
            arena_flag::release(status_->arena_held);
        else if (pipe_bytes == 0)
            arena_flag::release(status_->answer_held);
    }
    in_.consume(pipe_bytes);
    job j = std::move(jobs_.front());
    jobs_.pop_front();
    owner_->batch_took(batch_base::now_ns() - j.batch->dispatched_ns);
    if (kill_pending_) {  // stopped for the call of the batch it runs now
        kill_pending_ = false;
        kill_worker(pid_);
    }
    // Killed just after it answered: the answer stands, the process goes.
    if (interrupted_ && jobs_.empty()) retire();
    guard_->give_back(std::move(j));
    owner_->refill();  // refill it before reading on: it works while we decode
    if (dead_ || jobs_.empty()) {
        in_.shrink_if_above(64u << 20);
        return true;
    }
    return false;
}

}  // namespace cojob::detail::process
