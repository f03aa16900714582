// tests/unit/progress_bar_test.cpp - options::progress_bar: the bar's text, and what a terminal
// shows when progress_bar_probe runs in a real pseudo-terminal (`script`), read back through a
// small screen model (carriage return, erase to end of line, newline).
#include "progress_bar.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

namespace {

/// What a terminal shows after `bytes`: one string per line, trailing empty lines dropped.
std::vector<std::string> screen(const std::string& bytes) {
    std::vector<std::string> lines(1);
    std::size_t col = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const char c = bytes[i];
        if (c == '\r') {
            col = 0;
        } else if (c == '\n') {
            lines.emplace_back();
            col = 0;
        } else if (c == '\033' && bytes.compare(i, 3, "\033[K") == 0) {
            lines.back().resize(std::min(col, lines.back().size()));
            i += 2;
        } else {
            auto& line = lines.back();
            if (col < line.size())
                line[col] = c;
            else
                line.push_back(c);
            ++col;  // counts bytes: every drawing starts at column 0, so multi-byte cells line up
        }
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    return lines;
}

struct run_result {
    std::string output;
    double seconds = 0;
};

/// Runs `command` through the shell with a 60 s limit; its standard output (and what it merges).
run_result run(const std::string& command) {
    const auto t0 = std::chrono::steady_clock::now();
    FILE* p = ::popen(("timeout 60 " + command).c_str(), "r");
    REQUIRE(p);
    run_result r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
    const int status = ::pclose(p);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return r;
}

/// The probe in a pseudo-terminal: what the terminal received.
run_result in_terminal(const std::string& scenario, const std::string& mode) {
    return run("script -qec '" COJOB_BAR_PROBE " " + scenario + " " + mode + "' /dev/null");
}

std::size_t drawings(const std::string& bytes) {
    std::size_t n = 0;
    for (auto at = bytes.find("tasks/s"); at != std::string::npos; at = bytes.find("tasks/s", at + 1)) ++n;
    return n;
}

const std::regex final_bar(R"(100%\|(█)+\| 60/60 \[\d+:\d\d<0:00, [0-9.]+ tasks/s, [0-2]/2 busy\])");

}  // namespace

TEST_CASE("progress bar: the text for a known and an unknown total", "[progress_bar]") {
    using cojob::detail::bar_state;
    const auto half = cojob::detail::render_bar(bar_state{50, 100, 5.0, 2, 2}, 80);
    CHECK(half.rfind(" 50%|", 0) == 0);
    CHECK(half.find("| 50/100 [0:05<0:05, 10.0 tasks/s, 2/2 busy]") != std::string::npos);
    const auto unknown = cojob::detail::render_bar(bar_state{7, std::nullopt, 70.0, 1, 4}, 80);
    CHECK(unknown == "7 tasks [1:10, 0.1 tasks/s, 1/4 busy]");
    // A narrow terminal gets a shorter bar, and past that a cut line, never a wrapped one.
    const auto wide = cojob::detail::render_bar(bar_state{100, 100, 3661.0, 0, 2}, 120);
    CHECK(wide.find("| 100/100 [1:01:01<0:00, 0.0 tasks/s, 0/2 busy]") != std::string::npos);
    CHECK(cojob::detail::render_bar(bar_state{100, 100, 3661.0, 0, 2}, 40) == "100%|| 100/100 [1:01:01<0:00, 0.0 tasks");
}

TEST_CASE("progress bar: in a terminal, redrawn in place, left on its own line at the end", "[progress_bar]") {
    const auto r = in_terminal("success", "automatic");
    const auto lines = screen(r.output);
    REQUIRE(lines.size() == 2);
    CHECK(std::regex_match(lines[0], final_bar));
    CHECK(lines[1] == "after");
    // Redrawn as it went, at most 10 times a second (plus the first and the final drawings).
    CHECK(drawings(r.output) >= 2);
    CHECK(drawings(r.output) <= 2 + static_cast<std::size_t>(10 * r.seconds) + 1);
}

TEST_CASE("progress bar: an input of unknown length shows the count and the rate", "[progress_bar]") {
    const auto lines = screen(in_terminal("unknown", "automatic").output);
    REQUIRE(lines.size() == 2);
    // The input ran out before the end, so the last drawing knows the total.
    CHECK(std::regex_match(lines[0], final_bar));
    CHECK(lines[1] == "after");
}

TEST_CASE("progress bar: a failing call erases it", "[progress_bar]") {
    const auto r = in_terminal("error", "automatic");
    CHECK(drawings(r.output) >= 1);
    CHECK(screen(r.output) == std::vector<std::string>{"after"});
}

TEST_CASE("progress bar: verbose lines go above it, whole", "[progress_bar]") {
    const auto lines = screen(in_terminal("verbose", "on").output);
    REQUIRE(lines.size() >= 4);
    for (std::size_t i = 0; i + 2 < lines.size(); ++i) {
        INFO(lines[i]);
        CHECK(std::regex_match(lines[i], std::regex(R"(\[Parallel\(n_jobs=2\)\]: (Using backend .*|Done .*))")));
    }
    CHECK(std::regex_match(lines[lines.size() - 2], final_bar));
    CHECK(lines.back() == "after");
}

TEST_CASE("progress bar: nothing when standard error is not a terminal, unless forced", "[progress_bar]") {
    CHECK(run(COJOB_BAR_PROBE " success automatic 2>&1").output == "after\n");
    CHECK(run(COJOB_BAR_PROBE " success off 2>&1").output == "after\n");
    const auto forced = run(COJOB_BAR_PROBE " success on 2>&1").output;
    CHECK(drawings(forced) >= 1);
    CHECK(screen(forced).back() == "after");
    // In a terminal, automatic stays off when verbose lines are asked for.
    CHECK(drawings(in_terminal("verbose", "automatic").output) == 0);
}

TEST_CASE("progress bar: two calls at once share the line: one bar, the other's verbose lines above it",
          "[progress_bar][concurrent]") {
    const auto lines = screen(in_terminal("concurrent", "on").output);
    REQUIRE(lines.size() >= 3);
    CHECK(lines.back() == "after");
    int bars = 0;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        INFO(lines[i]);
        if (std::regex_match(lines[i], final_bar))
            ++bars;
        else
            CHECK(std::regex_match(lines[i], std::regex(R"(\[Parallel\(n_jobs=2\)\]: (Using backend .*|Done .*))")));
    }
    CHECK(bars == 1);  // the first call's; the second drew none
}
