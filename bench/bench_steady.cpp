// bench/bench_steady.cpp - steady speed: each figure next to the machine's floor for the same
// work, measured in the same run, alternating the two, so that a ratio means the same on any
// machine. With busy=on (the default runs both) a CPU-bound neighbour process, started and
// stopped by this program, shares the machine while the one-task cases run.
//
// Figures (median of `runs` alternated runs unless said otherwise):
//   threads   1e6 tiny tasks, n_jobs=2 threads, warm   / two plain threads filling fresh storage
//   jitter    max / median over `calls` consecutive calls of one new object (first included):
//             the median of `series` objects, and the worst; and the same for each threads
//             floor, run between those calls: the machine's own jitter on that work, at the
//             same moments
//   seq       1e6 tiny tasks, n_jobs=1, new object      / a plain loop filling a fresh vector
//   proc_call one trivial task, processes, warm pool    / a one-byte pipe round trip between two
//             processes (quiet, and beside the busy neighbour)
// Arguments, key=value: n=1000000 runs=9 calls=25 series=7 one_task=2000 busy=both|on|off tsv=FILE
#include <cojob/cojob.hpp>

#include "bench_kit.hpp"
#include "steady_work.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace steady;

// --- the busy neighbour -------------------------------------------------------------------------

// A child process that spins on one CPU until this object goes.
class busy_neighbour {
public:
    busy_neighbour() {
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            // It goes with this program, however that ends (a benchmark killed by its timeout).
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(0);
            volatile unsigned long spin = 0;
            for (;;) spin = spin + 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it settle on a CPU
    }
    ~busy_neighbour() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    busy_neighbour(const busy_neighbour&) = delete;
    busy_neighbour& operator=(const busy_neighbour&) = delete;

private:
    pid_t pid_ = -1;
};

// --- cases --------------------------------------------------------------------------------------

double cojob_call(cojob::parallel& par, int n, const char* what) {
    const auto t0 = clock_type::now();
    std::vector<double> out = par(tiny(n));
    const double s = seconds_since(t0);
    expect_roots(out.data(), out.size(), n, what);
    return s * 1e9 / n;
}

double fresh_sequential(int n) {
    const auto t0 = clock_type::now();
    std::vector<double> out;
    {
        cojob::parallel par{{.n_jobs = 1}};
        out = par(tiny(n));
    }
    const double s = seconds_since(t0);
    expect_roots(out.data(), out.size(), n, "n_jobs=1");
    return s * 1e9 / n;
}

std::vector<double> one_task_calls(cojob::parallel& par, int count) {
    const auto one = std::views::single(0) | std::views::transform([](int x) { return cojob::delayed(steady::next)(x); });
    std::vector<double> us;
    for (int i = 0; i < count + count / 10; ++i) {
        const auto t0 = clock_type::now();
        const std::vector<int> r = par(one);
        const double s = seconds_since(t0);
        if (r.size() != 1 || r[0] != 1) throw std::runtime_error("one task: wrong result");
        if (i >= count / 10) us.push_back(s * 1e6);  // the first tenth warms up
    }
    return us;
}

struct figure {
    std::string id, name;
    double value = 0, floor = 0;  // the ratio is value / floor
    std::string unit;
    double target_ratio = 0;      // 0: none
    double target_value = 0;      // 0: none (an absolute bound the issue also names)
};

struct config {
    int n = 1'000'000, runs = 9, calls = 25, series = 7, one_task = 2000;
    std::string busy = "both", tsv;
};

config parse(int argc, char** argv) {
    config c;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto eq = arg.find('=');
        if (eq == std::string::npos) throw std::invalid_argument("expected key=value, got " + arg);
        const std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
        if (key == "busy") {
            if (value != "both" && value != "on" && value != "off") throw std::invalid_argument("busy: both, on or off");
            c.busy = value;
        } else if (key == "tsv") {
            c.tsv = value;
        } else {
            const int v = std::stoi(value);
            if (v < 1) throw std::invalid_argument(key + " must be >= 1");
            if (key == "n") c.n = v;
            else if (key == "runs") c.runs = v;
            else if (key == "calls") c.calls = v;
            else if (key == "series") c.series = v;
            else if (key == "one_task") c.one_task = v;
            else throw std::invalid_argument("unknown argument " + key + " (known: n, runs, calls, series, one_task, busy, tsv)");
        }
    }
    return c;
}

