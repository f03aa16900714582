// tests/unit/progress_bar_probe.cpp - a program that runs one call with a progress bar, for
// progress_bar_test.cpp to watch in a pseudo-terminal. Prints "after" once the call is over.
//
// Usage: progress_bar_probe SCENARIO MODE
//   SCENARIO  success (60 tasks of 5 ms), unknown (the same from a generator: length unknown),
//             error (task 20 throws), verbose (success with verbose=5), concurrent (success,
//             and once it has begun a second call beside it, 10 tasks with a bar and verbose=5,
//             on the same pool)
//   MODE      off, on or automatic
#include <cojob/cojob.hpp>

#include <atomic>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

int nap(int i, int fail_at) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (i == fail_at) throw std::runtime_error("task " + std::to_string(i) + " fails");
    return i;
}

cojob::generator<int> numbers(int n) {
    for (int i = 0; i < n; ++i) co_yield i;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const std::string scenario = argv[1];
    const std::string mode = argv[2];
    cojob::options o{.n_jobs = 2, .batch_size = 1};
    o.progress_bar = mode == "on" ? cojob::progress_bar::on
                     : mode == "automatic" ? cojob::progress_bar::automatic
                                           : cojob::progress_bar::off;
    if (scenario == "verbose") o.verbose = 5;
    const int fail_at = scenario == "error" ? 20 : -1;
    std::atomic<bool> begun{false};
    std::thread beside;
    cojob::pool workers{2};
    if (scenario == "concurrent") {
        o.progress = [&begun](const cojob::progress_event&) { begun = true; };
        beside = std::thread([&workers, &begun, bar = o.progress_bar] {
            for (int i = 0; i < 2000 && !begun; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
            cojob::parallel other{workers, {.verbose = 5, .batch_size = 1, .progress_bar = bar}};
            other(std::views::iota(0, 10) | std::views::transform([](int i) { return cojob::delayed(nap)(i, -1); }));
        });
    }
    std::optional<cojob::parallel> par;
    if (scenario == "concurrent")
        par.emplace(workers, o);
    else
        par.emplace(o);
    try {
        if (scenario == "unknown")
            (*par)(numbers(60) | std::views::transform([](int i) { return cojob::delayed(nap)(i, -1); }));
        else
            (*par)(std::views::iota(0, 60) | std::views::transform([fail_at](int i) { return cojob::delayed(nap)(i, fail_at); }));
    } catch (const std::runtime_error&) {
    }
    if (beside.joinable()) beside.join();
    std::printf("after\n");
    return 0;
}
