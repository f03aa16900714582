// src/process/channel.cpp - the parent's end of one worker process: the batches it may take,
// and the frames it writes and reads. What each answer means is in channel_answer.cpp, how a
// worker's end is handled in channel_end.cpp.
#include "channel.hpp"

#include "../request_gate.hpp"
#include "../sharing.hpp"
#include "../task_events.hpp"
#include "../wire.hpp"
#include "../worker.hpp"
#include "failure_text.hpp"
#include "futex_word.hpp"

#include <cojob/errors.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace cojob::detail::process {

namespace asio = boost::asio;

namespace {
constexpr std::size_t read_chunk = 256 * 1024;
}  // namespace

channel::channel(spawned_worker w, channel_owner& owner, std::shared_ptr<pool_guard> guard,
                 const asio::any_io_executor& io, std::uint32_t lend_readers)
    : owner_(&owner),
      lend_readers_(lend_readers),
      pid_(w.pid),
      to_(w.to),
      from_(w.from),
      status_(std::move(w.status)),
      arena_(std::move(w.arena)),
      memory_(std::move(w.memory)),
      oom_kills_at_start_(cgroup_oom_kills()),
      guard_(std::move(guard)) {
    bell_fd_ = w.bell;
    exit_fd_ = w.exit;
    arena_answers_ = bell_fd_ >= 0 && arena_;
    try {
        output_ = std::make_shared<worker_output>(w.out, w.err, guard_, io);
    } catch (...) {
        ::close(w.out);
        ::close(w.err);
        retire();
        throw;
    }
    try {
        bell_ = std::make_unique<asio::posix::stream_descriptor>(io, bell_fd_ >= 0 ? bell_fd_ : from_);
        if (exit_fd_ >= 0) exit_ = std::make_unique<asio::posix::stream_descriptor>(io, exit_fd_);
        wr_ = std::make_unique<asio::posix::stream_descriptor>(io, to_);
        output_->start();
    } catch (...) {
        retire();  // nothing of the worker stays behind
        throw;
    }
}

bool channel::serves(const call_state& c) const noexcept {
    for (const auto& j : jobs_)
        if (j.call.get() == &c) return true;
    return false;
}

bool channel::runs(const batch_base& b) const noexcept { return !jobs_.empty() && jobs_.front().batch.get() == &b; }

bool channel::held_from(const job* j) const noexcept {
    if (dead_ || !jobs_.empty() || !status_ || status_->arena_held.load(std::memory_order_acquire) == 0) return false;
    if (!j) return true;
    // Its own stream may queue a later batch behind its results; owner_before tells calls apart
    // even after the one kept for has ended. An earlier batch (a task run again) would wait for
    // the worker, the worker for the consumer, and the consumer, in input order, for that batch.
    const bool same = !arena_kept_for_.owner_before(j->call) && !j->call.owner_before(arena_kept_for_);
    return !same || j->batch->first < arena_kept_first_;
}

bool channel::has_room_for(const job* j) const noexcept {
    if (dead_ || interrupted_) return false;
    if (jobs_.empty()) return !held_from(j);
    if (!j || jobs_.size() >= depth) return false;
    const job& ahead = jobs_.back();
    // Behind a batch of its own call, never before it in input order (see held_from).
    if (ahead.call == j->call) return ahead.batch->first < j->batch->first;
    return !ahead.call->streams_results();
}

void channel::send(job j, array_placer* placer) {
    batch_base& b = *j.batch;
    b.worker = pid_;
    b.placed_ns = batch_base::now_ns();
    if (out_pos_ == out_.size()) {
        out_.clear();
        out_pos_ = 0;
    }
    const std::size_t before = out_.size();
    try {
        const auto at = begin_frame(out_);
        wire_out ar(out_, placer);
        timed_step(b, b.encoded, [&] { b.encode(ar, j.call->tracks_tasks()); });
        end_frame(out_, at, frame_kind::request);
    } catch (...) {
        out_.resize(before);
        b.error = std::current_exception();
        b.completed = 0;
        guard_->give_back(std::move(j));
        return;
    }
    const bool was_idle = jobs_.empty();
    const bool was_writing = out_pos_ < before;
    // Rung for, until a thread that waits for this call reads the answers itself
    // (poll_responses): nobody may be reading now.
    ring_for_answers(true);
    j.request = ++requests_;
    jobs_.push_back(std::move(j));
    if (!to_slot(before) && !was_writing) write_more();
    if (status_) tell_sent();
    if (was_idle) wait_readable();
}

bool channel::to_slot(std::size_t at) noexcept {
    const std::size_t n = out_.size() - at;
    // Free once the worker has copied out the last request put there.
    if (!status_ || n > request_slot_bytes ||
        status_->slot_taken.load(std::memory_order_acquire) != status_->slot_request.load(std::memory_order_relaxed))
        return false;
    std::memcpy(status_->request_slot, out_.data() + at, n);
    status_->slot_request.store(requests_, std::memory_order_release);
    out_.resize(at);
    return true;
}

void channel::tell_sent() noexcept {
    // After the bytes; then the worker's sleep, read after it (the worker sets it first).
    status_->sent.store(requests_, std::memory_order_seq_cst);
    if (status_->asleep.load(std::memory_order_seq_cst) == 0) return;
    status_->wake.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(status_->wake);
}

