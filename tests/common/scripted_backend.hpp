// tests/common/scripted_backend.hpp - a backend the test steps by hand, so that a call's error,
// crash and cancellation paths run without threads or processes: batches wait until the test
// runs, fails or loses them. While a scripted_scope lives, every parallel object made gets one.
#pragma once

#include "backend.hpp"

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

namespace kit {

struct script {
    std::size_t workers = 2;
    /// interrupt() hands the waiting batches of the stopping call back at once, as killed worker
    /// processes would; false: they stay and run when stepped, as threads do.
    bool stops_batches = true;
    /// begin_call() refuses every call with this message, when not empty.
    std::string refusal;
};

class scripted_backend final : public cojob::detail::backend_base {
public:
    explicit scripted_backend(script s);

    // The test's side (any thread).
    [[nodiscard]] std::size_t queued() const;
    /// Runs the oldest waiting batch on this thread and hands it back; false when none waits.
    bool run_next();
    /// Hands the oldest waiting batch back with `e`, as a backend that could not run it.
    bool fail_next(std::exception_ptr e);
    /// Hands the oldest waiting batch back as a dead worker's: cojob::worker_died.
    bool lose_next();
    [[nodiscard]] int interrupts() const;
    [[nodiscard]] int calls_begun() const;
    [[nodiscard]] int calls_ended() const;

    // The scheduler's side.
    const cojob::detail::dispatch_profile& profile() const noexcept override { return profile_; }
    void submit(std::unique_ptr<cojob::detail::batch_base> batch,
                std::shared_ptr<cojob::detail::call_state> call) noexcept override;
    void begin_call(cojob::detail::call_state& call) override;
    void end_call(cojob::detail::call_state& call) noexcept override;
    cojob::detail::stop_effect interrupt(cojob::detail::call_state& call) noexcept override;

private:
    struct job {
        std::unique_ptr<cojob::detail::batch_base> batch;
        std::shared_ptr<cojob::detail::call_state> call;
    };
    bool take(job& j);

    script script_;
    cojob::detail::dispatch_profile profile_;
    mutable std::mutex mutex_;
    std::deque<job> queue_;
    int interrupts_ = 0;
    int begun_ = 0;
    int ended_ = 0;
};

/// While alive, the parallel objects made get a scripted backend; `backend()` is the latest.
class scripted_scope {
public:
    explicit scripted_scope(script s = {});
    ~scripted_scope();
    scripted_scope(const scripted_scope&) = delete;
    scripted_scope& operator=(const scripted_scope&) = delete;
    /// The backend of the parallel object made last in this scope (it lives as long as that object).
    [[nodiscard]] scripted_backend& backend() const;
};

}  // namespace kit
