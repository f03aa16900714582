// cojob/outcome.hpp - what one task of a `keep_going` call came to: its value, or how it failed.
#pragma once

#include <cojob/errors.hpp>

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace cojob {

/// Tag for `par(cojob::keep_going, range)`, `par.async_run(cojob::keep_going, range, token)`
/// and `par.stream(cojob::keep_going, range, order)`: the call never ends at a task's failure,
/// and every task gets a `cojob::outcome`.
struct keep_going_t {
    explicit keep_going_t() = default;
};
inline constexpr keep_going_t keep_going{};

namespace detail {
/// What an outcome keeps beside its value, shared by its copies: only tasks that failed or
/// needed more than one attempt have one, so a first-try success costs a null pointer.
struct outcome_record : boost::intrusive_ref_counter<outcome_record, boost::thread_safe_counter> {
    int attempts = 1;
    std::exception_ptr error;       ///< null when the task returned
    task_failure failure;           ///< with error: which task, why, where
};
using outcome_record_ptr = boost::intrusive_ptr<const outcome_record>;

[[noreturn]] void throw_no_failure();
}  // namespace detail

/// The outcome of one task of a `keep_going` call: the value it returned, or its failure (an
/// exception it threw, a timeout, its worker's death, a cancellation), with the attempts it took.
///
/// Small on purpose: the value and one pointer, null for a task that succeeded at its first
/// attempt. Copies share the failure's description.
template <class R>
class outcome {
public:
    /// A task's value.
    explicit outcome(R value) : value_(std::move(value)) {}
    /// Built by cojob for a task that failed or was retried.
    outcome(detail::outcome_record_ptr record, R* value) : record_(std::move(record)) {
        if (value) std::construct_at(&value_, std::move(*value));
    }

    /// A copy; it shares the original's failure description.
    outcome(const outcome& o)
        requires std::is_copy_constructible_v<R>
        : record_(o.record_) {
        if (o.has_value()) std::construct_at(&value_, o.value_);
    }
    /// Moves the value out of `o`.
    outcome(outcome&& o) noexcept(std::is_nothrow_move_constructible_v<R>) : record_(o.record_) {
        if (o.has_value()) std::construct_at(&value_, std::move(o.value_));
    }
    /// Copy assignment.
    outcome& operator=(const outcome& o)
        requires std::is_copy_constructible_v<R>
    {
        if (this != &o) {
            outcome copy(o);
            *this = std::move(copy);
        }
        return *this;
    }
    /// Move assignment.
    outcome& operator=(outcome&& o) noexcept(std::is_nothrow_move_constructible_v<R>) {
        if (this != &o) {
            destroy();
            record_ = o.record_;
            if (o.has_value()) std::construct_at(&value_, std::move(o.value_));
        }
        return *this;
    }
    ~outcome() { destroy(); }

    /// Whether the task returned a value.
    [[nodiscard]] bool has_value() const noexcept { return !record_ || !record_->error; }
    /// `has_value()`.
    explicit operator bool() const noexcept { return has_value(); }

    /// The task's value; for a failed task, rethrows its exception unchanged (a
    /// `cojob::timeout_error`, `cojob::worker_died` or `cojob::cancelled` for the other kinds).
    [[nodiscard]] R& value() & {
        if (!has_value()) std::rethrow_exception(record_->error);
        return value_;
    }
    /// The task's value; rethrows a failed task's exception.
    [[nodiscard]] const R& value() const& {
        if (!has_value()) std::rethrow_exception(record_->error);
        return value_;
    }
    /// The task's value, moved out; rethrows a failed task's exception.
    [[nodiscard]] R value() && {
        if (!has_value()) std::rethrow_exception(record_->error);
        return std::move(value_);
    }

    /// How the task failed. @throws cojob::error when it did not.
    [[nodiscard]] const task_failure& failure() const {
        if (has_value()) detail::throw_no_failure();
        return record_->failure;
    }
    /// The task's exception; null when it returned.
    [[nodiscard]] std::exception_ptr error() const noexcept { return record_ ? record_->error : nullptr; }
    /// How many times the task ran (1 unless it was retried).
    [[nodiscard]] int attempts() const noexcept { return record_ ? record_->attempts : 1; }

private:
    void destroy() noexcept {
        if (has_value()) std::destroy_at(&value_);
    }

    union {
        R value_;
    };
    detail::outcome_record_ptr record_;
};

/// The outcome of a task that returns nothing.
template <>
class outcome<void> {
public:
    /// A task that returned at its first attempt.
    outcome() = default;
    /// Built by cojob for a task that failed or was retried.
    explicit outcome(detail::outcome_record_ptr record) : record_(std::move(record)) {}

    /// Whether the task returned.
    [[nodiscard]] bool has_value() const noexcept { return !record_ || !record_->error; }
    /// `has_value()`.
    explicit operator bool() const noexcept { return has_value(); }
    /// Returns for a task that returned; rethrows a failed task's exception.
    void value() const {
        if (!has_value()) std::rethrow_exception(record_->error);
    }
    /// How the task failed. @throws cojob::error when it did not.
    [[nodiscard]] const task_failure& failure() const {
        if (has_value()) detail::throw_no_failure();
        return record_->failure;
    }
    /// The task's exception; null when it returned.
    [[nodiscard]] std::exception_ptr error() const noexcept { return record_ ? record_->error : nullptr; }
    /// How many times the task ran (1 unless it was retried).
    [[nodiscard]] int attempts() const noexcept { return record_ ? record_->attempts : 1; }

private:
    detail::outcome_record_ptr record_;
};

}  // namespace cojob
