// tests/process/output_relay_test.cpp - what worker processes write to standard output and error
// reaches this process's own, whole lines at a time, and a worker that dies tells its last lines
// of standard error.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "kit.hpp"
#include "process/worker_output.hpp"

#include <unistd.h>

#include <cstdio>
#include <ranges>
#include <regex>
#include <string>
#include <vector>

// Outside the anonymous namespace: tasks name their function in another process.
namespace output_relay {
/// Prints "out <i>" to standard output and "err <i>" to standard error, as two writes each
/// (the first without its newline), and returns i.
int print_both(int i) {
    std::printf("out ");
    std::printf("%d\n", i);
    std::fprintf(stderr, "err ");
    std::fprintf(stderr, "%d\n", i);
    return i;
}
/// Writes `lines` numbered lines to standard error, then "last words" without a newline, and
/// exits with code 7.
int say_then_exit(int lines) {
    for (int k = 0; k < lines; ++k) std::fprintf(stderr, "line %d\n", k);
    const char tail[] = "last words";
    (void)::write(STDERR_FILENO, tail, sizeof tail - 1);
    ::_exit(7);
}
}  // namespace output_relay

namespace {

using cojob::backend::processes;

/// How many lines of `text` are exactly `line`.
int count_line(const std::string& text, const std::string& line) {
    int n = 0;
    for (const auto& l : kit::lines_of(text)) n += l == line;
    return n;
}

}  // namespace

TEST_CASE("processes: what tasks print reaches this process's stdout and stderr in whole lines", "[process][output]") {
    const int fds = children::open_descriptors();
    std::string out, err;
    {
        kit::stream_capture capture_out(STDOUT_FILENO);
        kit::stream_capture capture_err(STDERR_FILENO);
        // The pool starts inside the captures' reach or not: the relay writes where this
        // process's descriptors point when the lines come.
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 3}};
        const std::vector<int> r =
            par(std::views::iota(0, 40) | std::views::transform([](int i) { return cojob::delayed(output_relay::print_both)(i); }));
        REQUIRE(r.size() == 40);
        err = capture_err.text();
        out = capture_out.text();
    }
    for (int i = 0; i < 40; ++i) {
        INFO("task " << i);
        CHECK(count_line(out, "out " + std::to_string(i)) == 1);
        CHECK(count_line(err, "err " + std::to_string(i)) == 1);
    }
    CHECK(kit::lines_of(out).size() == 40);  // nothing torn, nothing else
    CHECK(children::all() == 0);
    CHECK(children::open_descriptors() == fds);  // the relay's pipes went with the pool
}

TEST_CASE("processes: a worker that dies tells its last lines of standard error", "[process][output][crash]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};  // one job would run in this process
    std::string err, what;
    {
        kit::stream_capture capture_err(STDERR_FILENO);
        try {
            (void)par(std::views::single(cojob::delayed(output_relay::say_then_exit)(25)));
        } catch (const cojob::worker_died& e) {
            what = e.what();
        }
        err = capture_err.text();
    }
    CHECK_THAT(what, Catch::Contains("exited with code 7"));
    CHECK_THAT(what, Catch::Contains("its last line of standard error: \"last words\""));
    REQUIRE(par.last_failure().has_value());
    const std::string tail = par.last_failure()->stderr_tail;
    const auto lines = kit::lines_of(tail + "\n");
    REQUIRE(lines.size() == cojob::detail::process::stderr_tail_lines);
    CHECK(lines.front() == "line 6");
    CHECK(lines[lines.size() - 2] == "line 24");
    CHECK(lines.back() == "last words");
    CHECK_THAT(par.last_failure()->report(), Catch::Contains("Its last lines of standard error:\nline 6\n"));
    // Relayed too, the unfinished line with a newline of its own.
    CHECK(count_line(err, "line 0") == 1);
    CHECK(count_line(err, "last words") == 1);
    // The pool goes on with a new worker.
    std::vector<int> again;
    {
        kit::stream_capture quiet_out(STDOUT_FILENO), quiet_err(STDERR_FILENO);
        again = par(std::views::iota(0, 3) | std::views::transform([](int i) { return cojob::delayed(output_relay::print_both)(i); }));
    }
    CHECK(again == std::vector<int>{0, 1, 2});
}

TEST_CASE("worker_output: the tail keeps the last whole lines within its bytes", "[process][output]") {
    using cojob::detail::process::tail_of;
    CHECK(tail_of("").empty());
    CHECK(tail_of("one\ntwo\n") == "one\ntwo");
    CHECK(tail_of("no newline") == "no newline");
    std::string many;
    for (int k = 0; k < 30; ++k) many += "l" + std::to_string(k) + "\n";
    CHECK(tail_of(many).rfind("l10\n", 0) == 0);  // lines 10 to 29
    const std::string huge = std::string(10000, 'x') + "\nend\n";
    CHECK(tail_of(huge) == "end");  // the long line is cut away, not half kept
    const std::string one_long = std::string(10000, 'y');
    CHECK(tail_of(one_long).size() == cojob::detail::process::stderr_tail_bytes);
}
