// cojob/detail/wire.hpp - what crosses a process boundary: the typed halves of a batch's trip
// (encode tasks here, run them in the worker, decode the results here), over the archives of
// cojob/detail/wire_archive.hpp, for the tasks wire_traits.hpp lets travel.
#pragma once

#include <cojob/delayed.hpp>
#include <cojob/detail/elements.hpp>
#include <cojob/detail/wire_archive.hpp>
#include <cojob/detail/wire_traits.hpp>
#include <cojob/errors.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace cojob::detail {

// ---- implemented in src/wire.cpp --------------------------------------------------------

/// Writes the identity of a function at `address` as (module, offset, code fingerprint).
void encode_function(wire_out& out, std::uintptr_t address);
/// Reads a function identity and returns its address in this process, after checking that
/// it lies in an executable segment of the named module and that its first bytes match.
/// @throws wire_error otherwise.
std::uintptr_t decode_function(wire_in& in);

/// State the worker offers a running batch.
struct worker_context {
    /// Shared with the parent: the task now running and since when (for timeouts), or null.
    std::atomic<std::uint64_t>* running = nullptr;
    std::atomic<std::int64_t>* running_since = nullptr;
    /// Called once per batch before the response's payload is first written, after the first
    /// task ran (the worker waits there for its result arena, so that the parent's reading of
    /// the previous response overlaps the task), or null.
    void (*acquire_output)(void* arg) = nullptr;
    void* acquire_arg = nullptr;
    /// Called as a tracked task starts, with its index in the batch, or null (MPI ranks tell
    /// rank 0 this way: they share no memory with it).
    void (*task_started)(void* arg, std::uint64_t index) = nullptr;
    void* task_started_arg = nullptr;
    /// In a process worker with an arena: where a task's result that is a large vector of
    /// numbers (large_vector_bytes or more) is kept alive when it is lent, its address written
    /// instead of its bytes (save_lent). acquire_output empties it: by then the parent has read
    /// the previous response. Null elsewhere (MPI ranks, no arena).
    std::vector<std::shared_ptr<void>>* lent = nullptr;
    /// With `lent`, in the shared status page: 0 while the parent cannot read this worker's
    /// memory, else how many workers it reads from (see worth_lending).
    const std::atomic<std::uint32_t>* lend_readers = nullptr;
    /// Steady ns when the batch's tasks began, or the task after its last large vector result.
    mutable std::int64_t lend_mark_ns = 0;
    /// Set by the invoker when its response reports a failing task.
    mutable bool failed = false;

    void acquire() const {
        if (acquire_output) acquire_output(acquire_arg);
    }
    /// Whether a large vector result of `bytes` bytes, made by `made_ns` (steady), is lent to
    /// the parent rather than copied into the response (the policy is compiled in src/wire.cpp).
    [[nodiscard]] bool worth_lending(std::size_t bytes, std::int64_t made_ns) const noexcept;
};

/// Runs a decoded request: reads the tasks from `in`, runs them, writes the response to `out`.
using invoker_fn = void (*)(wire_in& in, wire_out& out, const worker_context& ctx);

/// Registers `fn` under `key` (static initialisation: every process of the program has the
/// same table). A second type under the same key makes the key ambiguous: its tasks are
/// refused (check_invoker) instead of run by the wrong invoker. Returns true.
bool register_invoker(std::uint64_t key, invoker_fn fn, const char* type_name) noexcept;
/// Parent side, before tasks of the type named `type_name` are sent under `key`.
/// @throws cojob::error naming both types when another type shares the key.
void check_invoker(std::uint64_t key, const char* type_name);
/// FNV-1a of a type's mangled name: the same in every process of one build.
[[nodiscard]] std::uint64_t type_key(const std::type_info& t) noexcept;

