// src/process/channel_wait.cpp - how the parent learns that a worker has answered or ended.
//
// Nobody waits on the response pipe. A blocking call's thread, while it waits for its list,
// takes its workers' answers itself (poll_responses, from the drive loop), and only when the
// worker's answer counter in the status page has moved: an answer then wakes that thread and
// no other, and costs it no system call (the answer is in the arena, channel_answer.cpp).
// Otherwise the worker rings its doorbell, an eventfd the pool's I/O thread waits on, after
// each answer: for an asynchronous call or a stream, and for a blocking call whose thread is
// about to sleep (before_sleep), and while the worker holds a batch of another call than the
// reader's. Both sides check the other's flag after setting their own (the worker: its
// counter, then the doorbell flag; the parent: the flag, then the counter), so that one of
// them always sees the answer. A frame that fills the pipe (its hello or a fault) rings too, so
// that it never waits for a reader that is not coming. The worker's end comes through a pidfd.
// Without a pidfd (an old kernel, a seccomp filter) the worker gets no doorbell, answers
// through its response pipe, and the I/O thread waits on that pipe itself, for every answer.
#include "channel.hpp"

#include <unistd.h>

#include <cstdint>

namespace cojob::detail::process {

namespace asio = boost::asio;

void channel::watch() {
    wait_readable();
    wait_exit();
}

void channel::ring_for_answers(bool ring) noexcept {
    if (bell_fd_ < 0 || !status_) return;
    if (status_->doorbell.load(std::memory_order_relaxed) != static_cast<std::uint32_t>(ring))
        status_->doorbell.store(ring ? 1 : 0, std::memory_order_seq_cst);
}

void channel::wait_readable() {
    if (read_armed_) return;  // poll_responses reads too, and finds the wait already pending
    read_armed_ = true;
    bell_->async_wait(asio::posix::stream_descriptor::wait_read,
                      [self = shared_from_this(), epoch = epoch_](boost::system::error_code ec) {
                          const pool_guard::held lock(*self->guard_);
                          if (self->epoch_ != epoch) return;
                          self->read_armed_ = false;
                          if (ec || self->dead_) return;
                          if (self->bell_fd_ >= 0) {
                              std::uint64_t rings = 0;  // the count, to be read so that it rings again
                              (void)!::read(self->bell_fd_, &rings, sizeof rings);
                          }
                          // A ring that brought no answer is for a frame that fills the pipe.
                          const std::uint64_t taken = self->answers_taken_;
                          if (self->arena_answers_) (void)self->take_answers();
                          if (!self->dead_ && self->answers_taken_ == taken) self->read_more();
                          if (!self->dead_) self->wait_readable();
                      });
}

void channel::wait_exit() {
    if (!exit_) return;  // its pipe's end of file says it
    exit_->async_wait(asio::posix::stream_descriptor::wait_read,
                      [self = shared_from_this(), epoch = epoch_](boost::system::error_code ec) {
                          const pool_guard::held lock(*self->guard_);
                          if (ec || self->epoch_ != epoch || self->dead_) return;
                          // What it wrote before it ended comes first, and its end of file.
                          if (self->arena_answers_) (void)self->take_answers();
                          if (!self->dead_) self->read_more();
                          // A process it started may hold its pipe open: it has ended all the same.
                          if (!self->dead_) self->lost(self->in_.size() == 0 ? loss::closed : loss::cut);
                      });
}

bool channel::read_if_answered() {
    if (dead_ || !bell_ || jobs_.empty()) return false;  // !bell_: shutting down
    const std::size_t waiting = jobs_.size();
    if (!arena_answers_)
        read_more();
    else if (status_->answers.load(std::memory_order_seq_cst) != answers_taken_)  // else no answer came
        (void)take_answers();
    return dead_ || jobs_.size() != waiting;
}

bool channel::poll_responses(const call_state& call) {
    if (!dead_) {
        // The caller reads only while it waits for every answer the worker owes: an answer to
        // another call that comes after the caller's last would wait for nobody.
        bool only_call = true;
        for (const auto& j : jobs_) only_call = only_call && j.call.get() == &call;
        ring_for_answers(call.streams_results() || !only_call);
    }
    return read_if_answered();
}

bool channel::before_sleep(const call_state& call) {
    if (dead_ || !serves(call)) return false;
    ring_for_answers(true);
    return read_if_answered();
}

void channel::call_ended(const call_state& call) {
    if (dead_ || !serves(call)) return;
    ring_for_answers(true);
    (void)read_if_answered();
}

}  // namespace cojob::detail::process
