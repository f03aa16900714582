// cojob/parallel.hpp - the runner: `par(range)` blocking, `par.async_run(range, token)` and
// `par.async_submit(task, token)` for Asio.
#pragma once

#include <cojob/async_generator.hpp>
#include <cojob/delayed.hpp>
#include <cojob/detail/async_source.hpp>
#include <cojob/detail/batch.hpp>
#include <cojob/detail/call_signatures.hpp>
#include <cojob/detail/outcomes.hpp>
#include <cojob/detail/source.hpp>
#include <cojob/detail/submit_group.hpp>
#include <cojob/errors.hpp>
#include <cojob/options.hpp>
#include <cojob/outcome.hpp>
#include <cojob/pool.hpp>
#include <cojob/stream.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <concepts>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <vector>

namespace cojob {

namespace detail {
class engine;
}  // namespace detail

/// What `par(range)` returns for a range of tasks: `std::vector<R>` (input order), or `void`.
template <class Range>
using result_list_t =
    typename detail::result_list<typename std::ranges::range_value_t<Range>::result_type>::type;

/// A range whose elements are `cojob::task`s (what `delayed(f)(args...)` makes).
template <class R>
concept task_range = std::ranges::input_range<R> && task_value<std::ranges::range_value_t<R>>;

/// A task that can run in a worker process (`backend::processes`): its callable is a free
/// function, a static member function, a captureless lambda or a cereal-serializable function
/// object, and cereal can serialize its arguments and its result.
template <class T>
concept remotable = task_value<T> && detail::remote<std::remove_cvref_t<T>>::possible;

/// Tag for `par(cojob::require_remotable, range)`: the same call, but tasks that could not run
/// in a worker process are a compile-time error instead of a `cojob::error` when the call starts.
struct require_remotable_t {
    explicit require_remotable_t() = default;
};
inline constexpr require_remotable_t require_remotable{};

/// Runs tasks in parallel: joblib's `Parallel`, as a reusable object.
///
/// The object owns its workers (threads, processes) and keeps them across calls, like
/// `with Parallel(...) as p:`; they are released by the destructor. Built on a `cojob::pool`,
/// it shares the pool's workers with the other runners built on it instead.
///
/// The input range is consumed lazily, on the thread that drives the call (the caller of a
/// blocking call; the completion handler's executor for `async_run`), never more than the
/// `pre_dispatch` window ahead of completed batches.
///
/// Errors: the first task that throws ends the call; tasks not yet started are not started,
/// running batches stop at their next task boundary, and the task's exception is rethrown
/// unchanged. `last_failure()` then tells which function, arguments and input position failed.
///
/// @par Concurrent calls
/// One object serves any number of calls at once: blocking calls from several threads,
/// `async_run` from many coroutines, streams, mixed. Each call keeps its own pre_dispatch
/// window, batch sizing (starting from the size earlier calls tuned), input order, timeout,
/// cancellation, progress and verbose lines; a task's exception, a timeout or a cancellation
/// ends its own call only. The calls share the object's n_jobs workers batch by batch, round
/// robin between calls, so a short call started while long ones keep every worker busy waits
/// about one batch per worker, not for the long calls to end. A task may call the object that
/// runs it (on threads it runs nested, on the same threads). On backend::processes a worker
/// killed for its call (a timeout, a cancellation) or lost in a crash fails that call's tasks
/// only (another call's batch waiting on it runs elsewhere), and is replaced. With
/// n_jobs = 1 (sequential) each call runs on the thread that drives it, so concurrent calls run
/// side by side on their own threads. `options::on_task` and `options::progress` callbacks of
/// concurrent calls may run at the same time on different threads.
///
/// @par Thread safety
/// Distinct objects are independent, and one object may be used from any number of threads at
/// once (see above); it must outlive its blocking calls, and its destructor cancels the async
/// calls and streams still running.
///
/// @par Example
/// @code
/// cojob::parallel par{{.n_jobs = 2}};
/// std::vector<double> roots = par(std::views::iota(0, 10) | std::views::transform(
///     [](int i) { return cojob::delayed(root)(i * i); }));
/// @endcode
class parallel {
public:
    /// @throws cojob::error naming the option when one is invalid (n_jobs = 0, a malformed
    /// pre_dispatch expression, batch_size <= 0, a negative timeout, an unsupported backend).
    explicit parallel(options opts = {});
    /// A runner on the workers of `workers`, shared with every other runner built on it; n_jobs
    /// and backend are the pool's, and the other options are this runner's own.
    /// @throws cojob::error naming the option when one is invalid, or when `opts` sets n_jobs
    /// or backend to something else than the pool's.
    parallel(const pool& workers, options opts = {});
    ~parallel();
    parallel(const parallel&) = delete;
    parallel& operator=(const parallel&) = delete;