/// @throws wire_error: a response counts more completed tasks than its request sent.
[[noreturn]] void answered_too_many();
/// Parent side: the start and end times that a timed response of `completed` tasks that all
/// returned ends with (the worker writes them last), read from the payload's tail without
/// decoding the results before them, which a stream reads later. Leaves `times` empty when
/// the tail is not `2 * completed` times after their count.
void read_trailing_times(const char* payload, std::size_t size, std::size_t completed, std::vector<std::int64_t>& times);
/// Writes the failure of the task being run (called inside a catch block in the worker).
void encode_current_failure(wire_out& out, std::size_t index, const std::string& function,
                            const std::string& arguments);
/// Reads the failure a worker reported: the exception's mangled type and the facts.
void decode_failure(wire_in& in, std::string& mangled_type, task_failure& facts);
/// Rebuilds the exception a worker reported: the original type when it is a standard
/// exception, a cojob error or a registered type, else `remote_error`. `what()` is the original
/// message followed by the report.
[[nodiscard]] std::exception_ptr rebuild_exception(const std::string& mangled_type, const task_failure& facts);

[[nodiscard]] std::int64_t steady_now_ns() noexcept;

/// Reads a result: a large `std::vector` of numbers in one pass (load_large_vector), anything
/// else through cereal.
template <class R>
void read_result(wire_in& in, R& r) {
    if constexpr (is_std_vector<R>) {
        using E = typename R::value_type;
        if constexpr (std::is_arithmetic_v<E> && !std::is_same_v<E, bool>)
            if (load_large_vector(in, r)) return;
    }
    in(r);
}

/// A successful response left in a worker's result arena for a stream: its results are read
/// when the consumer takes the first of them, so results waiting for a slow consumer stay in
/// the worker (which holds them anyway) instead of existing twice. Made by the process
/// backend (src/process/arena.hpp, arena_payload).
class deferred_payload {
public:
    deferred_payload() = default;
    deferred_payload(const deferred_payload&) = delete;
    deferred_payload& operator=(const deferred_payload&) = delete;
    /// Hands the arena back to its worker, which may then write its next response.
    virtual ~deferred_payload() = default;
    /// The payload's bytes, mapped into this process.
    [[nodiscard]] virtual const char* data() = 0;
    [[nodiscard]] virtual std::size_t size() const noexcept = 0;
    /// Copies the payload's bytes [offset, offset + n) to `sink` piece by piece, without
    /// mapping them here (their pages stay counted in the worker only).
    virtual void copy_out(std::size_t offset, std::size_t n, piece_sink sink, void* ctx) = 0;
    /// Copies bytes the response lent (blob_lent) from its worker's memory to `sink`.
    /// @throws worker_died when that worker is gone.
    virtual void copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) = 0;
};

/// The results of a deferred payload (the tasks before a failure never come this way).
template <class R>
std::vector<R> read_deferred(deferred_payload& p) {
    std::vector<R> results;
    if constexpr (wire_value<R>) {
        wire_in in(p.data(), p.size());
        std::uint64_t completed = 0;
        in(completed);
        if (completed > in.remaining()) throw wire_error("cojob: corrupt result count in a worker's arena");
        results.reserve(static_cast<std::size_t>(completed));
        for (std::uint64_t i = 0; i < completed; ++i) {
            R r{};
            bool done = false;
            if constexpr (is_std_vector<R>) {
                using E = typename R::value_type;
                if constexpr (std::is_arithmetic_v<E> && !std::is_same_v<E, bool>)
                    done = read_large_vector(
                        in, r,
                        [&](std::size_t bytes, piece_sink sink, void* ctx) {
                            const std::size_t offset = in.position();
                            in.skip(bytes);
                            p.copy_out(offset, bytes, sink, ctx);  // not mapped here: see copy_out
                        },
                        [&p](std::uint64_t address, std::size_t bytes, piece_sink sink, void* ctx) {
                            p.copy_lent(address, bytes, sink, ctx);
                        });
            }
            if (!done) in(r);
            results.push_back(std::move(r));
        }
    } else {
        (void)p;  // never made: such results do not travel
        throw wire_error("cojob: results of this type cannot come from a worker process");
    }
    return results;
}

