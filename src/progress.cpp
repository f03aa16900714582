// src/progress.cpp - joblib's verbose output and auto batch sizing, from its documented rules.
#include "progress.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace cojob::detail {

void batch_sizer::configure(std::size_t fixed, double min_ideal_seconds) noexcept {
    fixed_ = fixed;
    min_ideal_ = min_ideal_seconds;
}

void batch_sizer::reset() noexcept {
    effective_ = 1;
    smoothed_ = 0.0;
}

std::size_t batch_sizer::next(const std::function<void(bool, double, std::size_t)>& on_change) {
    if (fixed_) return fixed_;
    const std::size_t old = effective_;
    const double d = smoothed_;
    std::size_t size = old;
    if (d > 0 && d < min_ideal_) {
        const auto ideal = 2 * static_cast<std::size_t>(static_cast<double>(old) * min_ideal_ / d);
        size = std::max<std::size_t>(std::min(2 * old, ideal), 1);
        if (size != old && on_change) on_change(true, d, size);
    } else if (d > 10 * min_ideal_ && old >= 2) {
        const auto ideal = static_cast<std::size_t>(static_cast<double>(old) * min_ideal_ / d);
        size = std::max<std::size_t>(2 * ideal, 1);
        if (size != old && on_change) on_change(false, d, size);
    }
    if (size != old) {
        effective_ = size;
        smoothed_ = 0.0;
    }
    return size;
}

void batch_sizer::completed(std::size_t size, double seconds) noexcept {
    if (fixed_ || size != effective_) return;
    smoothed_ = smoothed_ == 0.0 ? seconds : 0.8 * smoothed_ + 0.2 * seconds;
}

std::string short_format_time(double t) {
    char buf[32];
    if (t > 60)
        std::snprintf(buf, sizeof buf, "%4.1fmin", t / 60.0);
    else
        std::snprintf(buf, sizeof buf, " %5.1fs", t);
    return buf;
}

void progress_printer::start(int verbose, int n_jobs_requested, std::optional<std::size_t> total,
                             std::size_t pre_dispatch_amount, std::function<void(const progress_event&)> callback,
                             cojob::progress_bar bar, int workers) {
    *this = progress_printer{};
    verbose_ = verbose;
    n_jobs_requested_ = n_jobs_requested;
    total_ = total;
    pre_dispatch_amount_ = pre_dispatch_amount;
    callback_ = std::move(callback);
    workers_ = static_cast<std::size_t>(std::max(workers, 1));
    start_ = std::chrono::steady_clock::now();
    bar_.start(bar, verbose);
}

bar_state progress_printer::bar_now() const {
    bar_state s;
    s.completed = completed_;
    s.total = total_ ? total_ : (iterating_ ? std::nullopt : std::optional<std::size_t>(dispatched_tasks_));
    s.elapsed = elapsed();
    s.busy = std::min(dispatched_tasks_ - completed_, workers_);
    s.workers = workers_;
    return s;
}

void progress_printer::aborting() noexcept {
    aborting_ = true;
    try {
        bar_.abandon();
    } catch (...) {  // out of memory for the text: the bar stays as it was
    }
}

double progress_printer::elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void progress_printer::print(const std::string& message) {
    if (!verbose_) return;
    // The line goes where a bar was (this call's or another's); this call's bar follows it.
    progress_bar_line::print_above(verbose_ < 50 ? stderr : stdout,
                                   "[Parallel(n_jobs=" + std::to_string(n_jobs_requested_) + ")]: " + message);
    if (bar_.active() && !finished_printed_) bar_.update(bar_now(), true);
}

void progress_printer::retrying(std::size_t index, int attempt, int attempts, double delay, const std::string& why) {
    if (!verbose_) return;
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3g", delay);
    print("Retrying task #" + std::to_string(index) + " (attempt " + std::to_string(attempt) + " of " +
          std::to_string(attempts) + ") in " + seconds + " s: " + why);
}

void progress_printer::using_backend(const char* name, int workers) {
    print(std::string("Using backend ") + name + " with " + std::to_string(workers) + " concurrent workers.");
}

