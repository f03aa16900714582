// cojob/options.hpp - what a `parallel` runner is configured with, and the thread-local
// `parallel_config` scope that supplies defaults (joblib's `parallel_config`).
#pragma once

#include <cojob/mmap_mode.hpp>
#include <cojob/retry.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <variant>

namespace cojob {

struct task_event;  // cojob/task_event.hpp

/// Where tasks run.
enum class backend {
    sequential,  ///< on the caller's thread, one after the other (what n_jobs=1 means)
    threads,     ///< on a pool of threads owned by the `parallel` object (default for n_jobs > 1)
    processes,   ///< on crash-isolated worker processes (re-executions of the program)
    mpi,         ///< on the other ranks of an MPI job (`mpirun -n K ./app`): cojob/mpi.hpp
};

/// The name joblib users know a backend by in verbose output ("ThreadingBackend", ...).
[[nodiscard]] const char* backend_name(backend b) noexcept;

/// How many tasks may be taken from the input ahead of completions: an integer, "all", or an
/// arithmetic expression in `n_jobs` such as "2*n_jobs" or "1.5*n_jobs" (`+ - * / // % **`,
/// unary minus, parentheses; at most 30 characters). Validated when the `parallel` is built.
class pre_dispatch_spec {
public:
    /// A fixed window of `count` tasks.
    pre_dispatch_spec(int count) : value_(count) {}                 // NOLINT: implicit on purpose
    /// "all" or an expression in `n_jobs`, checked when the `parallel` is built.
    pre_dispatch_spec(const char* expression) : value_(std::string(expression)) {}  // NOLINT
    /// "all" or an expression in `n_jobs`, checked when the `parallel` is built.
    pre_dispatch_spec(std::string expression) : value_(std::move(expression)) {}   // NOLINT

    /// The window in tasks for a given effective n_jobs; `std::nullopt` means "all".
    /// @throws cojob::error naming the expression when it is malformed or not >= 1.
    [[nodiscard]] std::optional<std::size_t> evaluate(int n_jobs) const;
    /// The value as written: the count in decimal, or the expression.
    [[nodiscard]] std::string text() const;

private:
    std::variant<int, std::string> value_;
};

/// What `parallel` hands results back as (joblib's `return_as`). C++ fixes a call's return type
/// at compile time, so the choice is made by the call you write: `par(range)` and `async_run`
/// return a list and refuse the generator values; `par.stream(range)` returns a `cojob::stream`
/// and takes its order from this option (see cojob/stream.hpp).
enum class return_as {
    list,                 ///< `std::vector<R>` in input order (the default)
    generator,            ///< a stream in input order
    generator_unordered,  ///< a stream in completion order
};

/// Whether a call draws a progress bar on standard error (`options::progress_bar`).
enum class progress_bar {
    off,        ///< never (the default)
    on,         ///< always, even when standard error is not a terminal
    automatic,  ///< when standard error is a terminal and `verbose` is 0
};

/// Tasks per dispatched batch: "auto" (joblib's adaptive algorithm) or a count > 0.
class batch_size_spec {
public:
    /// A fixed count of tasks per batch.
    batch_size_spec(int count) : value_(count) {}                   // NOLINT: implicit on purpose
    /// "auto", checked when the `parallel` is built.
    batch_size_spec(const char* word) : value_(std::string(word)) {}  // NOLINT
    /// "auto", checked when the `parallel` is built.
    batch_size_spec(std::string word) : value_(std::move(word)) {}    // NOLINT

    /// 0 for "auto", else the fixed count. @throws cojob::error on anything else.
    [[nodiscard]] std::size_t evaluate() const;

private:
    std::variant<int, std::string> value_;
};

/// A size in bytes (joblib's `max_nbytes`): a count, or a string of digits with an optional
/// K, M or G suffix (powers of 1024: "1M" is 1048576), or "none" (no limit: never share).
class nbytes_spec {
public:
    /// A count of bytes.
    nbytes_spec(int bytes) : value_(static_cast<long long>(bytes)) {}  // NOLINT: implicit on purpose
    /// A count of bytes.
    nbytes_spec(long long bytes) : value_(bytes) {}                    // NOLINT
    /// Digits with an optional K, M or G suffix, or "none".
    nbytes_spec(const char* text) : value_(std::string(text)) {}       // NOLINT
    /// Digits with an optional K, M or G suffix, or "none".
    nbytes_spec(std::string text) : value_(std::move(text)) {}         // NOLINT

