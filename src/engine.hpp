// src/engine.hpp - private: the backend interface, the state of one call, and the engine a
// `parallel` object owns (resolved options, backend, batch-size state, blocking io_context).
#pragma once

#include "progress.hpp"

#include <cojob/detail/batch.hpp>
#include <cojob/errors.hpp>
#include <cojob/options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace cojob::detail {

/// Options after merging with the active `parallel_config` scopes and validating.
struct resolved_options {
    int n_jobs_requested = 1;  ///< as the user wrote it (shown in verbose lines)
    int n_jobs = 1;            ///< effective worker count
    cojob::backend kind = cojob::backend::sequential;
    int verbose = 0;
    std::optional<std::size_t> pre_dispatch;  ///< tasks; nullopt = "all"
    std::size_t batch_size = 0;               ///< 0 = auto
    std::optional<std::chrono::duration<double>> timeout;
    std::function<void(const progress_event&)> progress;
    cojob::return_as return_as = cojob::return_as::list;
    // Large arrays (processes only): see src/sharing.hpp.
    std::string temp_folder;                ///< resolved (processes backend only)
    std::optional<std::size_t> max_nbytes;  ///< nullopt: never share
    cojob::mmap_mode mmap_mode = cojob::mmap_mode::r;
};

/// The folder for shared arguments: `chosen`, else COJOB_TEMP_FOLDER, else /dev/shm when it
/// is 2 GB or more and writable, else the system's temporary directory.
/// @throws cojob::error naming temp_folder when the folder is not a writable directory.
std::string resolve_temp_folder(const std::optional<std::string>& chosen);

/// @throws cojob::error naming the first invalid option.
resolved_options resolve(const options& explicit_options);

class call_state;

/// Runs batches somewhere. `submit` hands a batch over; the backend then calls
/// `call_state::finished(call, batch)` exactly once, from any thread (inline for sequential).
class backend_base {
public:
    virtual ~backend_base() = default;
    [[nodiscard]] virtual const char* name() const noexcept = 0;
    /// Whether `submit` runs the batch before it returns.
    [[nodiscard]] virtual bool inline_completion() const noexcept = 0;
    /// Lower end of the ideal batch duration for batch_size="auto" (upper end: 10x).
    [[nodiscard]] virtual double min_ideal_batch_seconds() const noexcept = 0;
    virtual void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) = 0;
    /// Runs, on the calling thread, one queued batch of `call` if one waits (work helping
    /// for blocking calls made from inside a worker). Returns whether it ran one.
    virtual bool help(const call_state& /*call*/) { return false; }

    /// Before the first batch of a call (on its executor); may refuse the call by throwing.
    virtual void begin_call(call_state& /*call*/) {}
    /// After the last batch of a call came back or was given up (on its executor).
    virtual void end_call(call_state& /*call*/) noexcept {}
    /// Whether `interrupt` stops running tasks (processes: yes; threads cannot be stopped).
    [[nodiscard]] virtual bool can_interrupt() const noexcept { return false; }
    /// The call is stopping (error, timeout, cancellation): stop what runs for it now. Its
    /// batches still come back through `call_state::finished`.
    virtual void interrupt(call_state& /*call*/) noexcept {}
    /// Copies which task runs, and since when, into the in-flight batches (for timeouts).
    virtual void refresh_progress(call_state& /*call*/) noexcept {}
};

std::unique_ptr<backend_base> make_sequential_backend();
std::unique_ptr<backend_base> make_threads_backend(int workers);
std::unique_ptr<backend_base> make_processes_backend(const resolved_options& opts);

/// What a `parallel` object owns.
class engine {
public:
    explicit engine(resolved_options o);
    ~engine();

    resolved_options opts;
    std::unique_ptr<backend_base> backend;
    batch_sizer sizer;                   ///< tuned size carries over between calls (joblib's `with`)
    boost::asio::io_context blocking_context{1};
    std::atomic<bool> running{false};
    std::optional<task_failure> last_failure;
    std::weak_ptr<call_state> active_async;  ///< for cancellation by the destructor
};

/// One call: its input, its output, and everything the scheduler coroutine tracks.
/// All members except the ones marked otherwise are touched only on `executor`.
class call_state : public std::enable_shared_from_this<call_state> {
public:
    call_state(std::shared_ptr<engine> eng, source_base& source, sink_base& sink, std::shared_ptr<void> keep_alive,
               boost::asio::any_io_executor executor);

    /// Called by a backend when a batch has run (any thread).
    static void finished(std::shared_ptr<call_state> call, std::unique_ptr<batch_base> batch);
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

    std::shared_ptr<engine> eng;
    source_base& source;
    sink_base& sink;
    std::shared_ptr<void> keep_alive;
    /// The executor the call runs on; emptied by close(), so that a call_state released later
    /// on a worker thread does not touch an executor (a strand, an io_context) that may be gone.
    boost::asio::any_io_executor executor;

    const bool inline_backend;      ///< the backend completes batches inside submit()
    std::atomic<bool> stop{false};  ///< read by running batches (any thread)
    bool track = false;             ///< batches publish their running task (timeouts)

private:
    friend boost::asio::awaitable<void> schedule(std::shared_ptr<call_state> call);

    void on_finished(std::unique_ptr<batch_base> batch);
    void wake();
    template <class Token>
    auto async_wait_event(Token&& token);
    void dispatch_more();
    void complete_batch(std::unique_ptr<batch_base> batch);
    template <class F>
    void guarded(F&& step) noexcept;
    void fail(std::exception_ptr e, std::optional<task_failure> failure);
    void check_timeout();
    [[nodiscard]] bool can_dispatch() const;
    void report_failure(batch_base& b);
    bool deliver(std::unique_ptr<batch_base> b);
    /// What counts in the pre_dispatch window: batches, or for streams with automatic batch
    /// sizes results (see window_counts_results_).
    [[nodiscard]] std::size_t outstanding() const;
    /// A stream whose window is full of results its consumer has not taken yet.
    [[nodiscard]] bool waiting_for_consumer() const;

    std::deque<std::unique_ptr<batch_base>> finished_;
    boost::asio::any_completion_handler<void()> waiter_;
    std::optional<boost::asio::steady_timer> timer_;
    std::map<std::size_t, std::unique_ptr<batch_base>> reorder_;
    std::map<std::size_t, batch_base*> in_flight_;  ///< by input position, for timeouts
    std::size_t next_to_deliver_ = 0;
    std::size_t slice_ = 1;
    std::size_t window_ = 0;  ///< 0 = unbounded
    /// A stream with batch_size="auto" counts its window in results: auto batching must not
    /// multiply what a slow consumer lets pile up. Fixed batch sizes and lists count batches.
    bool window_counts_results_ = false;
    std::size_t in_flight_tasks_ = 0;  ///< tasks in in_flight_
    std::size_t reorder_tasks_ = 0;    ///< tasks in reorder_
    bool cancel_requested_ = false;
    bool stopping_ = false;
    bool abandoned_ = false;  ///< ended without waiting for in-flight batches (timeout)
    bool held_back_ = false;  ///< a stream's batch failed: dispatch nothing, deliver up to it
    bool dropped_ = false;    ///< a stream's consumer left (see drop())
    std::exception_ptr error_;
    progress_printer printer_;

    std::mutex post_mutex_;  ///< guards closed_ against workers finishing after the end
    bool closed_ = false;

public:
    std::exception_ptr result() const { return error_; }
    void close();
};

boost::asio::awaitable<void> schedule(std::shared_ptr<call_state> call);

}  // namespace cojob::detail
