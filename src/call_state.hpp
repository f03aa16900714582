// src/call_state.hpp - private: one call of a `parallel` object (its input, its output, and
// everything the scheduler coroutine tracks while it runs). Backends see only the short
// public part marked for them; the scheduler (src/scheduler.cpp) owns the rest.
#pragma once

#include "call_trace.hpp"
#include "engine.hpp"
#include "progress.hpp"

#include <cojob/detail/batch.hpp>
#include <cojob/detail/source.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

namespace cojob::detail {

/// batch_base::fate of a batch its call gave up (a task past the timeout it cannot stop), and
/// of one that came back.
inline constexpr int batch_given_up = 1;
inline constexpr int batch_back = 2;

/// All members are touched only on `executor()`, except where said otherwise.
class call_state : public std::enable_shared_from_this<call_state> {
public:
    /// `blocking`: the call runs on its engine's own io_context (whose executor is `executor`).
    call_state(std::shared_ptr<engine> eng, source_base& source, sink_base& sink, std::shared_ptr<void> keep_alive,
               boost::asio::any_io_executor executor, bool blocking);

    // ---- for backends ----------------------------------------------------------------------

    /// A batch of `call` has run, failed or was given up (any thread; inside submit for a
    /// backend that runs batches there).
    static void finished(std::shared_ptr<call_state> call, std::unique_ptr<batch_base> batch);
    /// Set when the call stops: running batches end at their next task boundary (any thread).
    [[nodiscard]] const std::atomic<bool>& stop_flag() const noexcept { return stop_; }
    /// Whether batches publish which task runs and since when (the call has a timeout).
    [[nodiscard]] bool tracks_tasks() const noexcept { return track_; }
    /// The executor the call runs on; empty once the call has ended.
    [[nodiscard]] const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    /// Whether the call runs on its engine's own io_context, which lives as long as the backend
    /// (a blocking call); else on the user's executor, which may go away after the call.
    [[nodiscard]] bool blocking() const noexcept { return blocking_; }
    /// Whether the input has ended: every task of the call is in a batch or staged (any thread).
    [[nodiscard]] bool input_exhausted() const noexcept { return input_ended_.load(std::memory_order_relaxed); }
    /// Whether results are consumed one by one (a stream) rather than taken all at once.
    [[nodiscard]] bool streams_results() const noexcept { return sink_.streaming(); }
    /// The options of the runner that made the call (runners on one pool differ in them).
    [[nodiscard]] const resolved_options& options() const noexcept { return eng_->opts; }
    /// Why the call's tasks cannot run in a worker process, or "" when they can.
    [[nodiscard]] std::string remote_refusal() const { return source_.remote_refusal(); }

    // ---- for the call driver and the stream ------------------------------------------------

    /// Stops dispatching and ends the call with operation_aborted (on the executor).
    void request_cancel();
    /// A stream's consumer is gone: cancel, and end without waiting for running batches
    /// (on the executor).
    void drop();
    /// A stream's consumer took a whole batch: the window may have room again (on the executor).
    void consumer_took();
    /// Asks the call, from any thread, to stop (request_cancel on its executor). Does nothing
    /// and returns false once the call has ended: its executor may belong to an io_context
    /// that is gone.
    bool cancel_from_anywhere();
    /// What an interrupt (Ctrl-C) of this blocking call does instead of cancelling it.
    void on_interrupt(std::function<void()> hook) { interrupt_hook_ = std::move(hook); }
    /// The backend saw an interrupt: runs the hook given, else cancels (on the executor).
    void interrupt();
    /// Whether an interrupt came.
    [[nodiscard]] bool interrupted() const noexcept { return user_interrupted_; }
    /// How the call failed (null when it did not), once it has ended.
    [[nodiscard]] std::exception_ptr result() const { return error_; }
    /// Which task failed it, when a task's exception ended it (once it has ended).
    [[nodiscard]] std::optional<task_failure> take_failure() noexcept { return std::move(failure_); }
    /// Lets go of what the call kept alive for its caller (an async call's results).
    std::shared_ptr<void> release_keep_alive() noexcept { return std::move(keep_alive_); }
    /// Whether the call ended with batches still out (they come back later, holding it).
    [[nodiscard]] bool left_batches_out() const noexcept { return left_batches_out_; }

private:
    friend boost::asio::awaitable<void> schedule(std::shared_ptr<call_state> call);

    void on_finished(std::unique_ptr<batch_base> batch);
    void drop_late(const batch_base& batch) const noexcept;
    void wake();
    template <class Token>
    auto async_wait_event(Token&& token);
    void dispatch_more();
    void complete_batch(std::unique_ptr<batch_base> batch);
    /// Takes a batch that completed or failed for good into the results, in the sink's order.
    void accept_batch(std::unique_ptr<batch_base> batch);
    /// Hands a batch to the backend; `fresh`: its tasks were never dispatched before.
    void send(std::unique_ptr<batch_base> b, bool fresh, std::int64_t cut_ns = 0);
    template <class F>
    void guarded(F&& step) noexcept;
    /// Asks the backend to stop the call's running batches, once.
    void stop_running() noexcept;
    void fail(std::exception_ptr e, std::optional<task_failure> failure);
    void check_timeout();

