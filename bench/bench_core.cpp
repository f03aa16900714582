// bench/bench_core.cpp - the core benchmarks: what `parallel` costs per tiny task on the
// sequential and threads backends, next to a plain loop doing the same work in the same run,
// and what one trivial task on a warm `parallel` costs per call.
//
// Prints a markdown table (median of repeated runs, ratio to the plain loop, target, verdict).
// Arguments, all optional, as key=value:
//   n=1000000        tiny tasks per call (plain loop, n_jobs=1, threads with batch auto, and
//                    the same warm with an on_task callback that counts the events)
//   n_batch1=100000  tasks per call with batch_size=1, and with a trace (trace_warm: the file,
//                    in the system's temporary directory, is removed at the end)
//   repeats=31       timed runs of each per-task case (round robin, after one warm-up run)
//   calls=2000       timed calls of the one-task cases (after calls/10 warm-up calls)
//   gap_calls=500    timed calls with a 1 ms idle gap before each
//   only=ID,ID       run only these cases (ids as in the tsv; the plain loop always runs)
//   tsv=FILE         also write `id<TAB>value<TAB>unit` lines (for run_side_by_side.sh)
#include <cojob/cojob.hpp>

#include "bench_kit.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// The work: a plain function (std::sqrt is overloaded, so it cannot be named directly). It is
// kept out of line so that the plain loop makes the same call a worker makes.
[[gnu::noinline]] double root(double x) { return std::sqrt(x); }

[[gnu::noinline]] int trivial(int x) { return x + 1; }

auto tiny_tasks(int n) {
    return std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed(root)(double(i)); });
}

// Results are checked, and folded into this, so no run can be optimized away.
volatile double checksum_sink = 0;

void check(const std::vector<double>& out, int n, const char* what) {
    if (out.size() != static_cast<std::size_t>(n)) throw std::runtime_error(std::string(what) + ": wrong result count");
    for (int i : {0, n / 3, n / 2, n - 1}) {
        if (out[static_cast<std::size_t>(i)] != std::sqrt(double(i)))
            throw std::runtime_error(std::string(what) + ": wrong result at " + std::to_string(i));
    }
    checksum_sink = checksum_sink + out.back();
}

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

struct stats {
    double median = 0, low = 0, high = 0;  // low/high: min and max, or p10 and p90 for many samples
};

stats summarize(std::vector<double> v, bool percentiles) {
    std::sort(v.begin(), v.end());
    const auto at = [&](double q) { return v[static_cast<std::size_t>(q * double(v.size() - 1) + 0.5)]; };
    const double median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    return percentiles ? stats{median, at(0.10), at(0.90)} : stats{median, v.front(), v.back()};
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    if (!(in >> a >> b >> c)) return "unknown";
    return a + " " + b + " " + c;
}

double cpus_obtainable() { return bench_kit::cpus_obtainable(cojob::cpu_count()); }

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) return line.substr(std::min(colon + 2, line.size()));
        }
    }
    return "unknown CPU";
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

// Two or three significant digits are all the noise of this machine allows.
std::string short_number(double v) { return fixed(v, v < 10 ? 2 : v < 100 ? 1 : 0); }

std::string count_text(long n) {
    long p = 1;
    int e = 0;
    while (p < n && e < 18) {
        p *= 10;
        ++e;
    }
    if (p == n && e >= 4) return "1e" + std::to_string(e);
    return std::to_string(n);
}

struct config {
    int n = 1'000'000;
    int n_batch1 = 100'000;
    int repeats = 31;
    int calls = 2000;
    int gap_calls = 500;
    std::string only;
    std::string tsv;

    [[nodiscard]] bool wanted(std::string_view id) const {
        if (only.empty() || id == "plain") return true;
        std::string_view rest = only;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            if (rest.substr(0, comma) == id) return true;
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        }
        return false;
    }
};

config parse(int argc, char** argv) {
    config c;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto eq = arg.find('=');
        if (eq == std::string_view::npos) throw std::invalid_argument("expected key=value, got " + std::string(arg));
        const std::string key(arg.substr(0, eq));
        const std::string value(arg.substr(eq + 1));
        const auto number = [&] {
            const int v = std::stoi(value);
            if (v < 1) throw std::invalid_argument(key + " must be >= 1");
            return v;
        };
        if (key == "n") c.n = number();
        else if (key == "n_batch1") c.n_batch1 = number();
        else if (key == "repeats") c.repeats = number();
        else if (key == "calls") c.calls = number();
        else if (key == "gap_calls") c.gap_calls = number();
        else if (key == "only") c.only = value;
        else if (key == "tsv") c.tsv = value;
        else throw std::invalid_argument("unknown argument " + key +
                                         " (known: n, n_batch1, repeats, calls, gap_calls, only, tsv)");
    }
    return c;
}

