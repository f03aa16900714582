// cojob/detail/stream_state.hpp - the state behind a `cojob::stream`: the sink its call delivers
// batches into, the results not consumed yet, and the consumer waiting for them. The untyped
// half (starting the call, driving it, its end, cancellation) is compiled in src/stream.cpp.
#pragma once

#include <cojob/detail/batch.hpp>
#include <cojob/detail/source.hpp>
#include <cojob/errors.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace cojob::detail {

class engine;
class call_driver;

/// The untyped half of a stream. Its state is touched only on the call's executor: the
/// consumer's thread for a blocking consumer (which drives the engine's private io_context),
/// a strand of the consumer's executor for `co_await`.
class stream_core : public sink_base, public std::enable_shared_from_this<stream_core> {
public:
    /// `keep_going`: the stream hands out outcomes (cojob::keep_going).
    stream_core(std::shared_ptr<engine> eng, bool completion_order, bool keep_going = false);
    ~stream_core() override;
    stream_core(const stream_core&) = delete;
    stream_core& operator=(const stream_core&) = delete;

    /// Blocking consumer: starts the call on first use, then runs it on this thread until a
    /// result is buffered or the call is over.
    /// @throws cojob::error when the stream is already consumed with `co_await`.
    void wait_blocking();
    /// After `wait_blocking` found no result: rethrows how the call failed, once
    /// (`cojob::cancelled` for a cancellation).
    void rethrow_failure_blocking();
    /// Async consumer: binds the stream to a strand of `ex` on first use and returns that
    /// strand, or returns nothing when the stream is consumed by blocking code.
    [[nodiscard]] std::optional<boost::asio::any_io_executor> bind_async(const boost::asio::any_io_executor& ex);
    /// The consumer stops: pending tasks are dropped, unconsumed results freed, the parallel
    /// object freed at once. Blocking streams finish this before returning; async ones on
    /// their strand. Safe to call more than once.
    void close() noexcept;

protected:
    // On the executor.
    /// Starts the call if the stream has not started yet (async consumers).
    void start_if_needed();
    /// The consumer took a result: the window may have room again.
    void result_consumed();
    /// The consumer gave up: stop the call, free results, fail a waiting `async_next`.
    void close_on_executor() noexcept;
    [[nodiscard]] bool over() const noexcept { return over_; }
    [[nodiscard]] bool closed() const noexcept { return closed_; }
    /// How the call failed, once; empty when it did not or was already told.
    [[nodiscard]] std::exception_ptr take_failure() noexcept { return std::exchange(failure_, nullptr); }

    [[nodiscard]] virtual source_base& source() noexcept = 0;
    [[nodiscard]] virtual bool has_result() const noexcept = 0;
    /// Results were delivered or the call ended: serve a waiting async consumer.
    virtual void ready(bool from_scheduler) = 0;
    /// The consumer is gone: free buffered results; fail a waiting async consumer.
    virtual void abandon() noexcept = 0;

    boost::asio::any_io_executor executor_;

private:
    enum class mode { unbound, blocking, async };

    void start_call();
    void call_done(std::exception_ptr e) noexcept;
    void drive();

    std::unique_ptr<call_driver> driver_;  ///< the call's life (src/call_driver.hpp)
    std::exception_ptr failure_;
    mode mode_ = mode::unbound;
    bool started_ = false;
    bool over_ = false;
    bool closed_ = false;
    bool drained_ = false;
    bool wake_posted_ = false;  ///< a consumer_took is queued for the scheduler
};

/// The results of a stream whose tasks return R.
template <class R>
class stream_state : public stream_core {
public:
    using signature = void(std::exception_ptr, std::optional<R>);
    using handler_type = boost::asio::any_completion_handler<signature>;

    using stream_core::stream_core;

    [[nodiscard]] backlog held() const noexcept final { return {chunks_.size(), held_results_}; }

    /// Blocking consumer: the next result, or nothing at the end.
    std::optional<R> next_blocking() {
        wait_blocking();
        if (auto r = take()) return r;
        rethrow_failure_blocking();
        return std::nullopt;
    }

    /// Async consumer: `h` receives the next result, nothing at the end, or the failure, on
    /// `ex` (its associated executor).
    void next_async(handler_type h, const boost::asio::any_io_executor& ex) {
        auto strand = bind_async(ex);
        if (!strand) {
            complete_later(std::move(h), ex, std::make_exception_ptr(cojob::error(
                                             "cojob::stream: this stream is consumed by a blocking loop; "
                                             "consume a stream either with co_await or with a range-for")));
            return;
        }
        auto self = std::static_pointer_cast<stream_state>(shared_from_this());
        // Connected now, not once on the strand, so a cancellation emitted meanwhile counts.
        auto slot = boost::asio::get_associated_cancellation_slot(h);
        cancel_requested_.store(false, std::memory_order_relaxed);
        if (slot.is_connected()) {
            std::weak_ptr<stream_core> weak = self;
            slot.assign([weak, strand = *strand](boost::asio::cancellation_type type) {
                if (type == boost::asio::cancellation_type::none) return;
                auto s = weak.lock();
                if (!s) return;
                static_cast<stream_state&>(*s).cancel_requested_.store(true, std::memory_order_relaxed);
                boost::asio::post(strand, [weak] {
                    if (auto self = weak.lock()) static_cast<stream_state&>(*self).cancel_waiter();
                });
            });
        }
        boost::asio::post(*strand, [self, h = std::move(h), ex, slot]() mutable { self->arm(std::move(h), ex, slot); });
    }

protected:
    /// Takes the results of a batch (the batch keeps moved-from husks until it is reused).
    void push(std::vector<R>&& results) {
        if (results.empty() || closed()) return;
        held_results_ += results.size();
        chunks_.push_back(chunk{std::move(results), nullptr, 0});
        chunks_.back().count = chunks_.back().results.size();
        ready(true);
    }
    /// Takes `count` results still in a worker process, read when the first is taken.
    void push(std::unique_ptr<deferred_payload> deferred, std::size_t count) {
        if (count == 0 || closed()) return;
        held_results_ += count;
        chunks_.push_back(chunk{{}, std::move(deferred), count});
        ready(true);
    }

private:
    [[nodiscard]] bool has_result() const noexcept final { return !chunks_.empty(); }

