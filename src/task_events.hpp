// src/task_events.hpp - private: the `options::on_task` events of a batch, built from what the
// batch recorded (compiled in src/task_events.cpp; the scheduler calls them), and the timing of
// a backend's steps that the trace shows.
#pragma once

#include "util.hpp"

#include <cojob/detail/batch.hpp>
#include <cojob/task_event.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace cojob::detail {

using task_callback = std::function<void(const task_event&)>;

/// `dispatched` for every task of `b`, just handed to the backend.
void report_dispatched(const task_callback& on_task, const batch_base& b, cojob::backend kind);

/// The tasks of a batch that ran: the first `count` (those that returned, then the one that
/// failed when the batch has an error). `timed`: the worker recorded each one's start and end
/// in `times`.
struct ran_tasks {
    std::size_t count = 0;
    bool timed = false;
};
[[nodiscard]] ran_tasks tasks_ran(const batch_base& b) noexcept;

/// `started`, then `finished` or `failed`, for every task of `b` that ran, now that it is back
/// (`now_ns`: its return, for tasks whose worker could not report their times).
void report_ran(const task_callback& on_task, const batch_base& b, cojob::backend kind, std::int64_t now_ns);

/// `retried` for the tasks of `b`, which run again as attempt `b.attempt` after a backoff.
void report_retried(const task_callback& on_task, const batch_base& b, cojob::backend kind);

/// Runs `step` (a backend writing `b`'s request or reading its response) and, when `b`
/// records times, notes in `at` when and on which thread. A step that throws is not noted.
template <class Step>
void timed_step(const batch_base& b, batch_base::step_time& at, Step&& step) {
    if (!b.record_times) {
        step();
        return;
    }
    const std::int64_t begin = batch_base::now_ns();
    step();
    at = {begin, batch_base::now_ns(), this_thread_id()};
}

}  // namespace cojob::detail
