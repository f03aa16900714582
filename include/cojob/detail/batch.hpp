// cojob/detail/batch.hpp - the typed front of a call, erased at the boundary with src/:
// a batch of tasks a backend runs, and the sink that takes results in the order the call
// delivers them (the sources that cut batches from the input: source.hpp).
#pragma once

#include <cojob/delayed.hpp>
#include <cojob/detail/describe.hpp>
#include <cojob/detail/elements.hpp>
#include <cojob/detail/wire.hpp>
#include <cojob/errors.hpp>

#include <boost/container/vector.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace cojob::detail {

/// A run of consecutive tasks of one call. Built on the scheduler's thread, run by a backend on
/// any thread, handed back to the scheduler.
struct batch_base {
    virtual ~batch_base() = default;

    /// Runs the tasks in order until one throws or `stop` is seen between two tasks.
    /// With `track`, publishes which task runs and since when (for timeouts).
    virtual void run(const std::atomic<bool>& stop, bool track) noexcept = 0;
    /// `name(arguments)` of task i of this batch, for reports.
    [[nodiscard]] virtual std::string function_name(std::size_t i) const = 0;
    [[nodiscard]] virtual std::string arguments(std::size_t i) const = 0;
    /// Writes the tasks as a request for a worker process (see wire.hpp).
    virtual void encode(wire_out& out, bool track) const = 0;
    /// Reads a worker's response: results, `completed`, and `error` + `origin` on a failure.
    virtual void decode(wire_in& in) = 0;
    /// A new batch of the same call holding tasks [from, to) of this one (moved out), at their
    /// input positions and attempt; for tasks to run again after a failure in this batch.
    [[nodiscard]] virtual std::unique_ptr<batch_base> split_off(std::size_t from, std::size_t to) = 0;
    /// Keeps the first n tasks (those whose results are stored) and drops the rest.
    virtual void keep_first(std::size_t n) = 0;
    /// A new empty batch of the same type, to stand for a task that cannot be taken back.
    [[nodiscard]] virtual std::unique_ptr<batch_base> blank() const = 0;
    /// Whether its tasks can run again where they ran once (their arguments were not moved).
    [[nodiscard]] virtual bool repeatable() const noexcept = 0;

    // Every batch.
    std::size_t first = 0;           ///< input position of the first task
    std::size_t size = 0;            ///< tasks in the batch
    std::size_t completed = 0;       ///< tasks that returned (their results are stored)
    std::exception_ptr error;        ///< what task `completed` threw, if any
    std::int64_t dispatched_ns = 0;  ///< steady clock, set by the scheduler
    /// When it began to run, where run() runs it (0: elsewhere, or not yet). Batch sizing measures
    /// from here: the wait in a queue shared with other calls says nothing of the batch's size.
    std::int64_t started_ns = 0;
    /// When a backend whose tasks run elsewhere handed it to the worker that runs it (a process,
    /// a rank), which may hold it behind one batch; sizing measures from here when run() does
    /// not run it, since calls that share the workers make it wait in the pool's queue.
    std::int64_t placed_ns = 0;
    std::size_t number = 0;          ///< the batch's place in the call's dispatch order

    // With per-task events: when each task ran, and where.
    bool record_times = false;        ///< set by the scheduler when the call reports task events
    std::vector<std::int64_t> times;  ///< start and end (steady ns) of each task run, in pairs
    long worker = -1;                 ///< who ran the batch (see task_event::worker)
    long thread = 0;                  ///< the thread that ran it, in this process (0: elsewhere)
    /// How many tasks ran, where `completed` and `error` cannot tell: a worker that died had run
    /// tasks whose results are lost, and batches queued behind it never started.
    std::optional<std::size_t> ran;
    /// When, and on which thread of this process, a backend did one step of the batch.
    struct step_time {
        std::int64_t begin = 0, end = 0;  ///< steady ns; 0: the step did not happen here
        long thread = 0;
    };
    step_time encoded;  ///< the request written for a worker process or rank
    step_time decoded;  ///< its response read

    // With tracking (a timeout): which task runs and since when. run() sets them in this
    // process; a backend whose tasks run elsewhere copies what its workers report.
    std::atomic<std::size_t> running{0};         ///< task now running
    std::atomic<std::int64_t> running_since{0};  ///< its start (steady ns), 0 before

