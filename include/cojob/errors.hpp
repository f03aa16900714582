// cojob/errors.hpp - the error family every cojob operation reports through.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace cojob {

/// Base of every exception cojob raises itself (user exceptions thrown by tasks travel unchanged).
///
/// Derives from `std::runtime_error`, so `catch (const std::exception&)` sees it too.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A task failed in a place its exception object could not travel from (another process or
/// host) and its type was not one cojob can recreate; `what()` carries the remote type,
/// message, function, arguments, worker pid and host.
class remote_error : public error {
public:
    using error::error;
};

/// A worker process died while it held tasks of the call (signal, exit, OOM kill).
class worker_died : public error {
public:
    using error::error;
};

/// A task ran longer than `options::timeout`.
class timeout_error : public error {
public:
    using error::error;
};

/// Bytes cojob reads back were malformed, truncated or written by another build: a worker's
/// frame (the worker is then replaced), a `cojob::load`ed file, a `cojob::memory` entry.
/// `what()` says what was wrong with them.
class decode_error : public error {
public:
    using error::error;
};

/// A blocking call was cancelled before it completed (asynchronous calls complete with
/// `boost::asio::error::operation_aborted` instead).
class cancelled : public error {
public:
    using error::error;
};

/// Why a task failed (`task_failure::kind`).
enum class failure_kind {
    exception,    ///< it threw
    timeout,      ///< it ran past `options::timeout`
    worker_died,  ///< the worker process running it died (a signal, an exit, the OOM killer)
    cancelled,    ///< its call was cancelled while it ran
};

/// What is known about the task whose exception ended a call: which function, with which
/// arguments, where. Returned by `parallel::last_failure()`; the task's own exception is
/// rethrown unchanged, so this is how its context stays reachable.
struct task_failure {
    std::string function;    ///< demangled name of the callable (or its type when it has no symbol)
    std::string arguments;   ///< the arguments, printed when printable, else `<type, N bytes>`
    std::size_t index = 0;   ///< position of the task in the input range
    std::string exception;   ///< demangled type of the exception
    std::string message;     ///< its `what()`, when it is a `std::exception`
    int pid = 0;             ///< process that ran the task
    std::string host;        ///< host that ran the task
    std::string time;        ///< when it failed, local time as ctime() prints it
    failure_kind kind = failure_kind::exception;  ///< what ended it
    int attempts = 1;        ///< how many times it ran (options::retry), this one included

    // With kind == worker_died, what the worker's end said:
    std::string signal;                ///< the signal that killed it ("SIGSEGV"), or empty
    std::optional<int> exit_code;      ///< its exit status, when it exited instead
    std::size_t peak_rss_bytes = 0;    ///< its peak resident memory (0: unknown)
    /// It was killed by SIGKILL while the kernel's OOM killer acted in its memory cgroup (the
    /// cgroup's `oom_kill` count rose since the worker started).
    bool oom_suspected = false;
    /// The last lines the worker wrote to standard error (at most 20 lines and 4 KiB), such as
    /// a sanitizer's report or `terminate called after throwing...`; empty when it wrote none.
    std::string stderr_tail;

    /// A multi-line report in the spirit of joblib's "Sub-process traceback".
    [[nodiscard]] std::string report() const;
};

namespace detail {
void register_exception_factory(const std::type_info& type, std::exception_ptr (*make)(const std::string& message));
}

/// Lets an exception of type E thrown by a task in a worker process come back to the caller as
/// an E (built from its message) rather than as `cojob::remote_error`. Standard exceptions
/// (`std::logic_error`, `std::runtime_error` and their standard subclasses, `std::bad_alloc`)
/// and cojob's own errors come back with their type without this. Call it in the parent before
/// the call; E must be constructible from a `std::string`.
template <class E>
void register_exception() {
    detail::register_exception_factory(typeid(E), [](const std::string& message) {
        return std::make_exception_ptr(E(message));
    });
}

}  // namespace cojob