// Runs each of `cases` in turn, `runs` rounds (after one warm-up round); the median of each.
std::vector<double> alternated(int runs, const std::vector<std::function<double()>>& cases) {
    std::vector<std::vector<double>> values(cases.size());
    for (int r = -1; r < runs; ++r)
        for (std::size_t i = 0; i < cases.size(); ++i) {
            const double v = cases[i]();
            if (r >= 0) values[i].push_back(v);
        }
    std::vector<double> medians;
    for (const auto& v : values) medians.push_back(median(v));
    return medians;
}

/// The slowest of a series' runs and the series' median.
struct spread {
    double slowest = 0, median = 1;
    [[nodiscard]] double ratio() const { return slowest / median; }
};

/// One case's series, ordered by their ratio.
struct spreads {
    std::vector<spread> by_ratio;
    /// The series at the middle (the upper one of the two for an even count), and the worst.
    [[nodiscard]] const spread& middle() const { return by_ratio[by_ratio.size() / 2]; }
    [[nodiscard]] const spread& worst() const { return by_ratio.back(); }
};

/// `count` series of `calls` steps; each step runs every case once, in turn, so that all see the
/// same moments of the machine (a burst of another tenant, the first page faults of fresh
/// memory). `make` gives a series its cases. Each series' ratios go to stderr as it ends.
std::vector<spreads> series_spreads(int count, int calls,
                                    const std::function<std::vector<std::function<double()>>()>& make) {
    std::vector<spreads> all;
    for (int series = 0; series < count; ++series) {
        const std::vector<std::function<double()>> cases = make();
        std::vector<std::vector<double>> v(cases.size());
        for (int i = 0; i < calls; ++i)
            for (std::size_t k = 0; k < cases.size(); ++k) v[k].push_back(cases[k]());
        all.resize(cases.size());
        std::fprintf(stderr, "series %d, slowest / median:", series + 1);
        for (std::size_t k = 0; k < cases.size(); ++k) {
            all[k].by_ratio.push_back({*std::max_element(v[k].begin(), v[k].end()), median(v[k])});
            std::fprintf(stderr, " %.2f", all[k].by_ratio.back().ratio());
        }
        std::fprintf(stderr, "\n");
    }
    for (auto& s : all)
        std::sort(s.by_ratio.begin(), s.by_ratio.end(), [](const spread& a, const spread& b) { return a.ratio() < b.ratio(); });
    return all;
}

void per_task_figures(const config& c, std::vector<figure>& out) {
    cojob::parallel warm{{.n_jobs = 2, .backend = cojob::backend::threads}};
    const auto medians = alternated(c.runs, {[&] { return cojob_call(warm, c.n, "threads"); },
                                             [&] { return plain_threads(c.n); }, [&] { return handoff_threads(c.n); }});
    const double threads = medians[0], two_threads = medians[1], handoff = medians[2];
    out.push_back({"threads", "1e6 tiny tasks, n_jobs=2 threads, warm (floor: two plain threads, fresh storage)",
                   threads, two_threads, "ns/task", 2.0, 0});
    out.push_back({"threads_handoff",
                   "the same (floor: the caller's thread reads the range into batches two plain threads run)",
                   threads, handoff, "ns/task", 0, 0});

    // A new object per series; between its calls the floors run on the same data, for the
    // machine's own jitter on that work at the same moments.
    const auto spread_of = series_spreads(c.series, c.calls, [&c] {
        auto fresh = std::make_shared<cojob::parallel>(cojob::options{.n_jobs = 2, .backend = cojob::backend::threads});
        return std::vector<std::function<double()>>{
            [fresh, &c] { return cojob_call(*fresh, c.n, "threads, new object"); },
            [&c] { return plain_threads(c.n); }, [&c] { return handoff_threads(c.n); }};
    });
    const std::string of = " (floor: their median; the median of " + std::to_string(c.series) + " objects)";
    out.push_back({"jitter", "slowest of " + std::to_string(c.calls) + " consecutive calls of a new threads object" + of,
                   spread_of[0].middle().slowest, spread_of[0].middle().median, "ns/task", 2.0, 0});
    out.push_back({"jitter_worst", "the same, the worst of the " + std::to_string(c.series) + " objects",
                   spread_of[0].worst().slowest, spread_of[0].worst().median, "ns/task", 0, 0});
    out.push_back({"jitter_plain", "the same for two plain threads filling fresh storage, run between those calls" + of,
                   spread_of[1].middle().slowest, spread_of[1].middle().median, "ns/task", 0, 0});
    out.push_back({"jitter_handoff", "the same for the hand-off floor, run between those calls" + of,
                   spread_of[2].middle().slowest, spread_of[2].middle().median, "ns/task", 0, 0});

    const auto sl = alternated(c.runs, {[&] { return fresh_sequential(c.n); }, [&] { return plain_loop(c.n); }});
    const double seq = sl[0], loop = sl[1];
    out.push_back({"seq", "1e6 tiny tasks, n_jobs=1, new object (floor: a plain loop, fresh vector)", seq, loop,
                   "ns/task", 2.0, 0});
}

