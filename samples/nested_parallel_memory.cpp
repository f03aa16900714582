// samples/nested_parallel_memory.cpp - the seed "Checkpoint using joblib.Memory and
// joblib.Parallel": a costly function (2 s, returns a column of a 1e4 x 4 array) cached with
// cojob::memory and called inside parallel tasks. Sequential ~8 s; first parallel round ~4 s
// (two workers, results stored); second round loads from the cache; a second function reuses
// the stored checkpoints; then the cache is cleared.
//
// Checks its own results and timings and exits nonzero on a mismatch.
// The cache lives in $COJOB_SAMPLE_CACHEDIR, default ./cachedir (removed at the end).
#include <cojob/cojob.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <random>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t rows = 10000;
constexpr std::size_t columns = 4;

/// Emulates a costly function by sleeping and returning a column (data is rows x columns,
/// row-major).
std::vector<double> costly_compute(const std::vector<double>& data, int column) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::vector<double> out(rows);
    for (std::size_t r = 0; r < rows; ++r) out[r] = data[r * columns + static_cast<std::size_t>(column)];
    return out;
}

double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }
double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

double data_processing_mean(const std::vector<double>& data, int column) { return mean(costly_compute(data, column)); }

std::string cache_location() {
    const char* env = std::getenv("COJOB_SAMPLE_CACHEDIR");
    return env && *env ? env : "./cachedir";
}

// At namespace scope, as in the seed: every process running this program (the user's, and
// process-backend workers later) builds the same store and the same cached function.
cojob::memory memory{cache_location(), {.verbose = 0}};
auto costly_compute_cached = memory.cache(costly_compute);

double data_processing_mean_using_cache(const std::vector<double>& data, int column) {
    return mean(costly_compute_cached(data, column));
}

double data_processing_max_using_cache(const std::vector<double>& data, int column) {
    return max_of(costly_compute_cached(data, column));
}

template <class F>
double timed(const char* title, F&& run) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("\n%s\nElapsed time for the entire processing: %.2f s", title, s);
    if (s < 1) std::printf(" (%.3f ms)", s * 1e3);
    std::printf("\n");
    std::fflush(stdout);
    return s;
}

int failures = 0;
void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what.c_str());
        ++failures;
    }
}

template <class F>
auto over_columns(F f, const std::vector<double>& data) {
    return std::views::iota(0, int(columns)) |
           std::views::transform([f, &data](int c) { return cojob::delayed(f)(std::cref(data), c); });
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    memory.clear();  // start from an empty cache, whatever an earlier run left

    std::mt19937 rng(42);
    std::normal_distribution<double> normal;
    std::vector<double> data(rows * columns);
    for (auto& x : data) x = normal(rng);

    std::vector<double> reference(columns), reference_max(columns);
    const double sequential = timed("Sequential processing", [&] {
        for (std::size_t c = 0; c < columns; ++c) reference[c] = data_processing_mean(data, int(c));
    });
    for (std::size_t c = 0; c < columns; ++c) {
        std::vector<double> col(rows);
        for (std::size_t r = 0; r < rows; ++r) col[r] = data[r * columns + c];
        reference_max[c] = max_of(col);
    }

    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
    std::vector<double> results;
    const auto mean_task = [](std::reference_wrapper<const std::vector<double>> d, int c) {
        return data_processing_mean_using_cache(d.get(), c);
    };
    const auto max_task = [](std::reference_wrapper<const std::vector<double>> d, int c) {
        return data_processing_max_using_cache(d.get(), c);
    };

    const double first = timed("First round - caching the data", [&] { results = par(over_columns(mean_task, data)); });
    expect(results == reference, "first round: the means differ from the sequential ones");

    const double second =
        timed("Second round - reloading from the cache", [&] { results = par(over_columns(mean_task, data)); });
    expect(results == reference, "second round: the means differ from the sequential ones");

    const double reuse =
        timed("Reusing intermediate checkpoints", [&] { results = par(over_columns(max_task, data)); });
    expect(results == reference_max, "reuse: the maxima differ from the direct ones");

    for (int c = 0; c < int(columns); ++c)
        expect(costly_compute_cached.check_call_in_cache(data, c), "column " + std::to_string(c) + " is not cached");
    memory.clear();
    for (int c = 0; c < int(columns); ++c)
        expect(!costly_compute_cached.check_call_in_cache(data, c), "column " + std::to_string(c) + " survived clear");
    std::error_code ec;
    std::filesystem::remove_all(cache_location(), ec);

    expect(sequential >= 7.9 && sequential < 12, "sequential processing should take about 8 s");
    expect(first >= 3.9 && first < 6.5, "the first parallel round should take about 4 s");
    expect(second < 0.5, "the second round should load from the cache");
    expect(reuse < 0.5, "the reuse round should load from the cache");
    std::printf("\n%s\n", failures ? "nested_parallel_memory: FAILED" : "nested_parallel_memory: all checks passed");
    return failures ? 1 : 0;
}