    /// The size in bytes; `std::nullopt` for "none".
    /// @throws cojob::error naming max_nbytes and the accepted forms.
    [[nodiscard]] std::optional<std::size_t> evaluate() const;

private:
    std::variant<long long, std::string> value_;
};

/// One progress report, given to `options::progress` after every completed batch.
struct progress_event {
    std::size_t completed = 0;             ///< tasks finished so far
    std::size_t dispatched = 0;            ///< tasks handed to workers so far
    std::optional<std::size_t> total;      ///< known when the input is a sized range, or once it ran out
    std::chrono::duration<double> elapsed{};  ///< seconds since the call started
    bool finished = false;                 ///< the last report of a call that succeeded
};

/// The configuration of a `parallel` runner. Every field is optional: unset fields come from
/// the innermost `parallel_config` scope that sets them, else from the default noted here.
/// Meant for designated initializers: `cojob::parallel par{{.n_jobs = 2, .verbose = 5}};`
struct options {
    /// Workers: k > 0, -1 for every CPU, -k for all but k-1 (joblib's rule, floored at 1);
    /// 0 is an error. CPUs counted by `cpu_count()`. Default 1.
    std::optional<int> n_jobs{};
    /// Default: `sequential` when n_jobs resolves to 1, else `threads`. With `mpi`, n_jobs counts
    /// worker ranks: -1 is all of them, and a larger count is capped to them.
    std::optional<cojob::backend> backend{};
    /// joblib's progress lines: 0 silent, 1..10 sparser to denser, >10 every batch; to stderr
    /// below 50, stdout from 50. Default 0.
    std::optional<int> verbose{};
    /// Default "2*n_jobs".
    std::optional<pre_dispatch_spec> pre_dispatch{};
    /// Default "auto".
    std::optional<batch_size_spec> batch_size{};
    /// Longest a single task may run; unset means no limit. Ignored on the sequential backend.
    std::optional<std::chrono::duration<double>> timeout{};
    /// `list` (default) for `par(range)`; `generator` / `generator_unordered` choose the order of
    /// `par.stream(range)` and make `par(range)` throw. Not taken from `parallel_config` scopes
    /// (as in joblib, where it is a per-call choice).
    cojob::return_as return_as = cojob::return_as::list;
    /// Called on the scheduler's thread after each completed batch (also with n_jobs=1).
    std::function<void(const progress_event&)> progress{};
    /// A one-line bar on standard error, redrawn in place at most 10 times a second: percent,
    /// count / total, elapsed, time left, tasks per second and busy workers (count and rate
    /// alone while the input's length is unknown). A call that succeeds leaves its last drawing
    /// on its own line; a call that fails erases it. Verbose lines are written above it. A call
    /// nested in another's task draws none with `automatic`. Default `off`.
    std::optional<cojob::progress_bar> progress_bar{};
    /// Called for every task as it is dispatched, starts, and finishes or fails, in that order
    /// per task, on the scheduler's thread, on every backend (`cojob/task_event.hpp`). Unset:
    /// nothing is recorded.
    std::function<void(const task_event&)> on_task{};
    /// A timeline of the calls, written to this file in Chrome's trace-event JSON, which the
    /// Perfetto UI and chrome://tracing open: a track per worker and one for the scheduler, a
    /// slice per task named after its function (docs/observability.md). The file is emptied
    /// when the program first opens it; every `parallel` naming it then adds its calls, and it
    /// is valid JSON after each call. Unset: the path in the environment variable
    /// `COJOB_TRACE`, else no trace. Worker processes and ranks write none.
    std::optional<std::string> trace{};

    // ---- large arrays on backend::processes (docs/arrays.md) ----
    /// Where arguments larger than `max_nbytes` are placed to be shared with the workers.
    /// Default, as joblib: the environment variable `COJOB_TEMP_FOLDER`, else /dev/shm when it
    /// is a writable file system of 2 GB or more, else the system's temporary directory
    /// (TMPDIR, /tmp). Checked (an existing writable directory) when the backend is processes.
    std::optional<std::string> temp_folder{};
    /// Array arguments (std::span<const T>, std::vector<T> of trivially copyable / arithmetic T)
    /// of this many bytes or more are placed once per call in shared memory instead of being
    /// copied into every request; "none" turns that off. Default "1M".
    std::optional<nbytes_spec> max_nbytes{};
    /// How workers map the shared arguments: `r` (default, read-only), `c` (private
    /// copy-on-write) or `r_plus` (writable, shared by the workers of the call; the caller's own
    /// array is never written). `w_plus` is refused: it would clear them.
    std::optional<cojob::mmap_mode> mmap_mode{};

    // ---- failures (docs/guide.md, "Failures, deadlines and retries") ----
    /// When a failed task runs again, after which delay (`cojob/retry.hpp`). Unset: never.
    std::optional<retry_policy> retry{};
    /// backend::processes and backend::mpi: the most address space a worker may take, in
    /// bytes. A task that needs more fails with `failure_kind::worker_died` and
    /// `oom_suspected`; a worker process is replaced, an MPI rank (which cannot be) lives on
    /// once the task has unwound, since there the limit holds only while the call's tasks run.
    /// Counts everything the worker maps (its heap, its threads' stacks, the shared arrays of
    /// a call). Unset: no limit but the machine's. Refused on a runner built on a `cojob::pool`
    /// (its workers are the pool's); no effect on threads.
    std::optional<std::size_t> worker_memory_limit{};
};

/// CPUs this process may use: the smallest of the online CPUs, the affinity mask and the
/// cgroup CPU quota (v1 or v2), at least 1.
[[nodiscard]] int cpu_count() noexcept;

/// The number of workers `n_jobs` stands for (joblib's `effective_n_jobs`).
/// @throws cojob::error when n_jobs is 0.
[[nodiscard]] int effective_n_jobs(int n_jobs);

/// A thread-local scope of defaults (joblib's `with parallel_config(...)`): while it lives,
/// `parallel` objects built on this thread take the fields it sets unless they set them
/// themselves. Scopes nest; an inner scope overrides only the fields it sets.
///
/// @par Thread safety
/// Affects only the thread that created it; destroy scopes in reverse order of creation.
class parallel_config {
public:
    /// Makes `defaults`' set fields the defaults of this thread's `parallel` objects until destroyed.
    explicit parallel_config(options defaults);
    ~parallel_config();
    parallel_config(const parallel_config&) = delete;
    parallel_config& operator=(const parallel_config&) = delete;

    /// The merge of every active scope on this thread (innermost wins).
    [[nodiscard]] static options current();

private:
    options defaults_;
    parallel_config* outer_;
};

}  // namespace cojob
