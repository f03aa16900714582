// cojob/async_generator.hpp - cojob::async_generator<T>: a coroutine that `co_yield`s values and
// may `co_await` Asio operations between them; read with `co_await g.next()`, or fed to a call.
#pragma once

#include <cojob/detail/async_body.hpp>
#include <cojob/errors.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace cojob {

namespace detail {
struct async_reader;
}

/// A coroutine that produces values with `co_yield` and may wait between them with `co_await`:
/// for a socket, a timer, a database cursor, or a `cojob::stream`'s next result. It is lazy: the
/// body runs only when its reader asks for the next value, up to the next `co_yield`.
///
/// Two kinds of reader:
/// - a coroutine: `while (auto v = co_await g.next()) use(*v);` (or `async_next` with any
///   completion token);
/// - a `parallel` call, fed with it: `par.async_run(std::move(g), token)`, `par.stream(std::move(g))`
///   or `par(std::move(g))`. The call asks for the next task only when its `pre_dispatch` window
///   has room, so a producer reading its tasks from a socket is held back by the workers' pace.
///
/// @code
/// using f_task = decltype(cojob::delayed(f)(0));  // a task calling double f(int)
///
/// cojob::async_generator<f_task> producer(asio::steady_timer& t) {
///     for (int i = 0; i < 10; ++i) {
///         t.expires_after(10ms);
///         co_await t.async_wait(asio::deferred);
///         co_yield cojob::delayed(f)(i);
///     }
/// }
/// @endcode
///
/// @par What the body can co_await
/// Any Asio asynchronous operation started with `boost::asio::deferred` (`t.async_wait(deferred)`)
/// or any other token that makes a deferred operation, and any `boost::asio::awaitable<U>`
/// (`co_await s.next()`, or a function of the service's own written with `use_awaitable`). An
/// operation completing with an error code or exception first throws it when set, and gives the
/// other values: nothing, one value, or a tuple. `co_await boost::asio::this_coro::executor`
/// gives the executor the body runs on.
///
/// @par Where it runs
/// The body runs on its reader's executor: the first `async_next` handler's (through a strand),
/// or a call's. The operations it awaits complete there too.
///
/// @par Stopping
/// Cancelling a pending `async_next` (through its token's cancellation slot) cancels the
/// operation the body waits for: the body sees `operation_aborted` there. Destroying the
/// generator destroys the body where it stopped; when it waits for an operation, that operation
/// is cancelled first, and the body's locals are destroyed once it completes (the body runs no
/// further); a pending `async_next` completes with `operation_aborted`. The end of a call it
/// feeds (an error, a cancellation, a dropped stream) does both: the operation is cancelled and,
/// once the call lets go of its input, the body is destroyed. Destroy a generator on the executor
/// it runs on.
///
/// @par Errors
/// An exception thrown by the body ends it, and comes out of the `next()` that resumed it (or ends
/// the call it feeds, as a throwing input range does).
template <class T>
class async_generator {
    static_assert(!std::is_reference_v<T>, "cojob::async_generator<T>: T is a value type (it yields values)");

public:
    /// The values it yields.
    using value_type = T;
    /// The completion signature of `async_next`.
    using next_signature = void(std::exception_ptr, std::optional<T>);

