// samples/parallel_generator.cpp - joblib's "Returning a generator in joblib.Parallel", rebuilt
// with cojob: 150 tasks each sleep 0.1 s and return a 16 MB array (i * ones(10000, 200) as
// doubles), two workers, and a consumer that sums the arrays as they arrive.
//
// The workload runs three ways on each backend asked for:
//   list       `par(tasks)`: every result is held before the sum starts (the seed's first run)
//   generator  `par.stream(tasks)` with return_as=generator: each array is added and freed as
//              it arrives (the seed's second run)
//   slow       the same stream with a consumer that sleeps after each array: cojob's window
//              holds the workers back, so memory stays flat (joblib keeps dispatching)
// Each run is a fresh copy of this program (glibc keeps much of what a process freed, so a run
// would otherwise start with the heap of the one before). In it a thread samples the resident
// memory of the process and of its worker processes (from /proc, every 50 ms). The program
// prints the peaks and wall times, writes the curves as an SVG with a log scale (the seed's
// figure), and exits nonzero when a sum is wrong.
//
// Usage: parallel_generator [--full] [--tasks N] [--backend threads|processes|both]
//                           [--runs list,generator,slow] [--slow-ms MS] [--svg PATH]
//                           [--tsv PATH] [--batch-size N|auto] [--values N] [--pss] [--quiet]
// The default is a short run (24 tasks, both backends, ~15 s); --full is the seed's 150 tasks.
// --pss counts proportional instead of resident memory (pages two processes share, counted once).
// --values N makes each result N doubles instead of 2,000,000 (--values 1: cojob's own overhead).
// --tsv writes one line per run: implementation, run, wall s, peak MB, above start MB, workers MB,
// ok|wrong (bench/run_generator_side_by_side.sh reads it).
#include <cojob/cojob.hpp>

#include <dirent.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <ranges>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// ---------------------------------------------------------------------------------------------
// The task (a free function with external linkage: worker processes call it by its address).

/// 10000 x 200 doubles: 16 MB.
constexpr long seed_values = 10000 * 200;

/// time.sleep(.1); return i * np.ones((10000, 200), dtype=np.float64), flattened; `values`
/// is the seed's 10000 * 200 unless --values says otherwise.
std::vector<double> return_big_object(long i, long values) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return std::vector<double>(static_cast<std::size_t>(values), static_cast<double>(i));
}

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Memory of this process and its descendants, from /proc.

long page_kib() { return ::sysconf(_SC_PAGESIZE) / 1024; }

/// What is counted per process: the resident set (statm's second field, as psutil's
/// memory_info().rss and the seed), or the proportional set (smaps_rollup's Pss: pages shared
/// between processes, such as a worker's result arena, split among them instead of counted
/// in each).
enum class metric { rss, pss };

/// Memory of one process in KiB.
long memory_kib(long pid, metric m) {
    if (m == metric::rss) {
        std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
        long size = 0, resident = 0;
        if (!(f >> size >> resident)) return 0;
        return resident * page_kib();
    }
    std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
    for (std::string key; f >> key;) {
        long kib = 0;
        if (key == "Pss:" && f >> kib) return kib;
        f.ignore(4096, '\n');
    }
    return 0;
}

/// Processes whose ancestors include `root` (worker processes and anything they started).
std::vector<long> descendants(long root) {
    std::multimap<long, long> children_of;
    if (DIR* d = ::opendir("/proc")) {
        while (dirent* e = ::readdir(d)) {
            long pid = 0;
            const std::string_view name(e->d_name);
            if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc{}) continue;
            std::ifstream f("/proc/" + std::string(name) + "/stat");
            std::string line;
            if (!std::getline(f, line)) continue;
            const auto close = line.rfind(')');
            if (close == std::string::npos) continue;
            std::istringstream rest(line.substr(close + 2));
            char state = 0;
            long ppid = 0;
            rest >> state >> ppid;
            children_of.emplace(ppid, pid);
        }
        ::closedir(d);
    }
    std::vector<long> out;
    std::vector<long> pending{root};
    while (!pending.empty()) {
        const long p = pending.back();
        pending.pop_back();
        auto [b, e] = children_of.equal_range(p);
        for (auto it = b; it != e; ++it) {
            out.push_back(it->second);
            pending.push_back(it->second);
        }
    }
    return out;
}

