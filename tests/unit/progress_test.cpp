// verbose: joblib's progress lines, on the stream and in the format joblib prints them.
#include "kit.hpp"

#include <cojob/parallel.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <ranges>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

auto numbered_tasks(int n) {
    return std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed([](int k) { return k; })(i); });
}

/// What a call with `opts` over `run(par)` writes to stderr and stdout.
struct output {
    std::string err;
    std::string out;
};

template <class Run>
output capture(cojob::options opts, Run run) {
    cojob::parallel par{std::move(opts)};
    kit::stream_capture err(STDERR_FILENO);
    kit::stream_capture out(STDOUT_FILENO);
    run(par);
    output o;
    o.out = out.text();
    o.err = err.text();
    return o;
}

bool any_line_matches(const std::vector<std::string>& lines, const std::string& pattern) {
    const std::regex re(pattern);
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return std::regex_match(l, re); });
}

}  // namespace

TEST_CASE("the stream capture of the test kit sees what is written and restores the stream", "[kit][capture]") {
    std::string text;
    {
        kit::stream_capture c(STDERR_FILENO);
        std::fprintf(stderr, "captured line\n");
        text = c.text();
    }
    CHECK(text == "captured line\n");
}

TEST_CASE("verbose=0 prints nothing", "[progress][verbose]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        const output o = capture({.n_jobs = n_jobs, .verbose = 0}, [](cojob::parallel& par) { (void)par(numbered_tasks(10)); });
        CHECK(o.err.empty());
        CHECK(o.out.empty());
    }
}

TEST_CASE("verbose=5 on threads prints joblib's lines to stderr, ending with the finished line", "[progress][verbose]") {
    const output o =
        capture({.n_jobs = 2, .verbose = 5, .batch_size = 1}, [](cojob::parallel& par) { (void)par(numbered_tasks(10)); });
    CHECK(o.out.empty());
    const auto lines = kit::lines_of(o.err);
    REQUIRE(lines.size() >= 2);
    for (const auto& l : lines) CHECK_THAT(l, Catch::StartsWith("[Parallel(n_jobs=2)]: "));
    CHECK(lines.front() == "[Parallel(n_jobs=2)]: Using backend ThreadingBackend with 2 concurrent workers.");
    CHECK(std::regex_match(lines.back(),
                           std::regex(R"(\[Parallel\(n_jobs=2\)\]: Done 10 out of 10 \| elapsed: +[0-9]+\.[0-9]s finished)")));
    CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return l.find("finished") != std::string::npos; }) == 1);
}

TEST_CASE("verbose=50 prints to stdout instead of stderr", "[progress][verbose]") {
    const output o =
        capture({.n_jobs = 2, .verbose = 50, .batch_size = 1}, [](cojob::parallel& par) { (void)par(numbered_tasks(10)); });
    CHECK(o.err.empty());
    const auto lines = kit::lines_of(o.out);
    REQUIRE_FALSE(lines.empty());
    CHECK(lines.front() == "[Parallel(n_jobs=2)]: Using backend ThreadingBackend with 2 concurrent workers.");
    CHECK_THAT(lines.back(), Catch::StartsWith("[Parallel(n_jobs=2)]: Done 10 out of 10 | elapsed: "));
    CHECK_THAT(lines.back(), Catch::EndsWith("s finished"));
}

TEST_CASE("verbose=100 over an unsized input prints 'Done   1 tasks      | elapsed:' lines", "[progress][verbose]") {
    const output o = capture({.n_jobs = 2, .verbose = 100, .batch_size = 1}, [](cojob::parallel& par) {
        kit::input_generator gen(20, [](std::size_t i) {
            return cojob::delayed([](std::size_t k) {
                std::this_thread::sleep_for(1ms);
                return k;
            })(i);
        });
        (void)par(gen);
    });
    CHECK(o.err.empty());
    const auto lines = kit::lines_of(o.out);
    REQUIRE_FALSE(lines.empty());
    CHECK(any_line_matches(lines, R"(\[Parallel\(n_jobs=2\)\]: Done   1 tasks      \| elapsed: +[0-9]+\.[0-9]s)"));
    CHECK(std::regex_match(lines.back(),
                           std::regex(R"(\[Parallel\(n_jobs=2\)\]: Done  20 out of  20 \| elapsed: +[0-9]+\.[0-9]s finished)")));
}

TEST_CASE("verbose=100 over a sized input prints 'Done  1 out of 12' lines, then remaining times", "[progress][verbose]") {
    const output o =
        capture({.n_jobs = 2, .verbose = 100, .batch_size = 1}, [](cojob::parallel& par) { (void)par(numbered_tasks(12)); });
    const auto lines = kit::lines_of(o.out);
    REQUIRE_FALSE(lines.empty());
    CHECK(any_line_matches(lines, R"(\[Parallel\(n_jobs=2\)\]: Done  1 out of 12 \| elapsed: +[0-9]+\.[0-9]s)"));
    CHECK(any_line_matches(lines,
                           R"(\[Parallel\(n_jobs=2\)\]: Done +[0-9]+ out of 12 \| elapsed: +[0-9]+\.[0-9]s remaining: +[0-9]+\.[0-9]s)"));
    CHECK(lines.back().find("Done 12 out of 12 | elapsed: ") != std::string::npos);
}

TEST_CASE("n_jobs=1 prints no 'Using backend' line but does print the finished line", "[progress][verbose]") {
    const output o = capture({.n_jobs = 1, .verbose = 5}, [](cojob::parallel& par) { (void)par(numbered_tasks(10)); });
    CHECK(o.out.empty());
    const auto lines = kit::lines_of(o.err);
    REQUIRE_FALSE(lines.empty());
    CHECK(std::none_of(lines.begin(), lines.end(), [](const std::string& l) { return l.find("Using backend") != std::string::npos; }));
    for (const auto& l : lines) CHECK_THAT(l, Catch::StartsWith("[Parallel(n_jobs=1)]: "));
    CHECK(std::regex_match(lines.back(),
                           std::regex(R"(\[Parallel\(n_jobs=1\)\]: Done 10 out of 10 \| elapsed: +[0-9]+\.[0-9]s finished)")));
}

TEST_CASE("the prefix shows n_jobs as the user wrote it", "[progress][verbose]") {
    const output o = capture({.n_jobs = -1, .verbose = 5}, [](cojob::parallel& par) { (void)par(numbered_tasks(4)); });
    const auto lines = kit::lines_of(o.err);
    REQUIRE_FALSE(lines.empty());
    for (const auto& l : lines) CHECK_THAT(l, Catch::StartsWith("[Parallel(n_jobs=-1)]: "));
}

TEST_CASE("a failing call prints no finished line", "[progress][verbose][error]") {
    bool threw = false;
    const output o = capture({.n_jobs = 2, .verbose = 100, .batch_size = 1}, [&threw](cojob::parallel& par) {
        auto tasks = std::views::iota(0, 20) | std::views::transform([](int i) {
                         return cojob::delayed([](int k) {
                             if (k == 10) throw std::runtime_error("stop");
                             return k;
                         })(i);
                     });
        try {
            (void)par(tasks);
        } catch (const std::runtime_error&) {
            threw = true;
        }
    });
    CHECK(threw);
    CHECK(o.out.find("finished") == std::string::npos);
}
