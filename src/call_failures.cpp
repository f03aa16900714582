// src/call_failures.cpp - a call's failed tasks, and the tasks past its timeout. With
// cojob::keep_going a failed task becomes its outcome and the call goes on; with options::retry
// it runs again after a backoff waited on the call's timer. A task past the timeout ends the
// call, or in such a call ends alone: its batch is stopped (a worker process killed) or, where
// nothing can stop it, given up.
//
// A failed batch is cut in four: the tasks that returned (delivered as usual), those whose
// results a dead worker took with it (run again, no attempt counted), the failed task (tried
// again or delivered as a failure) and the tasks after it (run again, no attempt counted).
// Each part is a batch at its own input positions, so delivery in input order is unchanged.
#include "call_state.hpp"
#include "task_events.hpp"
#include "util.hpp"
#include "wire.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace cojob::detail {

namespace {

failure_kind kind_of(const batch_base& b) {
    if (b.timed_out) return failure_kind::timeout;
    if (b.origin) return b.origin->kind;
    return b.ran ? failure_kind::worker_died : failure_kind::exception;
}

const char* kind_text(failure_kind k) {
    switch (k) {
        case failure_kind::exception: return "it threw";
        case failure_kind::timeout: return "it ran past the timeout";
        case failure_kind::worker_died: return "its worker died";
        case failure_kind::cancelled: return "it was cancelled";
    }
    return "it failed";
}

}  // namespace

std::size_t failed_task(const batch_base& b) {
    std::size_t i = b.completed;
    if (b.timed_out)
        i = *b.timed_out;
    else if (b.ran)  // a worker died in task ran - 1 (or before its first)
        i = *b.ran ? *b.ran - 1 : 0;
    return b.size == 0 ? 0 : std::clamp(i, std::min(b.completed, b.size - 1), b.size - 1);
}

std::exception_ptr call_state::timeout_at(std::size_t index, const std::string& note) const {
    return std::make_exception_ptr(timeout_error("cojob: task #" + std::to_string(index) + " exceeded the timeout of " +
                                                 format_seconds(eng_->opts.timeout->count()) + note));
}

task_failure call_state::describe_failure(const batch_base& b, std::size_t i) const {
    // A worker process described the task already, or its death (pid, signal, memory, stderr).
    task_failure f = b.origin ? *b.origin : task_failure{};
    if (!b.origin) {
        f.pid = current_pid();
        f.host = host_name();
        f.time = local_time_text();
    }
    if (!b.origin || b.timed_out) {
        f.index = b.first + i;
        try {
            f.function = b.described_function.empty() ? b.function_name(i) : b.described_function;
            f.arguments = b.described_function.empty() ? b.arguments(i) : b.described_arguments;
        } catch (...) {
            f.function = "<unknown>";
        }
        describe_exception(b.error, f.exception, f.message);
        f.kind = kind_of(b);
    }
    f.attempts = b.attempt;
    return f;
}

bool call_state::worth_retry(const batch_base& b, const task_failure& f) const {
    const retry_policy& p = eng_->opts.retry;
    if (b.attempt >= p.attempts || f.kind == failure_kind::cancelled) return false;
    if (b.started_ns != 0 && !b.repeatable()) return false;  // ran here, its arguments moved into it
    if (f.kind == failure_kind::exception && p.retry_if) return p.retry_if(f);
    return p.on.contains(f.kind);
}

void call_state::settle(std::unique_ptr<batch_base> b) {
    const std::size_t done = std::min(b->completed, b->size);
    auto run_again = [this, &b](std::size_t from, std::size_t to) {
        if (from < to) again_.push_back(b->split_off(from, to));
    };
    // What returned is delivered as usual; a batch with nothing of it is reused.
    auto deliver_head = [this, done](std::unique_ptr<batch_base> head) {
        if (done == 0) {
            source_.recycle(std::move(head));
            return;
        }
        head->keep_first(done);
        head->error = nullptr;
        head->origin.reset();
        head->ran.reset();
        head->timed_out.reset();
        accept_batch(std::move(head));
    };
    if (b->blameless) {  // none of its tasks started: they run again, none counts an attempt
        run_again(done, b->size);
        deliver_head(std::move(b));
        return;
    }
    const std::size_t v = failed_task(*b);
    if (b->timed_out) b->error = timeout_at(b->first + v, " (its worker process was killed and will be replaced)");
    task_failure f = describe_failure(*b, v);
    const bool again = worth_retry(*b, f);
    if (!again && !keep_going_) {
        accept_batch(std::move(b));  // the failure ends the call, as it does without retries
        return;
    }
    auto victim = b->split_off(v, v + 1);
    victim->number = b->number;
    run_again(done, v);          // they returned, but their results died with their worker
    run_again(v + 1, b->size);  // they never ran
    std::exception_ptr error = b->error;
    deliver_head(std::move(b));
    if (again) {
        retry_later(std::move(victim), f);
        return;
    }
    victim->error = std::move(error);
    victim->origin = std::move(f);
    accept_batch(std::move(victim));
}