    /// Runs every task of `range` and returns their results in input order (nothing for void
    /// tasks). Blocks; the calling thread drives the call.
    /// @throws whatever the first failing task threw (unchanged), or what the range threw
    /// while being consumed, or `cojob::timeout_error`.
    template <task_range R>
    result_list_t<R> operator()(R&& range) {
        return run_list<detail::range_source_for<R>>(std::views::all(std::forward<R>(range)));
    }
    /// `operator()(range)` with tasks from an async generator, which runs on this thread as the
    /// call asks for tasks (see `async_run(producer, token)`).
    template <task_value Task>
    typename detail::result_list<typename Task::result_type>::type operator()(async_generator<Task> producer) {
        return run_list<detail::async_source<Task>>(std::move(producer));
    }

    /// `operator()(range)`, checked at compile time for the processes backend: a callable that
    /// cannot be named in another process, or an argument or result type cereal cannot
    /// serialize, fails to compile with a message saying which.
    template <task_range R>
    result_list_t<R> operator()(require_remotable_t, R&& range) {
        using task = std::ranges::range_value_t<R>;
        using traits = detail::task_traits<task>;
        static_assert(traits::callable_ok,
                      "cojob: this task cannot run in a worker process: its callable has state that cannot be sent; "
                      "use a free function, a static member function, a captureless lambda or a cereal-serializable "
                      "function object");
        static_assert(traits::arguments_ok,
                      "cojob: this task cannot run in a worker process: cereal cannot serialize one of its argument "
                      "types (give the type a serialize() member or save/load functions; pointers and references "
                      "cannot travel)");
        static_assert(detail::result_ok<task>(),
                      "cojob: this task cannot run in a worker process: cereal cannot serialize its result type, or "
                      "it is not default-constructible");
        return (*this)(std::forward<R>(range));
    }

    /// Asynchronous twin of `operator()`, in Asio's style.
    ///
    /// Completion signature: `void(std::exception_ptr, std::vector<R>)`, or
    /// `void(std::exception_ptr)` for void tasks; the exception is the first task's,
    /// unchanged, or `boost::system::system_error(operation_aborted)` after cancellation.
    ///
    /// The call runs on (a strand of) the completion handler's associated executor, so with
    /// `use_awaitable` it is driven by the awaiting coroutine's executor and the service's
    /// event loop stays free while workers compute.
    ///
    /// @par Cancellation
    /// Per-operation, through the token's cancellation slot (any type): no further task is
    /// dispatched, running batches stop at their next task boundary, and the operation
    /// completes with `operation_aborted` once they have.
    ///
    /// The range is held as `std::views::all(range)`: an lvalue range must outlive the
    /// operation; an rvalue is moved in.
    template <task_range R, class CompletionToken = boost::asio::deferred_t>
    auto async_run(R&& range, CompletionToken&& token = {}) {
        return start_list<detail::range_source_for<R>>(std::views::all(std::forward<R>(range)),
                                                       std::forward<CompletionToken>(token));
    }
    /// `async_run(range, token)` with tasks from an async generator (`co_yield`, and `co_await`
    /// between tasks). Its body runs on the call's executor and is asked for a task only when the
    /// `pre_dispatch` window has room: a producer reading tasks from a socket reads no faster
    /// than the workers finish them. What it throws ends the call as a failing task would (its
    /// exception, unchanged). Cancelling the call, or its failure, stops the producer where it
    /// waits: the operation it awaits is cancelled, and its body is destroyed there.
    template <task_value Task, class CompletionToken = boost::asio::deferred_t>
    auto async_run(async_generator<Task> producer, CompletionToken&& token = {}) {
        return start_list<detail::async_source<Task>>(std::move(producer), std::forward<CompletionToken>(token));
    }

