// src/process/failure_text.cpp - the messages of failure_text.hpp.
#include "failure_text.hpp"
#include "spawn.hpp"

#include "../util.hpp"
#include "../wire.hpp"

#include <cojob/errors.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cojob::detail::process {

std::string describe_status(int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* abbrev = ::sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    }
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    return "stopped (status " + std::to_string(status) + ")";
}

worker_end describe_end(bool reaped, int status, const struct rusage& usage, bool oom_kills_rose) {
    worker_end e;
    if (!reaped) {
        e.how = "ended";
        return e;
    }
    e.how = describe_status(status);
    if (WIFSIGNALED(status)) {
        const char* abbrev = ::sigabbrev_np(WTERMSIG(status));
        e.signal = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(WTERMSIG(status));
        e.oom_suspected = WTERMSIG(status) == SIGKILL && oom_kills_rose;
    } else if (WIFEXITED(status)) {
        e.exit_code = WEXITSTATUS(status);
        if (*e.exit_code == memory_limit_exit) {  // worker_loop.cpp: out of memory under the limit
            e.how += " (it needed more than options::worker_memory_limit)";
            e.oom_suspected = true;
        }
    }
    e.peak_rss_bytes = static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux counts KiB
    return e;
}

long oom_kills_in(const std::string& text) {
    std::istringstream in(text);
    std::string key;
    long value = -1;
    while (in >> key >> value)
        if (key == "oom_kill") return value;
    return -1;
}

long cgroup_oom_kills() noexcept try {
    std::ifstream groups("/proc/self/cgroup");
    std::string line, v2, v1;
    while (std::getline(groups, line)) {
        if (line.rfind("0::", 0) == 0) v2 = line.substr(3);
        const auto colon = line.find(':'), second = line.find(':', colon + 1);
        if (colon != std::string::npos && second != std::string::npos) {
            const std::string controllers = line.substr(colon + 1, second - colon - 1);
            if (controllers == "memory" || controllers.find("memory,") == 0 ||
                controllers.find(",memory") != std::string::npos)
                v1 = line.substr(second + 1);
        }
    }
    const auto read = [](const std::string& path) {
        std::ifstream f(path);
        std::stringstream text;
        text << f.rdbuf();
        return f ? oom_kills_in(text.str()) : -1L;
    };
    long n = v2.empty() ? -1 : read("/sys/fs/cgroup" + v2 + "/memory.events");
    if (n < 0 && !v1.empty()) n = read("/sys/fs/cgroup/memory" + v1 + "/memory.oom_control");
    return n;
} catch (...) {
    return -1;
}

namespace {
/// "; its last line of standard error: ..." when it wrote one, else "".
std::string last_words(const worker_end& end) {
    const std::string& t = end.stderr_tail;
    if (t.empty()) return {};
    const auto nl = t.rfind('\n');
    return "; its last line of standard error: \"" + (nl == std::string::npos ? t : t.substr(nl + 1)) + "\"";
}
}  // namespace

std::exception_ptr worker_ended(pid_t pid, const worker_end& end, bool greeted, const batch_base& b,
                                std::size_t running) {
    if (!greeted)
        return std::make_exception_ptr(worker_died(
            "cojob: worker process " + std::to_string(pid) + " " + end.how + " before its handshake" + last_words(end) +
            "; does main() call cojob::init(argc, argv) before anything else?"));
    const std::size_t i = std::min(running, b.size ? b.size - 1 : 0);
    std::string task;
    try {
        task = b.function_name(i) + "(" + b.arguments(i) + ")";
    } catch (...) {
        task = "?";
    }
    std::string facts;
    if (end.peak_rss_bytes) facts += " (peak RSS " + megabytes(end.peak_rss_bytes) + ")";
    const char* cause = end.oom_suspected
                            ? "; the kernel's OOM killer acted in this memory cgroup while it ran, the likely cause"
                            : "; a segmentation fault, an abort or the OOM killer are the usual causes";
    return std::make_exception_ptr(worker_died("cojob: worker process " + std::to_string(pid) + " " + end.how + facts +
                                               " while running task #" + std::to_string(b.first + i) + ": " + task +
                                               last_words(end) + cause + "; the pool replaces the worker"));
}

task_failure death_facts(pid_t pid, const worker_end& end, const batch_base& b, std::size_t running,
                         const std::exception_ptr& error) {
    task_failure f;
    const std::size_t i = std::min(running, b.size ? b.size - 1 : 0);
    f.index = b.first + i;
    try {
        f.function = b.function_name(i);
        f.arguments = b.arguments(i);
    } catch (...) {
        f.function = "<unknown>";
    }
    describe_exception(error, f.exception, f.message);
    f.pid = static_cast<int>(pid);
    f.host = host_name();
    f.time = local_time_text();
    f.kind = failure_kind::worker_died;
    f.signal = end.signal;
    f.exit_code = end.exit_code;
    f.peak_rss_bytes = end.peak_rss_bytes;
    f.oom_suspected = end.oom_suspected;
    f.stderr_tail = end.stderr_tail;
    return f;
}

std::exception_ptr frame_cut(pid_t pid, const std::string& how, const batch_base& b, std::size_t got,
                             std::size_t announced) {
    const std::string of = announced ? "of its " + std::to_string(announced) + " bytes"
                                     : "of its header's " + std::to_string(sizeof(frame_header)) + " bytes";
    return std::make_exception_ptr(worker_died(
        "cojob: worker process " + std::to_string(pid) + " " + how + " while running tasks #" +
        std::to_string(b.first) + " to #" + std::to_string(b.first + b.size - 1) +
        ": its response pipe closed inside a frame, after " + std::to_string(got) + " " + of +
        " (a truncated frame); the pool replaces the worker"));
}

std::exception_ptr protocol_broken(pid_t pid, const std::exception_ptr& why) {
    try {
        std::rethrow_exception(why);
    } catch (const std::exception& e) {
        return std::make_exception_ptr(wire_error(std::string(e.what()) + "; worker process " + std::to_string(pid) +
                                                  " was killed and will be replaced"));
    } catch (...) {
    }
    return why;
}

std::exception_ptr lent_results_lost(pid_t pid, const std::string& how, const batch_base& b) {
    return std::make_exception_ptr(worker_died(
        "cojob: worker process " + std::to_string(pid) + " " + how + " before its results for tasks #" +
        std::to_string(b.first) + " to #" + std::to_string(b.first + b.size - 1) +
        " were read (a vector result of " + std::to_string(large_vector_bytes >> 20) +
        " MiB or more stays in its worker until the parent reads it)"));
}

std::exception_ptr batch_stopped() {
    return std::make_exception_ptr(cancelled("cojob: the worker running this batch was stopped"));
}

std::exception_ptr batch_not_started() {
    return std::make_exception_ptr(cancelled("cojob: the worker holding this batch was lost"));
}

std::exception_ptr batch_not_sent() {
    return std::make_exception_ptr(cancelled("cojob: the call stopped before this batch ran"));
}

}  // namespace cojob::detail::process