void call_state::retry_later(std::unique_ptr<batch_base> b, const task_failure& f) {
    const retry_policy& p = eng_->opts.retry;
    double delay = std::min(p.backoff.count() * std::ldexp(1.0, b->attempt - 1), p.max_backoff.count());
    if (p.jitter == backoff_jitter::full) {
        if (!jitter_) jitter_.emplace(std::random_device{}());
        delay *= std::uniform_real_distribution<double>(0.0, 1.0)(*jitter_);
    }
    ++b->attempt;
    if (eng_->opts.on_task) report_retried(eng_->opts.on_task, *b, eng_->opts.kind);
    printer_.retrying(b->first, b->attempt, p.attempts, delay,
                      std::string(kind_text(f.kind)) + (f.message.empty() ? "" : " (" + f.message + ")"));
    if (!(delay > 0)) {
        again_.push_back(std::move(b));
        return;
    }
    backoff_.emplace(batch_base::now_ns() + static_cast<std::int64_t>(delay * 1e9), std::move(b));
}

void call_state::release_due() {
    const std::int64_t now = batch_base::now_ns();
    while (!backoff_.empty() && backoff_.begin()->first <= now) {
        again_.push_back(std::move(backoff_.begin()->second));
        backoff_.erase(backoff_.begin());
    }
}

bool call_state::outlives_timeout(const batch_base& b) const {
    const retry_policy& p = eng_->opts.retry;
    return keep_going_ || (eng_->backend->profile().stops_batches && b.attempt < p.attempts &&
                           p.on.contains(failure_kind::timeout));
}

void call_state::time_out(batch_base& b, std::size_t i) {
    backend_base& be = *eng_->backend;
    if (be.profile().stops_batches) {
        b.timed_out = i;
        be.stop_batch(*this, b);  // it comes back with its error, and settle() takes it
        return;
    }
    // Nothing stops it (threads): its outcome is given now, and its result dropped when it
    // returns. Unless it is back already: then its result counts.
    int running = 0;
    if (!b.fate.compare_exchange_strong(running, batch_given_up, std::memory_order_acq_rel)) return;
    gave_up_ = true;
    be.stop_batch(*this, b);
    in_flight_.erase(b.first);
    in_flight_tasks_ -= b.size;
    auto out = b.blank();  // gives_up_: the batch holds this one task
    out->first = b.first + i;
    out->size = 1;
    out->number = b.number;
    out->attempt = b.attempt;
    out->described_function = b.described_function;
    out->described_arguments = b.described_arguments;
    out->timed_out = 0;
    out->error = timeout_at(out->first, " (its thread keeps running it; its result will be dropped)");
    out->origin = describe_failure(*out, 0);
    accept_batch(std::move(out));
}

void call_state::check_timeout() {
    const auto limit = static_cast<std::int64_t>(eng_->opts.timeout->count() * 1e9);
    eng_->backend->refresh_progress(*this);
    const auto now = batch_base::now_ns();
    std::vector<std::pair<batch_base*, std::size_t>> late;
    for (const auto& [first, b] : in_flight_) {
        const auto since = b->running_since.load(std::memory_order_acquire);
        if (since != 0 && now - since > limit && !b->timed_out)
            late.emplace_back(b, b->running.load(std::memory_order_relaxed));
    }
    for (auto [b, i] : late) {
        if (outlives_timeout(*b)) {
            time_out(*b, i);
            continue;
        }
        stop_.store(true, std::memory_order_relaxed);
        stop_running();  // first: the backend says what became of the task
        fail(timeout_at(b->first + i, stop_effect_.timeout_note), std::nullopt);
        // A batch that cannot be stopped is not waited for: the call ends without it. A
        // stopped one comes back at once, so the call waits for it.
        abandoned_ = !stop_effect_.batches_return;
        return;
    }
}

void call_state::arm_timer() {
    if (!timer_) return;
    std::optional<double> wait;
    // Poll the running tasks' start times often enough to honour the timeout within a few
    // percent, without waking more than every millisecond.
    if (track_) wait = std::clamp(eng_->opts.timeout->count() / 20, 0.001, 0.1);
    if (!backoff_.empty()) {
        const double due = std::max(0.0, static_cast<double>(backoff_.begin()->first - batch_base::now_ns()) * 1e-9);
        wait = wait ? std::min(*wait, due) : due;
    }
    if (!wait) return;
    timer_->expires_after(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(*wait)));
    timer_->async_wait([w = weak_from_this()](boost::system::error_code ec) {
        if (auto self = w.lock(); self && !ec) self->wake();
    });
}

}  // namespace cojob::detail
