// src/process/pool_guard.hpp - private: the one lock of a pool of worker processes. Calls of one
// `parallel` object may run at once on several threads, and a worker's answers are read by the
// thread of the call that waits for them or on the pool's I/O thread: the pool's entry points
// and every handler of its channels take this lock first. Batches that go back to their calls
// while it is held are handed over once it is released, since handing one back may end its
// call, and the call's end may end the pool (a call holds its engine).
#pragma once

#include "../call_state.hpp"

#include <cojob/detail/batch.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
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
            lock_.unlock();
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
};

}  // namespace cojob::detail::process
