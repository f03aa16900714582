// src/task_events.cpp - the per-task events of `options::on_task`.
#include "task_events.hpp"

#include <algorithm>
#include <chrono>

namespace cojob::detail {

namespace {

task_event::time_point at(std::int64_t ns) {
    return task_event::time_point(std::chrono::duration_cast<task_event::time_point::duration>(std::chrono::nanoseconds(ns)));
}

task_event event_of(const batch_base& b, std::size_t i, cojob::backend kind) {
    task_event e;
    e.index = b.first + i;
    e.batch = b.number;
    e.attempt = static_cast<unsigned>(b.attempt);
    e.backend = kind;
    e.dispatched_at = at(b.dispatched_ns);
    return e;
}

}  // namespace

ran_tasks tasks_ran(const batch_base& b) noexcept {
    // A worker that reported times says exactly which tasks ran.
    const std::size_t reported = b.times.size() / 2;
    const bool timed = reported >= b.completed && reported > 0;
    if (timed) return {std::min(b.size, reported), true};
    return {std::min(b.size, b.ran.value_or(b.completed + (b.error ? 1 : 0))), false};
}

void report_dispatched(const task_callback& on_task, const batch_base& b, cojob::backend kind) {
    for (std::size_t i = 0; i < b.size; ++i) on_task(event_of(b, i, kind));
}

void report_ran(const task_callback& on_task, const batch_base& b, cojob::backend kind, std::int64_t now_ns) {
    // Untimed tasks are bounded by their batch's dispatch and return.
    const auto [ran, timed] = tasks_ran(b);
    for (std::size_t i = 0; i < ran; ++i) {
        task_event e = event_of(b, i, kind);
        e.worker = b.worker;
        e.what = task_status::started;
        e.started_at = at(timed ? b.times[2 * i] : b.dispatched_ns);
        on_task(e);
        e.what = b.error && i + 1 == ran ? task_status::failed : task_status::finished;
        e.ended_at = at(timed ? b.times[2 * i + 1] : now_ns);
        on_task(e);
    }
}

void report_retried(const task_callback& on_task, const batch_base& b, cojob::backend kind) {
    for (std::size_t i = 0; i < b.size; ++i) {
        task_event e = event_of(b, i, kind);
        e.what = task_status::retried;
        on_task(e);
    }
}

}  // namespace cojob::detail
