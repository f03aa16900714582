// memory_hammer: eight processes call one cached function with the same arguments at once.
// Run without arguments it is the driver: it starts eight copies of itself (posix_spawn, never
// fork), releases them together, and checks that every one got the right result, that the
// function ran once in all, and that one valid entry remains. It does so twice: on an empty
// cache, and on a cache whose entry was damaged beforehand (recomputed once, no crash).
// A third round calls a cached function inside `par` tasks on the process backend: each key is
// computed once, in a worker, and the second round loads everything (also in the driver).
//
// Child mode: memory_hammer child <cache dir> <go file> <log file>
// (The process backend's workers are this program started again: cojob::init comes first.)
#include <cojob/cojob.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int processes = 8;
std::string log_path;  // each computation appends one line here

/// Appends this process's pid as one line to `path` (one write: lines of processes never mix).
void log_pid(const std::string& path) {
    if (const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644); fd >= 0) {
        const std::string line = std::to_string(::getpid()) + "\n";
        (void)!::write(fd, line.data(), line.size());
        ::close(fd);
    }
}

std::vector<double> slow_ramp(int n) {
    log_pid(log_path);
    std::this_thread::sleep_for(200ms);
    std::vector<double> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = 0.5 * i;
    return v;
}

bool right(const std::vector<double>& v, int n) {
    if (v.size() != static_cast<std::size_t>(n)) return false;
    for (int i = 0; i < n; ++i)
        if (v[static_cast<std::size_t>(i)] != 0.5 * i) return false;
    return true;
}

constexpr int n = 20000;  // 160 KB result

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

int lines_in(const std::string& path) { return static_cast<int>(lines_of(path).size()); }

// ---- the process-backend round -------------------------------------------------------------
// The driver puts the cache and log locations in the environment; workers inherit it and build
// the same store on first use.
constexpr const char* cache_env = "COJOB_HAMMER_CACHE";
constexpr const char* log_env = "COJOB_HAMMER_LOG";

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

constexpr int cols = 4;

std::vector<double> column(int c) {
    log_pid(env_or_empty(log_env));
    std::this_thread::sleep_for(50ms);
    return std::vector<double>(5000, 1.5 * c);
}

const auto& cached_column() {
    static const auto cached = cojob::memory{env_or_empty(cache_env), {.verbose = 0}}.cache(column);
    return cached;
}

double column_sum(int c) {
    const auto v = cached_column()(c);
    return std::accumulate(v.begin(), v.end(), 0.0);
}

std::string process_backend_round(const fs::path& dir) {
    const std::string cache = (dir / "process-cache").string();
    const std::string log = (dir / "process-computed.log").string();
    ::setenv(cache_env, cache.c_str(), 1);
    ::setenv(log_env, log.c_str(), 1);
    std::vector<double> expected;
    for (int c = 0; c < cols; ++c) expected.push_back(5000 * 1.5 * c);
    auto tasks = [] {
        return std::views::iota(0, cols) | std::views::transform([](int c) { return cojob::delayed(column_sum)(c); });
    };
    std::string failure;
    try {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
        if (par(tasks()) != expected) failure += "first round: wrong results; ";
        const auto first = lines_of(log);
        if (first.size() != cols) failure += "first round computed " + std::to_string(first.size()) + " times, not 4; ";
        for (const auto& pid : first)
            if (pid == std::to_string(::getpid())) failure += "a column was computed in the driver, not a worker; ";
        if (par(tasks()) != expected) failure += "second round: wrong results; ";
        if (lines_in(log) != cols) failure += "the second round computed again; ";
    } catch (const std::exception& e) {
        failure += std::string("exception: ") + e.what() + "; ";
    }
    for (int c = 0; c < cols; ++c)
        if (!cached_column().check_call_in_cache(c)) failure += "column " + std::to_string(c) + " is not stored; ";
    if (column_sum(3) != expected[3] || lines_in(log) != cols) failure += "the driver does not load the stored result; ";
    return failure;
}

int child(const std::string& dir, const std::string& go, const std::string& log) {
    log_path = log;
    std::atomic<int> warnings{0};
    cojob::memory mem{dir, {.verbose = 0, .on_warning = [&](const std::string& w) {
                                ++warnings;
                                std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), w.c_str());
                            }}};
    auto cached = mem.cache(slow_ramp);
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (::access(go.c_str(), F_OK) != 0) {
        if (std::chrono::steady_clock::now() > until) return 4;
        std::this_thread::sleep_for(1ms);
    }
    if (!right(cached(n), n)) return 2;
    if (warnings > 1) return 3;
    return 0;
}

/// One round: spawn, release, wait (bounded), check. Returns a failure description or "".
std::string round(const std::string& self, const fs::path& dir, bool damage_first) {
    const std::string log = (dir / "computed.log").string();
    const std::string go = (dir / "go").string();
    const std::string cache = (dir / "cache").string();
    log_path = log;
    cojob::memory mem{cache, {.verbose = 0, .on_warning = [](const std::string&) {}}};
    auto cached = mem.cache(slow_ramp);
    if (damage_first) {
        const fs::path output = fs::path(cached.call_and_shelve(n).path()) / "output.bin";
        fs::resize_file(output, fs::file_size(output) - 100);
        fs::remove(log);
    }
    std::vector<pid_t> pids;
    for (int i = 0; i < processes; ++i) {
        std::vector<std::string> args = {self, "child", cache, go, log};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_t pid = 0;
        if (const int e = ::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ); e != 0)
            return std::string("posix_spawn: ") + std::strerror(e);
        pids.push_back(pid);
    }
    std::this_thread::sleep_for(100ms);  // let them all get to the gate
    { std::ofstream(go).put('\n'); }
    std::string failure;
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (const pid_t pid : pids) {
        int status = 0;
        pid_t r = 0;
        while ((r = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(2ms);
        if (r == 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            failure += "child " + std::to_string(pid) + " timed out; ";
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failure += "child " + std::to_string(pid) + " failed (status " + std::to_string(status) + "); ";
        }
    }
    const int computed = lines_in(log);
    if (computed != 1) failure += "computed " + std::to_string(computed) + " times instead of once; ";
    if (!cached.check_call_in_cache(n)) failure += "no valid entry remains; ";
    if (!right(cached(n), n) || lines_in(log) != computed) failure += "the remaining entry is not the result; ";
    std::error_code ec;
    fs::remove(go, ec);
    fs::remove(log, ec);
    return failure;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    if (argc == 5 && std::strcmp(argv[1], "child") == 0) return child(argv[2], argv[3], argv[4]);
    std::string tmpl = (fs::temp_directory_path() / "cojob-hammer-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return 1;
    const fs::path dir = tmpl;
    const std::string self = fs::read_symlink("/proc/self/exe").string();
    int failures = 0;
    for (const bool damage : {false, true}) {
        const std::string f = round(self, dir, damage);
        std::printf("%s: %s\n", damage ? "damaged entry" : "empty cache", f.empty() ? "ok" : f.c_str());
        failures += !f.empty();
    }
    const std::string f = process_backend_round(dir);
    std::printf("process backend: %s\n", f.empty() ? "ok" : f.c_str());
    failures += !f.empty();
    std::error_code ec;
    fs::remove_all(dir, ec);
    return failures ? 1 : 0;
}
