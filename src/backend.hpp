// src/backend.hpp - private: the one interface every backend implements (sequential, threads,
// processes, mpi), and the factory that picks one for a set of resolved options. Nothing
// outside a backend's own files knows which backend runs a call; what differs between them
// (how they stop a task, Ctrl-C, helping a nested call) is asked of them through this page.
#pragma once

#include "resolved_options.hpp"

#include <cojob/detail/batch.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace cojob::detail {

class call_state;

/// How a backend wants to be fed, fixed when it is made: the scheduler sizes batches and its
/// pre_dispatch window from these numbers and never asks which backend it talks to.
struct dispatch_profile {
    /// joblib's backend name for the verbose "Using backend" line; null prints no such line.
    const char* name = nullptr;
    /// Batches that run at once.
    std::size_t workers = 1;
    /// Batches run inside submit(), on the scheduler's thread: nothing runs ahead, so the window
    /// holds one batch whatever its size.
    bool runs_in_submit = false;
    /// stop_batch() stops a batch whose task ran too long (and it comes back); else the call
    /// gives the batch up and its task's result is dropped when it returns.
    bool stops_batches = false;
    /// Lower end of the ideal batch duration for batch_size="auto" (upper end: 10x).
    double min_ideal_batch_seconds = 0.2;
};

/// What stopping a call's running batches did (see backend_base::interrupt).
struct stop_effect {
    /// The running batches were stopped and come back promptly, so the call waits for them;
    /// false: they run to their end on their own and the call need not wait.
    bool batches_return = false;
    /// How a task that exceeded the call's timeout was dealt with, for the timeout's message
    /// (" (its worker process was killed ...)").
    std::string timeout_note;
};

/// Lives while a backend watches one blocking call for an interrupt; destroying it stops the watch.
class call_watch {
public:
    virtual ~call_watch() = default;
};

/// Runs batches somewhere. `submit` hands a batch over; the backend then calls
/// `call_state::finished(call, batch)` exactly once, from any thread (inside submit when
/// `runs_in_submit`), whether the batch ran, failed or could not start.
class backend_base {
public:
    virtual ~backend_base() = default;

    [[nodiscard]] virtual const dispatch_profile& profile() const noexcept = 0;
    /// Never throws: a batch that cannot be run comes back through `call_state::finished` with
    /// its `error` set, as a failing task's would.
    virtual void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) noexcept = 0;
    /// Called by a blocking call's thread while it waits: does there, without waiting, work
    /// that brings `call` closer to its end. Threads run one queued batch of `call` (work
    /// helping for calls made from inside a worker); processes read the answers that came.
    /// Returns whether it did any.
    virtual bool help(const call_state& /*call*/) { return false; }
    /// The blocking call's thread found nothing to do and is about to sleep until a handler
    /// comes: a backend whose answers that thread was reading itself makes sure that the next
    /// one wakes it, and reads what came meanwhile. Returns whether it read any (then the
    /// thread looks again instead of sleeping).
    virtual bool before_sleep(const call_state& /*call*/) { return false; }

    /// Before the first batch of a call (on its executor); may refuse the call by throwing.
    virtual void begin_call(call_state& /*call*/) {}
    /// After the last batch of a call came back or was given up (on its executor).
    virtual void end_call(call_state& /*call*/) noexcept {}
    /// The call is stopping (error, timeout, cancellation): stop what runs for it now. Batches
    /// still come back through `call_state::finished`. The default stops nothing: running
    /// batches see the call's stop flag between two tasks.
    virtual stop_effect interrupt(call_state& /*call*/) noexcept {
        return {false, " (it keeps its thread until it returns)"};
    }
    /// The call has handed out every batch it can for now (its input has ended, or its window
    /// is full): a backend that holds batches ahead on busy workers moves them to idle ones, so
    /// that no task waits behind a slow one while a worker has nothing to do (on its executor).
    virtual void rebalance(call_state& /*call*/) noexcept {}
    /// Task `b.timed_out` of `b` passed the timeout in a call that outlives it: stop the batch
    /// if the backend can (profile().stops_batches; it then comes back with its error), else
    /// keep the workers' count up while the task keeps its worker (the call has given the batch
    /// up: `b.fate` is batch_given_up). The batch may have come back meanwhile.
    virtual void stop_batch(call_state& /*call*/, batch_base& /*b*/) noexcept {}
    /// Copies which task runs, and since when, into the in-flight batches (for timeouts).
    virtual void refresh_progress(call_state& /*call*/) noexcept {}
    /// A blocking call is about to run on `ctx`: watch for what should interrupt it (the process
    /// backend: Ctrl-C, which would otherwise leave its workers computing) and, when it
    /// happens, call `interrupt()` on the call if it is still there (on `ctx`). A weak pointer,
    /// not a callback: a handler left queued after the call must not keep it, and building a
    /// std::function around one would cost every call an allocation. Null when there is
    /// nothing to watch.
    virtual std::unique_ptr<call_watch> watch_interrupts(boost::asio::io_context& /*ctx*/,
                                                         std::weak_ptr<call_state> /*call*/) {
        return nullptr;
    }
};

/// The backend `opts.kind` names, with `opts.n_jobs` workers.
std::unique_ptr<backend_base> make_backend(const resolved_options& opts);

std::unique_ptr<backend_base> make_sequential_backend();
std::unique_ptr<backend_base> make_threads_backend(int workers);
std::unique_ptr<backend_base> make_processes_backend(const resolved_options& opts);
std::unique_ptr<backend_base> make_mpi_backend(const resolved_options& opts);

/// Test seam: when set, make_backend asks it first (tests install a backend they step by hand,
/// tests/common/scripted_backend.hpp); a null answer falls through to the real backends.
extern std::unique_ptr<backend_base> (*backend_seam)(const resolved_options& opts);

/// Test seam: called by the threads backend before it starts each worker thread; a hook that
/// throws stands for a thread that cannot start (a pid limit). Null in programs.
extern void (*before_thread_start)();

}  // namespace cojob::detail