    /// The next result, or nothing yet. @throws wire_error when results left in a worker
    /// cannot be read (the batch is dropped).
    std::optional<R> take() {
        if (chunks_.empty()) return std::nullopt;
        chunk& c = chunks_.front();
        if (c.deferred) {
            try {
                c.results = read_deferred<R>(*c.deferred);
                if (c.results.size() != c.count) throw wire_error("cojob: a worker's arena holds fewer results than announced");
            } catch (...) {
                held_results_ -= c.count;
                chunks_.pop_front();
                head_ = 0;
                result_consumed();
                throw;
            }
            c.deferred.reset();  // the worker may write its next response now
        }
        std::optional<R> r(std::move(c.results[head_]));
        --held_results_;
        if (++head_ == c.count) {
            chunks_.pop_front();  // frees the husks (and the memory they point to) now
            head_ = 0;
        }
        result_consumed();
        return r;
    }

    void arm(handler_type h, const boost::asio::any_io_executor& ex, boost::asio::cancellation_slot slot) {
        if (waiter_) {
            complete_later(std::move(h), ex, std::make_exception_ptr(cojob::error(
                                             "cojob::stream: next() called while another next() is pending; "
                                             "await one result at a time")));
            return;
        }
        waiter_.swap(h);  // any_completion_handler: construct and swap, never move-assign (Boost 1.81)
        // Like any pending Asio operation, keep the consumer's executor from running out of work.
        waiter_ex_ = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
        slot_ = slot;
        if (cancel_requested_.load(std::memory_order_relaxed)) {
            cancel_waiter();
            return;
        }
        start_if_needed();
        ready(false);
    }

    void ready(bool from_scheduler) final {
        if (!waiter_) return;
        std::optional<R> r;
        std::exception_ptr e;
        try {
            r = take();
        } catch (...) {
            e = std::current_exception();
        }
        if (!r && !e) {
            if (!over()) return;
            e = take_failure();
        }
        complete(std::move(r), e, from_scheduler);
    }

    void cancel_waiter() {
        if (!waiter_) return;
        complete(std::nullopt,
                 std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)), true);
        close_on_executor();
    }

    void abandon() noexcept final {
        chunks_.clear();
        head_ = 0;
        held_results_ = 0;
        if (waiter_) {
            try {
                complete(std::nullopt,
                         std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)),
                         true);
            } catch (...) {
            }
        }
    }

    // Hands the waiting consumer its outcome on its own executor. Inside the scheduler the
    // consumer is resumed later (posted), never on the scheduler's stack.
    void complete(std::optional<R> r, std::exception_ptr e, bool later) {
        if (slot_.is_connected()) slot_.clear();
        slot_ = {};
        handler_type h;
        h.swap(waiter_);
        auto ex = std::exchange(waiter_ex_, {});
        auto fn = [h = std::move(h), e, r = std::move(r)]() mutable { std::move(h)(e, std::move(r)); };
        if (later)
            boost::asio::post(ex, std::move(fn));
        else
            boost::asio::dispatch(ex, std::move(fn));
    }

    static void complete_later(handler_type h, const boost::asio::any_io_executor& ex, std::exception_ptr e) {
        boost::asio::post(ex, [h = std::move(h), e]() mutable { std::move(h)(e, std::optional<R>{}); });
    }

    /// The results of one delivered batch, or the worker's arena that still holds them.
    struct chunk {
        std::vector<R> results;
        std::unique_ptr<deferred_payload> deferred;
        std::size_t count = 0;
    };

    std::deque<chunk> chunks_;           ///< one per delivered batch, in delivery order
    std::size_t head_ = 0;               ///< next result in chunks_.front()
    std::size_t held_results_ = 0;       ///< results in chunks_ not taken yet
    handler_type waiter_;
    boost::asio::any_io_executor waiter_ex_;  ///< the waiter's executor, work tracked
    boost::asio::cancellation_slot slot_;
    std::atomic<bool> cancel_requested_{false};  ///< the pending next() was cancelled (any thread)
};

/// A stream over a source of tasks (a range_source or an async_source): owns the source, and
/// moves each batch's results in.
template <class Source>
class stream_call final : public stream_state<typename Source::task_type::result_type> {
    using task_type = typename Source::task_type;
    using base = stream_state<typename task_type::result_type>;

public:
    template <class Input>
    stream_call(std::shared_ptr<engine> eng, bool completion_order, Input&& in)
        : base(std::move(eng), completion_order), source_(std::forward<Input>(in)) {}

    void accept(batch_base& b) override {
        auto& results = static_cast<typed_batch<task_type>&>(b).results;
        if (b.deferred)
            this->push(std::move(b.deferred), b.completed);
        else
            this->push(std::move(results));
        results.clear();  // moved from: valid but unspecified
    }

private:
    source_base& source() noexcept override { return source_; }

    Source source_;
};

}  // namespace cojob::detail
