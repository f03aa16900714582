// bench/bench_generator.cpp - the generator seed's walls against this machine's floor:
// 150 tasks, each sleeping 0.1 s and returning 16 MB (2e6 doubles, all equal to the task's
// index), n_jobs=2, the results summed element-wise.
//
//   floor_list       two plain std::threads run the tasks (odd and even), keep every result, and
//                    the sum starts when both are done; then the results are freed. No cojob: what
//                    the workload itself costs here (sleeps, first-touch of 2.4 GB, the sum).
//   floor_generator  the same threads hand each result to the consumer, which sums it and frees
//                    it as it arrives, in input order.
//   threads_list, threads_generator, processes_list, processes_generator
//                    cojob: `par(tasks)` then the sum, and `par.stream(tasks)` summed as it goes.
//   threads_slow, processes_slow
//                    the stream's consumer waits 0.1 s per result, half the workers' pace (the
//                    seed's slow consumer).
//   threads_wrapped, processes_wrapped
//                    both ends with co_yield: an async generator feeds `par.stream`, another
//                    wraps the stream, and a coroutine sums what the wrapper yields (compared with
//                    floor_generator); `_slow`: the consumer waits 0.1 s on a timer per result.
//
// Every (case, round) runs in a fresh process (no run inherits another's heap), the cases
// interleaved round by round so that they see the same spells of load. Prints the median wall
// of each case, its ratio to the floor of its mode, and its process's largest peak resident
// memory (worker processes not counted). The wall runs from before the parallel
// object is made to after the results are freed, as samples/parallel_generator measures.
//
// Usage: bench_generator [rounds=N] [tasks=N] [cases=a,b,...]   (default rounds=3, tasks=150)
#include <cojob/cojob.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench_kit.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <ranges>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using bench_kit::clock_type;
using bench_kit::median;
using bench_kit::seconds_since;

/// The seed's task: time.sleep(.1); return i * np.ones((10000, 200)).
std::vector<double> return_big_object(long i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return std::vector<double>(2'000'000, static_cast<double>(i));
}

namespace {

constexpr std::size_t values = 2'000'000;

void add(std::vector<double>& total, const std::vector<double>& v) {
    for (std::size_t k = 0; k < values; ++k) total[k] += v[k];
}

bool right(const std::vector<double>& total, long n) {
    const double expected = static_cast<double>(n) * static_cast<double>(n - 1) / 2;
    for (double x : total)
        if (x != expected) return false;
    return true;
}

/// Two threads, tasks i = 0, 2, 4, ... and 1, 3, 5, ...; `deliver(i, result)` on the worker thread.
template <class Deliver>
std::vector<std::thread> two_workers(long n, Deliver deliver) {
    std::vector<std::thread> t;
    for (long first = 0; first < 2; ++first)
        t.emplace_back([=] {
            for (long i = first; i < n; i += 2) deliver(i, return_big_object(i));
        });
    return t;
}

bool floor_list(long n) {
    std::vector<std::vector<double>> res(static_cast<std::size_t>(n));
    for (auto& t : two_workers(n, [&res](long i, std::vector<double> v) { res[static_cast<std::size_t>(i)] = std::move(v); }))
        t.join();
    std::vector<double> total(values, 0.0);
    for (const auto& v : res) add(total, v);
    res = {};
    return right(total, n);
}

bool floor_generator(long n) {
    std::mutex m;
    std::condition_variable cv;
    std::map<long, std::vector<double>> ready;
    auto workers = two_workers(n, [&](long i, std::vector<double> v) {
        std::lock_guard lock(m);
        ready.emplace(i, std::move(v));
        cv.notify_one();
    });
    std::vector<double> total(values, 0.0);
    for (long i = 0; i < n; ++i) {
        std::vector<double> v;
        {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return ready.count(i) != 0; });
            v = std::move(ready.at(i));
            ready.erase(i);
        }
        add(total, v);
    }
    for (auto& t : workers) t.join();
    return right(total, n);
}

auto tasks(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(return_big_object)(i); });
}

