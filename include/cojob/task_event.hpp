// cojob/task_event.hpp - what `options::on_task` is told about each task of a call: dispatched,
// started, finished or failed, where it ran and when.
#pragma once

#include <cojob/options.hpp>

#include <chrono>
#include <cstddef>

namespace cojob {

/// What happened to a task.
enum class task_status {
    dispatched,  ///< handed to a worker, in a batch
    started,     ///< began running (its `started_at` is set)
    finished,    ///< returned (its `ended_at` is set)
    failed,      ///< threw, ran past the timeout or lost its worker (its `ended_at` is set)
    /// failed, and runs again (`options::retry`): `attempt` is the attempt to come, which gets
    /// its own `dispatched`, `started` and end once its backoff has passed
    retried,
};

/// One event of one task, given to `options::on_task`.
///
/// A task that runs gets `dispatched`, `started`, then `finished` or `failed`, in that order,
/// all on the call's driving thread (the scheduler's). `started` and the end come together once
/// the task's batch is back: a worker reports its tasks' times with its results. A task that
/// never ran (the call ended first) gets only `dispatched`. A failed task ends its call unless
/// the call keeps going (`cojob::keep_going`) or retries it (then `retried` follows `failed`).
/// Tasks of a batch that run again without having failed (the rest of a batch whose worker
/// died) are dispatched again with the same `attempt`.
///
/// Times are `std::chrono::steady_clock` points, the clock of the process that made the call;
/// worker processes on the same machine report on the same clock. Where a worker cannot tell
/// (it died), `started_at` is the batch's dispatch and `ended_at` its return.
struct task_event {
    /// A point on the steady clock.
    using time_point = std::chrono::steady_clock::time_point;

    task_status what = task_status::dispatched;  ///< what happened
    std::size_t index = 0;         ///< the task's position in the input
    std::size_t batch = 0;         ///< its batch: 0, 1, 2, ... in dispatch order within the call
    unsigned attempt = 1;          ///< which run of the task this is (1: the first)
    cojob::backend backend = cojob::backend::sequential;  ///< the backend that ran it
    /// Who ran it: the worker thread's index (0 to n_jobs-1; -1 for the calling thread helping
    /// its own call), the worker process's pid, the MPI rank, or 0 (sequential). -1 before
    /// it started.
    long worker = -1;
    time_point dispatched_at{};  ///< when its batch was handed to the backend
    time_point started_at{};     ///< when it began (set from `started` on)
    time_point ended_at{};       ///< when it returned or threw (set with `finished` / `failed`)
};

}  // namespace cojob
