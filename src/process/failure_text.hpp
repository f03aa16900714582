// src/process/failure_text.hpp - private: what a call is told when a worker process fails one
// of its batches: the process ended (how, at which task, before its handshake), broke the
// protocol, was stopped on purpose, or went with results it had lent. The wording is in one
// place because users read it and tests match it.
#pragma once

#include <cojob/detail/batch.hpp>

#include <sys/resource.h>
#include <sys/types.h>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>

namespace cojob::detail::process {

/// How a reaped process ended: "killed by signal 9 (SIGKILL)", "exited with code 3".
[[nodiscard]] std::string describe_status(int status);

/// How a worker process ended, as reaping it told.
struct worker_end {
    std::string how;  ///< describe_status, or "ended" when it could not be reaped
    std::string signal;
    std::optional<int> exit_code;
    std::size_t peak_rss_bytes = 0;
    bool oom_suspected = false;
    std::string stderr_tail;  ///< its last lines of standard error (worker_output.hpp)
};
/// `status` and `usage` from wait4 (when `reaped`); `oom_kills_rose`: the memory cgroup's OOM
/// kill count rose while the worker lived.
[[nodiscard]] worker_end describe_end(bool reaped, int status, const struct rusage& usage, bool oom_kills_rose);

/// The kernel's OOM kills in this process's memory cgroup so far (cgroup v2 `memory.events`,
/// else v1 `memory.oom_control`), or -1 when no file tells.
[[nodiscard]] long cgroup_oom_kills() noexcept;
/// The `oom_kill` count in the text of a `memory.events` or `memory.oom_control` file, or -1.
[[nodiscard]] long oom_kills_in(const std::string& text);

/// worker_died: the worker ended on its own, before its handshake (`greeted` false) or while
/// it ran task `running` of `b`.
[[nodiscard]] std::exception_ptr worker_ended(pid_t pid, const worker_end& end, bool greeted, const batch_base& b,
                                              std::size_t running);
/// What `parallel::last_failure()` tells of the task `running` of `b` that worker `pid` died
/// in, with `error` (from worker_ended).
[[nodiscard]] task_failure death_facts(pid_t pid, const worker_end& end, const batch_base& b, std::size_t running,
                                       const std::exception_ptr& error);
/// worker_died: the worker ended (`how`) while it held `b`, in the middle of a frame: its
/// response pipe closed after `got` of the frame's `announced` bytes (0: inside the header).
[[nodiscard]] std::exception_ptr frame_cut(pid_t pid, const std::string& how, const batch_base& b, std::size_t got,
                                           std::size_t announced);
/// The worker broke the protocol (`why`: a wire_error, a read error) and was killed: `why`,
/// saying so.
[[nodiscard]] std::exception_ptr protocol_broken(pid_t pid, const std::exception_ptr& why);
/// worker_died: the worker ended (`how`) after it answered `b`, but before this process read
/// the results that answer lent.
[[nodiscard]] std::exception_ptr lent_results_lost(pid_t pid, const std::string& how, const batch_base& b);
/// cancelled: the worker running the batch was killed because its call stopped.
[[nodiscard]] std::exception_ptr batch_stopped();
/// cancelled: the batch waited behind the running one in a worker that was lost.
[[nodiscard]] std::exception_ptr batch_not_started();
/// cancelled: the call stopped while the batch still waited for a worker.
[[nodiscard]] std::exception_ptr batch_not_sent();

}  // namespace cojob::detail::process