struct sample {
    double t = 0;        ///< seconds since the run started
    double parent = 0;   ///< MB (1e6 bytes, as the seed prints)
    double workers = 0;  ///< MB, all descendants
    [[nodiscard]] double total() const { return parent + workers; }
};

sample measure(clock_type::time_point t0, metric m) {
    sample s;
    s.t = std::chrono::duration<double>(clock_type::now() - t0).count();
    const long self = static_cast<long>(::getpid());
    s.parent = static_cast<double>(memory_kib(self, m)) * 1024 / 1e6;
    for (long pid : descendants(self)) s.workers += static_cast<double>(memory_kib(pid, m)) * 1024 / 1e6;
    return s;
}

/// Samples every 50 ms on its own thread until stopped (the seed's MemoryMonitor).
class memory_monitor {
public:
    explicit memory_monitor(metric m) : metric_(m), t0_(clock_type::now()), thread_([this] { loop(); }) {}
    ~memory_monitor() { stop(); }
    memory_monitor(const memory_monitor&) = delete;
    memory_monitor& operator=(const memory_monitor&) = delete;

    std::vector<sample> stop() {
        if (thread_.joinable()) {
            done_ = true;
            thread_.join();
            samples_.push_back(measure(t0_, metric_));
        }
        return samples_;
    }

private:
    void loop() {
        auto next = t0_;
        while (!done_) {
            samples_.push_back(measure(t0_, metric_));
            next += std::chrono::milliseconds(50);
            std::this_thread::sleep_until(next);
        }
    }

    metric metric_;
    clock_type::time_point t0_;
    std::atomic<bool> done_{false};
    std::vector<sample> samples_;
    std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// The runs.

struct settings {
    long tasks = 24;
    long values = seed_values;  ///< doubles per result
    std::vector<cojob::backend> backends{cojob::backend::threads, cojob::backend::processes};
    std::vector<std::string> runs{"list", "generator", "slow"};
    long slow_ms = 100;
    std::string svg = "parallel_generator.svg";
    std::string tsv;
    metric counted = metric::rss;
    std::string batch_size = "auto";
    std::string one_run;  ///< internal: run the one (backend, run) asked for here, outcome into this file
    bool quiet = false;
};

struct outcome {
    std::string backend;
    std::string mode;
    double wall = 0;
    bool sum_ok = false;
    std::vector<sample> samples;