// One row of the table.
struct row {
    std::string id;       // stable key for the side-by-side join
    std::string name;
    long n = 0;           // tasks per call (per-task rows) or timed calls (per-call rows)
    bool per_task = true; // ns/task, else µs/call
    stats s;
    double target = 0;    // ns/task or µs/call; 0 = none
    double target_ratio = 0;  // target as a multiple of the plain loop; 0 = none

    row& per_call() { per_task = false; return *this; }
    row& at_most(double v) { target = v; return *this; }
    row& at_most_times_plain(double v) { target_ratio = v; return *this; }
    row& with(stats v) { s = v; return *this; }
};

row make_row(std::string id, std::string name, long n) {
    row r;
    r.id = std::move(id);
    r.name = std::move(name);
    r.n = n;
    return r;
}

class report {
public:
    void add(row r) { rows_.push_back(std::move(r)); }
    void baseline(double ns_per_task) { plain_ns_ = ns_per_task; }

    void print() const {
        std::printf("| case | N | median | ratio to plain loop | target | verdict | spread |\n");
        std::printf("|---|---|---|---|---|---|---|\n");
        for (const auto& r : rows_) {
            const std::string unit = r.per_task ? " ns/task" : " µs/call";
            std::string ratio = "—";
            if (r.per_task && plain_ns_ > 0) ratio = short_number(r.s.median / plain_ns_) + "×";
            std::string target = "—";
            std::string verdict = "—";
            if (r.target > 0) {
                target = "≤ " + short_number(r.target) + unit;
                verdict = r.s.median <= r.target ? "met" : "**missed**";
            } else if (r.target_ratio > 0) {
                target = "≤ " + short_number(r.target_ratio) + "× plain loop";
                verdict = r.s.median <= r.target_ratio * plain_ns_ ? "met" : "**missed**";
            }
            // Per-task figures of 10 µs and more read better in µs.
            const bool in_us = r.per_task && r.s.median >= 10'000;
            const double scale = in_us ? 1e-3 : 1.0;
            const std::string spread = short_number(r.s.low * scale) + "–" + short_number(r.s.high * scale) +
                                       (r.per_task ? " (min–max)" : " (p10–p90)");
            std::printf("| %s | %s | **%s**%s | %s | %s | %s | %s |\n", r.name.c_str(), count_text(r.n).c_str(),
                        short_number(r.s.median * scale).c_str(), in_us ? " µs/task" : unit.c_str(), ratio.c_str(),
                        target.c_str(), verdict.c_str(), spread.c_str());
        }
    }

    void write_tsv(const std::string& path) const {
        std::ofstream out(path);
        for (const auto& r : rows_)
            out << r.id << '\t' << fixed(r.s.median, 4) << '\t' << (r.per_task ? "ns/task" : "us/call") << '\n';
        if (!out) throw std::runtime_error("cannot write " + path);
    }

private:
    std::vector<row> rows_;
    double plain_ns_ = 0;
};

// --- per-task cases: each returns the seconds one whole call took -------------------------

double run_plain(int n) {
    const auto t0 = clock_type::now();
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) out.push_back(root(double(i)));
    const double s = seconds_since(t0);
    check(out, n, "plain loop");
    return s;
}

// Only the producer's share of the work: the tasks taken from the range into a vector, which is
// what the scheduler does on the caller's thread before any task runs.
double run_build(int n) {
    const auto t0 = clock_type::now();
    auto range = tiny_tasks(n);
    std::vector<std::ranges::range_value_t<decltype(range)>> tasks;
    tasks.reserve(static_cast<std::size_t>(n));
    for (auto&& t : range) tasks.push_back(t);
    const double s = seconds_since(t0);
    if (tasks.size() != static_cast<std::size_t>(n) || std::get<0>(tasks.back().arguments()) != double(n - 1))
        throw std::runtime_error("building tasks: wrong tasks");
    checksum_sink = checksum_sink + std::get<0>(tasks[static_cast<std::size_t>(n / 2)].arguments());
    return s;
}