    /// The coroutine's side, which the compiler drives: users never name it.
    class promise_type : public detail::async_body {
    public:
        /// The generator a call of the coroutine returns.
        async_generator get_return_object() noexcept {
            return async_generator(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        /// Lazy: the body starts at the first read.
        std::suspend_always initial_suspend() const noexcept { return {}; }
        /// Stays suspended at its end, so the reader can tell it is done.
        std::suspend_always final_suspend() const noexcept { return {}; }

        /// Keeps the value until the reader takes it (moved out).
        template <class U = T>
            requires std::constructible_from<T, U&&>
        std::suspend_always yield_value(U&& v) {
            value_.emplace(std::forward<U>(v));
            return {};
        }
        /// The body ended.
        void return_void() const noexcept {}
        /// The body threw: kept for its reader.
        void unhandled_exception() noexcept { failure = std::current_exception(); }

        /// `co_await op` for an Asio asynchronous operation made with `deferred`.
        template <class Op>
            requires boost::asio::is_async_operation<std::decay_t<Op>>::value
        auto await_transform(Op&& op) {
            using operation = std::decay_t<Op>;
            using signature = boost::asio::completion_signature_of_t<operation>;
            return detail::op_awaiter<operation, signature>(std::forward<Op>(op), *this);
        }
        /// `co_await a` for an `asio::awaitable`: spawned on the body's executor, awaited there.
        template <class U>
        auto await_transform(boost::asio::awaitable<U> a) {
            // co_spawn's completion; the inner conditional only keeps `void(exception_ptr, void)`
            // from being formed for void awaitables.
            using signature = std::conditional_t<std::is_void_v<U>, void(std::exception_ptr),
                                                 void(std::exception_ptr, std::conditional_t<std::is_void_v<U>, int, U>)>;
            return detail::op_awaiter<detail::spawn_operation<U>, signature>(
                detail::spawn_operation<U>{std::move(a), executor}, *this);
        }
        /// `co_await boost::asio::this_coro::executor`.
        detail::executor_awaiter await_transform(boost::asio::this_coro::executor_t) const {
            return detail::executor_awaiter{executor};
        }

    private:
        friend class async_generator;
        friend struct detail::async_reader;

        /// A pending `async_next` is served now that the body yielded or ended.
        static void serve_reader(void* p) { static_cast<promise_type*>(p)->serve(); }
        void serve();
        /// Completes the pending async_next with `v` or `e`, on the reader's executor; `later`:
        /// posted there, never run inside this call.
        void complete_reader(std::exception_ptr e, std::optional<T> v, bool later);
        /// The generator is going: a pending async_next completes with operation_aborted.
        void abort_reader() noexcept {
            if (!reader_) return;
            try {
                complete_reader(std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)),
                                std::nullopt, true);
            } catch (...) {  // posting failed: the handler is dropped with the frame
            }
        }

        std::optional<T> value_;  ///< yielded, not taken yet
        boost::asio::any_completion_handler<next_signature> reader_;  ///< a pending async_next
        boost::asio::any_io_executor reader_ex_;  ///< its executor, work tracked
        boost::asio::cancellation_slot reader_slot_;
    };

    /// Takes over `other`'s body; `other` is left empty.
    async_generator(async_generator&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    /// Destroys this generator's body (see "Stopping"), then takes over `other`'s.
    async_generator& operator=(async_generator&& other) noexcept {
        if (this != &other) {
            release();
            h_ = std::exchange(other.h_, nullptr);
        }
        return *this;
    }
    async_generator(const async_generator&) = delete;
    async_generator& operator=(const async_generator&) = delete;
    /// Destroys the body where it stopped (see "Stopping").
    ~async_generator() { release(); }

    /// The next value, or an empty optional once the body has ended.
    ///
    /// Completion signature: `void(std::exception_ptr, std::optional<T>)`; the exception is what
    /// the body threw, or `operation_aborted` when the generator was destroyed meanwhile. The
    /// handler is invoked on its associated executor, never inside `async_next` itself. One
    /// `async_next` at a time.
    ///
    /// @par Cancellation
    /// Through the token's cancellation slot: the operation the body waits for is cancelled
    /// with the same type (the body sees `operation_aborted` there).
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_next(CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, next_signature>(
            [](auto handler, std::coroutine_handle<promise_type> h) {
                boost::asio::any_io_executor ex = boost::asio::get_associated_executor(handler);
                auto slot = boost::asio::get_associated_cancellation_slot(handler);
                start_next(h, boost::asio::any_completion_handler<next_signature>(std::move(handler)), ex, slot);
            },
            token, checked());
    }

    /// `co_await g.next()`: the next value, or an empty optional at the end; throws what the
    /// body threw.
    [[nodiscard]] auto next() { return async_next(boost::asio::use_awaitable); }

private:
    friend struct detail::async_reader;

    explicit async_generator(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}

    [[nodiscard]] std::coroutine_handle<promise_type> checked() const {
        if (!h_) throw cojob::error("cojob::async_generator: this generator was moved from");
        return h_;
    }

    void release() noexcept {
        auto h = std::exchange(h_, nullptr);
        if (!h) return;
        auto& p = h.promise();
        p.on_ready = nullptr;
        p.abort_reader();
        if (!p.waiting) {
            h.destroy();
            return;
        }
        p.orphaned = true;  // destroyed by the operation's handler, once it completes
        p.cancel.emit(boost::asio::cancellation_type::terminal);
    }

    static void start_next(std::coroutine_handle<promise_type> h,
                           boost::asio::any_completion_handler<next_signature> handler,
                           const boost::asio::any_io_executor& ex, boost::asio::cancellation_slot slot);

    std::coroutine_handle<promise_type> h_;
};

namespace detail {

/// How a reader drives an async generator's body (cojob's calls and `async_next`).
struct async_reader {
    enum class state { ready, ended, waiting };

