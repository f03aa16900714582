// src/options.cpp - option validation, the pre_dispatch expression and the thread-local
// parallel_config scopes.
#include <cojob/errors.hpp>
#include <cojob/options.hpp>

#include "resolved_options.hpp"
#include "trace_file.hpp"
#include "util.hpp"
#include "worker.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string_view>

namespace cojob {

const char* backend_name(backend b) noexcept {
    switch (b) {
        case backend::sequential: return "SequentialBackend";
        case backend::threads: return "ThreadingBackend";
        case backend::processes: return "ProcessBackend";
        case backend::mpi: return "MPIBackend";
    }
    return "UnknownBackend";
}

namespace {

[[noreturn]] void bad_pre_dispatch(const std::string& text, const std::string& why) {
    throw error("cojob::options: pre_dispatch=\"" + text + "\" is not valid (" + why +
                "); expected an integer >= 1, \"all\", or an arithmetic expression in n_jobs such as "
                "\"2*n_jobs\" (+ - * / // % ** and parentheses, at most 30 characters)");
}

// Recursive descent over joblib's pre_dispatch grammar, with Python's precedence:
//   expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|'//'|'%') unary)*
//   unary := '-' unary | power ; power := atom ('**' unary)? ; atom := number | n_jobs | '(' expr ')'
class expression {
public:
    expression(const std::string& text, double n_jobs) : text_(text), n_jobs_(n_jobs) {}

