// src/progress.hpp - private: joblib's verbose lines and batch_size="auto", reimplemented.
#pragma once

#include "progress_bar.hpp"

#include <cojob/options.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace cojob::detail {

/// joblib's adaptive batch size (AutoBatchingMixin): grows at most x2 per step while batches
/// are shorter than the ideal band, shrinks at once when longer than 10x its lower end.
class batch_sizer {
public:
    /// fixed = 0 means auto.
    void configure(std::size_t fixed, double min_ideal_seconds) noexcept;
    /// The size for the next batch; may retune (and then reports it through `on_change`).
    std::size_t next(const std::function<void(bool too_fast, double duration, std::size_t size)>& on_change);
    /// A batch of `size` tasks took `seconds` from dispatch to completion.
    void completed(std::size_t size, double seconds) noexcept;
    void reset() noexcept;
    [[nodiscard]] std::size_t current() const noexcept { return fixed_ ? fixed_ : effective_; }
    /// Whether the user chose the batch size (false for "auto").
    [[nodiscard]] bool fixed() const noexcept { return fixed_ != 0; }

private:
    std::size_t fixed_ = 0;
    double min_ideal_ = 0.2;
    std::size_t effective_ = 1;
    double smoothed_ = 0.0;
};

/// Prints joblib's progress lines (same text, stream and cadence), feeds the callback, and
/// draws the progress bar.
class progress_printer {
public:
    void start(int verbose, int n_jobs_requested, std::optional<std::size_t> total, std::size_t pre_dispatch_amount,
               std::function<void(const progress_event&)> callback, cojob::progress_bar bar, int workers);
    void using_backend(const char* name, int workers);
    void batch_size_changed(bool too_fast, double duration, std::size_t size);
    void dispatched(std::size_t tasks);
    void dispatch_ended() noexcept { iterating_ = false; }
    /// The call is failing: no "finished" line, and the bar is erased.
    void aborting() noexcept;
    /// After `tasks` more tasks completed.
    void completed(std::size_t tasks);
    /// At the end of a call that succeeded: the "finished" line if it was not printed yet.
    void finish();
    /// Task `index` failed (`why`) and runs again, attempt `attempt` of `attempts`, in `delay` s.
    void retrying(std::size_t index, int attempt, int attempts, double delay, const std::string& why);


private:
    void print_progress();
    void print(const std::string& message);
    [[nodiscard]] double elapsed() const;
    void notify(bool finished) const;
    [[nodiscard]] bar_state bar_now() const;

    int verbose_ = 0;
    int n_jobs_requested_ = 1;
    std::optional<std::size_t> total_;
    std::size_t pre_dispatch_amount_ = 0;
    std::function<void(const progress_event&)> callback_;
    std::chrono::steady_clock::time_point start_{};
    std::size_t dispatched_batches_ = 0;
    std::size_t dispatched_tasks_ = 0;
    std::size_t completed_ = 0;
    bool iterating_ = true;
    bool aborting_ = false;
    bool finished_printed_ = false;
    std::size_t workers_ = 1;
    progress_bar_line bar_;
};

/// joblib's short_format_time: " %5.1fs", or "%4.1fmin" past a minute.
[[nodiscard]] std::string short_format_time(double seconds);

}  // namespace cojob::detail
