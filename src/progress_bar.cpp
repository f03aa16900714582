// src/progress_bar.cpp - the progress bar: its text, and drawing it in place on standard error.
#include "progress_bar.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

namespace cojob::detail {

namespace {

constexpr auto redraw_every = std::chrono::milliseconds(100);

/// "m:ss", or "h:mm:ss" from an hour.
std::string clock_text(double seconds) {
    const auto s = static_cast<long long>(std::max(0.0, seconds));
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
}

std::string rate_text(double per_second) {
    char buf[32];
    if (per_second >= 100)
        std::snprintf(buf, sizeof buf, "%.0f", per_second);
    else
        std::snprintf(buf, sizeof buf, "%.1f", per_second);
    return buf;
}

/// `cells` columns of the bar, `fraction` of them filled, in eighths of a cell.
std::string bar_cells(double fraction, int cells) {
    static const char* const partial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    const long eighths = std::lround(std::clamp(fraction, 0.0, 1.0) * cells * 8);
    const long full = eighths / 8;
    std::string out;
    for (long i = 0; i < full; ++i) out += "█";
    long used = full;
    if (full < cells && eighths % 8 != 0) {
        out += partial[eighths % 8];
        ++used;
    }
    out.append(static_cast<std::size_t>(cells - used), ' ');
    return out;
}

int terminal_width() {
    winsize w{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
    return 80;
}

}  // namespace

std::string render_bar(const bar_state& s, int width) {
    const double rate = s.elapsed > 0 ? static_cast<double>(s.completed) / s.elapsed : 0.0;
    const std::string tail =
        ", " + rate_text(rate) + " tasks/s, " + std::to_string(s.busy) + "/" + std::to_string(s.workers) + " busy]";
    if (!s.total) {
        std::string line = std::to_string(s.completed) + " tasks [" + clock_text(s.elapsed) + tail;
        line.resize(std::min(line.size(), static_cast<std::size_t>(std::max(width - 1, 0))));
        return line;
    }
    const std::size_t total = *s.total;
    const double fraction = total ? static_cast<double>(s.completed) / static_cast<double>(total) : 1.0;
    std::string eta = "?";
    if (s.completed >= total)
        eta = "0:00";
    else if (rate > 0)
        eta = clock_text(static_cast<double>(total - s.completed) / rate);
    char percent[16];
    std::snprintf(percent, sizeof percent, "%3d%%|", static_cast<int>(std::floor(fraction * 100)));
    const std::string right =
        "| " + std::to_string(s.completed) + "/" + std::to_string(total) + " [" + clock_text(s.elapsed) + "<" + eta + tail;
    // Every character of the text is one column; the last column stays free.
    const int cells = std::clamp(width - 1 - static_cast<int>(std::string(percent).size() + right.size()), 0, 60);
    if (cells > 0) return percent + bar_cells(fraction, cells) + right;
    std::string line = percent + right;  // no room for a bar: cut the text to the width
    line.resize(std::min(line.size(), static_cast<std::size_t>(std::max(width - 1, 0))));
    return line;
}

namespace {

/// Standard error's bar line, shared by every call: who holds it, and whether a bar is on it.
struct bar_terminal {
    std::mutex mutex;
    const progress_bar_line* owner = nullptr;
    bool drawn = false;
};

bar_terminal& terminal() {
    static bar_terminal t;
    return t;
}

/// Writes `text` to standard error after what the program printed to standard output.
void write_err(const std::string& text) {
    std::fflush(stdout);
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
}

constexpr const char* erase_line = "\r\033[K";

}  // namespace

progress_bar_line::~progress_bar_line() { release(); }

void progress_bar_line::release() noexcept {
    auto& t = terminal();
    std::lock_guard lock(t.mutex);
    if (t.owner != this) return;
    t.owner = nullptr;
    if (!t.drawn) return;
    t.drawn = false;
    try {
        write_err(erase_line);
    } catch (...) {
    }
}

void progress_bar_line::start(cojob::progress_bar mode, int verbose) {
    release();
    *this = progress_bar_line{};
    if (mode == cojob::progress_bar::on)
        active_ = true;
    else if (mode == cojob::progress_bar::automatic)
        active_ = verbose == 0 && ::isatty(STDERR_FILENO) == 1;
    if (!active_) return;
    auto& t = terminal();
    std::lock_guard lock(t.mutex);
    if (t.owner)
        active_ = false;  // another call's bar is on the line
    else
        t.owner = this;
}

void progress_bar_line::update(const bar_state& s, bool force) {
    if (!active_) return;
    const auto now = std::chrono::steady_clock::now();
    auto& t = terminal();
    std::lock_guard lock(t.mutex);
    if (!force && t.drawn && now - last_draw_ < redraw_every) return;
    last_draw_ = now;
    t.drawn = true;
    write_err("\r" + render_bar(s, terminal_width()) + "\033[K");
}

void progress_bar_line::print_above(std::FILE* out, const std::string& line) { write_above(out, line + "\n"); }

void progress_bar_line::write_above(std::FILE* out, std::string_view bytes) noexcept {
    auto& t = terminal();
    std::lock_guard lock(t.mutex);
    if (t.drawn) {
        t.drawn = false;
        write_err(erase_line);
    }
    std::fwrite(bytes.data(), 1, bytes.size(), out);
    std::fflush(out);
}

void progress_bar_line::finish(const bar_state& s) {
    if (!active_) return;
    const std::string text = "\r" + render_bar(s, terminal_width()) + "\033[K\n";
    {
        auto& t = terminal();
        std::lock_guard lock(t.mutex);
        t.drawn = false;
        write_err(text);
    }
    active_ = false;
    release();
}

void progress_bar_line::abandon() {
    active_ = false;
    release();
}

}  // namespace cojob::detail
