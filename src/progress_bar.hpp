// src/progress_bar.hpp - private: the one-line progress bar of `options::progress_bar`, drawn on
// standard error and redrawn in place (carriage return, erase to end of line).
#pragma once

#include <cojob/options.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

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
class progress_bar_line {
public:
    /// `automatic` draws when standard error is a terminal and verbose is 0; `on` always.
    void start(cojob::progress_bar mode, int verbose);
    [[nodiscard]] bool active() const noexcept { return active_; }
    /// Redraws with `s` if the last drawing is 100 ms old or more (or `force`).
    void update(const bar_state& s, bool force = false);
    /// Erases the bar from its line, before another line is written to the terminal; the next
    /// update draws it again.
    void erase();
    /// The call succeeded: draws `s` a last time and ends the line.
    void finish(const bar_state& s);
    /// The call failed: erases the bar for good.
    void abandon();

private:
    void write(const std::string& text) const;

    bool active_ = false;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace cojob::detail
