// src/backend_threads.cpp - a pool of worker threads owned by one `parallel` object.
//
// Nested parallelism: a blocking call made from inside a worker does not start threads of
// its own. Its batches go to the queue of the pool the worker belongs to, and while the
// worker waits for them it runs queued batches of that same call itself (work helping), so
// the call completes even when every other worker is busy, and the thread count never grows.
#include "backend.hpp"
#include "call_state.hpp"
#include "fair_queue.hpp"
#include "util.hpp"

#include <cojob/errors.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cojob::detail {

namespace {

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

struct queued_batch {
    std::unique_ptr<batch_base> batch;
    std::shared_ptr<call_state> call;
};

// The part of a pool its threads share; it outlives the pool object when the pool is
// destroyed from one of its own threads (the threads then finish on their own).
struct pool_core {
    std::mutex mutex;
    std::condition_variable wakeup;
    fair_queue<queued_batch> queue;  ///< shared between concurrent calls batch by batch
    std::atomic<std::size_t> queued{0};
    int sleepers = 0;
    bool stopping = false;
};

thread_local pool_core* current_pool = nullptr;
thread_local long current_worker = -1;  ///< this pool thread's index; -1 on other threads

/// Runs a batch and hands it back; returns whether its call had given it up meanwhile (a task
/// past the timeout in a call that outlives it), in which case a replacement thread took this
/// one's place.
bool execute(queued_batch& j) {
    j.batch->worker = current_worker;
    if (j.batch->record_times) j.batch->thread = this_thread_id();
    const bool track = j.call->tracks_tasks();
    j.batch->run(j.call->stop_flag(), track);
    int running = 0;
    const bool given_up =
        track && !j.batch->fate.compare_exchange_strong(running, batch_back, std::memory_order_acq_rel);
    call_state::finished(std::move(j.call), std::move(j.batch));
    return given_up;
}

void worker_main(std::shared_ptr<pool_core> core, long index, std::shared_ptr<std::atomic<bool>> done) {
    current_pool = core.get();
    current_worker = index;
    for (;;) {
        // Spin briefly before sleeping: waking a sleeping thread costs far more than a
        // short spin when the next batch follows closely.
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        for (int i = 0; core->queued.load(std::memory_order_acquire) == 0; ++i) {
            if ((i & 63) == 63) {
                if (std::chrono::steady_clock::now() > spin_until) break;
                std::this_thread::yield();
            }
            cpu_relax();
        }
        queued_batch j;
        {
            std::unique_lock lock(core->mutex);
            ++core->sleepers;
            core->wakeup.wait(lock, [&] { return core->stopping || !core->queue.empty(); });
            --core->sleepers;
            if (core->queue.empty()) return;  // stopping, nothing left
            j = core->queue.pop();
            core->queued.fetch_sub(1, std::memory_order_relaxed);
        }
        if (execute(j)) {  // a replacement runs in this thread's place: leave
            done->store(true, std::memory_order_release);
            return;
        }
    }
}

class thread_pool_backend final : public backend_base {
public:
    explicit thread_pool_backend(int workers)
        : workers_(workers),
          profile_{.name = backend_name(cojob::backend::threads), .workers = static_cast<std::size_t>(workers),
                   .runs_in_submit = false, .min_ideal_batch_seconds = 200e-6} {}

    ~thread_pool_backend() override {
        if (!core_) return;
        {
            std::lock_guard lock(core_->mutex);
            core_->stopping = true;
        }
        core_->wakeup.notify_all();
        const bool on_own_thread = current_pool == core_.get();
        for (auto& t : threads_) {
            if (on_own_thread)
                t.thread.detach();  // the threads hold the core and exit once the queue is drained
            else
                t.thread.join();
        }
    }

    const dispatch_profile& profile() const noexcept override { return profile_; }

    void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) noexcept override {
        pool_core* core = current_pool;
        if (!core) {
            try {
                core = own_core();
            } catch (const std::exception& e) {
                batch->error = std::make_exception_ptr(
                    error(std::string("cojob: backend=threads could not start its worker threads: ") + e.what() +
                          " (the parallel object stays usable: the next call starts the missing ones)"));
                call_state::finished(std::move(call), std::move(batch));
                return;
            }
        }
        bool wake = false;
        {
            std::lock_guard lock(core->mutex);
            const void* key = call.get();
            core->queue.push(key, queued_batch{std::move(batch), std::move(call)});
            core->queued.fetch_add(1, std::memory_order_release);
            wake = core->sleepers > 0;
        }
        if (wake) core->wakeup.notify_one();
    }

    bool help(const call_state& call) override {
        pool_core* core = current_pool;
        if (!core) return false;
        std::optional<queued_batch> j;
        {
            std::lock_guard lock(core->mutex);
            j = core->queue.take(&call);
            if (!j) return false;
            core->queued.fetch_sub(1, std::memory_order_relaxed);
        }
        execute(*j);
        return true;
    }

    /// A task that passed the timeout keeps its thread: another takes that thread's place, so
    /// that n_jobs threads keep running tasks. The stuck one leaves when its task returns;
    /// those that left are joined here, so the pool holds n_jobs threads plus the stuck ones.
    void stop_batch(call_state& /*call*/, batch_base& b) noexcept override {
        std::lock_guard lock(start_mutex_);
        if (!core_) return;
        std::erase_if(threads_, [](pool_thread& t) {
            if (!t.done->load(std::memory_order_acquire)) return false;
            t.thread.join();
            return true;
        });
        try {
            if (before_thread_start) before_thread_start();
            auto done = std::make_shared<std::atomic<bool>>(false);
            threads_.push_back(pool_thread{std::thread(worker_main, core_, b.worker, done), done});
        } catch (...) {  // no thread to spare: the pool runs one short until the task returns
        }
    }

private:
    /// This pool's own threads, started on first use; those that could not start are tried
    /// again on the next batch. Concurrent calls may submit their first batches at once: the
    /// first to come starts the threads, the others wait for it.
    pool_core* own_core() {
        if (pool_core* ready = ready_.load(std::memory_order_acquire)) return ready;
        std::lock_guard lock(start_mutex_);
        if (!core_) core_ = std::make_shared<pool_core>();
        if (threads_.size() < static_cast<std::size_t>(workers_)) {
            threads_.reserve(static_cast<std::size_t>(workers_));
            while (threads_.size() < static_cast<std::size_t>(workers_)) {
                if (before_thread_start) before_thread_start();
                auto done = std::make_shared<std::atomic<bool>>(false);
                threads_.push_back(
                    pool_thread{std::thread(worker_main, core_, static_cast<long>(threads_.size()), done), done});
            }
        }
        ready_.store(core_.get(), std::memory_order_release);
        return core_.get();
    }

    int workers_;
    dispatch_profile profile_;
    std::mutex start_mutex_;  ///< guards core_ and threads_ while the threads start
    std::shared_ptr<pool_core> core_;
    struct pool_thread {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;  ///< it left (see stop_batch)
    };
    std::vector<pool_thread> threads_;
    std::atomic<pool_core*> ready_{nullptr};  ///< core_, once every thread has started
};

}  // namespace

void (*before_thread_start)() = nullptr;

std::unique_ptr<backend_base> make_threads_backend(int workers) {
    return std::make_unique<thread_pool_backend>(workers);
}

}  // namespace cojob::detail