    double evaluate() {
        const double v = expr();
        skip_space();
        if (pos_ != text_.size()) bad_pre_dispatch(text_, "unexpected '" + text_.substr(pos_, 1) + "'");
        return v;
    }

private:
    void skip_space() {
        while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    }
    bool eat(std::string_view token) {
        skip_space();
        if (text_.compare(pos_, token.size(), token) != 0) return false;
        pos_ += token.size();
        return true;
    }
    double checked(double v) {
        if (!std::isfinite(v) || std::fabs(v) > 1e6) bad_pre_dispatch(text_, "a value exceeds 1e6");
        return v;
    }
    double expr() {
        double v = term();
        for (;;) {
            if (eat("+")) v = checked(v + term());
            else if (eat("-")) v = checked(v - term());
            else return v;
        }
    }
    double term() {
        double v = unary();
        for (;;) {
            skip_space();
            if (text_.compare(pos_, 2, "**") == 0) return v;  // handled by power()
            if (eat("//")) {
                const double d = unary();
                if (d == 0) bad_pre_dispatch(text_, "division by zero");
                v = checked(std::floor(v / d));
            } else if (eat("*")) {
                v = checked(v * unary());
            } else if (eat("/")) {
                const double d = unary();
                if (d == 0) bad_pre_dispatch(text_, "division by zero");
                v = checked(v / d);
            } else if (eat("%")) {
                const double d = unary();
                if (d == 0) bad_pre_dispatch(text_, "division by zero");
                v = checked(v - d * std::floor(v / d));  // Python's sign rule
            } else {
                return v;
            }
        }
    }
    double unary() {
        if (eat("-")) return -unary();
        return power();
    }
    double power() {
        const double base = atom();
        if (eat("**")) return checked(std::pow(base, unary()));
        return base;
    }
    double atom() {
        skip_space();
        if (eat("(")) {
            const double v = expr();
            if (!eat(")")) bad_pre_dispatch(text_, "missing ')'");
            return v;
        }
        if (eat("n_jobs")) return n_jobs_;
        const std::size_t start = pos_;
        while (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.'))
            ++pos_;
        if (start == pos_) {
            if (pos_ >= text_.size()) bad_pre_dispatch(text_, "unexpected end");
            std::size_t end = pos_;
            while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_'))
                ++end;
            bad_pre_dispatch(text_, end > pos_ ? "unknown name '" + text_.substr(pos_, end - pos_) + "'"
                                               : "unexpected '" + text_.substr(pos_, 1) + "'");
        }
        const std::string number = text_.substr(start, pos_ - start);
        char* end = nullptr;
        const double v = std::strtod(number.c_str(), &end);
        if (end != number.c_str() + number.size()) bad_pre_dispatch(text_, "malformed number '" + number + "'");
        return checked(v);
    }

    const std::string& text_;
    double n_jobs_;
    std::size_t pos_ = 0;
};

}  // namespace

std::optional<std::size_t> pre_dispatch_spec::evaluate(int n_jobs) const {
    if (const int* count = std::get_if<int>(&value_)) {
        if (*count < 1)
            throw error("cojob::options: pre_dispatch=" + std::to_string(*count) +
                        " is not valid; expected an integer >= 1, \"all\", or an expression such as \"2*n_jobs\"");
        return static_cast<std::size_t>(*count);
    }
    const std::string& text = std::get<std::string>(value_);
    if (text == "all") return std::nullopt;
    if (text.empty()) bad_pre_dispatch(text, "empty");
    if (text.size() > 30) bad_pre_dispatch(text, "longer than 30 characters");
    const double v = expression(text, n_jobs).evaluate();
    const double truncated = std::trunc(v);  // Python's int()
    if (truncated < 1) bad_pre_dispatch(text, "evaluates to " + std::to_string(static_cast<long long>(truncated)));
    return static_cast<std::size_t>(truncated);
}

std::string pre_dispatch_spec::text() const {
    if (const int* count = std::get_if<int>(&value_)) return std::to_string(*count);
    return std::get<std::string>(value_);
}

std::size_t batch_size_spec::evaluate() const {
    if (const int* count = std::get_if<int>(&value_)) {
        if (*count < 1)
            throw error("cojob::options: batch_size=" + std::to_string(*count) +
                        " is not valid; expected \"auto\" or an integer > 0");
        return static_cast<std::size_t>(*count);
    }
    const std::string& word = std::get<std::string>(value_);
    if (word == "auto") return 0;
    throw error("cojob::options: batch_size=\"" + word + "\" is not valid; expected \"auto\" or an integer > 0");
}

namespace {
thread_local parallel_config* innermost_scope = nullptr;
}

parallel_config::parallel_config(options defaults) : defaults_(std::move(defaults)), outer_(innermost_scope) {
    innermost_scope = this;
}

parallel_config::~parallel_config() { innermost_scope = outer_; }

options parallel_config::current() {
    options merged;
    for (parallel_config* s = innermost_scope; s; s = s->outer_) {
        const options& d = s->defaults_;
        if (!merged.n_jobs) merged.n_jobs = d.n_jobs;
        if (!merged.backend) merged.backend = d.backend;
        if (!merged.verbose) merged.verbose = d.verbose;
        if (!merged.pre_dispatch) merged.pre_dispatch = d.pre_dispatch;
        if (!merged.batch_size) merged.batch_size = d.batch_size;
        if (!merged.timeout) merged.timeout = d.timeout;
        if (!merged.progress) merged.progress = d.progress;
        if (!merged.progress_bar) merged.progress_bar = d.progress_bar;
        if (!merged.on_task) merged.on_task = d.on_task;
        if (!merged.trace) merged.trace = d.trace;
        if (!merged.temp_folder) merged.temp_folder = d.temp_folder;
        if (!merged.max_nbytes) merged.max_nbytes = d.max_nbytes;
        if (!merged.mmap_mode) merged.mmap_mode = d.mmap_mode;
        if (!merged.retry) merged.retry = d.retry;
        if (!merged.worker_memory_limit) merged.worker_memory_limit = d.worker_memory_limit;
    }
    return merged;
}

}  // namespace cojob

namespace cojob {

std::optional<std::size_t> nbytes_spec::evaluate() const {
    auto bad = [](const std::string& shown) -> std::optional<std::size_t> {
        throw error("cojob::options: max_nbytes=" + shown +
                    " is not valid; expected a byte count >= 0, digits with a K, M or G suffix such as \"1M\", "
                    "or \"none\"");
    };
    if (const long long* count = std::get_if<long long>(&value_)) {
        if (*count < 0) return bad(std::to_string(*count));
        return static_cast<std::size_t>(*count);
    }
    const std::string& text = std::get<std::string>(value_);
    if (text == "none") return std::nullopt;
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    if (digits == 0 || digits > 15 || text.size() > digits + 1) return bad("\"" + text + "\"");
    std::size_t value = std::stoull(text.substr(0, digits));
    if (digits < text.size()) {
        switch (std::toupper(static_cast<unsigned char>(text[digits]))) {
            case 'K': value <<= 10; break;
            case 'M': value <<= 20; break;
            case 'G': value <<= 30; break;
            default: return bad("\"" + text + "\"");
        }
    }
    return value;
}

}  // namespace cojob

namespace cojob::detail {

std::string resolve_temp_folder(const std::optional<std::string>& chosen) {
    std::string folder;
    const char* origin = "temp_folder";
    if (chosen) {
        folder = *chosen;
    } else if (const char* env = std::getenv("COJOB_TEMP_FOLDER"); env && *env) {
        folder = env;
        origin = "temp_folder (from COJOB_TEMP_FOLDER)";
    } else {
        // joblib's rule: the shared-memory file system when it is large enough to be useful.
        struct statvfs fs{};
        if (::statvfs("/dev/shm", &fs) == 0 &&
            static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize) >= 2e9 && ::access("/dev/shm", W_OK) == 0)
            return "/dev/shm";
        std::error_code ec;
        const auto tmp = std::filesystem::temp_directory_path(ec);
        return ec ? std::string("/tmp") : tmp.string();
    }
    struct stat st{};
    if (folder.empty() || ::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || ::access(folder.c_str(), W_OK) != 0)
        throw error("cojob::options: " + std::string(origin) + "=\"" + folder +
                    "\" is not valid; expected an existing directory this process can write to");
    return folder;
}

namespace {

template <class T>
T pick(const T& mine, const T& theirs) {
    return mine ? mine : theirs;
}

std::string kind_text(cojob::backend kind) {
    switch (kind) {
        case backend::sequential: return "sequential";
        case backend::threads: return "threads";
        case backend::processes: return "processes";
        case backend::mpi: return "mpi";
    }
    return std::to_string(static_cast<int>(kind));
}

retry_policy checked_retry(retry_policy p) {
    auto bad = [](const std::string& what) { throw error("cojob::options: retry." + what); };
    if (p.attempts < 1)
        bad("attempts=" + std::to_string(p.attempts) + " is not valid; expected 1 (no retry) or more tries");
    if (!(p.backoff.count() >= 0))
        bad("backoff=" + format_seconds(p.backoff.count()) + " is not valid; expected a delay >= 0");
    if (!(p.max_backoff >= p.backoff))
        bad("max_backoff=" + format_seconds(p.max_backoff.count()) + " is not valid; expected at least backoff (" +
            format_seconds(p.backoff.count()) + ")");
    if (p.jitter != backoff_jitter::full && p.jitter != backoff_jitter::none)
        bad("jitter=" + std::to_string(static_cast<int>(p.jitter)) + " is not valid; expected full or none");
    return p;
}

// Everything but the workers, which `w` gives.
resolved_options resolve_with(const options& o, const options& scope, const resolved_workers& w) {
    resolved_options r;
    r.n_jobs_requested = w.n_jobs_requested;
    r.n_jobs = w.n_jobs;
    r.kind = w.kind;
    const bool nested = w.nested;
    r.verbose = std::max(0, pick(o.verbose, scope.verbose).value_or(0));
    r.pre_dispatch = pick(o.pre_dispatch, scope.pre_dispatch).value_or(pre_dispatch_spec("2*n_jobs")).evaluate(r.n_jobs);
    r.batch_size = pick(o.batch_size, scope.batch_size).value_or(batch_size_spec("auto")).evaluate();
    r.timeout = pick(o.timeout, scope.timeout);
    if (r.timeout && !(r.timeout->count() > 0))
        throw error("cojob::options: timeout=" + std::to_string(r.timeout->count()) +
                    " s is not valid; expected a duration > 0, or leave it unset for no limit");
    r.progress = o.progress ? o.progress : scope.progress;
    r.progress_bar = pick(o.progress_bar, scope.progress_bar).value_or(cojob::progress_bar::off);
    r.on_task = o.on_task ? o.on_task : scope.on_task;
    if (!in_worker_process()) {  // a worker's calls would empty its parent's file
        if (const auto path = pick(o.trace, scope.trace))
            r.trace = trace_file::open(*path, "trace");
        else if (const char* env = std::getenv("COJOB_TRACE"); env && *env)
            r.trace = trace_file::open(env, "trace (from COJOB_TRACE)");
    }
    if (r.progress_bar != cojob::progress_bar::off && r.progress_bar != cojob::progress_bar::on &&
        r.progress_bar != cojob::progress_bar::automatic)
        throw error("cojob::options: progress_bar=" + std::to_string(static_cast<int>(r.progress_bar)) +
                    " is not valid; expected off, on or automatic");
    if (nested && r.progress_bar == cojob::progress_bar::automatic) r.progress_bar = cojob::progress_bar::off;
    if (o.return_as != return_as::list && o.return_as != return_as::generator &&
        o.return_as != return_as::generator_unordered)
        throw error("cojob::options: return_as=" + std::to_string(static_cast<int>(o.return_as)) +
                    " is not valid; expected list, generator or generator_unordered");
    r.return_as = o.return_as;
    r.max_nbytes = pick(o.max_nbytes, scope.max_nbytes).value_or(nbytes_spec("1M")).evaluate();
    r.mmap_mode = pick(o.mmap_mode, scope.mmap_mode).value_or(cojob::mmap_mode::r);
    if (r.mmap_mode != cojob::mmap_mode::r && r.mmap_mode != cojob::mmap_mode::r_plus && r.mmap_mode != cojob::mmap_mode::c)
        throw error(std::string("cojob::options: mmap_mode=") +
                    (r.mmap_mode == cojob::mmap_mode::w_plus ? "w+" : std::to_string(static_cast<int>(r.mmap_mode))) +
                    " is not valid for shared arguments; expected r, r+ or c (w+ would clear them)");
    r.retry = checked_retry(pick(o.retry, scope.retry).value_or(retry_policy{}));
    r.worker_memory_limit = pick(o.worker_memory_limit, scope.worker_memory_limit);
    if (r.worker_memory_limit && *r.worker_memory_limit == 0)
        throw error("cojob::options: worker_memory_limit=0 is not valid; expected a number of bytes > 0, or leave "
                    "it unset for no limit");
    if (r.kind == backend::processes) r.temp_folder = resolve_temp_folder(pick(o.temp_folder, scope.temp_folder));
    return r;
}

}  // namespace

resolved_options resolve(const options& o) {
    const options scope = parallel_config::current();
    return resolve_with(o, scope, resolve_workers(pick(o.n_jobs, scope.n_jobs), pick(o.backend, scope.backend)));
}

resolved_options resolve(const options& o, const resolved_workers& workers) {
    // A backend matches when it is the pool's, or what the pool was asked for, or what it would
    // resolve to with the pool's n_jobs (any but mpi is sequential for one worker).
    if (o.backend && *o.backend != workers.kind && o.backend != workers.kind_requested &&
        resolve_workers(workers.n_jobs_requested, o.backend).kind != workers.kind)
        throw error("cojob::parallel: options.backend=" + kind_text(*o.backend) +
                    " does not match the pool it is built on, whose backend is " + kind_text(workers.kind) +
                    "; a runner built on a cojob::pool runs on the pool's workers: leave backend unset, or "
                    "build a pool of that backend");
    if (o.n_jobs && *o.n_jobs != workers.n_jobs && *o.n_jobs != workers.n_jobs_requested)
        throw error("cojob::parallel: options.n_jobs=" + std::to_string(*o.n_jobs) +
                    " does not match the pool it is built on, which has n_jobs=" + std::to_string(workers.n_jobs) +
                    "; a runner built on a cojob::pool runs on the pool's workers: leave n_jobs unset");
    if (o.worker_memory_limit)
        throw error("cojob::parallel: options.worker_memory_limit is set, but a runner built on a cojob::pool runs "
                    "on the pool's workers, started without a limit; set it on a runner that owns its workers");
    return resolve_with(o, parallel_config::current(), workers);
}

}  // namespace cojob::detail