    [[nodiscard]] double peak_total() const {
        double m = 0;
        for (const auto& s : samples) m = std::max(m, s.total());
        return m;
    }
    [[nodiscard]] double peak_workers() const {
        double m = 0;
        for (const auto& s : samples) m = std::max(m, s.workers);
        return m;
    }
    [[nodiscard]] double peak_above_start() const { return samples.empty() ? 0 : peak_total() - samples.front().total(); }
};

/// accumulator_sum: adds each array into the total, printing a dot per array.
class accumulator {
public:
    accumulator(long values, bool quiet) : total_(static_cast<std::size_t>(values), 0.0), quiet_(quiet) {}
    void add(const std::vector<double>& value) {
        if (value.size() != total_.size()) {
            std::fprintf(stderr, "\nparallel_generator: a result has %zu values, expected %zu\n", value.size(),
                         total_.size());
            size_ok_ = false;
            return;
        }
        for (std::size_t k = 0; k < total_.size(); ++k) total_[k] += value[k];
        if (!quiet_) {
            std::fputc('.', stdout);
            std::fflush(stdout);
        }
    }
    /// Every element must be 0 + 1 + ... + (n-1), exactly (small integers are exact doubles).
    [[nodiscard]] bool check(long n) const {
        const double expected = static_cast<double>(n) * static_cast<double>(n - 1) / 2;
        return size_ok_ && std::all_of(total_.begin(), total_.end(), [&](double x) { return x == expected; });
    }

private:
    std::vector<double> total_;
    bool quiet_;
    bool size_ok_ = true;
};

auto big_tasks(long n, long values) {
    return std::views::iota(0L, n) |
           std::views::transform([values](long i) { return cojob::delayed(return_big_object)(i, values); });
}

outcome run(const settings& cfg, cojob::backend backend, const std::string& mode) {
    outcome out;
    out.backend = backend == cojob::backend::threads ? "threads" : "processes";
    out.mode = mode;
    const bool stream = mode != "list";
    memory_monitor monitor(cfg.counted);
    const auto t0 = clock_type::now();
    {
        cojob::parallel par{{.n_jobs = 2,
                             .backend = backend,
                             .batch_size = cfg.batch_size == "auto" ? cojob::batch_size_spec("auto")
                                                                    : cojob::batch_size_spec(std::stoi(cfg.batch_size)),
                             .return_as = stream ? cojob::return_as::generator : cojob::return_as::list}};
        accumulator acc(cfg.values, cfg.quiet);
        if (stream) {
            for (auto&& value : par.stream(big_tasks(cfg.tasks, cfg.values))) {
                acc.add(value);
                if (mode == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(cfg.slow_ms));
            }
        } else {
            std::vector<std::vector<double>> res = par(big_tasks(cfg.tasks, cfg.values));
            for (const auto& value : res) acc.add(value);
        }  // del res
        out.sum_ok = acc.check(cfg.tasks);
        out.wall = std::chrono::duration<double>(clock_type::now() - t0).count();
    }  // the workers go with the parallel object
    out.samples = monitor.stop();
    return out;
}

// ---------------------------------------------------------------------------------------------
// The picture: one panel per backend, memory (log scale) over time, one curve per run.

std::string fmt(double v, int decimals = 1) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

/// "16 MB" for the seed's arrays.
std::string size_text(long values) {
    const double mb = static_cast<double>(values) * 8 / 1e6;
    return mb >= 1 ? fmt(mb, mb < 10 ? 1 : 0) + " MB" : std::to_string(values * 8) + " bytes";
}

std::string label_mb(double mb) {
    if (mb >= 1000) return fmt(mb / 1000, 0) + " GB";
    return fmt(mb, 0) + " MB";
}

void write_svg(const std::string& path, const std::vector<outcome>& results, const settings& cfg) {
    std::vector<std::string> backends;
    for (const auto& r : results)
        if (std::find(backends.begin(), backends.end(), r.backend) == backends.end()) backends.push_back(r.backend);
    const double width = 900, panel_h = 330, left = 70, right = 270, top = 40, bottom = 45;
    const double height = panel_h * static_cast<double>(backends.size()) + 10;
    std::ostringstream svg;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
        << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    const std::map<std::string, std::string> colour{{"list", "#d62728"}, {"generator", "#1f77b4"}, {"slow", "#2ca02c"}};
    const std::map<std::string, std::string> title{{"list", "list (return_as=list)"},
                                                   {"generator", "generator (return_as=generator)"},
                                                   {"slow", "generator, consumer sleeps " + std::to_string(cfg.slow_ms) +
                                                                " ms"}};
    for (std::size_t p = 0; p < backends.size(); ++p) {
        const double y0 = static_cast<double>(p) * panel_h;
        const double plot_w = width - left - right, plot_h = panel_h - top - bottom;
        double t_max = 0.5, mb_max = 1000;
        for (const auto& r : results) {
            if (r.backend != backends[p]) continue;
            for (const auto& s : r.samples) {
                t_max = std::max(t_max, s.t);
                mb_max = std::max(mb_max, s.total());
            }
        }
        const double lo = 1.0, hi = std::ceil(std::log10(mb_max));  // 10 MB .. a power of ten above the peak
        auto x_of = [&](double t) { return left + plot_w * t / t_max; };
        auto y_of = [&](double mb) {
            const double l = std::clamp(std::log10(std::max(mb, 1e-3)), lo, hi);
            return y0 + top + plot_h * (1 - (l - lo) / (hi - lo));
        };
        svg << "<text x=\"" << left << "\" y=\"" << y0 + 22 << "\" font-size=\"14\" font-weight=\"bold\">"
            << "cojob " << backends[p] << ": " << (cfg.counted == metric::rss ? "resident" : "proportional")
            << " memory of the process and its workers, n_jobs=2, " << cfg.tasks
            << " tasks of " << size_text(cfg.values) << "</text>\n";
        svg << "<rect x=\"" << left << "\" y=\"" << y0 + top << "\" width=\"" << plot_w << "\" height=\"" << plot_h
            << "\" fill=\"none\" stroke=\"#444\"/>\n";
        for (double e = lo; e <= hi + 1e-9; e += 1) {
            const double y = y_of(std::pow(10.0, e));
            svg << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y << "\" y2=\"" << y
                << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
                << label_mb(std::pow(10.0, e)) << "</text>\n";
        }
        const double step = t_max > 20 ? 5 : t_max > 8 ? 2 : t_max > 3 ? 1 : 0.5;
        for (double t = 0; t <= t_max + 1e-9; t += step) {
            svg << "<text x=\"" << x_of(t) << "\" y=\"" << y0 + top + plot_h + 16 << "\" text-anchor=\"middle\">"
                << fmt(t, step < 1 ? 1 : 0) << "</text>\n";
        }
        svg << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << y0 + panel_h - 12
            << "\" text-anchor=\"middle\">time (s)</text>\n";
        double legend_y = y0 + top + 10;
        for (const auto& r : results) {
            if (r.backend != backends[p]) continue;
            svg << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << colour.at(r.mode) << "\" points=\"";
            for (const auto& s : r.samples) svg << fmt(x_of(s.t), 1) << ',' << fmt(y_of(s.total()), 1) << ' ';
            svg << "\"/>\n";
            svg << "<line x1=\"" << width - right + 12 << "\" x2=\"" << width - right + 36 << "\" y1=\"" << legend_y
                << "\" y2=\"" << legend_y << "\" stroke-width=\"3\" stroke=\"" << colour.at(r.mode) << "\"/>\n"
                << "<text x=\"" << width - right + 42 << "\" y=\"" << legend_y + 4 << "\">" << title.at(r.mode)
                << "</text>\n<text x=\"" << width - right + 42 << "\" y=\"" << legend_y + 20 << "\" fill=\"#555\">peak "
                << fmt(r.peak_total(), 0) << " MB, " << fmt(r.wall, 2) << " s</text>\n";
            legend_y += 48;
        }
    }
    svg << "</svg>\n";
    std::ofstream f(path);
    f << svg.str();
    if (!f) throw std::runtime_error("cannot write " + path);
}

// ---------------------------------------------------------------------------------------------
// Command line.

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "parallel_generator: %s\n"
                 "usage: parallel_generator [--full] [--tasks N] [--backend threads|processes|both]\n"
                 "                          [--runs list,generator,slow] [--slow-ms MS] [--svg PATH] [--tsv PATH]\n"
                 "                          [--batch-size N|auto] [--values N] [--pss] [--quiet]\n",
                 why);
    std::exit(2);
}