std::optional<job> channel::take_back() noexcept {
    if (dead_ || interrupted_ || !status_ || jobs_.size() < 2) return std::nullopt;
    // The first one the worker has not started: the one behind its running one, or the first
    // of a worker still starting up. Each try succeeds only on the next request to decide.
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
        if (!take_back_request(status_->gate, it->request)) continue;
        job j = std::move(*it);
        jobs_.erase(it);
        return j;
    }
    return std::nullopt;
}

bool channel::started(const job& j) const noexcept {
    return status_ && status_->gate.decided.load(std::memory_order_acquire) >= j.request;
}

void channel::interrupt_for(const call_state& call) noexcept {
    if (dead_ || jobs_.empty() || (interrupted_ && !kill_pending_)) return;
    if (kill_pending_) {  // stopped for the call behind; now for the one it runs too (a timeout)
        if (jobs_.front().call.get() == &call) {
            kill_pending_ = false;
            kill_worker(pid_);
        }
        return;
    }
    job& behind = jobs_.back();
    // Whether `behind` is taken back: the worker will skip it.
    const auto take_behind = [&] { return status_ && take_back_request(status_->gate, behind.request); };
    if (jobs_.front().call.get() != &call) {
        // Another call's batch comes first, call's waits behind it: taken back, or, when the
        // worker started it (or has not started the first), killed once the first is answered.
        if (take_behind()) {
            behind.batch->error = batch_not_sent();
            guard_->give_back(std::move(behind));
            jobs_.pop_back();
            return;
        }
        kill_pending_ = true;
    } else if (jobs_.size() > 1 && behind.call.get() != &call) {
        if (take_behind()) {  // another call's batch behind call's: it runs elsewhere
            owner_->requeue(std::move(behind));
            jobs_.pop_back();
        } else if (started(behind)) {
            return;  // call's batch was answered; the one it runs now is another call's
        }
    }
    interrupted_ = true;
    stopped_for_ = &call;
    if (!kill_pending_) kill_worker(pid_);  // its pipe reports end of file, and its batches come back
}

void channel::publish_progress(const call_state& call) noexcept {
    if (dead_ || jobs_.empty() || jobs_.front().call.get() != &call || !status_) return;
    batch_base& b = *jobs_.front().batch;
    b.running.store(static_cast<std::size_t>(status_->running.load(std::memory_order_relaxed)),
                    std::memory_order_relaxed);
    b.running_since.store(status_->running_since.load(std::memory_order_acquire), std::memory_order_release);
}

void channel::unbind() noexcept {
    // A wait that completed before release() still runs its handler (already queued on the
    // I/O thread): the new epoch makes it a no-op instead of a read through a null descriptor.
    ++epoch_;
    read_armed_ = false;
    for (auto* d : {&bell_, &exit_, &wr_}) {
        if (*d) (void)(*d)->release();
        d->reset();
    }
}

void channel::write_more() {
    while (out_pos_ < out_.size()) {
        const ssize_t r = pipe_seam().write(to_, out_.data() + out_pos_, out_.size() - out_pos_);
        if (r > 0) {
            out_pos_ += static_cast<std::size_t>(r);
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && errno == EAGAIN) {
            wr_->async_wait(asio::posix::stream_descriptor::wait_write,
                            [self = shared_from_this(), epoch = epoch_](boost::system::error_code ec) {
                                const pool_guard::held lock(*self->guard_);
                                if (!ec && self->epoch_ == epoch && !self->dead_) self->write_more();
                            });
            return;
        } else {
            // EPIPE: the worker is gone; the read side reports how it ended.
            out_pos_ = out_.size();
            return;
        }
    }
    out_.shrink_if_above(64u << 20);
}

void channel::read_more(bool end_is_loss) {
    for (;;) {
        // Read straight into place: as much as the frame in progress still needs.
        std::size_t want = read_chunk;
        if (in_.size() >= sizeof(frame_header)) {
            frame_header h;
            try {
                h = parse_header(in_.data());
            } catch (...) {
                lost(loss::broke, std::current_exception());
                return;
            }
            const std::size_t total = sizeof(frame_header) + static_cast<std::size_t>(bytes_on_pipe(h.kind, h.length));
            // The buffer at most doubles per read: its size follows the bytes that came, not the
            // length a header claims.
            if (total > in_.size()) want = std::max(want, std::min(total - in_.size(), in_.size()));
        }
        const std::size_t at = in_.size();
        in_.reserve(at + want);
        const ssize_t r = pipe_seam().read(from_, in_.data() + at, want);
        if (r > 0) {
            in_.resize(at + static_cast<std::size_t>(r));
            if (take_frames()) {
                // Idle, its read stays armed: a worker that dies between calls (the OOM killer,
                // a signal) is reaped here at once, not found by the next call.
                if (!dead_) wait_readable();
                return;
            }
        } else if (r == 0) {
            if (end_is_loss) lost(in_.size() == 0 ? loss::closed : loss::cut);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            wait_readable();
            return;
        } else {
            const std::system_error failed(errno, std::generic_category(), "cojob: reading a worker pipe");
            lost(loss::broke, std::make_exception_ptr(failed));
            return;
        }
    }
}

}  // namespace cojob::detail::process
