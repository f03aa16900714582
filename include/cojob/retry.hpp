// cojob/retry.hpp - when a failed task runs again, and after how long (`options::retry`).
#pragma once

#include <cojob/errors.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>

namespace cojob {

/// A set of failure kinds.
class failure_kinds {
public:
    constexpr failure_kinds() noexcept = default;
    /// The set of `kinds`: `{failure_kind::worker_died, failure_kind::timeout}`.
    constexpr failure_kinds(std::initializer_list<failure_kind> kinds) noexcept {
        for (failure_kind k : kinds) bits_ |= bit(k);
    }
    /// Whether `k` is in the set.
    [[nodiscard]] constexpr bool contains(failure_kind k) const noexcept { return (bits_ & bit(k)) != 0; }
    /// Whether the set has no kind.
    [[nodiscard]] constexpr bool empty() const noexcept { return bits_ == 0; }

private:
    static constexpr std::uint8_t bit(failure_kind k) noexcept { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(k)); }
    std::uint8_t bits_ = 0;
};

/// How the delay before a retry is spread.
enum class backoff_jitter {
    full,  ///< a uniform draw between 0 and the delay (spreads retries of many tasks apart)
    none,  ///< the delay itself
};

/// When a failed task is tried again (`options::retry`). Retries are per task: of a batch
/// whose worker died, the task that was running counts an attempt and the others run again
/// without counting one. The delay before attempt n+1 is `backoff * 2^(n-1)`, at most
/// `max_backoff`, spread by `jitter`; it is waited on the call's executor (no thread sleeps),
/// and fresh tasks keep running meanwhile.
///
/// A task that fails at its last attempt ends the call as any failure does, or with
/// `cojob::keep_going` becomes its failed `outcome`.
struct retry_policy {
    /// Total tries of a task, the first included: 1 means no retry.
    int attempts = 1;
    /// The delay before the first retry.
    std::chrono::duration<double> backoff{0.1};
    /// The longest delay between two tries.
    std::chrono::duration<double> max_backoff{10.0};
    /// How each delay is spread: `full` (default) draws it between 0 and the delay.
    backoff_jitter jitter = backoff_jitter::full;
    /// The failure kinds that are retried; `cancelled` never is.
    failure_kinds on{failure_kind::worker_died, failure_kind::timeout};
    /// Optional, for exceptions: whether a task's exception (`failure.exception`, its type, and
    /// `failure.message`) is worth another try. When set, exceptions are retried when it says so
    /// (with or without `failure_kind::exception` in `on`); when unset, when `on` has it.
    std::function<bool(const task_failure&)> retry_if{};
};

}  // namespace cojob