double run_with(cojob::parallel& par, int n, const char* what) {
    const auto t0 = clock_type::now();
    std::vector<double> out = par(tiny_tasks(n));
    const double s = seconds_since(t0);
    check(out, n, what);
    return s;
}

double run_fresh(const cojob::options& o, int n, const char* what) {
    // Construction, the call and the destruction (thread joins) are all timed.
    const auto t0 = clock_type::now();
    std::vector<double> out;
    {
        cojob::parallel par{o};
        out = par(tiny_tasks(n));
    }
    const double s = seconds_since(t0);
    check(out, n, what);
    return s;
}

// --- per-call cases: one trivial task, each call timed on its own --------------------------

std::vector<double> time_single_calls(cojob::parallel& par, int calls, std::chrono::microseconds gap) {
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(calls));
    const std::array<int, 1> input{41};
    auto one_task = input | std::views::transform([](int x) { return cojob::delayed(trivial)(x); });
    const auto once = [&] {
        const auto t0 = clock_type::now();
        std::vector<int> r = par(one_task);
        const double s = seconds_since(t0);
        if (r.size() != 1 || r[0] != 42) throw std::runtime_error("one task: wrong result");
        return s;
    };
    for (int i = 0; i < std::max(calls / 10, 10); ++i) once();  // warm-up: workers started, caches hot
    for (int i = 0; i < calls; ++i) {
        if (gap.count() > 0) std::this_thread::sleep_for(gap);
        us.push_back(once() * 1e6);
    }
    return us;
}

std::vector<double> time_fresh_calls(const cojob::options& o, int calls) {
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(calls));
    const std::array<int, 1> input{41};
    auto one_task = input | std::views::transform([](int x) { return cojob::delayed(trivial)(x); });
    for (int i = 0; i < calls; ++i) {
        const auto t0 = clock_type::now();
        {
            cojob::parallel par{o};
            std::vector<int> r = par(one_task);
            if (r.size() != 1 || r[0] != 42) throw std::runtime_error("one task: wrong result");
        }
        us.push_back(seconds_since(t0) * 1e6);
    }
    return us;
}

