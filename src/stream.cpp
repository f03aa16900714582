// src/stream.cpp - the untyped half of `cojob::stream`: starts the call (on the consumer's
// thread or on a strand of its executor), drives it for a blocking consumer, tells the
// scheduler when the consumer made room in the window, and ends or drops the call.
#include <cojob/detail/stream_state.hpp>

#include "engine.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <signal.h>

#include <chrono>
#include <thread>

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

/// Ctrl-C while a blocking stream runs on processes: the call stops (workers killed) and the
/// consumer's next step throws cojob::cancelled, as for par(range). Only when the program has
/// not claimed SIGINT for itself; Asio restores the default disposition when it goes.
struct interrupt_watch {
    explicit interrupt_watch(asio::io_context& ctx) : signals(ctx, SIGINT) {}
    asio::signal_set signals;
};

stream_core::stream_core(std::shared_ptr<engine> eng, bool completion_order) noexcept
    : eng_(std::move(eng)), completion_order_(completion_order) {}

stream_core::~stream_core() {
    if (holds_engine_) eng_->running.store(false);
}

void stream_core::watch_interrupt() {
    struct sigaction current {};
    if (eng_->opts.kind != cojob::backend::processes || ::sigaction(SIGINT, nullptr, &current) != 0 ||
        current.sa_handler != SIG_DFL)
        return;
    interrupt_ = std::make_unique<interrupt_watch>(eng_->blocking_context);
    interrupt_->signals.async_wait([w = weak_from_this()](boost::system::error_code ec, int) {
        auto self = w.lock();
        if (ec || !self || self->closed_) return;
        self->interrupted_ = true;
        self->close_on_executor();  // run from drive(), never on the scheduler's stack
    });
}

void stream_core::unwatch_interrupt() noexcept {
    if (!interrupt_) return;
    boost::system::error_code ignored;
    interrupt_->signals.cancel(ignored);  // its handler runs later, on this io_context, and returns
    interrupt_.reset();
}

void stream_core::workers_released() noexcept {
    if (holds_engine_ && !holds_workers()) {
        holds_engine_ = false;
        eng_->running.store(false);
    }
}

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
    engine& e = *eng_;
    if (e.running.exchange(true))
        throw error("cojob::parallel::stream: this parallel object is already running a call; finish or drop "
                    "the other stream or call first, or use a second parallel object");
    e.last_failure.reset();
    const bool async = mode_ == mode::async;
    if (!async) {
        e.blocking_context.restart();
        executor_ = e.blocking_context.get_executor();
        work_ = std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(
            e.blocking_context.get_executor());
        watch_interrupt();
    }
    // An async call keeps this state alive until it ends; a blocking one is driven to its end
    // by the consumer's thread before the state goes.
    call_ = std::make_shared<call_state>(eng_, source(), *this, async ? shared_from_this() : nullptr, executor_);
    e.active_async = call_;
    asio::co_spawn(executor_, schedule(call_),
                   [self = shared_from_this()](std::exception_ptr ex) { self->call_done(ex); });
}

void stream_core::call_done(std::exception_ptr ex) noexcept {
    // Results left in worker processes keep their workers from answering another call: the
    // object stays busy until they are read or dropped.
    if (holds_workers())
        holds_engine_ = true;
    else
        eng_->running.store(false);
    std::exception_ptr failure = ex ? ex : call_->result();
    call_->keep_alive.reset();  // breaks the cycle call -> this -> call
    call_.reset();
    work_.reset();
    unwatch_interrupt();
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
    if (!call_ || closed_ || wake_posted_) return;
    wake_posted_ = true;
    asio::post(executor_, [self = weak_from_this(), w = std::weak_ptr<call_state>(call_)] {
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
    if (auto c = call_) c->drop();
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
        start_call();  // may throw (object busy): then nothing started
        started_ = true;
    }
    drive();
}

// Runs the blocking call on this thread until a result is there or the call is over, as
// parallel::run_blocking does: work helping inside a worker, a short spin, then sleep.
void stream_core::drive() {
    auto& ctx = eng_->blocking_context;
    // Handlers first even when a result waits: a Ctrl-C must not wait behind buffered results.
    if (interrupt_) ctx.poll();
    while (!has_result() && !over_) {
        if (ctx.poll() > 0) continue;
        if (call_ && eng_->backend->help(*call_)) continue;
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        bool ran = false;
        while (!over_ && std::chrono::steady_clock::now() < spin_until) {
            if (ctx.poll() > 0) {
                ran = true;
                break;
            }
            std::this_thread::yield();
        }
        if (!ran && !over_ && !has_result()) ctx.run_one();
    }
    if (over_ && !drained_) {
        // Batches that came back after a dropped call ended wait in the queue holding the call
        // (and through it the engine that owns this io_context): let them go now.
        drained_ = true;
        ctx.restart();
        while (ctx.poll() > 0) {
        }
    }
}

void stream_core::rethrow_failure_blocking() {
    if (std::exchange(interrupted_, false))
        throw cancelled("cojob::stream: the stream was interrupted (SIGINT); the worker processes running its tasks "
                        "were stopped and its results dropped");
    std::exception_ptr e = take_failure();
    if (!e) return;
    if (is_operation_aborted(e))
        throw cancelled("cojob::stream: the call was cancelled (its parallel object was destroyed)");
    std::rethrow_exception(e);
}

}  // namespace cojob::detail
