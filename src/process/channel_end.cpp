// src/process/channel_end.cpp - how a worker's channel ends. Lost (end of file, garbage, killed
// on purpose): the worker is killed if need be and reaped at once, and its batches go back to
// their calls with the reason (failure_text.hpp), but for those of other calls that it never
// started, which go back to the pool's queue. Retired, dropped, or closed and awaited at the
// pool's shutdown.
#include "channel.hpp"

#include "../request_gate.hpp"
#include "../wire.hpp"
#include "failure_text.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <utility>

namespace cojob::detail::process {

void channel::lost(loss how_lost, std::exception_ptr why) {
    const bool answered = how_lost == loss::lent_results;
    // Of a frame cut short: the bytes that came, and those its header announced (0: the header
    // itself was cut).
    const std::size_t got = in_.size();
    std::size_t announced = 0;
    if (how_lost == loss::cut && got >= sizeof(frame_header)) {
        frame_header h;
        std::memcpy(&h, in_.data(), sizeof h);  // its header was checked when it came
        announced = sizeof h + static_cast<std::size_t>(bytes_on_pipe(h.kind, h.length));
    }
    // Killed on purpose, not still waiting to be (then it died on its own, in the batch it ran).
    const bool was_interrupted = interrupted_ && !kill_pending_;
    const pid_t pid = pid_;
    kill_worker(pid);
    int st = 0;
    struct rusage usage{};
    const bool reaped = pid > 0 && memory_->reap(st, 0, &usage) == pid;
    pid_ = -1;
    output_->close();  // all it wrote is in the pipes now
    const bool greeted = greeted_;
    const std::size_t index = status_ ? static_cast<std::size_t>(status_->running.load(std::memory_order_relaxed)) : 0;
    const bool requeued = requeue_unstarted(was_interrupted);
    drop();
    std::deque<job> jobs = std::move(jobs_);
    jobs_.clear();
    const long oom_kills = reaped && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? cgroup_oom_kills() : -1;
    worker_end end = describe_end(reaped, st, usage, oom_kills > oom_kills_at_start_ && oom_kills_at_start_ >= 0);
    end.stderr_tail = output_->stderr_tail();
    const std::string& how = end.how;
    if (answered && !jobs.empty()) {
        job a = std::move(jobs.front());
        jobs.pop_front();
        a.batch->error = lent_results_lost(pid, how, *a.batch);
        a.batch->completed = 0;
        guard_->give_back(std::move(a));
    }
    if (jobs.empty()) {
        if (answered || requeued) owner_->refill();
        return;
    }
    // Batches behind the one that ran never started.
    for (std::size_t k = 1; k < jobs.size(); ++k) {
        jobs[k].batch->error = batch_not_started();
        jobs[k].batch->completed = 0;
        jobs[k].batch->ran = 0;
        jobs[k].batch->blameless = true;
    }
    job j = std::move(jobs.front());
    jobs.pop_front();
    batch_base& b = *j.batch;
    if (was_interrupted) {
        b.error = batch_stopped();
        if (greeted && b.timed_out) b.origin = death_facts(pid, end, b, index, b.error);  // what it took
    }
    else if (why)
        b.error = protocol_broken(pid, why);
    else if (how_lost == loss::cut)
        b.error = frame_cut(pid, how, b, got, announced);
    else {
        b.error = worker_ended(pid, end, greeted, b, index);
        if (greeted) b.origin = death_facts(pid, end, b, index, b.error);
    }
    b.completed = 0;
    // The tasks before the one it died in returned, but their results died with it.
    b.ran = greeted ? std::min(index + 1, b.size) : 0;
    guard_->give_back(std::move(j));
    for (auto& rest : jobs) guard_->give_back(std::move(rest));
    owner_->refill();
}

bool channel::requeue_unstarted(bool was_interrupted) noexcept {
    if (jobs_.empty() || !status_) return false;
    // The call whose batch it ran (or was stopped for) takes the loss; the batches of other
    // calls that it never started go back to the queue. The worker is gone, so the gate tells:
    // taking back in order succeeds from the first request it did not start on.
    const call_state* loser = was_interrupted ? stopped_for_ : jobs_.front().call.get();
    bool requeued = false;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
        if (take_back_request(status_->gate, it->request) && it->call.get() != loser) {
            owner_->requeue(std::move(*it));
            it = jobs_.erase(it);
            requeued = true;
        } else {
            ++it;
        }
    }
    return requeued;
}

void channel::retire() noexcept {
    if (pid_ > 0) {
        kill_worker(pid_);
        int st = 0;
        (void)memory_->reap(st, 0);
        pid_ = -1;
    }
    drop();
}

void channel::drop() noexcept {
    if (dead_) return;
    dead_ = true;
    ++epoch_;
    unbind();
    for (int* fd : {&to_, &from_, &bell_fd_, &exit_fd_}) {
        if (*fd >= 0) ::close(*fd);
        *fd = -1;
    }
    if (output_) output_->close();
    status_.reset();
    arena_.reset();
}

void channel::close_requests() noexcept {
    if (dead_) return;
    unbind();
    if (to_ >= 0) ::close(to_);
    to_ = -1;
}

void channel::finish(std::chrono::steady_clock::time_point deadline) noexcept {
    if (dead_ || pid_ < 0) return;
    int st = 0;
    while (memory_->reap(st, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            kill_worker(pid_);
            (void)memory_->reap(st, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    pid_ = -1;
    drop();
}

}  // namespace cojob::detail::process