void progress_printer::batch_size_changed(bool too_fast, double duration, std::size_t size) {
    if (verbose_ < 10) return;
    // joblib formats the duration with Python's repr: the shortest text that reads back the same.
    char number[64];
    const auto end = std::to_chars(number, number + sizeof number, duration).ptr;
    print(std::string("Batch computation too ") + (too_fast ? "fast" : "slow") + " (" + std::string(number, end) +
          "s.) Setting batch_size=" + std::to_string(size) + ".");
}

void progress_printer::dispatched(std::size_t tasks) {
    ++dispatched_batches_;
    dispatched_tasks_ += tasks;
    if (bar_.active()) bar_.update(bar_now());  // no clock read per batch without a bar
}

void progress_printer::notify(bool finished) const {
    if (!callback_) return;
    progress_event e;
    e.completed = completed_;
    e.dispatched = dispatched_tasks_;
    e.total = total_ ? total_ : (iterating_ ? std::nullopt : std::optional<std::size_t>(dispatched_tasks_));
    e.elapsed = std::chrono::duration<double>(elapsed());
    e.finished = finished;
    callback_(e);
}

void progress_printer::completed(std::size_t tasks) {
    completed_ += tasks;
    print_progress();
    if (bar_.active() && !finished_printed_) bar_.update(bar_now());
}

void progress_printer::finish() {
    if (!finished_printed_) {
        iterating_ = false;
        print_progress();
    }
    if (bar_.active()) bar_.finish(bar_now());
}

namespace {
// joblib's _verbosity_filter: true when this dispatch count should stay silent.
bool verbosity_filter(std::size_t index, int verbose) {
    if (!verbose) return true;
    if (verbose > 10) return false;
    if (index == 0) return false;
    const double v = 0.5 * (11 - verbose) * (11 - verbose);
    const double scale = std::sqrt(static_cast<double>(index) / v);
    const double next_scale = std::sqrt(static_cast<double>(index + 1) / v);
    return static_cast<long>(next_scale) == static_cast<long>(scale);
}
}  // namespace

void progress_printer::print_progress() {
    const bool is_completed = completed_ == dispatched_tasks_ && !iterating_ && !aborting_;
    if (is_completed) finished_printed_ = true;
    notify(is_completed);
    if (!verbose_) return;
    const int width = total_ && *total_ > 0 ? static_cast<int>(std::floor(std::log10(static_cast<double>(*total_)))) + 1 : 3;
    const double el = elapsed();
    char buf[200];
    if (is_completed) {
        std::snprintf(buf, sizeof buf, "Done %*zu out of %*zu | elapsed: %s finished", width, completed_, width,
                      completed_, short_format_time(el).c_str());
    } else if (iterating_) {
        if (verbosity_filter(dispatched_batches_, verbose_)) return;
        if (total_) {
            std::snprintf(buf, sizeof buf, "Done %*zu out of %*zu | elapsed: %s", width, completed_, width, *total_,
                          short_format_time(el).c_str());
        } else {
            const std::string pad(static_cast<std::size_t>(7 + width - 5), ' ');
            std::snprintf(buf, sizeof buf, "Done %*zu tasks %s| elapsed: %s", width, completed_, pad.c_str(),
                          short_format_time(el).c_str());
        }
    } else {
        const std::size_t index = completed_;
        const std::size_t total_tasks = dispatched_tasks_;
        if (index != 0) {
            // A line as soon as dispatching ends, then one every total/verbose+1 completions.
            const long long cursor = static_cast<long long>(total_tasks) - static_cast<long long>(index) + 1 -
                                     static_cast<long long>(pre_dispatch_amount_);
            const long long frequency = static_cast<long long>(total_tasks) / verbose_ + 1;
            const bool is_last_item = index + 1 == total_tasks;
            // Python's % takes the sign of the divisor: a positive frequency gives a result >= 0.
            const long long rem = ((cursor % frequency) + frequency) % frequency;
            if (is_last_item || rem != 0) return;
        }
        const double remaining = el / static_cast<double>(std::max<std::size_t>(index, 1)) *
                                 static_cast<double>(dispatched_tasks_ - index);
        std::snprintf(buf, sizeof buf, "Done %*zu out of %*zu | elapsed: %s remaining: %s", width, index, width,
                      total_tasks, short_format_time(el).c_str(), short_format_time(remaining).c_str());
    }
    print(buf);
}

}  // namespace cojob::detail
