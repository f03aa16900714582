// samples/robust_map.cpp - a long map that survives its failures and its own death: tasks on
// worker processes, each memoized with cojob::memory, run with keep_going, a deadline per task
// and retries. Kill it at any point and run it again: only the tasks with no stored result
// compute, the others load.
//
//   robust_map [cache directory]      (default: ./robust_map_cache)
#include <cojob/cojob.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

/// The work: a slow square root, which refuses negative inputs and, for one input, hangs.
double slow_root(int x) {
    if (x < 0) throw std::domain_error("no real root of " + std::to_string(x));
    std::this_thread::sleep_for(x == 77 ? 10s : 5ms);
    return std::sqrt(static_cast<double>(x));
}

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    const std::string location = argc > 1 ? argv[1] : "robust_map_cache";
    cojob::memory mem{location, {.verbose = 0}};
    const auto cached_root = mem.cache(slow_root);  // results survive this process

    cojob::parallel par{{.n_jobs = 2,
                         .backend = cojob::backend::processes,
                         .timeout = 1s,  // one task at most; the late one's worker is replaced
                         .retry = cojob::retry_policy{.attempts = 2, .backoff = 50ms}}};
    const auto tasks = std::views::iota(-2, 120) | std::views::transform([&](int x) {
                           return cojob::delayed(cached_root)(x);
                       });
    const auto outcomes = par(cojob::keep_going, tasks);

    int values = 0, failures = 0;
    for (const auto& o : outcomes) {
        if (o) {
            ++values;
            continue;
        }
        ++failures;
        const cojob::task_failure& f = o.failure();
        std::printf("task #%zu %s(%s): %s after %d attempt(s): %s\n", f.index, f.function.c_str(),
                    f.arguments.c_str(),
                    f.kind == cojob::failure_kind::timeout ? "timed out" : "failed", f.attempts, f.message.c_str());
    }
    std::printf("%d values, %d failures; results stored in %s\n", values, failures, location.c_str());
    // -2 and -1 throw (not retried: exceptions are not in the policy), 77 times out twice.
    return values == 119 && failures == 3 ? 0 : 1;
}
