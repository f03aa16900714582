// src/progress_bar.hpp - private: the one-line progress bar of `options::progress_bar`, drawn on
// standard error and redrawn in place (carriage return, erase to end of line).
#pragma once

#include <cojob/options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace cojob::detail {

/// What one drawing of the bar shows.
struct bar_state {
    std::size_t completed = 0;
    std::optional<std::size_t> total;  ///< unknown for an input that has not run out
    double elapsed = 0;                ///< seconds since the call started
    std::size_t busy = 0;              ///< workers running tasks of the call
    std::size_t workers = 1;
};

/// The bar's text for a terminal `width` columns wide (it never reaches the last column, so the
/// terminal does not wrap: the bar shrinks, then the text is cut): `45%|████▌     | 45/100 [0:03<0:04, 12.3 tasks/s, 2/2 busy]`, or
/// `45 tasks [0:03, 12.3 tasks/s, 2/2 busy]` while the total is unknown.
[[nodiscard]] std::string render_bar(const bar_state& s, int width);

/// The bar of one call: whether it is drawn, when it was drawn last, and its erasure.
///
/// Standard error has one line for bars: calls running at once share it, and the first call
/// whose bar is active holds it until it ends; the others draw none (their verbose lines still
/// print). Every write to the line, and every verbose line printed above it, goes under one lock,
/// so concurrent calls never tear each other's output.
class progress_bar_line {
public:
    progress_bar_line() = default;
    progress_bar_line(const progress_bar_line&) = default;
    progress_bar_line& operator=(const progress_bar_line&) = default;
    /// Lets go of the line (erasing the bar) if the call ended without finish or abandon.
    ~progress_bar_line();

    /// `automatic` draws when standard error is a terminal and verbose is 0; `on` always; either
    /// only while no other call's bar holds the line.
    void start(cojob::progress_bar mode, int verbose);
    [[nodiscard]] bool active() const noexcept { return active_; }
    /// Redraws with `s` if the last drawing is 100 ms old or more (or `force`).
    void update(const bar_state& s, bool force = false);
    /// Writes `line` and a newline to `out` where the bar is (any call's bar), erasing it
    /// first; the next update of the bar draws it again below.
    static void print_above(std::FILE* out, const std::string& line);
    /// Writes `bytes` (whole lines) to `out` the same way.
    static void write_above(std::FILE* out, std::string_view bytes) noexcept;
    /// The call succeeded: draws `s` a last time and ends the line.
    void finish(const bar_state& s);
    /// The call failed: erases the bar for good.
    void abandon();

private:
    void release() noexcept;

    bool active_ = false;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace cojob::detail