long to_long(std::string_view s, const char* what) {
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < 0) usage(what);
    return v;
}

settings parse(int argc, char** argv) {
    settings cfg;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage("an option lacks its value");
            return argv[++i];
        };
        if (a == "--full") {
            cfg.tasks = 150;
        } else if (a == "--tasks") {
            cfg.tasks = to_long(value(), "--tasks takes a count");
            if (cfg.tasks < 1) usage("--tasks takes a count of at least 1");
        } else if (a == "--backend") {
            const auto v = value();
            if (v == "threads")
                cfg.backends = {cojob::backend::threads};
            else if (v == "processes")
                cfg.backends = {cojob::backend::processes};
            else if (v == "both")
                cfg.backends = {cojob::backend::threads, cojob::backend::processes};
            else
                usage("--backend takes threads, processes or both");
        } else if (a == "--runs") {
            cfg.runs.clear();
            std::string_view v = value();
            while (!v.empty()) {
                const auto comma = v.find(',');
                const std::string_view one = v.substr(0, comma);
                if (one != "list" && one != "generator" && one != "slow") usage("--runs takes list, generator, slow");
                cfg.runs.emplace_back(one);
                v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
            }
        } else if (a == "--slow-ms") {
            cfg.slow_ms = to_long(value(), "--slow-ms takes milliseconds");
        } else if (a == "--svg") {
            cfg.svg = value();
        } else if (a == "--tsv") {
            cfg.tsv = value();
        } else if (a == "--values") {
            cfg.values = to_long(value(), "--values takes a count");
            if (cfg.values < 1) usage("--values takes a count of at least 1");
        } else if (a == "--batch-size") {
            const auto v = value();
            if (v != "auto" && to_long(v, "--batch-size takes a count or auto") < 1) usage("--batch-size takes a count of at least 1");
            cfg.batch_size = v;
        } else if (a == "--one-run") {
            cfg.one_run = value();
        } else if (a == "--pss") {
            cfg.counted = metric::pss;
        } else if (a == "--quiet") {
            cfg.quiet = true;
        } else {
            usage("unknown argument");
        }
    }
    return cfg;
}

const char* backend_word(cojob::backend b) { return b == cojob::backend::threads ? "threads" : "processes"; }