    // Failures the call outlives: cojob::keep_going and options::retry (src/call_failures.cpp).
    /// A batch failed in a call that settles failures: its results go on, its failed task runs
    /// again or becomes a failed outcome, the tasks after it (and those whose results a dead
    /// worker lost) run again.
    void settle(std::unique_ptr<batch_base> b);
    /// cojob::timeout_error for task `index`, saying what became of it (`note`).
    [[nodiscard]] std::exception_ptr timeout_at(std::size_t index, const std::string& note) const;
    /// What is known of the failure of task i of `b`.
    [[nodiscard]] task_failure describe_failure(const batch_base& b, std::size_t i) const;
    /// Whether task `f` of `b` gets another attempt.
    [[nodiscard]] bool worth_retry(const batch_base& b, const task_failure& f) const;
    /// Runs the one task of `b` again once its backoff has passed.
    void retry_later(std::unique_ptr<batch_base> b, const task_failure& f);
    /// Moves the retries whose backoff has passed to again_.
    void release_due();
    /// Whether tasks wait to run again.
    [[nodiscard]] bool tries_pending() const noexcept { return !again_.empty() || !backoff_.empty(); }
    /// Whether task i of `b`, past the timeout, ends only itself (else it ends the call).
    [[nodiscard]] bool outlives_timeout(const batch_base& b) const;
    /// Task i of `b` is past the timeout: stop its batch, or give the batch up.
    void time_out(batch_base& b, std::size_t i);
    /// Sets the timer to the next timeout check or retry, whichever comes first.
    void arm_timer();
    [[nodiscard]] bool can_dispatch() const;
    void report_failure(batch_base& b);
    bool deliver(std::unique_ptr<batch_base> b);
    /// What counts in the pre_dispatch window: batches, or for streams with automatic batch
    /// sizes results (see window_counts_results_).
    [[nodiscard]] std::size_t outstanding() const;
    /// A stream whose window is full of results its consumer has not taken yet.
    [[nodiscard]] bool waiting_for_consumer() const;
    /// An asynchronous input whose producer has not handed over the next task yet.
    [[nodiscard]] bool waiting_for_producer() const;
    /// The trace's counters, now.
    void trace_load();
    /// The call has ended: forget its batches and its executor.
    void close();

    std::shared_ptr<engine> eng_;
    source_base& source_;
    sink_base& sink_;
    std::shared_ptr<void> keep_alive_;
    /// Emptied by close(), so that a call_state released later on a worker thread does not
    /// touch an executor (a strand, an io_context) that may be gone.
    boost::asio::any_io_executor executor_;
    const bool blocking_;
    const bool inline_backend_;      ///< the backend completes batches inside submit()
    std::atomic<bool> stop_{false};  ///< read by running batches (any thread)
    std::atomic<bool> input_ended_{false};  ///< source_.exhausted, for other threads
    bool track_ = false;             ///< batches publish their running task (timeouts)

    std::deque<std::unique_ptr<batch_base>> finished_;
    bool keep_going_ = false;  ///< the sink takes failed outcomes (cojob::keep_going)
    bool settles_ = false;     ///< keep_going, or retries: failures go through settle()
    /// A task past the timeout is given up, not stopped (a backend that cannot stop a batch):
    /// batches then hold one task each.
    bool gives_up_ = false;
    bool gave_up_ = false;  ///< a batch was given up: it comes back after the call, maybe
    std::deque<std::unique_ptr<batch_base>> again_;  ///< tasks to run again now
    std::multimap<std::int64_t, std::unique_ptr<batch_base>> backoff_;  ///< retries, by due time (steady ns)
    /// Seeded at the first jittered retry: a std::random_device made for every call showed in
    /// profiles of calls of one task.
    std::optional<std::minstd_rand> jitter_;
    boost::asio::any_completion_handler<void()> waiter_;
    std::optional<boost::asio::steady_timer> timer_;
    std::map<std::size_t, std::unique_ptr<batch_base>> reorder_;
    std::map<std::size_t, batch_base*> in_flight_;  ///< by input position, for timeouts
    std::size_t next_to_deliver_ = 0;
    std::size_t batches_dispatched_ = 0;
    std::size_t slice_ = 1;
    std::size_t window_ = 0;  ///< 0 = unbounded
    /// A stream with batch_size="auto" counts its window in results: auto batching must not
    /// multiply what a slow consumer lets pile up. Fixed batch sizes and lists count batches.
    bool window_counts_results_ = false;
    std::size_t in_flight_tasks_ = 0;  ///< tasks in in_flight_
    std::size_t reorder_tasks_ = 0;    ///< tasks in reorder_
    bool cancel_requested_ = false;
    bool stopping_ = false;
    bool interrupted_ = false;  ///< the backend was asked to stop the running batches
    stop_effect stop_effect_;   ///< what that did
    bool abandoned_ = false;    ///< ended without waiting for in-flight batches (timeout)
    bool held_back_ = false;    ///< a stream's batch failed: dispatch nothing, deliver up to it
    bool dropped_ = false;      ///< a stream's consumer left (see drop())
    bool user_interrupted_ = false;         ///< an interrupt (Ctrl-C) came: see interrupt()
    std::function<void()> interrupt_hook_;  ///< see on_interrupt()
    std::exception_ptr error_;
    std::optional<task_failure> failure_;  ///< the task that failed the call, when one did
    batch_sizer sizer_;  ///< starts from the engine's, which gets it back at the end
    progress_printer printer_;
    /// Per-task times are recorded (`options::on_task` or a trace).
    bool observed_ = false;
    /// Set before the first batch, kept to the end (a batch coming back late writes there).
    std::unique_ptr<call_trace> trace_;

    std::mutex post_mutex_;  ///< guards closed_ against workers finishing after the end
    bool closed_ = false;
    bool left_batches_out_ = false;  ///< set by close()
};

/// Which task of a failed batch failed: the one that threw, passed the timeout, or ran when
/// its worker died.
[[nodiscard]] std::size_t failed_task(const batch_base& b);

/// The coroutine that drives one call from its first batch to its end.
boost::asio::awaitable<void> schedule(std::shared_ptr<call_state> call);

}  // namespace cojob::detail