// ---- the typed halves ------------------------------------------------------------------

template <class Task>
struct remote {
    using traits = task_traits<Task>;
    using F = typename traits::function;
    using R = typename Task::result_type;
    static constexpr bool possible = traits::callable_ok && traits::arguments_ok && result_ok<Task>();

    static std::uint64_t key() {
        static const std::uint64_t k = type_key(typeid(Task));
        return k;
    }

    static void write_function(wire_out& out, const F& f) {
        if constexpr (is_function_pointer<F>)
            encode_function(out, std::bit_cast<std::uintptr_t>(f));
        else if constexpr (is_stateless_callable<F>)
            (void)f;
        else
            out(f);
    }
    static F read_function(wire_in& in) {
        if constexpr (is_function_pointer<F>) {
            return std::bit_cast<F>(decode_function(in));
        } else if constexpr (is_stateless_callable<F>) {
            return F{};
        } else {
            F f{};
            in(f);
            return f;
        }
    }

    /// Parent side: the tasks into a request payload. A batch whose tasks all call the same
    /// function names it once. `timed`: the worker reports when each task started and ended.
    template <class Tasks>
    static void encode(wire_out& out, const Tasks& tasks, bool track, bool timed = false) {
        (void)registered;  // odr-use: every program that sends this type can also run it
        static const bool unambiguous = (check_invoker(key(), typeid(Task).name()), true);  // once per type
        (void)unambiguous;
        bool shared = is_stateless_callable<F>;
        if constexpr (is_function_pointer<F>) {
            shared = true;
            for (const Task& t : tasks)
                if (t.function() != tasks.front().function()) {
                    shared = false;
                    break;
                }
        }
        const std::uint8_t flags = (track ? 1 : 0) | (shared ? 2 : 0) | (timed ? 4 : 0);
        out(key(), flags, static_cast<std::uint64_t>(tasks.size()));
        if (shared && !tasks.empty()) write_function(out, tasks.front().function());
        for (const Task& t : tasks) {
            if (!shared) write_function(out, t.function());
            std::apply([&out](const auto&... a) { (out(a), ...); }, t.arguments());
        }
    }

    /// Parent side: the response payload into `results`; returns how many completed, and
    /// sets `error` and `facts` when a task failed (`first`: input position of the batch, `sent`:
    /// its tasks; a response claiming more is refused before anything is allocated). `times`:
    /// the request was timed, and the tasks' start and end times go there.
    template <class Results>
    static std::size_t decode(wire_in& in, Results& results, std::size_t first, std::size_t sent,
                              std::exception_ptr& error, std::optional<task_failure>& facts,
                              std::vector<std::int64_t>* times = nullptr) {
        std::uint64_t completed = 0;
        in(completed);
        if (completed > sent) answered_too_many();
        if constexpr (!std::is_void_v<R>) {
            reserve_present(results, static_cast<std::size_t>(completed));
            for (std::uint64_t i = 0; i < completed; ++i) {
                R r{};
                read_result(in, r);
                results.push_back(std::move(r));
            }
        }
        std::uint8_t failed = 0;
        in(failed);
        if (failed) {
            std::string type;
            task_failure f;
            decode_failure(in, type, f);
            f.index = first + static_cast<std::size_t>(completed);
            error = rebuild_exception(type, f);
            facts = std::move(f);
        }
        if (times) {
            std::uint64_t n = 0;
            in(n);
            if (n > 2 * (completed + 1) || n > in.remaining() / sizeof(std::int64_t)) answered_too_many();
            times->resize(static_cast<std::size_t>(n));
            for (auto& t : *times) in(t);
        }
        return static_cast<std::size_t>(completed);
    }

