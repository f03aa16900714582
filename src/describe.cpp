// src/describe.cpp - names, printed arguments and exception facts for error reports.
#include <cojob/detail/batch.hpp>
#include <cojob/detail/describe.hpp>
#include <cojob/errors.hpp>
#include <cojob/outcome.hpp>

#include "util.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <typeinfo>

namespace cojob::detail {

namespace {
constexpr std::size_t max_printed = 200;  // characters of one printed argument

void cut(std::string& s, std::size_t from) {
    if (s.size() - from > max_printed) {
        s.resize(from + max_printed);
        s += "...";
    }
}
}  // namespace

std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return status == 0 && p ? std::string(p.get()) : std::string(mangled);
}

std::string symbol_name(std::uintptr_t address) {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(address), &info) == 0 || !info.dli_sname) return {};
    std::string name = demangle(info.dli_sname);
    // "ns::f(int, double)" -> "ns::f": the signature is already in the arguments.
    if (auto paren = name.find('('); paren != std::string::npos && paren > 0) name.resize(paren);
    return name;
}

void append_streamed(std::string& out, const void* value, void (*print)(std::ostream&, const void*)) {
    std::ostringstream os;
    print(os, value);
    const auto from = out.size();
    out += os.str();
    cut(out, from);
}

void append_quoted(std::string& out, std::string_view text) {
    const auto from = out.size();
    out += '\'';
    for (char ch : text) {
        if (out.size() - from > max_printed) break;
        switch (ch) {
            case '\'': out += "\\'"; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(ch) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(ch));
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    if (out.size() - from > max_printed) out += "...";
    out += '\'';
}

std::int64_t batch_base::now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void describe_exception(const std::exception_ptr& e, std::string& type, std::string& message) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        type = demangle(typeid(x).name());
        message = x.what();
    } catch (...) {
        const std::type_info* t = abi::__cxa_current_exception_type();
        type = t ? demangle(t->name()) : "<unknown exception>";
        message.clear();
    }
}

int current_pid() noexcept { return static_cast<int>(::getpid()); }

long this_thread_id() noexcept {
    thread_local const long id = static_cast<long>(::gettid());
    return id;
}

std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    return buf;
}

std::string megabytes(std::size_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
    return buf;
}

std::string format_seconds(double seconds) {
    std::ostringstream os;
    os << seconds << " s";
    return os.str();
}

}  // namespace cojob::detail

namespace cojob {

std::string task_failure::report() const {
    const bool remote = pid != detail::current_pid();
    std::string r;
    r += "---------------------------------------------------------------------------\n";
    r += remote ? "Sub-process traceback:\n" : "Task traceback:\n";
    r += "---------------------------------------------------------------------------\n";
    r += exception + (time.empty() ? std::string() : "    " + time) + "\n";
    r += "PID: " + std::to_string(pid) + " on " + host + "\n";
    if (kind == failure_kind::worker_died) {
        r += "The worker process ";
        r += !signal.empty() ? "was killed by " + signal
             : exit_code     ? "exited with code " + std::to_string(*exit_code)
                             : std::string("ended");
        if (peak_rss_bytes) r += ", peak RSS " + detail::megabytes(peak_rss_bytes);
        if (oom_suspected) r += "; the OOM killer acted in its memory cgroup";
        r += "\n";
        if (!stderr_tail.empty()) r += "Its last lines of standard error:\n" + stderr_tail + "\n";
    }
    r += "...........................................................................\n";
    r += "task #" + std::to_string(index) + ": " + function + "(" + arguments + ")";
    if (attempts > 1) r += ", attempt " + std::to_string(attempts);
    if (kind == failure_kind::timeout) r += ", past the timeout";
    r += "\n";
    r += exception + (message.empty() ? std::string() : ": " + message) + "\n";
    r += "___________________________________________________________________________";
    return r;
}

namespace detail {
void throw_no_failure() { throw error("cojob::outcome::failure(): the task did not fail; check has_value() first"); }
}  // namespace detail

}  // namespace cojob
