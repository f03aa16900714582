// src/task_events.hpp - private: the `options::on_task` events of a batch, built from what the
// batch recorded (compiled in src/task_events.cpp; the scheduler calls them).
#pragma once

#include <cojob/detail/batch.hpp>
#include <cojob/task_event.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace cojob::detail {

using task_callback = std::function<void(const task_event&)>;

/// `dispatched` for every task of `b`, just handed to the backend.
void report_dispatched(const task_callback& on_task, const batch_base& b, cojob::backend kind);

/// `started`, then `finished` or `failed`, for every task of `b` that ran, now that it is back
/// (`now_ns`: its return, for tasks whose worker could not report their times).
void report_ran(const task_callback& on_task, const batch_base& b, cojob::backend kind, std::int64_t now_ns);

}  // namespace cojob::detail