    // Failures a call outlives (cojob::keep_going, options::retry): src/call_failures.cpp.
    int attempt = 1;  ///< the try its tasks are at (a task tried again runs in a batch of its own)
    std::optional<std::size_t> timed_out;  ///< the task that passed the timeout; its worker was stopped
    bool blameless = false;  ///< failed before any of its tasks started: none is to blame
    /// Running (0), given up by its call (1), back (2): a backend that cannot stop a batch
    /// whose task passed the timeout settles here, against the thread that runs it, whether
    /// the call still waits for it.
    std::atomic<int> fate{0};
    /// `function(arguments)` of its task, taken at dispatch when the call may give the batch up
    /// (its task cannot be read while it runs).
    std::string described_function, described_arguments;

    // Batches that ran in another process (decode() sets them).
    std::optional<task_failure> origin;  ///< where a task failed (pid, host, time)
    /// Results a stream reads from the worker's memory when consumed (results stays empty).
    std::unique_ptr<deferred_payload> deferred;

    static std::int64_t now_ns() noexcept;

protected:
    /// Back to the state of a new batch (buffers keep their capacity).
    void reset_base() noexcept {
        first = size = completed = 0;
        error = nullptr;
        dispatched_ns = started_ns = placed_ns = 0;
        number = 0;
        running.store(0, std::memory_order_relaxed);
        running_since.store(0, std::memory_order_relaxed);
        origin.reset();
        deferred.reset();
        record_times = false;
        times.clear();
        worker = -1;
        thread = 0;
        ran.reset();
        encoded = decoded = step_time{};
        attempt = 1;
        timed_out.reset();
        blameless = false;
        fate.store(0, std::memory_order_relaxed);
        described_function.clear();
        described_arguments.clear();
    }
};

/// Why tasks of type Task cannot run in a worker process ("" when they can).
template <class Task>
std::string remote_refusal() {
    using traits = task_traits<Task>;
    if constexpr (remote<Task>::possible) {
        return {};
    } else if constexpr (!traits::callable_ok) {
        return "its callable (" + demangle(typeid(typename traits::function).name()) +
               ") cannot be named in another process; use a free function, a static member function or a "
               "captureless lambda";
    } else if constexpr (!traits::arguments_ok) {
        return "an argument type of " + demangle(typeid(typename traits::arguments).name()) +
               " has no cereal serialization (give it a serialize() member or save/load functions)";
    } else {
        return "its result type (" + demangle(typeid(typename Task::result_type).name()) +
               ") has no cereal serialization or is not default-constructible";
    }
}

/// The tasks of a batch, and those a source stages for the next batches. Boost.Container's
/// vector, not std::vector: its append is inlined where it is made and its regrowth stays a
/// call, where GCC's std::vector append carries its regrowth inlined and is then too large to
/// be inlined itself: a call per task, over a quarter of a tiny task's time.
template <class Task>
using task_list = boost::container::vector<Task>;

template <class Task>
struct typed_batch final : batch_base {
    using result = typename Task::result_type;
    task_list<Task> tasks;
    [[no_unique_address]] std::conditional_t<std::is_void_v<result>, std::monostate, std::vector<result>> results;

    void run(const std::atomic<bool>& stop, bool track) noexcept override {
        started_ns = now_ns();
        try {
            if constexpr (!std::is_void_v<result>) reserve_present(results, tasks.size());
            if (record_times) times.reserve(2 * tasks.size());  // no allocation between tasks
        } catch (...) {
            error = std::current_exception();
            return;
        }
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            if (stop.load(std::memory_order_relaxed)) return;
            if (track) {
                running.store(i, std::memory_order_relaxed);
                running_since.store(now_ns(), std::memory_order_release);
            }
            if (record_times) times.push_back(now_ns());
            try {
                if constexpr (std::is_void_v<result>)
                    tasks[i]();
                else
                    results.push_back(tasks[i]());
            } catch (...) {
                if (record_times) times.push_back(now_ns());
                error = std::current_exception();
                return;
            }
            if (record_times) times.push_back(now_ns());
            completed = i + 1;
        }
    }
    void reset() noexcept {
        reset_base();
        tasks.clear();
        if constexpr (!std::is_void_v<result>) results.clear();
    }
    std::unique_ptr<batch_base> split_off(std::size_t from, std::size_t to) override {
        auto b = std::make_unique<typed_batch>();
        b->tasks.reserve(to - from);
        for (std::size_t i = from; i < to; ++i) b->tasks.emplace_back(std::move(tasks[i]));
        b->first = first + from;
        b->size = to - from;
        b->attempt = attempt;
        return b;
    }
    void keep_first(std::size_t n) override {
        while (tasks.size() > n) tasks.pop_back();  // pop_back: tasks need not be assignable
        size = n;
    }
    std::unique_ptr<batch_base> blank() const override { return std::make_unique<typed_batch>(); }
    bool repeatable() const noexcept override { return Task::repeatable; }
    std::string function_name(std::size_t i) const override { return tasks.at(i).function_name(); }
    std::string arguments(std::size_t i) const override { return tasks.at(i).describe_arguments(); }

    void encode(wire_out& out, bool track) const override {
        if constexpr (remote<Task>::possible)
            remote<Task>::encode(out, tasks, track, record_times);
        else
            throw cojob::error("cojob: these tasks cannot run in a worker process: " + remote_refusal<Task>());
    }
    void decode(wire_in& in) override {
        if constexpr (remote<Task>::possible) {
            completed = remote<Task>::decode(in, results, first, size, error, origin, record_times ? &times : nullptr);
        } else {
            throw cojob::error("cojob: these tasks cannot run in a worker process: " + remote_refusal<Task>());
        }
    }
};

