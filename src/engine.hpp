// src/engine.hpp - private: what a `parallel` object owns and its calls share: the resolved
// options, the backend and its workers (its own, or a pool's), the tuned batch size, the
// io_contexts on which blocking calls run, the calls running now, and each thread's last
// failure. Any number of calls may run at once, from any threads: everything here that
// changes is guarded.
#pragma once

#include "backend.hpp"
#include "progress.hpp"
#include "resolved_options.hpp"

#include <cojob/errors.hpp>

#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace cojob::detail {

class call_state;

/// Each thread's last failure. Nodes of a std::map stay where they are, so a thread reads its own
/// slot unlocked. A thread has a slot once one of its calls failed, and the slot goes when the
/// thread ends (engine.cpp): threads that come and go leave none behind, and a new thread that
/// gets an ended one's id does not see its failure.
struct failure_slots {
    std::mutex mutex;
    std::map<std::thread::id, std::optional<task_failure>> by_thread;
};

class engine {
public:
    /// With its own workers.
    explicit engine(resolved_options o);
    /// On the workers of a pool (`shared`), which other engines use too.
    engine(resolved_options o, std::shared_ptr<backend_base> shared);
    /// The backend goes first: the batches it gives back as it ends go to the blocking contexts.
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    resolved_options opts;
    /// Its own, or a pool's (shared with the other runners built on it).
    std::shared_ptr<backend_base> backend;

    /// The batch sizer a call starts from: the size the calls before it tuned (joblib's `with`).
    [[nodiscard]] batch_sizer sizer() const;
    /// A call hands back the size it tuned, for the next call.
    void keep_sizer(const batch_sizer& tuned);

    /// An io_context for one blocking call, which runs it on the caller's thread; it stays the
    /// engine's (a batch that comes back after its call is queued on it) and goes back with
    /// `give_back_context`.
    boost::asio::io_context& take_context();
    void give_back_context(boost::asio::io_context& ctx) noexcept;
    /// Runs what is queued on every blocking context (batches that came back after their call).
    void drain_contexts() noexcept;

    /// A call has started / ended (for `cancel_all`).
    void call_started(const std::shared_ptr<call_state>& call);
    void call_ended(const call_state* call) noexcept;
    /// Asks every running call to stop; returns how many were told.
    std::size_t cancel_all();

    /// The failure of the last call that ended on this thread (see parallel::last_failure):
    /// each thread has its own slot, which only that thread writes.
    [[nodiscard]] const std::optional<task_failure>& last_failure() const;
    void set_last_failure(std::optional<task_failure> f);
    /// Threads that have a failure slot now.
    [[nodiscard]] std::size_t failure_slot_count() const;

private:
    mutable std::mutex mutex_;
    batch_sizer sizer_;
    std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
    std::vector<boost::asio::io_context*> free_contexts_;
    /// The running calls; the address is kept beside the weak pointer so that forgetting a call
    /// never locks it (the lock could be the call's last owner, and end it under mutex_).
    std::vector<std::pair<const call_state*, std::weak_ptr<call_state>>> calls_;
    std::shared_ptr<failure_slots> failures_ = std::make_shared<failure_slots>();
};

}  // namespace cojob::detail