    /// Runs one task on the object's workers: `delayed(f)(args...)` as an awaitable, the
    /// executor-style submit of `concurrent.futures`.
    ///
    /// Completion signature: `void(std::exception_ptr, R)`, or `void(std::exception_ptr)` for
    /// a void task; on failure the exception is the task's, unchanged (or `operation_aborted`
    /// after cancellation), and R is value-initialized; the handler runs on its own executor.
    ///
    /// Submissions in flight at once run together: at most as many groups as the object has
    /// workers run, each one `cojob::keep_going` call over the waiting submissions of one task
    /// type and executor, each result handed to its submitter as its batch comes back; a
    /// task's failure is its submission's alone. Cancelling completes a submission at once with
    /// `operation_aborted`: a task still waiting for a group never runs, one in a group may,
    /// and its result is dropped. `options::on_task` events and verbose lines speak of groups.
    ///
    /// @par Example
    /// @code
    /// double r = co_await par.async_submit(cojob::delayed(root)(2.0), boost::asio::use_awaitable);
    /// @endcode
    template <task_value Task, class CompletionToken = boost::asio::deferred_t>
    auto async_submit(Task task, CompletionToken&& token = {}) {
        using result = typename Task::result_type;
        static_assert(std::is_void_v<result> || std::default_initializable<result>,
                      "cojob::parallel::async_submit: the task's result type must be default-constructible (the "
                      "completion handler gets a value-initialized one when the task fails); use async_run over "
                      "std::views::single(task) instead");
        using signature = typename detail::submit_signature<result>::type;
        return boost::asio::async_initiate<CompletionToken, signature>(
            [this](auto handler, Task t) {
                detail::submit_queue<Task>::submit(submits_, engine_, std::move(handler), std::move(t));
            },
            token, std::move(task));
    }

    /// Runs the tasks of `range` and hands their results out one at a time, as they are ready,
    /// in `input` order (joblib's `return_as="generator"`) or `completion` order
    /// (`"generator_unordered"`). The call starts when the stream is first consumed; see
    /// `cojob::stream` for the two ways to consume it, backpressure, errors and dropping it
    /// early. Other calls of the object may run beside it.
    ///
    /// The range is held as `std::views::all(range)`: an lvalue range must outlive the
    /// stream; an rvalue is moved in. Tasks returning void have nothing to stream: use
    /// `par(range)` (and `options::progress` to follow completions).
    ///
    /// @par Example
    /// @code
    /// double total = 0;
    /// for (auto&& block : par.stream(tasks, cojob::order::completion)) total += sum(block);
    /// @endcode
    template <task_range R>
    [[nodiscard]] auto stream(R&& range, cojob::order order) {
        return make_stream<detail::range_source_for<R>>(std::views::all(std::forward<R>(range)), order);
    }
    /// `stream(range, order)` with tasks from an async generator, asked for a task only when
    /// the window has room (see `async_run(producer, token)`): the stream's consumer, the
    /// workers and the producer all move at the pace of the slowest.
    template <task_value Task>
    [[nodiscard]] auto stream(async_generator<Task> producer, cojob::order order) {
        return make_stream<detail::async_source<Task>>(std::move(producer), order);
    }
    /// `stream(range, order)` with the order `options::return_as` asks for: completion for
    /// `generator_unordered`, input otherwise.
    template <task_range R>
    [[nodiscard]] auto stream(R&& range) {
        return stream(std::forward<R>(range), stream_order());
    }
    /// `stream(producer, order)` in the order `options::return_as` asks for.
    template <task_value Task>
    [[nodiscard]] auto stream(async_generator<Task> producer) {
        return stream(std::move(producer), stream_order());
    }

