// src/fair_queue.hpp - private: batches waiting for a worker, shared fairly between the calls
// that queued them. Each call has a lane; the queue hands out the front batch of one lane after
// another (round robin), so a call that queues one batch while others keep many queued gets a
// worker after at most one batch of each of them, not after all of theirs. Within a lane, batches
// keep their order. Not synchronized: the backend that owns it guards it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

namespace cojob::detail {

template <class Job>
class fair_queue {
public:
    /// Queues `j` behind the other batches of the call `key`.
    void push(const void* key, Job j) {
        lane* free = nullptr;
        for (auto& l : lanes_) {
            if (l.key == key) {
                l.jobs.push_back(std::move(j));
                ++size_;
                return;
            }
            if (!free && l.jobs.empty()) free = &l;
        }
        // An empty lane is reused: after the first calls, queueing allocates nothing new.
        if (!free) free = &lanes_.emplace_back();
        free->key = key;
        free->jobs.push_back(std::move(j));
        ++size_;
    }

    /// Queues `j` ahead of the other batches of the call `key` (a batch given back by a worker
    /// that had not started it), and serves that call next.
    void push_front(const void* key, Job j) {
        push(key, std::move(j));
        for (std::size_t i = 0; i < lanes_.size(); ++i) {
            auto& l = lanes_[i];
            if (l.key != key || l.jobs.empty()) continue;
            std::rotate(l.jobs.rbegin(), l.jobs.rbegin() + 1, l.jobs.rend());  // the new one first
            next_ = i;
            return;
        }
    }

    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    /// The next batch in round-robin order of the calls; the queue must not be empty.
    Job pop() { return *take_first([](const Job&) { return true; }); }

    /// The next batch in round-robin order that `fits` accepts (a lane whose front batch does
    /// not fit is passed over, its order kept), or nothing.
    template <class Fits>
    std::optional<Job> take_first(Fits&& fits) {
        const std::size_t n = lanes_.size();
        for (std::size_t k = 0; k < n && size_ > 0; ++k) {
            const std::size_t i = (next_ + k) % n;
            auto& jobs = lanes_[i].jobs;
            if (jobs.empty() || !fits(jobs.front())) continue;
            Job j = std::move(jobs.front());
            jobs.pop_front();
            --size_;
            next_ = (i + 1) % n;
            return j;
        }
        return std::nullopt;
    }

    /// The first batch of the call `key`, or nothing.
    std::optional<Job> take(const void* key) {
        for (auto& l : lanes_) {
            if (l.key != key || l.jobs.empty()) continue;
            Job j = std::move(l.jobs.front());
            l.jobs.pop_front();
            --size_;
            return j;
        }
        return std::nullopt;
    }

    /// Removes every batch of the call `key`, handing each to `each` in order.
    template <class Each>
    void remove(const void* key, Each&& each) {
        for (auto& l : lanes_) {
            if (l.key != key) continue;
            auto jobs = std::move(l.jobs);
            l.jobs.clear();
            size_ -= jobs.size();
            for (auto& j : jobs) each(std::move(j));
        }
    }

private:
    struct lane {
        const void* key = nullptr;
        std::deque<Job> jobs;
    };
    std::deque<lane> lanes_;  ///< a deque: lanes never move (std::deque's move may throw)
    std::size_t next_ = 0;  ///< the lane served next
    std::size_t size_ = 0;
};

}  // namespace cojob::detail
