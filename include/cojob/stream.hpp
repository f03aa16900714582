// cojob/stream.hpp - `par.stream(range, order)`: results one at a time, as an async generator
// (`co_await s.next()`) or a blocking range (`for (auto&& r : s)`), with backpressure.
#pragma once

#include <cojob/detail/stream_state.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

namespace cojob {

/// The order a stream hands results out in.
enum class order {
    input,       ///< the order of the input range (joblib's `return_as="generator"`)
    completion,  ///< as tasks finish (joblib's `return_as="generator_unordered"`)
};

/// The results of one `parallel` call, one at a time: joblib's `return_as="generator"`, with
/// backpressure. Made by `parallel::stream`.
///
/// The call starts when the stream is first consumed, either by a coroutine
/// (`co_await s.next()`, or `async_next` with any completion token) or by blocking code
/// (`for (auto&& r : s)`), never both.
///
/// @par Backpressure
/// Results dispatched and not yet consumed, whether running, finished or waiting in the stream,
/// never exceed the `pre_dispatch` window (unless it is "all"): a slow consumer holds the
/// workers back instead of letting results pile up, so at most `pre_dispatch` + `n_jobs`
/// results exist besides the one the consumer holds. With `batch_size="auto"` the window counts
/// results; with a fixed batch size it counts batches, as joblib's `pre_dispatch` does.
/// On backend=processes a result that came back in a worker's result arena (large results) is
/// read into this process only when the consumer takes it: results waiting for the consumer
/// stay in their worker, which waits before writing its next one and takes no batch of another
/// call meanwhile (the pool starts a worker in its place for them).
///
/// @par Errors
/// A task that throws ends the call as for `par(range)`, but the results before it come first:
/// in input order every result before its position, in completion order every result that
/// finished before it. Its exception is then rethrown by `next()` / the loop's increment,
/// unchanged; `parallel::last_failure()` names the task.
///
/// @par Dropping early
/// Destroying the stream, `cancel()`, or cancelling a pending `async_next` ends the call at
/// once: tasks not started never start, running batches stop at their next task boundary (a
/// running task finishes on its thread, and its result is dropped), buffered results are
/// freed, and the `parallel` object can run its next call right away. On backend=processes
/// the workers running the call's tasks are killed (their memory goes with them) and replaced
/// at the next call; the drop ends once their pipes report it, within milliseconds.
///
/// @par Ctrl-C
/// A blocking loop over a stream on backend=processes, in a program that left SIGINT at its
/// default, ends with `cojob::cancelled` on Ctrl-C (workers stopped, buffered results dropped),
/// as `par(range)` does.
///
/// @par Thread safety
/// A stream is consumed by one consumer at a time; `next()` must not be awaited twice at once.
/// Destroying the `parallel` object while its stream runs cancels the stream: `next()` then
/// fails with `operation_aborted`, the loop with `cojob::cancelled`. Other calls of the same
/// `parallel` object may run beside the stream, from any thread (see `cojob::parallel`).
///
/// @par Example
/// @code
/// for (auto&& big : par.stream(tasks)) total += sum(big);              // blocking
/// auto s = par.stream(tasks, cojob::order::completion);                 // in a coroutine
/// while (auto r = co_await s.next()) consume(*r);
/// @endcode
template <class R>
class stream {
public:
    /// The type of one result.
    using value_type = R;

    /// Use `parallel::stream`.
    explicit stream(std::shared_ptr<detail::stream_state<R>> state) noexcept : state_(std::move(state)) {}
    /// Moves the call into a new stream; the moved-from one is empty.
    stream(stream&&) noexcept = default;
    /// Drops this stream's call (see "Dropping early") and takes `other`'s.
    stream& operator=(stream&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;
    /// Drops what the stream did not hand out yet (see "Dropping early").
    ~stream() { reset(); }

    /// The next result, or an empty optional once every result was handed out.
    ///
    /// Completion signature: `void(std::exception_ptr, std::optional<R>)`. The exception is the
    /// first failing task's (unchanged), or `boost::system::system_error(operation_aborted)`
    /// when this operation was cancelled or the stream was closed meanwhile.
    ///
    /// The first call binds the stream to (a strand of) the handler's associated executor; the
    /// call's scheduler runs there. The handler is invoked on that executor, never inside
    /// `async_next` itself.
    ///
    /// @par Cancellation
    /// Through the token's cancellation slot, any type: the operation completes with
    /// `operation_aborted` and the stream is closed, as if destroyed.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_next(CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, typename detail::stream_state<R>::signature>(
            [](auto handler, std::shared_ptr<detail::stream_state<R>> st) {
                boost::asio::any_io_executor ex = boost::asio::get_associated_executor(handler);
                st->next_async(typename detail::stream_state<R>::handler_type(std::move(handler)), ex);
            },
            token, checked_state());
    }

    /// `co_await s.next()`: the next result on the awaiting coroutine's executor, or an empty
    /// optional at the end; throws what `async_next` would complete with.
    [[nodiscard]] auto next() { return async_next(boost::asio::use_awaitable); }

    /// Blocking consumption, as an input range whose iterators drive the call on this thread.
    class iterator {
    public:
        /// A single-pass input iterator.
        using iterator_concept = std::input_iterator_tag;
        /// The type of one result.
        using value_type = R;
        /// Required of iterators; a stream cannot be measured.
        using difference_type = std::ptrdiff_t;

        iterator() = default;

        /// The current result, as an rvalue: `for (auto r : s)` moves it out, `auto&&` binds it.
        R&& operator*() const { return std::move(*current_); }
        /// The current result.
        R* operator->() const { return &*current_; }
        /// Waits for the next result. @throws what the next task threw, or `cojob::cancelled`.
        iterator& operator++() {
            current_.reset();  // frees the previous result before waiting for the next
            current_ = state_->next_blocking();
            return *this;
        }
        /// Waits for the next result, as the prefix form.
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.current_; }

    private:
        friend class stream;
        explicit iterator(detail::stream_state<R>* s) : state_(s) { ++*this; }

        detail::stream_state<R>* state_ = nullptr;
        mutable std::optional<R> current_;
    };

    /// Starts (or continues) the blocking consumption: waits for the first result.
    /// @throws cojob::error when the stream is consumed with `co_await`; what the first task threw.
    iterator begin() { return iterator(checked_state().get()); }
    /// The end of the results.
    std::default_sentinel_t end() const noexcept { return {}; }

    /// Closes the stream now (see "Dropping early"); further results are none.
    void cancel() noexcept {
        if (state_) state_->close();
    }

private:
    const std::shared_ptr<detail::stream_state<R>>& checked_state() const {
        if (!state_) throw error("cojob::stream: this stream was moved from");
        return state_;
    }
    void reset() noexcept {
        if (state_) {
            state_->close();
            state_.reset();
        }
    }

    std::shared_ptr<detail::stream_state<R>> state_;
};

}  // namespace cojob
