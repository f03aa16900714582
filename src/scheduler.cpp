// src/scheduler.cpp - the coroutine that drives one call: pulls tasks into batches as the
// pre_dispatch window allows, hands them to the backend, delivers results in input order,
// reports progress, and ends the call on the first error, a timeout or cancellation.
#include "call_state.hpp"
#include "task_events.hpp"
#include "util.hpp"
#include "wire.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

namespace cojob::detail {

namespace asio = boost::asio;

call_state::call_state(std::shared_ptr<engine> e, source_base& src, sink_base& snk, std::shared_ptr<void> keep,
                       asio::any_io_executor ex, bool blocking)
    : eng_(std::move(e)),
      source_(src),
      sink_(snk),
      keep_alive_(std::move(keep)),
      executor_(std::move(ex)),
      blocking_(blocking),
      inline_backend_(eng_->backend->profile().runs_in_submit),
      sizer_(eng_->sizer()) {}

// Runs one step of the scheduler; whatever it throws (a progress callback, an allocation, a
// thread that cannot start) ends the call like a task's error: stop, drain, then report.
template <class F>
void call_state::guarded(F&& step) noexcept {
    try {
        step();
    } catch (...) {
        fail(std::current_exception(), std::nullopt);
    }
}

void call_state::finished(std::shared_ptr<call_state> call, std::unique_ptr<batch_base> batch) {
    if (call->inline_backend_) {
        call->finished_.push_back(std::move(batch));  // already on the executor
        return;
    }
    std::lock_guard lock(call->post_mutex_);
    if (call->closed_) {  // the call ended without it (timeout, a dropped stream): drop it here
        call->drop_late(*batch);
        return;
    }
    auto& ex = call->executor_;
    asio::post(ex, [c = std::move(call), b = std::move(batch)]() mutable { c->on_finished(std::move(b)); });
}

// A batch that ran but reaches the call after its end still gets its slices in the trace.
void call_state::drop_late(const batch_base& batch) const noexcept {
    if (trace_) trace_->late(batch, batch_base::now_ns());
}

void call_state::on_finished(std::unique_ptr<batch_base> batch) {
    if (closed_) {  // posted before the call ended, run after
        drop_late(*batch);
        return;
    }
    finished_.push_back(std::move(batch));
    wake();
}

void call_state::wake() {
    if (waiter_) {
        // Boost 1.81's any_completion_handler move-assignment wraps the handler in itself
        // (it forwards an lvalue to the converting constructor): only construct and swap.
        boost::asio::any_completion_handler<void()> h;
        h.swap(waiter_);
        std::move(h)();
    }
}

void call_state::request_cancel() {
    cancel_requested_ = true;
    wake();
}

void call_state::interrupt() {
    user_interrupted_ = true;
    if (interrupt_hook_)
        interrupt_hook_();
    else
        request_cancel();
}

bool call_state::cancel_from_anywhere() {
    std::lock_guard lock(post_mutex_);
    if (closed_) return false;
    asio::post(executor_, [self = shared_from_this()] { self->request_cancel(); });
    return true;
}

void call_state::close() {
    asio::any_io_executor ex;  // released here, on the executor, after the lock
    {
        std::lock_guard lock(post_mutex_);
        closed_ = true;
        ex = std::move(executor_);
        executor_ = asio::any_io_executor();
    }
    timer_.reset();
    source_.stop();
    for (const auto& b : finished_) drop_late(*b);
    finished_.clear();
    reorder_.clear();
    left_batches_out_ = !in_flight_.empty() || gave_up_;
    in_flight_.clear();
    reorder_tasks_ = in_flight_tasks_ = 0;
}

template <class Token>
auto call_state::async_wait_event(Token&& token) {
    return asio::async_initiate<Token, void()>(
        [this](auto handler) {
            boost::asio::any_completion_handler<void()> h(std::move(handler));
            waiter_.swap(h);
            arm_timer();
        },
        token);
}

std::size_t call_state::outstanding() const {
    // A stream also counts what came back but was not consumed yet: that is its backpressure.
    if (window_counts_results_) return in_flight_tasks_ + reorder_tasks_ + sink_.held().results;
    return in_flight_.size() + (sink_.streaming() ? reorder_.size() + sink_.held().batches : 0);
}

void call_state::trace_load() {
    trace_->load(in_flight_tasks_, sink_.streaming() ? std::optional<std::size_t>(reorder_tasks_ + sink_.held().results)
                                                     : std::nullopt);
}

bool call_state::waiting_for_producer() const { return source_.waiting && !stopping_; }

bool call_state::waiting_for_consumer() const {
    return sink_.streaming() && !stopping_ && !held_back_ && !(source_.exhausted && source_.staged == 0);
}

void call_state::drop() {
    dropped_ = true;
    request_cancel();
}

void call_state::consumer_took() { wake(); }

bool call_state::can_dispatch() const {
    if (stopping_ || held_back_ || (source_.exhausted && source_.staged == 0)) return false;
    return window_ == 0 || outstanding() < window_;
}

void call_state::dispatch_more() {
    backend_base& be = *eng_->backend;
    const std::size_t workers = be.profile().workers;
    // Tasks to run again go first, whatever the window holds: they were counted in it once,
    // and results held for input order may be waiting for them.
    release_due();
    while (!again_.empty() && !stopping_ && !held_back_) {
        auto b = std::move(again_.front());
        again_.pop_front();
        send(std::move(b), false);
    }
    while (can_dispatch()) {
        if (source_.staged == 0) {
            std::size_t size = sizer_.next([this](bool fast, double d, std::size_t n) {
                printer_.batch_size_changed(fast, d, n);
            });
            if (gives_up_) size = 1;  // a batch given up must hold only the task that ran too long
            std::size_t want = size * workers;
            if (window_) {
                const std::size_t room = window_ - outstanding();
                want = std::min(want, window_counts_results_ ? room : room * size);
            }
            std::size_t got = 0;
            try {
                got = source_.fill(want);
            } catch (...) {
                fail(std::current_exception(), std::nullopt);
                return;
            }
            if (source_.exhausted) input_ended_.store(true, std::memory_order_relaxed);
            if (got == 0) break;
            // Near the end of the input, cut the rest finer so no worker is left alone with a
            // long batch (joblib's rule).
            slice_ = source_.exhausted && got < want ? std::max<std::size_t>(1, got / (10 * workers)) : size;
        }
        const std::size_t k = std::min(slice_, source_.staged);
        const std::size_t first = source_.pulled - source_.staged;
        const std::int64_t cut_ns = trace_ ? batch_base::now_ns() : 0;
        auto b = source_.take(k);
        b->first = first;
        send(std::move(b), true, cut_ns);
    }
    if (source_.exhausted && source_.staged == 0) printer_.dispatch_ended();
}

void call_state::send(std::unique_ptr<batch_base> b, bool fresh, std::int64_t cut_ns) {
    b->dispatched_ns = batch_base::now_ns();
    if (!cut_ns) cut_ns = b->dispatched_ns;
    b->number = batches_dispatched_++;
    if (observed_) {
        b->record_times = true;
        if (eng_->opts.on_task) report_dispatched(eng_->opts.on_task, *b, eng_->opts.kind);
    }
    if (gives_up_) {  // its task cannot be read once it runs
        b->described_function = b->function_name(0);
        b->described_arguments = b->arguments(0);
    }
    const std::size_t k = b->size;
    const std::size_t first = b->first;
    in_flight_.emplace(first, b.get());
    in_flight_tasks_ += k;
    if (fresh) printer_.dispatched(k);
    const std::size_t number = b->number;
    eng_->backend->submit(std::move(b), shared_from_this());
    if (trace_) {
        trace_->dispatched(number, first, k, cut_ns, batch_base::now_ns());
        trace_load();
    }
}

void call_state::stop_running() noexcept {
    if (interrupted_ || in_flight_.empty()) return;
    interrupted_ = true;
    stop_effect_ = eng_->backend->interrupt(*this);
}

void call_state::fail(std::exception_ptr e, std::optional<task_failure> failure) {
    if (!error_) {
        error_ = std::move(e);
        failure_ = std::move(failure);
    }
    again_.clear();  // tasks waiting to run again never will
    backoff_.clear();
    stopping_ = true;
    stop_.store(true, std::memory_order_relaxed);
    printer_.aborting();
    stop_running();
}

// Ends the call with the exception of the failed task of `b`, saying which task it was.
void call_state::report_failure(batch_base& b) {
    task_failure f = describe_failure(b, failed_task(b));
    fail(b.error, std::move(f));
}

// Hands a batch's results to the sink_. A stream's failed batch hands over the results before
// its failing task, then ends the call; returns false then.
bool call_state::deliver(std::unique_ptr<batch_base> b) {
    const std::int64_t begin_ns = trace_ ? batch_base::now_ns() : 0;
    sink_.accept(*b);
    if (trace_) trace_->delivered(b->number, begin_ns, batch_base::now_ns());
    if (b->error && !sink_.keeps_going) {
        report_failure(*b);
        return false;
    }
    next_to_deliver_ += b->size;
    source_.recycle(std::move(b));
    return true;
}

void call_state::complete_batch(std::unique_ptr<batch_base> b) {
    if (b->fate.load(std::memory_order_acquire) == batch_given_up) {  // its outcome was given already
        drop_late(*b);
        return;
    }
    in_flight_.erase(b->first);
    in_flight_tasks_ -= b->size;
    const std::int64_t now_ns = batch_base::now_ns();
    if (observed_) {
        if (eng_->opts.on_task) report_ran(eng_->opts.on_task, *b, eng_->opts.kind, now_ns);
        if (trace_) {
            trace_->ran(*b, now_ns);
            trace_load();
        }
    }
    const std::int64_t since_ns = b->started_ns ? b->started_ns : b->placed_ns ? b->placed_ns : b->dispatched_ns;
    sizer_.completed(b->size, static_cast<double>(now_ns - since_ns) * 1e-9);
    if (stopping_) return;  // draining after an error or a cancellation
    if (b->error && settles_) {
        settle(std::move(b));  // src/call_failures.cpp
        return;
    }
    accept_batch(std::move(b));
}

void call_state::accept_batch(std::unique_ptr<batch_base> b) {
    const bool failed = b->error && !sink_.keeps_going;
    if (failed && !sink_.streaming()) {
        report_failure(*b);  // a list: the first failure ends the call
        return;
    }
    if (failed)
        held_back_ = true;  // a stream: dispatch nothing more, deliver what comes before it first
    else
        printer_.completed(b->size);
    if (sink_.how == delivery::stream_completion) {
        deliver(std::move(b));
        return;
    }
    if (b->first != next_to_deliver_) {
        reorder_tasks_ += b->size;
        reorder_.emplace(b->first, std::move(b));
        return;
    }
    if (!deliver(std::move(b))) return;
    for (auto it = reorder_.begin(); it != reorder_.end() && it->first == next_to_deliver_;) {
        auto next = std::move(it->second);
        it = reorder_.erase(it);
        reorder_tasks_ -= next->size;
        if (!deliver(std::move(next))) return;
    }
}

asio::awaitable<void> schedule(std::shared_ptr<call_state> c) {
    const auto& o = c->eng_->opts;
    backend_base& be = *c->eng_->backend;
    const dispatch_profile& profile = be.profile();
    c->track_ = o.timeout.has_value() && !profile.runs_in_submit;
    // A backend that runs batches inside submit keeps one in flight whatever its size
    // (nothing runs ahead there).
    c->window_ = profile.runs_in_submit ? 1 : o.pre_dispatch.value_or(0);
    c->window_counts_results_ = c->sink_.streaming() && !profile.runs_in_submit && !c->sizer_.fixed();
    c->printer_.start(o.verbose, o.n_jobs_requested, c->source_.total, o.pre_dispatch.value_or(0), o.progress,
                      o.progress_bar, o.n_jobs);
    if (profile.name) c->printer_.using_backend(profile.name, o.n_jobs);
    c->keep_going_ = c->sink_.keeps_going;
    c->settles_ = c->keep_going_ || o.retry.attempts > 1;
    c->gives_up_ = c->keep_going_ && c->track_ && !profile.stops_batches;
    if (c->track_ || c->settles_) c->timer_.emplace(c->executor_);
    if (o.trace) c->trace_ = std::make_unique<call_trace>(o.trace, o.kind);
    c->observed_ = o.on_task || o.trace;
    if (c->source_.total) c->sink_.expect(*c->source_.total);
    if (c->source_.asynchronous)
        c->source_.bind(c->executor_, [w = c->weak_from_this()] {
            if (auto call = w.lock()) call->wake();
        });

    c->guarded([&] { be.begin_call(*c); });
    if (!c->stopping_) c->guarded([&] { c->dispatch_more(); });
    for (;;) {
        while (!c->finished_.empty()) {
            auto b = std::move(c->finished_.front());
            c->finished_.pop_front();
            c->guarded([&] { c->complete_batch(std::move(b)); });
            c->guarded([&] { c->dispatch_more(); });
        }
        if (c->dropped_) {
            // A stream's consumer left: stop now. Batches that cannot be stopped (threads) are
            // not waited for: running batches finish on their own and their results are dropped
            // when they come back, so the parallel object is free at once. Interrupted worker
            // processes give their batches back within milliseconds (killed, their pipes end),
            // and the backend must see that before the next call, to reap and replace them.
            if (!c->stopping_)
                c->fail(std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted)),
                        std::nullopt);
            if (!c->stop_effect_.batches_return || c->in_flight_.empty()) break;
        }
        // A stream held back by its consumer waits for it even with nothing in flight, and any
        // call waits for a producer that is about to hand it a task.
        if (c->abandoned_ || (c->in_flight_.empty() && !c->waiting_for_consumer() && !c->waiting_for_producer() &&
                              !c->tries_pending()))
            break;
        if (!c->stopping_) be.rebalance(*c);
        co_await c->async_wait_event(asio::use_awaitable);
        if (c->cancel_requested_ && !c->stopping_)
            c->fail(std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted)),
                    std::nullopt);
        if (c->track_ && !c->stopping_) c->check_timeout();
        // The consumer may have made room; the producer may have a task ready.
        if (c->sink_.streaming() || c->source_.asynchronous || c->tries_pending())
            c->guarded([&] { c->dispatch_more(); });
    }
    if (!c->error_) c->guarded([&] { c->printer_.finish(); });
    c->guarded([&] { c->eng_->keep_sizer(c->sizer_); });
    be.end_call(*c);
    if (c->trace_) c->trace_->flush();
    c->close();
}

}  // namespace cojob::detail