void one_task_figures(const config& c, bool busy, std::vector<figure>& out) {
    cojob::parallel procs{{.n_jobs = 2, .backend = cojob::backend::processes}};
    cojob::parallel threads{{.n_jobs = 2, .backend = cojob::backend::threads}};
    (void)one_task_calls(procs, 20);  // the workers start here
    std::unique_ptr<busy_neighbour> neighbour;
    if (busy) neighbour = std::make_unique<busy_neighbour>();
    // Alternated in blocks of a tenth, so both see the same machine.
    std::vector<double> p, t, floor;
    const int block = std::max(c.one_task / 10, 1);
    for (int k = 0; k < 10; ++k) {
        for (double v : one_task_calls(procs, block)) p.push_back(v);
        for (double v : one_task_calls(threads, block)) t.push_back(v);
        for (double v : pipe_round_trips(block)) floor.push_back(v);
    }
    const std::string where = busy ? ", beside a busy process" : ", quiet";
    out.push_back({busy ? "proc_call_busy" : "proc_call", "one task, processes, warm pool" + where +
                                                               " (floor: a one-byte pipe round trip)",
                   median(p), median(floor), "µs/call", 0, busy ? 20.0 : 0});
    out.push_back({busy ? "thread_call_busy" : "thread_call",
                   "one task, threads, warm pool" + where + " (floor: a one-byte pipe round trip)", median(t),
                   median(floor), "µs/call", 0, 0});
}

int run(const config& c) {
    std::printf("## cojob steady-speed benchmark\n\n- %d CPUs usable; %d alternated runs per per-task figure; "
                "CPUs two spinning threads could get before: %.2f\n\n",
                cojob::cpu_count(), c.runs, bench_kit::cpus_obtainable(2));
    std::vector<figure> figures;
    per_task_figures(c, figures);
    if (c.busy != "on") one_task_figures(c, false, figures);
    if (c.busy != "off") one_task_figures(c, true, figures);
    std::printf("| figure | value | floor | ratio | target | verdict |\n|---|---|---|---|---|---|\n");
    for (const auto& f : figures) {
        const double ratio = f.value / f.floor;
        std::string target = "—", verdict = "—";
        if (f.target_ratio > 0) {
            target = "ratio ≤ " + std::to_string(f.target_ratio).substr(0, 3);
            verdict = ratio <= f.target_ratio ? "met" : "**missed**";
        } else if (f.target_value > 0) {
            target = "≤ " + std::to_string(int(f.target_value)) + " " + f.unit;
            verdict = f.value <= f.target_value ? "met" : "**missed**";
        }
        std::printf("| %s | %.2f %s | %.2f %s | %.2f× | %s | %s |\n", f.name.c_str(), f.value, f.unit.c_str(), f.floor,
                    f.unit.c_str(), ratio, target.c_str(), verdict.c_str());
    }
    if (!c.tsv.empty()) {
        std::ofstream tsv(c.tsv);
        for (const auto& f : figures) tsv << f.id << '\t' << f.value << '\t' << f.floor << '\t' << f.unit << '\n';
        if (!tsv) throw std::runtime_error("cannot write " + c.tsv);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_steady: %s\n", e.what());
        return 1;
    }
}