    /// @name Calls that keep going past failures
    /// With `cojob::keep_going` first, a call never ends at a task's failure: every task gets a
    /// `cojob::outcome` holding its value or its failure (an exception, `options::timeout`, its
    /// worker's death), in input order for lists and as they come for streams. A task past the
    /// timeout ends alone: its worker process is killed and replaced, and the batch's tasks that
    /// had not run are dispatched again; on threads, where nothing can stop it, its result is
    /// dropped when it returns and another thread keeps n_jobs tasks running meanwhile (so with
    /// a timeout such calls run one task per batch). What still ends the call: its
    /// cancellation, the input's own exceptions, and on MPI a rank's death. Tasks returning void
    /// get `outcome<void>`. See `options::retry` for failures worth another try.
    /// @{

    /// `operator()(range)` that keeps going: a `std::vector<outcome<R>>`, in input order.
    template <task_range R>
    auto operator()(keep_going_t, R&& range) {
        return run_outcomes<detail::range_source_for<R>>(std::views::all(std::forward<R>(range)));
    }
    /// `operator()(producer)` that keeps going (the producer's own exceptions end the call).
    template <task_value Task>
    auto operator()(keep_going_t, async_generator<Task> producer) {
        return run_outcomes<detail::async_source<Task>>(std::move(producer));
    }
    /// Completion signature: `void(std::exception_ptr, std::vector<outcome<R>>)`; the exception
    /// only for what ends the call (cancellation, the input's exceptions).
    template <task_range R, class CompletionToken = boost::asio::deferred_t>
    auto async_run(keep_going_t, R&& range, CompletionToken&& token = {}) {
        return start_outcomes<detail::range_source_for<R>>(std::views::all(std::forward<R>(range)),
                                                           std::forward<CompletionToken>(token));
    }
    /// `async_run(producer, token)` that keeps going.
    template <task_value Task, class CompletionToken = boost::asio::deferred_t>
    auto async_run(keep_going_t, async_generator<Task> producer, CompletionToken&& token = {}) {
        return start_outcomes<detail::async_source<Task>>(std::move(producer), std::forward<CompletionToken>(token));
    }
    /// A `cojob::stream<outcome<R>>`, in `input` or `completion` order (void tasks too).
    template <task_range R>
    [[nodiscard]] auto stream(keep_going_t, R&& range, cojob::order order) {
        return make_outcome_stream<detail::range_source_for<R>>(std::views::all(std::forward<R>(range)), order);
    }
    /// `stream(producer, order)` that keeps going.
    template <task_value Task>
    [[nodiscard]] auto stream(keep_going_t, async_generator<Task> producer, cojob::order order) {
        return make_outcome_stream<detail::async_source<Task>>(std::move(producer), order);
    }
    /// @}

    /// Workers a call uses (the effective n_jobs).
    [[nodiscard]] int n_jobs() const noexcept;
    /// The backend calls run on (sequential when n_jobs resolves to 1).
    [[nodiscard]] cojob::backend backend() const noexcept;
    /// The task that ended the last call with its exception, if that is how it ended.
    ///
    /// Kept per thread, so that concurrent calls do not overwrite each other's: it describes
    /// the last call of this object that ended on the calling thread. That is the last blocking
    /// call this thread made; for `async_run`, the thread that runs the completion handler,
    /// which sees its own call's failure when it reads this first thing in the handler (or right
    /// after `co_await`, which resumes in the handler); for a stream, the consumer's thread
    /// once the failure is thrown. Empty when that call succeeded, timed out or was cancelled.
    [[nodiscard]] const std::optional<task_failure>& last_failure() const noexcept;

private:
    template <class Source, class Input>
    auto run_list(Input&& input) {
        detail::list_call<Source> call(std::forward<Input>(input));
        run_blocking(call.source, call.sink);
        if constexpr (!std::is_void_v<typename Source::task_type::result_type>) return std::move(call.sink.out);
    }

