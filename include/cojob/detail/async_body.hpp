// cojob/detail/async_body.hpp - the untyped side of a cojob::async_generator's body: where it
// runs, how it waits for an Asio operation or an awaitable, and how it is resumed, stopped or
// destroyed while it waits.
#pragma once

#include <cojob/errors.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace cojob::detail {

/// What the body of an async generator shares with the operation it waits for and with its
/// reader. Touched only on `executor`.
struct async_body {
    boost::asio::any_io_executor executor;    ///< where the body runs and its operations complete
    boost::asio::cancellation_signal cancel;  ///< the slot of the operation the body waits for
    void (*on_ready)(void*) = nullptr;        ///< a reader waits: called once the body yields or ends
    void* ready_context = nullptr;            ///< on_ready's argument
    std::exception_ptr failure;               ///< what the body threw
    bool waiting = false;                     ///< suspended on an operation
    bool initiating = false;                  ///< inside that operation's initiating function
    bool orphaned = false;                    ///< the generator is gone: destroy the body when it completes

    /// The body's operation completed: run it to its next suspension, then tell the reader.
    static void resume(std::coroutine_handle<> h, async_body& b) {
        b.waiting = false;
        if (b.initiating) return;  // completed inside the initiation: await_suspend goes on
        if (b.orphaned) {
            h.destroy();
            return;
        }
        h.resume();
        if (!b.waiting && b.on_ready) std::exchange(b.on_ready, nullptr)(b.ready_context);
    }
};

/// The completion handler of an operation an async generator's body waits for: it runs on the
/// body's executor, is cancelled through the body's signal, and resumes the body.
template <class Stored>
class resume_handler {
public:
    using executor_type = boost::asio::any_io_executor;
    using cancellation_slot_type = boost::asio::cancellation_slot;

    resume_handler(std::coroutine_handle<> h, async_body& b, std::optional<Stored>& out) noexcept
        : h_(h), body_(&b), out_(&out) {}
    resume_handler(resume_handler&& o) noexcept
        : h_(std::exchange(o.h_, nullptr)), body_(o.body_), out_(o.out_) {}
    resume_handler& operator=(resume_handler&&) = delete;
    /// Destroyed without being called (its executor shut down): the body can wait no longer.
    ~resume_handler() {
        if (!h_) return;
        body_->waiting = false;
        if (body_->orphaned) h_.destroy();
    }

    [[nodiscard]] executor_type get_executor() const noexcept { return body_->executor; }
    [[nodiscard]] cancellation_slot_type get_cancellation_slot() const noexcept { return body_->cancel.slot(); }

    template <class... A>
    void operator()(A&&... a) {
        out_->emplace(std::forward<A>(a)...);
        async_body::resume(std::exchange(h_, nullptr), *body_);
    }

private:
    std::coroutine_handle<> h_;
    async_body* body_;
    std::optional<Stored>* out_;
};

/// The values an operation completed with: nothing, the one value, or a tuple of them.
template <class... V>
auto unpack_values(V&&... v) {
    if constexpr (sizeof...(V) == 1)
        return (std::move(v), ...);
    else if constexpr (sizeof...(V) > 1)
        return std::tuple<std::decay_t<V>...>(std::move(v)...);
}

/// What `co_await` on an operation gives the body: an error code or exception first is thrown
/// when set; the remaining arguments come back as nothing, one value, or a tuple.
template <class... T>
auto unpack_completion(std::tuple<T...>&& t) {
    constexpr std::size_t n = sizeof...(T);
    if constexpr (n > 0) {
        using first = std::tuple_element_t<0, std::tuple<T...>>;
        constexpr bool status = std::is_same_v<first, boost::system::error_code> ||
                                std::is_same_v<first, std::exception_ptr>;
        if constexpr (status) {
            if constexpr (std::is_same_v<first, boost::system::error_code>) {
                if (std::get<0>(t)) throw boost::system::system_error(std::get<0>(t));
            } else {
                if (std::get<0>(t)) std::rethrow_exception(std::get<0>(t));
            }
            return [&]<std::size_t... I>(std::index_sequence<I...>) {
                return unpack_values(std::move(std::get<I + 1>(t))...);
            }(std::make_index_sequence<n - 1>{});
        } else {
            return std::apply([](auto&&... v) { return unpack_values(std::move(v)...); }, std::move(t));
        }
    }
}

/// `co_await op` in an async generator's body, for an operation `op` completing with Signature.
template <class Op, class Signature>
class op_awaiter;

template <class Op, class R, class... Args>
class op_awaiter<Op, R(Args...)> {
    using stored = std::tuple<std::decay_t<Args>...>;

public:
    op_awaiter(Op op, async_body& b) : op_(std::move(op)), body_(b) {}

    [[nodiscard]] bool await_ready() const noexcept { return false; }
    /// Starts the operation; returns false (go on at once) when it completed inside its initiation.
    bool await_suspend(std::coroutine_handle<> h) {
        body_.waiting = true;
        body_.initiating = true;
        try {
            std::move(op_)(resume_handler<stored>(h, body_, result_));
        } catch (...) {
            body_.initiating = false;
            body_.waiting = false;
            throw;
        }
        body_.initiating = false;
        return body_.waiting;
    }
    auto await_resume() {
        if (!result_) throw cojob::error("cojob::async_generator: an awaited operation ended without completing");
        return unpack_completion(std::move(*result_));
    }

private:
    Op op_;
    async_body& body_;
    std::optional<stored> result_;
};

/// An `asio::awaitable` awaited by an async generator's body, run with `co_spawn` on its executor.
template <class T>
struct spawn_operation {
    boost::asio::awaitable<T> awaitable;
    boost::asio::any_io_executor executor;

    template <class Handler>
    void operator()(Handler&& h) {
        boost::asio::co_spawn(executor, std::move(awaitable), std::forward<Handler>(h));
    }
};

/// `co_await boost::asio::this_coro::executor` in an async generator's body.
struct executor_awaiter {
    boost::asio::any_io_executor executor;
    [[nodiscard]] bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    boost::asio::any_io_executor await_resume() const { return executor; }
};

}  // namespace cojob::detail