/// How a sink takes the results of a call.
enum class delivery : std::uint8_t {
    list,               ///< all at once, in input order; the first failure ends the call
    stream,             ///< one by one, in input order; what waits to be consumed counts in the window
    stream_completion,  ///< one by one, each batch as it completes
};

/// Takes finished batches, in input order or, for `delivery::stream_completion`, as they complete.
struct sink_base {
    explicit sink_base(delivery how, bool keep_going = false) noexcept : how(how), keeps_going(keep_going) {}
    virtual ~sink_base() = default;
    sink_base(const sink_base&) = delete;
    sink_base& operator=(const sink_base&) = delete;

    /// Takes the results of a batch. For a stream, a batch that failed comes here too, with the
    /// results of the tasks before the failing one, before the call ends with its error (with
    /// `keeps_going`, see there).
    virtual void accept(batch_base& b) = 0;
    /// The call will deliver this many results (sized inputs), told before the first.
    virtual void expect(std::size_t /*results*/) {}

    /// What a stream delivered and its consumer has not taken yet (nothing for a list).
    struct backlog {
        std::size_t batches = 0;  ///< batches not fully consumed
        std::size_t results = 0;  ///< results not consumed
    };
    [[nodiscard]] virtual backlog held() const noexcept { return {}; }

    [[nodiscard]] bool streaming() const noexcept { return how != delivery::list; }

    const delivery how;
    /// The call outlives its tasks' failures (cojob::keep_going): a failed task reaches accept()
    /// as a batch of one task whose `error` and `origin` say how it failed.
    const bool keeps_going;
};

/// Collects results into a vector (nothing for void tasks).
template <class Task>
struct list_sink final : sink_base {
    using result = typename Task::result_type;
    list_sink() noexcept : sink_base(delivery::list) {}
    [[no_unique_address]] std::conditional_t<std::is_void_v<result>, std::monostate, std::vector<result>> out;

    void expect(std::size_t results) override {
        if constexpr (!std::is_void_v<result>) reserve_huge(out, results);  // filled as batches come
    }
    void accept(batch_base& b) override {
        if constexpr (!std::is_void_v<result>) {
            auto& r = static_cast<typed_batch<Task>&>(b).results;
            ahead_.room(out, r.size());
            if constexpr (std::is_trivially_copyable_v<result> && std::is_copy_assignable_v<result>) {
                out.insert(out.end(), r.begin(), r.end());  // one copy of the whole run
            } else {
                // push_back, not insert: results need not be assignable.
                for (auto& v : r) out.push_back(std::move(v));
            }
        }
    }

private:
    present_ahead ahead_;
};

/// Everything one call needs, kept alive together: its source (a range_source or an
/// async_source, source.hpp) and the sink that collects its results (a list_sink, or the
/// outcome_sink of a keep_going call, outcomes.hpp).
template <class Source, template <class> class Sink = list_sink>
struct list_call {
    using task_type = typename Source::task_type;
    template <class Input>
    explicit list_call(Input&& in) : source(std::forward<Input>(in)) {}
    Source source;
    Sink<task_type> sink;
};

}  // namespace cojob::detail
