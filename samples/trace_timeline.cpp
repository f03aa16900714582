// samples/trace_timeline.cpp - the seed's generator example, traced: tasks that sleep 0.1 s and
// return an array (i * ones), two worker processes, results streamed to a consumer that sums
// them. `options::trace` writes the timeline; `cojob-trace-svg` (tools/) draws it, and
// docs/observability.md shows the drawing. Exits nonzero when the sum is wrong.
//
// Usage: trace_timeline TRACE.json [--tasks N] [--values N] [--backend processes|threads]
#include <cojob/cojob.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

std::vector<double> ones_times(int i, std::size_t values) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return std::vector<double>(values, static_cast<double>(i));
}

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: trace_timeline TRACE.json [--tasks N] [--values N] [--backend processes|threads]\n");
        return 2;
    }
    int tasks = 24;
    std::size_t values = 200'000;  // 1.6 MB per result
    auto backend = cojob::backend::processes;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--tasks") tasks = std::atoi(value.c_str());
        else if (flag == "--values") values = std::strtoul(value.c_str(), nullptr, 10);
        else if (flag == "--backend") backend = value == "threads" ? cojob::backend::threads : cojob::backend::processes;
    }
    cojob::parallel par{{.n_jobs = 2, .backend = backend, .return_as = cojob::return_as::generator, .trace = argv[1]}};
    double total = 0;
    for (const std::vector<double>& r : par.stream(std::views::iota(0, tasks) | std::views::transform([values](int i) {
                                                       return cojob::delayed(ones_times)(i, values);
                                                   })))
        total += std::accumulate(r.begin(), r.end(), 0.0);
    const double expected = static_cast<double>(values) * tasks * (tasks - 1) / 2;
    std::printf("sum %.0f (expected %.0f); trace in %s\n", total, expected, argv[1]);
    return total == expected ? 0 : 1;
}