/// The seed's slow consumer: half the workers' pace.
void consumer_pause() { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

bool with_cojob(long n, cojob::backend b, bool stream, bool slow = false) {
    cojob::parallel par{{.n_jobs = 2, .backend = b}};
    std::vector<double> total(values, 0.0);
    if (stream) {
        for (auto&& v : par.stream(tasks(n))) {
            add(total, v);
            if (slow) consumer_pause();
        }
    } else {
        auto res = par(tasks(n));
        for (const auto& v : res) add(total, v);
        res = {};
    }
    return right(total, n);
}

using big_task = decltype(cojob::delayed(return_big_object)(0L));

cojob::async_generator<big_task> async_tasks(long n) {
    for (long i = 0; i < n; ++i) co_yield cojob::delayed(return_big_object)(i);
}

/// Hands on each result of `s`: a coroutine between the stream and its consumer.
cojob::async_generator<std::vector<double>> wrapper(cojob::stream<std::vector<double>> s) {
    while (auto r = co_await s.next()) co_yield std::move(*r);
}

bool wrapped(long n, cojob::backend b, bool slow) {
    cojob::parallel par{{.n_jobs = 2, .backend = b}};
    std::vector<double> total(values, 0.0);
    boost::asio::io_context io;
    std::exception_ptr failure;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            auto results = wrapper(par.stream(async_tasks(n)));
            boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
            while (auto v = co_await results.next()) {
                add(total, *v);
                if (!slow) continue;
                pause.expires_after(std::chrono::milliseconds(100));
                co_await pause.async_wait(boost::asio::use_awaitable);
            }
        },
        [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return right(total, n);
}

/// Runs one case in this process; prints its wall in seconds, or exits 1 on a wrong sum.
int run_one(const std::string& c, long n) {
    const auto t0 = clock_type::now();
    bool ok = false;
    if (c == "floor_list") ok = floor_list(n);
    else if (c == "floor_generator") ok = floor_generator(n);
    else if (c == "threads_list") ok = with_cojob(n, cojob::backend::threads, false);
    else if (c == "threads_generator") ok = with_cojob(n, cojob::backend::threads, true);
    else if (c == "processes_list") ok = with_cojob(n, cojob::backend::processes, false);
    else if (c == "processes_generator") ok = with_cojob(n, cojob::backend::processes, true);
    else if (c == "threads_slow") ok = with_cojob(n, cojob::backend::threads, true, true);
    else if (c == "processes_slow") ok = with_cojob(n, cojob::backend::processes, true, true);
    else if (c == "threads_wrapped") ok = wrapped(n, cojob::backend::threads, false);
    else if (c == "processes_wrapped") ok = wrapped(n, cojob::backend::processes, false);
    else if (c == "threads_wrapped_slow") ok = wrapped(n, cojob::backend::threads, true);
    else if (c == "processes_wrapped_slow") ok = wrapped(n, cojob::backend::processes, true);
    else {
        std::fprintf(stderr, "bench_generator: unknown case %s\n", c.c_str());
        return 2;
    }
    const double s = seconds_since(t0);
    if (!ok) {
        std::fprintf(stderr, "bench_generator: %s summed wrong\n", c.c_str());
        return 1;
    }
    rusage self{};
    ::getrusage(RUSAGE_SELF, &self);
    std::printf("%.4f %.1f\n", s, static_cast<double>(self.ru_maxrss) / 1024.0);
    return 0;
}

std::string arg(int argc, char** argv, const std::string& key, const std::string& fallback) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind(key + "=", 0) == 0) return a.substr(key.size() + 1);
    }
    return fallback;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);  // worker processes serve tasks here and never return
    const long n = std::stol(arg(argc, argv, "tasks", "150"));
    const std::string one = arg(argc, argv, "one", "");
    if (!one.empty()) return run_one(one, n);

    const int rounds = std::stoi(arg(argc, argv, "rounds", "3"));
    std::vector<std::string> cases;
    std::stringstream list(arg(argc, argv, "cases",
                               "floor_list,threads_list,processes_list,floor_generator,threads_generator,processes_generator,threads_wrapped,processes_wrapped"));
    for (std::string c; std::getline(list, c, ',');) cases.push_back(c);
    char self[4096] = {};
    const ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return 2;
    std::map<std::string, std::vector<double>> walls;
    std::map<std::string, double> peaks;  // MB, the largest of the rounds
    std::printf("# %ld tasks of 16 MB, n_jobs=2, %d round(s); load average before: ", n, rounds);
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        char buf[64] = {};
        if (std::fgets(buf, sizeof buf, f)) std::fputs(buf, stdout);
        std::fclose(f);
    }
    for (int r = 0; r < rounds; ++r)
        for (const auto& c : cases) {
            const std::string cmd = "'" + std::string(self) + "' one=" + c + " tasks=" + std::to_string(n);
            FILE* p = ::popen(cmd.c_str(), "r");
            double s = 0;
            double peak = 0;
            const bool read = p && std::fscanf(p, "%lf %lf", &s, &peak) == 2;
            const int rc = p ? ::pclose(p) : -1;
            if (!read || rc != 0) {
                std::fprintf(stderr, "bench_generator: case %s failed\n", c.c_str());
                return 1;
            }
            walls[c].push_back(s);
            peaks[c] = std::max(peaks[c], peak);
        }
    std::printf("| case | median wall (s) | min | max | ratio to the floor of its mode | peak RSS (MB) |\n"
                "|---|---|---|---|---|---|\n");
    for (const auto& c : cases) {
        const auto& w = walls[c];
        std::string mode = c.substr(c.find('_') + 1);
        if (mode == "wrapped") mode = "generator";
        const auto base = walls.find("floor_" + mode);
        std::printf("| %s | %.3f | %.3f | %.3f |", c.c_str(), median(w), *std::min_element(w.begin(), w.end()),
                    *std::max_element(w.begin(), w.end()));
        if (base != walls.end() && !base->second.empty()) std::printf(" %.3f |", median(w) / median(base->second));
        else std::printf(" |");
        std::printf(" %.0f |\n", peaks[c]);
    }
    std::printf("load average after: ");
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        char buf[64] = {};
        if (std::fgets(buf, sizeof buf, f)) std::fputs(buf, stdout);
        std::fclose(f);
    }
    return 0;
}
