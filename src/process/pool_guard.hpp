// src/process/pool_guard.hpp - private: the one lock of a pool of worker processes. Calls of one
// `parallel` object may run at once on several threads, and a worker's answers are read by the
// thread of the call that waits for them or on the pool's I/O thread: the pool's entry points
// and every handler of its channels take this lock first. Batches that go back to their calls
// while it is held are handed over once it is released, since handing one back may end its
// call, and the call's end may end the pool (a call holds its engine); in the order they were
// given back, whichever threads hand them over.
#pragma once

#include "../call_state.hpp"

#include <cojob/detail/batch.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace cojob::detail::process {

/// A batch and the call it belongs to.
struct job {
    std::unique_ptr<batch_base> batch;
    std::shared_ptr<call_state> call;
    std::uint64_t request = 0;  ///< its number among the requests sent to its worker, once sent
};

class pool_guard {
public:
    /// The lock, held until this goes; then the batches given back meanwhile go to their calls.
    class held {
    public:
        explicit held(pool_guard& g) : guard_(&g), lock_(g.mutex_) {}
        held(held&&) = delete;
        held& operator=(held&&) = delete;
        ~held() {
            std::vector<job> out = std::move(guard_->returning_);
            guard_->returning_.clear();
            if (out.empty()) return;
            // Hand-overs keep the order of the give_backs across threads (a worker's batches
            // reach their call in the order it answered them): by tickets, taken under the lock.
            const std::uint64_t ticket = guard_->tickets_++;
            lock_.unlock();
            // Any of the calls keeps the pool, and this guard, alive until the turn is passed on.
            const std::shared_ptr<call_state> keep = out.front().call;
            while (guard_->serving_.load(std::memory_order_acquire) != ticket) std::this_thread::yield();
            const struct pass_on {
                pool_guard* g;
                std::uint64_t next;
                ~pass_on() { g->serving_.store(next, std::memory_order_release); }
            } turn{guard_, ticket + 1};
            for (auto& j : out) call_state::finished(std::move(j.call), std::move(j.batch));
        }

    private:
        pool_guard* guard_;
        std::unique_lock<std::mutex> lock_;
    };

    /// While held: `j`'s batch goes back to its call once the lock is released.
    void give_back(job j) { returning_.push_back(std::move(j)); }

private:
    std::mutex mutex_;
    std::vector<job> returning_;
    std::uint64_t tickets_ = 0;  ///< hand-overs begun, under the lock
    std::atomic<std::uint64_t> serving_{0};  ///< hand-overs done: the ticket whose turn it is
};

}  // namespace cojob::detail::process