/// The child's side of run_in_child: runs one (backend, run), prints as the seed does, and
/// writes its outcome ("wall sum_ok", then one "t parent workers" line per sample) to `cfg.one_run`.
int run_one(const settings& cfg) {
    const cojob::backend b = cfg.backends.front();
    const std::string& mode = cfg.runs.front();
    std::printf("[cojob %s] %s: %ld tasks returning %s, n_jobs=2%s\n", backend_word(b), mode.c_str(), cfg.tasks,
                size_text(cfg.values).c_str(),
                mode == "slow" ? (", consumer sleeps " + std::to_string(cfg.slow_ms) + " ms").c_str() : "");
    std::printf("Accumulate results:");
    std::fflush(stdout);
    const outcome r = run(cfg, b, mode);
    std::printf("\n%s. Peak memory usage (%s): %.2f MB (%.2f MB above the start; workers %.2f MB). Wall %.2f s\n",
                r.sum_ok ? "All tasks completed and reduced successfully" : "WRONG SUM",
                cfg.counted == metric::rss ? "RSS" : "PSS", r.peak_total(), r.peak_above_start(), r.peak_workers(), r.wall);
    std::fflush(stdout);
    std::ofstream f(cfg.one_run);
    f.precision(17);
    f << r.wall << ' ' << r.sum_ok << '\n';
    for (const auto& x : r.samples) f << x.t << ' ' << x.parent << ' ' << x.workers << '\n';
    return f && r.sum_ok ? 0 : 1;
}

/// Runs one (backend, run) in a fresh copy of this program, so that no run starts with the heap
/// an earlier one left behind (glibc keeps much of what a process freed), and reads its outcome.
outcome run_in_child(const settings& cfg, cojob::backend b, const std::string& mode) {
    outcome out;
    out.backend = backend_word(b);
    out.mode = mode;
    const std::string file = (std::filesystem::temp_directory_path() /
                              ("parallel_generator-" + std::to_string(::getpid()) + ".run")).string();
    std::vector<std::string> args{"parallel_generator", "--one-run", file, "--backend", backend_word(b), "--runs", mode,
                                  "--tasks", std::to_string(cfg.tasks), "--slow-ms", std::to_string(cfg.slow_ms),
                                  "--batch-size", cfg.batch_size, "--values", std::to_string(cfg.values)};
    if (cfg.counted == metric::pss) args.emplace_back("--pss");
    if (cfg.quiet) args.emplace_back("--quiet");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    pid_t pid = -1;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
        std::fprintf(stderr, "parallel_generator: cannot start a run\n");
        return out;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::ifstream f(file);
    if (f >> out.wall >> out.sum_ok) {
        for (sample x; f >> x.t >> x.parent >> x.workers;) out.samples.push_back(x);
    }
    std::remove(file.c_str());
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) out.sum_ok = false;
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);  // worker processes serve tasks here and never return
    const settings cfg = parse(argc, argv);
    if (!cfg.one_run.empty()) return run_one(cfg);

    std::vector<outcome> results;
    bool ok = true;
    for (cojob::backend b : cfg.backends) {
        for (const auto& mode : cfg.runs) {
            outcome r = run_in_child(cfg, b, mode);
            ok = ok && r.sum_ok && !r.samples.empty();
            results.push_back(std::move(r));
        }
    }

    std::printf("\n| backend | run | wall (s) | peak %s, all processes (MB) | above start (MB) | of it workers (MB) | sum |\n"
                "|---|---|---|---|---|---|---|\n",
                cfg.counted == metric::rss ? "RSS" : "PSS");
    for (const auto& r : results)
        std::printf("| cojob %s | %s | %.2f | %.0f | %.0f | %.0f | %s |\n", r.backend.c_str(), r.mode.c_str(), r.wall,
                    r.peak_total(), r.peak_above_start(), r.peak_workers(), r.sum_ok ? "ok" : "WRONG");

    if (!cfg.tsv.empty()) {
        std::ofstream t(cfg.tsv);
        for (const auto& r : results)
            t << "cojob " << r.backend << '\t' << r.mode << '\t' << r.wall << '\t' << r.peak_total() << '\t'
              << r.peak_above_start() << '\t' << r.peak_workers() << '\t' << (r.sum_ok ? "ok" : "wrong") << '\n';
    }
    try {
        write_svg(cfg.svg, results, cfg);
        std::printf("\nMemory over time: %s\n", cfg.svg.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "parallel_generator: %s\n", e.what());
        return 1;
    }
    return ok ? 0 : 1;
}