    template <class Source, class Input, class CompletionToken>
    auto start_list(Input&& input, CompletionToken&& token) {
        using results = detail::result_list<typename Source::task_type::result_type>;
        return start_call<detail::list_call<Source>, typename results::signature>(
            std::forward<Input>(input), std::forward<CompletionToken>(token),
            [](auto& handler, std::exception_ptr e, auto& sink) {
                if constexpr (std::is_void_v<typename results::type>)
                    std::move(handler)(e);
                else
                    std::move(handler)(e, e ? typename results::type{} : std::move(sink.out));
            });
    }

    template <class Source, class Input>
    auto run_outcomes(Input&& input) {
        detail::outcome_call<Source> call(std::forward<Input>(input));
        run_blocking(call.source, call.sink);
        return std::move(call.sink.out);
    }

    template <class Source, class Input, class CompletionToken>
    auto start_outcomes(Input&& input, CompletionToken&& token) {
        using outcomes = std::vector<outcome<typename Source::task_type::result_type>>;
        return start_call<detail::outcome_call<Source>, void(std::exception_ptr, outcomes)>(
            std::forward<Input>(input), std::forward<CompletionToken>(token),
            [](auto& handler, std::exception_ptr e, auto& sink) {
                std::move(handler)(e, e ? outcomes{} : std::move(sink.out));
            });
    }

    /// Starts an asynchronous call (a Call: its source and its sink) over `input`;
    /// `complete(handler, error, sink)` hands its outcome to the completion handler.
    template <class Call, class Signature, class Input, class CompletionToken, class Complete>
    auto start_call(Input&& input, CompletionToken&& token, Complete complete) {
        return boost::asio::async_initiate<CompletionToken, Signature>(
            [this, complete](auto handler, std::decay_t<Input> in) {
                auto call = std::make_shared<Call>(std::move(in));
                auto slot = boost::asio::get_associated_cancellation_slot(handler);
                auto ex = boost::asio::get_associated_executor(handler);
                auto& source = call->source;
                auto& sink = call->sink;
                detail::start_async_call(engine_, call, source, sink, ex, slot,
                            [call, complete, h = std::move(handler)](std::exception_ptr e) mutable {
                                complete(h, e, call->sink);
                            });
            },
            token, std::forward<Input>(input));
    }

    template <class Source, class Input>
    auto make_outcome_stream(Input&& input, cojob::order order) {
        using result = typename Source::task_type::result_type;
        auto state = std::make_shared<detail::outcome_stream_call<Source>>(
            engine_, order == cojob::order::completion, std::forward<Input>(input));
        return cojob::stream<outcome<result>>(std::move(state));
    }

    template <class Source, class Input>
    auto make_stream(Input&& input, cojob::order order) {
        using result = typename Source::task_type::result_type;
        static_assert(!std::is_void_v<result>,
                      "cojob::parallel::stream: these tasks return void, so there is nothing to stream; "
                      "use par(range) or par.async_run(range, token), with options::progress to follow completions");
        auto state = std::make_shared<detail::stream_call<Source>>(engine_, order == cojob::order::completion,
                                                                   std::forward<Input>(input));
        return cojob::stream<result>(std::move(state));
    }

    [[nodiscard]] cojob::order stream_order() const noexcept;
    void run_blocking(detail::source_base& source, detail::sink_base& sink);

    std::shared_ptr<detail::engine> engine_;
    /// `async_submit`'s submissions waiting to run together.
    std::shared_ptr<detail::submit_registry> submits_ =
        std::make_shared<detail::submit_registry>(static_cast<std::size_t>(n_jobs()));
};

}  // namespace cojob