int run(const config& c) {
    const std::string load_before = load_average();
    std::printf("## cojob core benchmark\n\n");
    std::printf("- machine: %d CPUs usable (cojob::cpu_count()), %u hardware threads, %s\n", cojob::cpu_count(),
                std::thread::hardware_concurrency(), cpu_model().c_str());
#if defined(__OPTIMIZE__) && defined(NDEBUG)
    const char* build = "optimized, NDEBUG";
#elif defined(__OPTIMIZE__)
    const char* build = "optimized, assertions on";
#else
    const char* build = "NOT optimized: figures are meaningless";
#endif
#if defined(__clang__)
    const char* compiler = "clang++";
#else
    const char* compiler = "g++";
#endif
    std::printf("- compiler: %s %s (%s)\n", compiler, __VERSION__, build);
    std::printf("- per-task cases: %d timed runs each, round robin, after one warm-up run; per-call cases: %d calls "
                "(1 ms gap: %d)\n",
                c.repeats, c.calls, c.gap_calls);
    std::printf("- load average before: %s\n", load_before.c_str());
    std::fflush(stdout);
    const double cpus_before = cpus_obtainable();

    const cojob::options seq_opts{.n_jobs = 1};
    const cojob::options threads_opts{.n_jobs = 2, .backend = cojob::backend::threads};
    const cojob::options batch1_opts{.n_jobs = 2, .backend = cojob::backend::threads, .batch_size = 1};
    cojob::parallel warm{threads_opts};
    cojob::parallel warm_batch1{batch1_opts};
    std::size_t events = 0;  // what an on_task callback that only counts costs per task
    cojob::parallel warm_events{{.n_jobs = 2, .backend = cojob::backend::threads,
                                 .on_task = [&events](const cojob::task_event&) { ++events; }}};
    // A trace writes ~250 bytes per task: it gets the smaller count, and goes away at the end.
    const std::string trace_path =
        (std::filesystem::temp_directory_path() / ("bench_core_trace_" + std::to_string(::getpid()) + ".json")).string();
    struct remove_at_end {
        const std::string& path;
        ~remove_at_end() { std::remove(path.c_str()); }
    } trace_cleanup{trace_path};
    std::optional<cojob::parallel> warm_trace;
    if (c.wanted("trace_warm")) warm_trace.emplace(cojob::options{.n_jobs = 2, .backend = cojob::backend::threads, .trace = trace_path});

    struct per_task_case {
        row r;
        std::function<double()> once;
        std::vector<double> samples{};
    };
    std::vector<per_task_case> cases;
    cases.push_back({make_row("plain", "plain loop (same calls, filling a vector)", c.n), [&] { return run_plain(c.n); }});
    cases.push_back({make_row("build", "building the tasks only (range into a vector, nothing run)", c.n),
                     [&] { return run_build(c.n); }});
    cases.push_back({make_row("seq", "n_jobs=1 (sequential), new parallel", c.n).at_most_times_plain(2.0),
                     [&] { return run_fresh(seq_opts, c.n, "n_jobs=1"); }});
    cases.push_back({make_row("auto", "n_jobs=2 threads, batch auto, new parallel", c.n).at_most(10.0),
                     [&] { return run_fresh(threads_opts, c.n, "threads, new"); }});
    cases.push_back({make_row("auto_warm", "n_jobs=2 threads, batch auto, warm parallel", c.n).at_most(10.0),
                     [&] { return run_with(warm, c.n, "threads, warm"); }});
    cases.push_back({make_row("batch1", "n_jobs=2 threads, batch_size=1, warm parallel", c.n_batch1),
                     [&] { return run_with(warm_batch1, c.n_batch1, "threads, batch_size=1"); }});
    cases.push_back({make_row("events_warm", "n_jobs=2 threads, batch auto, warm parallel, on_task counting", c.n),
                     [&] { return run_with(warm_events, c.n, "threads, on_task"); }});
    cases.push_back({make_row("trace_warm", "n_jobs=2 threads, batch auto, warm parallel, traced to a file", c.n_batch1),
                     [&] { return run_with(*warm_trace, c.n_batch1, "threads, traced"); }});

    std::erase_if(cases, [&](const per_task_case& k) { return !c.wanted(k.r.id); });
    for (auto& k : cases) k.once();  // warm-up: page faults, thread start, batch size tuned in `warm`
    for (int rep = 0; rep < c.repeats; ++rep)
        for (auto& k : cases) k.samples.push_back(k.once() * 1e9 / double(k.r.n));

    report out;
    for (auto& k : cases) {
        k.r.s = summarize(k.samples, false);
        if (k.r.id == "plain") out.baseline(k.r.s.median);
        out.add(std::move(k.r));
    }

    const double cpus_between = cpus_obtainable();
    if (c.wanted("call_seq")) {  // the fixed cost of a call, without any thread hand-off
        cojob::parallel seq{seq_opts};
        const auto us = time_single_calls(seq, c.calls, std::chrono::microseconds(0));
        out.add(make_row("call_seq", "one task, n_jobs=1, warm parallel, back to back", c.calls)
                    .per_call()
                    .with(summarize(us, true)));
    }
    if (c.wanted("call_warm")) {
        const auto us = time_single_calls(warm, c.calls, std::chrono::microseconds(0));
        out.add(make_row("call_warm", "one task, warm parallel, back to back", c.calls)
                    .per_call()
                    .with(summarize(us, true))
                    .at_most(20.0));
    }
    if (c.wanted("call_gap")) {
        const auto us = time_single_calls(warm, c.gap_calls, std::chrono::milliseconds(1));
        out.add(make_row("call_gap", "one task, warm parallel, 1 ms idle gap before each", c.gap_calls)
                    .per_call()
                    .with(summarize(us, true)));
    }
    if (c.wanted("call_new")) {
        const int calls = std::max(c.calls / 10, 20);
        const auto us = time_fresh_calls(threads_opts, calls);
        out.add(make_row("call_new", "one task, new parallel each call (threads started and joined)", calls)
                    .per_call()
                    .with(summarize(us, true)));
    }

    const double cpus_after = cpus_obtainable();
    std::printf("- load average after: %s\n", load_average().c_str());
    std::printf("- CPUs this process could get (%d threads spinning for 100 ms): %.2f before, %.2f between the per-task "
                "and the per-call cases, %.2f after\n\n",
                cojob::cpu_count(), cpus_before, cpus_between, cpus_after);
    if (std::min({cpus_before, cpus_between, cpus_after}) < cojob::cpu_count() - 0.1)
        std::printf("**Other processes held CPUs during this run: the threaded figures below are those of a shared "
                    "machine, not of %d free CPUs.**\n\n",
                    cojob::cpu_count());
    out.print();
    if (!c.tsv.empty()) out.write_tsv(c.tsv);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_core: %s\n", e.what());
        return 1;
    }
}
