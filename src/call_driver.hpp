// src/call_driver.hpp - private: the life of one call, the same for every form a user can
// start it with (`par(range)`, `par.async_run`, `par.stream`): starting the scheduler coroutine, driving a blocking call from the caller's thread, letting the
// backend watch for an interrupt, and the call's end. The forms are thin adapters over it
// (src/parallel.cpp, src/stream.cpp), so a per-call feature is written here once.
#pragma once

#include "call_state.hpp"
#include "engine.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

namespace cojob::detail {

/// What a form of call hears from its driver.
struct call_hooks {
    /// The call has ended, with its failure or null (once, on the call's executor).
    std::function<void(std::exception_ptr failure)> ended;
    /// A blocking call was interrupted (Ctrl-C) and is stopping (on the caller's thread).
    /// Empty: the call is cancelled, and ends once its running batches are back.
    std::function<void()> interrupted;
};

class call_driver {
public:
    explicit call_driver(std::shared_ptr<engine> eng) noexcept;
    /// Gives a blocking call's io_context back to the engine.
    ~call_driver();
    call_driver(const call_driver&) = delete;
    call_driver& operator=(const call_driver&) = delete;

    /// Makes the call and starts its scheduler. Other calls of the engine may run meanwhile.
    /// Without an executor the call is blocking: it runs on an io_context of the engine's own,
    /// which `drive` runs on the caller's thread, and the backend watches for an interrupt meanwhile. With one (a strand of the
    /// user's executor) it runs there, and `slot`, when connected, cancels it.
    void start(source_base& source, sink_base& sink, std::shared_ptr<void> keep_alive,
               std::optional<boost::asio::any_io_executor> executor, boost::asio::cancellation_slot slot,
               call_hooks hooks);

    /// A blocking call: runs the engine's io_context on this thread until `ready()` holds.
    /// Handlers first; then what the backend can do for this call here (backend_base::help);
    /// then a short spin doing the same, since completions often follow closely; then sleep
    /// until the next handler.
    template <class Ready>
    void drive(Ready ready);
    /// A blocking call that has ended with batches still out: runs what came back meanwhile
    /// on the engine's io_context (such a batch holds the call, and through it the engine).
    void drain() noexcept;

    /// Whether the call has started and not ended.
    [[nodiscard]] bool running() const noexcept { return call_ != nullptr; }
    /// Whether an interrupt (Ctrl-C) stopped the call; told once.
    [[nodiscard]] bool take_interrupted() noexcept { return std::exchange(interrupted_, false); }
    /// The running call, or null.
    [[nodiscard]] const std::shared_ptr<call_state>& call() const noexcept { return call_; }

private:
    void ended(std::exception_ptr failure) noexcept;

    std::shared_ptr<engine> eng_;
    boost::asio::io_context* context_ = nullptr;  ///< a blocking call's, lent by the engine
    std::shared_ptr<call_state> call_;
    bool interrupted_ = false;  ///< the call that ended was interrupted
    bool batches_out_ = false;  ///< the call that ended left batches out (see drain)
    call_hooks hooks_;
    boost::asio::cancellation_slot slot_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::unique_ptr<call_watch> watch_;
};

template <class Ready>
void call_driver::drive(Ready ready) {
    auto& ctx = *context_;
    // Handlers first even when the caller is ready: an interrupt must not wait behind results.
    if (watch_) ctx.poll();
    while (!ready()) {
        // At least one look, however late the clock reads: a nested call's own queued batches
        // must be run here before this thread sleeps.
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        bool ran = false;
        for (;;) {
            ran = ctx.poll() > 0 || (call_ && eng_->backend->help(*call_));
            if (ran || ready() || std::chrono::steady_clock::now() >= spin_until) break;
            std::this_thread::yield();
        }
        if (!ran && !ready() && !(call_ && eng_->backend->before_sleep(*call_))) ctx.run_one();
    }
}

}  // namespace cojob::detail