    /// Worker side: runs every task of the request, stopping at the first that throws.
    static void invoke(wire_in& in, wire_out& out, const worker_context& ctx) {
        std::uint8_t flags = 0;
        std::uint64_t n = 0;
        in(flags, n);
        const bool shared = (flags & 2) != 0;
        std::optional<F> common;
        if (shared && n) common.emplace(read_function(in));
        const bool track = (flags & 1) != 0 && ctx.running_since;
        const bool timed = (flags & 4) != 0;
        std::vector<std::int64_t> times;  // start and end of each task run, for the parent's events
        if (timed) times.reserve(2 * static_cast<std::size_t>(std::min<std::uint64_t>(n, in.remaining())));
        const auto write_times = [&] {
            if (!timed) return;
            out(static_cast<std::uint64_t>(times.size()));
            for (const std::int64_t t : times) out(t);
        };
        // Results are written after a placeholder count, patched at the end; nothing is written
        // before the first task has run (see worker_context::acquire_output).
        std::size_t count_at = 0;
        std::uint64_t completed = 0;
        bool begun = false;
        const auto begin = [&] {
            if (begun) return;
            begun = true;
            // The arena may wait for a slow consumer of a stream: no task runs meanwhile, and
            // a timeout must not count that wait.
            if (track) ctx.running_since->store(0, std::memory_order_release);
            ctx.acquire();
            count_at = out.buffer().size();
            out(completed);
        };
        for (std::uint64_t i = 0; i < n; ++i) {
            F f = shared ? *common : read_function(in);  // the function comes before the arguments
            Task t(std::move(f), read_arguments(in));
            if (ctx.running) ctx.running->store(i, std::memory_order_relaxed);  // names the task if we crash
            if (track) {
                ctx.running_since->store(steady_now_ns(), std::memory_order_release);
                if (ctx.task_started) ctx.task_started(ctx.task_started_arg, i);
            }
            if (timed) times.push_back(steady_now_ns());
            try {
                if constexpr (std::is_void_v<R>) {
                    t();
                    if (timed) times.push_back(steady_now_ns());
                    begin();
                } else {
                    R r = t();
                    if (timed) times.push_back(steady_now_ns());
                    bool large = false;  // a large vector of numbers: lent, or timed for the next
                    if constexpr (is_std_vector<R>) {
                        using E = typename R::value_type;
                        if constexpr (std::is_arithmetic_v<E> && !std::is_same_v<E, bool>) {
                            if (r.size() >= large_vector_bytes / sizeof(E)) {
                                large = true;
                                const std::int64_t made = steady_now_ns();
                                begin();  // may wait for the arena: not counted as making
                                if (ctx.worth_lending(r.size() * sizeof(E), made)) {
                                    auto kept = std::make_shared<R>(std::move(r));  // the elements stay put
                                    ctx.lent->push_back(kept);
                                    save_lent(out, kept->data(), kept->size());
                                    ctx.lend_mark_ns = steady_now_ns();
                                    ++completed;
                                    continue;
                                }
                            }
                        }
                    }
                    begin();
                    const std::size_t mark = out.buffer().size();
                    try {
                        out(r);
                    } catch (...) {
                        out.buffer().resize(mark);  // drop a half-written result
                        throw;
                    }
                    if (large) ctx.lend_mark_ns = steady_now_ns();  // the next task starts now
                }
            } catch (...) {
                if (timed && times.size() % 2 != 0) times.push_back(steady_now_ns());
                begin();
                std::memcpy(out.buffer().data() + count_at, &completed, sizeof completed);
                ctx.failed = true;
                encode_current_failure(out, static_cast<std::size_t>(i), t.function_name(), t.describe_arguments());
                write_times();
                return;
            }
            ++completed;
        }
        begin();
        std::memcpy(out.buffer().data() + count_at, &completed, sizeof completed);
        out(std::uint8_t{0});
        write_times();
        if (track) ctx.running_since->store(0, std::memory_order_release);  // nothing runs until the next batch
    }

    static typename traits::arguments read_arguments(wire_in& in) {
        typename traits::arguments args{};
        std::apply([&in](auto&... a) { (in(a), ...); }, args);
        return args;
    }

    static inline const bool registered = register_invoker(key(), &invoke, typeid(Task).name());
};

}  // namespace cojob::detail
