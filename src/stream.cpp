// src/stream.cpp - the untyped half of `cojob::stream`: starts its call through the call
// driver (on the consumer's thread or on a strand of its executor), drives it for a blocking
// consumer, tells the scheduler when the consumer made room in the window, and ends or drops
// the call.
#include <cojob/detail/stream_state.hpp>

#include "call_driver.hpp"
#include "engine.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

namespace cojob::detail {

namespace asio = boost::asio;

namespace {

bool is_operation_aborted(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const boost::system::system_error& s) {
        return s.code() == asio::error::operation_aborted;
    } catch (...) {
        return false;
    }
}

}  // namespace

stream_core::stream_core(std::shared_ptr<engine> eng, bool completion_order, bool keep_going)
    : sink_base(completion_order ? delivery::stream_completion : delivery::stream, keep_going),
      driver_(std::make_unique<call_driver>(std::move(eng))) {}

stream_core::~stream_core() = default;

std::optional<asio::any_io_executor> stream_core::bind_async(const asio::any_io_executor& ex) {
    if (mode_ == mode::blocking) return std::nullopt;
    if (mode_ == mode::unbound) {
        mode_ = mode::async;
        executor_ = asio::make_strand(ex);
    }
    return executor_;
}

void stream_core::start_if_needed() {
    if (started_ || closed_) return;
    started_ = true;
    try {
        start_call();
    } catch (...) {
        failure_ = std::current_exception();
        over_ = true;
    }
}

void stream_core::start_call() {
    const bool async = mode_ == mode::async;
    call_hooks hooks{.ended = [this](std::exception_ptr e) { call_done(std::move(e)); }, .interrupted = {}};
    if (!async) {
        // Ctrl-C stops the call and the consumer's next step throws cojob::cancelled, as for
        // par(range); the results are dropped. Run from drive(), never on the scheduler's stack.
        hooks.interrupted = [this] {
            if (!closed_) close_on_executor();
        };
    }
    // An async call keeps this state alive until it ends; a blocking one is driven to its end
    // by the consumer's thread before the state goes.
    driver_->start(source(), *this, async ? shared_from_this() : nullptr,
                   async ? std::optional<asio::any_io_executor>(executor_) : std::nullopt, {}, std::move(hooks));
    if (!async && driver_->call()) executor_ = driver_->call()->executor();
}

void stream_core::call_done(std::exception_ptr failure) noexcept {
    over_ = true;
    if (!closed_) failure_ = std::move(failure);
    try {
        ready(false);
    } catch (...) {
    }
}

// Posted, never run inline: the scheduler must not resume on the consumer's stack. The posts
// hold the call weakly, so a queue of the engine's own io_context never keeps it alive.
// One wake-up is enough for any number of results taken before it runs.
void stream_core::result_consumed() {
    if (!driver_->running() || closed_ || wake_posted_) return;
    wake_posted_ = true;
    asio::post(executor_, [self = weak_from_this(), w = std::weak_ptr<call_state>(driver_->call())] {
        if (auto s = self.lock()) s->wake_posted_ = false;
        if (auto c = w.lock()) c->consumer_took();
    });
}

void stream_core::close_on_executor() noexcept {
    if (closed_) return;
    closed_ = true;
    abandon();
    failure_ = nullptr;
    if (!started_) {
        over_ = true;
        return;
    }
    // At once, before anything queued (a consumer_took would dispatch more). Never called on
    // the scheduler's stack, so resuming it here is safe; it may end the call (call_done)
    // before drop() returns, so nothing follows.
    if (auto c = driver_->call()) c->drop();
}

void stream_core::close() noexcept {
    switch (mode_) {
        case mode::unbound:
            closed_ = over_ = true;
            abandon();
            return;
        case mode::async:
            try {
                asio::post(executor_, [self = shared_from_this()] { self->close_on_executor(); });
            } catch (...) {
            }
            return;
        case mode::blocking:
            close_on_executor();
            try {
                drive();  // the call ends at once: it does not wait for running batches
            } catch (...) {
            }
            return;
    }
}

void stream_core::wait_blocking() {
    if (mode_ == mode::async)
        throw error("cojob::stream: this stream is consumed with co_await; consume a stream either with "
                    "co_await or with a range-for");
    if (mode_ == mode::unbound) mode_ = mode::blocking;
    if (!started_ && !closed_) {
        start_call();  // may throw: then nothing started
        started_ = true;
    }
    drive();
}

// Runs the blocking call on this thread until a result is there or the call is over.
void stream_core::drive() {
    driver_->drive([this] { return has_result() || over_; });
    if (over_ && !drained_) {
        drained_ = true;
        driver_->drain();
    }
}

void stream_core::rethrow_failure_blocking() {
    if (driver_->take_interrupted())
        throw cancelled("cojob::stream: the stream was interrupted (SIGINT); the worker processes running its tasks "
                        "were stopped and its results dropped");
    std::exception_ptr e = take_failure();
    if (!e) return;
    if (is_operation_aborted(e))
        throw cancelled("cojob::stream: the call was cancelled (its parallel object was destroyed)");
    std::rethrow_exception(e);
}

}  // namespace cojob::detail