    template <class T>
    using handle = std::coroutine_handle<typename async_generator<T>::promise_type>;

    /// The body of `g`. @throws cojob::error when `g` was moved from.
    template <class T>
    static handle<T> body(const async_generator<T>& g) {
        return g.checked();
    }
    /// Runs the body up to its next value or its end; when it waits for an operation,
    /// `ready(context)` is called once it has yielded or ended. Sets the executor the body runs
    /// on if no reader did before. @throws what the body threw.
    template <class P>
    static state step(std::coroutine_handle<P> h, const boost::asio::any_io_executor& ex, void (*ready)(void*),
                      void* context) {
        auto& p = h.promise();
        if (!p.executor) p.executor = ex;
        for (;;) {
            if (p.value_) return state::ready;
            if (h.done()) {
                if (p.failure) std::rethrow_exception(std::exchange(p.failure, nullptr));
                return state::ended;
            }
            if (p.waiting) {
                p.on_ready = ready;
                p.ready_context = context;
                return state::waiting;
            }
            h.resume();
        }
    }
    /// The value the body yielded (after `step` returned ready).
    template <class P>
    static auto take(std::coroutine_handle<P> h) {
        auto& v = h.promise().value_;
        auto out(std::move(*v));
        v.reset();
        return out;
    }
    /// Cancels the operation the body waits for, if any, and forgets the reader waiting.
    template <class P>
    static void stop(std::coroutine_handle<P> h) noexcept {
        auto& p = h.promise();
        p.on_ready = nullptr;
        if (p.waiting) p.cancel.emit(boost::asio::cancellation_type::terminal);
    }
};

}  // namespace detail

template <class T>
void async_generator<T>::start_next(std::coroutine_handle<promise_type> h,
                                    boost::asio::any_completion_handler<next_signature> handler,
                                    const boost::asio::any_io_executor& ex, boost::asio::cancellation_slot slot) {
    auto& p = h.promise();
    if (p.reader_) {
        boost::asio::post(ex, [handler = std::move(handler)]() mutable {
            std::move(handler)(std::make_exception_ptr(cojob::error(
                                   "cojob::async_generator: next() called while another next() is pending")),
                               std::nullopt);
        });
        return;
    }
    if (!p.executor) p.executor = boost::asio::make_strand(ex);
    p.reader_.swap(handler);  // any_completion_handler: construct and swap, never move-assign (Boost 1.81)
    p.reader_ex_ = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
    p.reader_slot_ = slot;
    if (slot.is_connected()) {
        // Runs where the reader is cancelled, which is the reader's context: forward the
        // cancellation to the operation the body waits for.
        slot.assign([&p](boost::asio::cancellation_type type) {
            if (type != boost::asio::cancellation_type::none && p.waiting) p.cancel.emit(type);
        });
    }
    boost::asio::post(p.executor, [&p] { p.serve(); });
}

template <class T>
void async_generator<T>::promise_type::serve() {
    if (!reader_) return;
    auto h = std::coroutine_handle<promise_type>::from_promise(*this);
    std::optional<T> v;
    std::exception_ptr e;
    try {
        const auto s = detail::async_reader::step(h, executor, &serve_reader, this);
        if (s == detail::async_reader::state::waiting) return;  // served again once it yields or ends
        if (s == detail::async_reader::state::ready) v.emplace(detail::async_reader::take(h));
    } catch (...) {
        e = std::current_exception();
    }
    complete_reader(e, std::move(v), false);
}

template <class T>
void async_generator<T>::promise_type::complete_reader(std::exception_ptr e, std::optional<T> v, bool later) {
    if (reader_slot_.is_connected()) reader_slot_.clear();
    reader_slot_ = {};
    boost::asio::any_completion_handler<next_signature> r;
    r.swap(reader_);
    auto ex = std::exchange(reader_ex_, {});
    // Nothing of this frame is touched after the handler runs: the reader may destroy it.
    auto fn = [r = std::move(r), e, v = std::move(v)]() mutable { std::move(r)(e, std::move(v)); };
    if (later)
        boost::asio::post(ex, std::move(fn));
    else
        boost::asio::dispatch(ex, std::move(fn));
}

}  // namespace cojob
