// tests/common/kit.hpp - the shared test kit: a value type that counts its copies and moves,
// the process's thread count, a capture of stdout/stderr, a one-pass input range that records
// what it produced and where, a gate a blocked task can be released from, a watchdog that ends
// a hung test with its name, a bounded run of a coroutine, and small helpers for bounded waits
// and exception messages.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <ranges>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace kit {

// The sanitizer a build runs under: GCC defines __SANITIZE_ADDRESS__ and __SANITIZE_THREAD__,
// clang answers __has_feature.
#if defined(__has_feature)
#define KIT_HAS_FEATURE(name) __has_feature(name)
#else
#define KIT_HAS_FEATURE(name) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || KIT_HAS_FEATURE(address_sanitizer)
inline constexpr bool asan = true;
#else
inline constexpr bool asan = false;
#endif
#if defined(__SANITIZE_THREAD__) || KIT_HAS_FEATURE(thread_sanitizer)
inline constexpr bool tsan = true;
#else
inline constexpr bool tsan = false;
#endif
#undef KIT_HAS_FEATURE

/// Built with ASan or TSan: stress tests scale their counts down (a sanitized debug build runs
/// them 10-50x slower), keeping what they check.
inline constexpr bool sanitized = asan || tsan;

// ---------------------------------------------------------------------------------------------
// counted: a value that reports every copy, move and destruction to a `counts` record.

struct counts {
    std::atomic<int> constructed{0};
    std::atomic<int> copies{0};
    std::atomic<int> moves{0};
    std::atomic<int> destroyed{0};
    std::atomic<int> holding{0};  ///< alive and not moved from: the values that hold resources

    /// Objects alive now (constructed + copied + moved - destroyed), moved-from husks included.
    [[nodiscard]] int alive() const noexcept { return constructed + copies + moves - destroyed; }
    /// Values alive now: a move hands the value on, so husks do not count.
    [[nodiscard]] int values() const noexcept { return holding; }
};

class counted {
public:
    counted(counts& c, int value) : counts_(&c), value_(value), holds_(true) {
        ++counts_->constructed;
        ++counts_->holding;
    }
    counted(const counted& other) : counts_(other.counts_), value_(other.value_), holds_(other.holds_) {
        ++counts_->copies;
        if (holds_) ++counts_->holding;
    }
    counted(counted&& other) noexcept
        : counts_(other.counts_), value_(other.value_), holds_(std::exchange(other.holds_, false)) {
        other.value_ = -1;
        ++counts_->moves;
    }
    counted& operator=(const counted& other) {
        if (this == &other) return *this;
        release();
        counts_ = other.counts_;
        value_ = other.value_;
        holds_ = other.holds_;
        if (holds_) ++counts_->holding;
        ++counts_->copies;
        return *this;
    }
    counted& operator=(counted&& other) noexcept {
        if (this == &other) return *this;
        release();
        counts_ = other.counts_;
        value_ = other.value_;
        holds_ = std::exchange(other.holds_, false);
        other.value_ = -1;
        ++counts_->moves;
        return *this;
    }
    ~counted() {
        release();
        ++counts_->destroyed;
    }

    [[nodiscard]] int value() const noexcept { return value_; }
    friend std::ostream& operator<<(std::ostream& os, const counted& c) { return os << "counted{" << c.value_ << "}"; }

private:
    void release() noexcept {
        if (holds_) --counts_->holding;
        holds_ = false;
    }

    counts* counts_;
    int value_;
    bool holds_ = false;
};

/// 0, 1, ..., n - 1.
inline auto iota(int n) { return std::views::iota(0, n); }

/// A task that reads its counted argument.
inline int read_value(const counted& c) { return c.value(); }

/// A task that returns `i`, or throws std::invalid_argument("bad <i>") when `i == bad`.
[[nodiscard]] long fails_on(long i, long bad);

// ---------------------------------------------------------------------------------------------
// Threads and streams.

/// Threads of this process now: the entries of /proc/self/task.
[[nodiscard]] std::size_t thread_count();

/// Redirects a file descriptor (STDOUT_FILENO, STDERR_FILENO) into an anonymous temporary file
/// until `text()` is called or the capture is destroyed; flushes stdio and iostreams on both
/// ends so nothing written before or after leaks in or out.
class stream_capture {
public:
    explicit stream_capture(int fd);
    ~stream_capture();
    stream_capture(const stream_capture&) = delete;
    stream_capture& operator=(const stream_capture&) = delete;

    /// Ends the capture and returns everything written to the descriptor meanwhile.
    [[nodiscard]] std::string text();

private:
    void restore() noexcept;

    int fd_;
    int saved_ = -1;
    int file_ = -1;
};

/// The lines of `text`, without their '\n'.
[[nodiscard]] std::vector<std::string> lines_of(const std::string& text);

/// The whole content of the file at `path` ("" when it cannot be read).
[[nodiscard]] std::string raw_bytes(const std::string& path);

// ---------------------------------------------------------------------------------------------
// A gate: tasks wait on it (boundedly) until the test opens it.

class gate {
public:
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    /// Waits until the gate opens or `limit` passes; returns whether it opened.
    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> limit) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, limit, [this] { return open_; });
    }
    [[nodiscard]] bool is_open() {
        std::lock_guard lock(mutex_);
        return open_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Ends the process (exit code 3) with a message if it is still alive after `limit`.
class watchdog {
public:
    watchdog(std::chrono::seconds limit, const char* what)
        : thread_([this, limit, what] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  std::fprintf(stderr, "test \"%s\" still running after %lld s: hung\n", what,
                               static_cast<long long>(limit.count()));
                  std::_Exit(3);
              }
          }) {}
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

/// Polls `condition` every millisecond until it holds or `limit` passes; returns whether it held.
template <class Condition, class Rep, class Period>
bool eventually(Condition&& condition, std::chrono::duration<Rep, Period> limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

/// Whether SIGINT has its default disposition (nobody, such as a call watching for Ctrl-C, has
/// claimed it): sending it then would end the process.
inline bool sigint_is_default() {
    struct sigaction current {};
    return ::sigaction(SIGINT, nullptr, &current) == 0 && current.sa_handler == SIG_DFL;
}

/// Raises `target` to at least `value`.
inline void raise_to(std::atomic<long>& target, long value) {
    long seen = target.load();
    while (seen < value && !target.compare_exchange_weak(seen, value)) {
    }
}

/// The `what()` of the `E` that `f` throws, or "<nothing thrown>"; other exceptions propagate.
template <class E, class F>
std::string message_of(F&& f) {
    try {
        std::forward<F>(f)();
    } catch (const E& e) {
        return e.what();
    }
    return "<nothing thrown>";
}

// ---------------------------------------------------------------------------------------------
// A one-pass input range (input_iterator only, not forward, no size), like a Python generator.
// Item i is made by `make(i)` when the consumer dereferences position i. The log records how
// many items were made, on which threads, and can make the producer throw at one position.

struct producer_log {
    std::atomic<std::size_t> produced{0};
    std::mutex mutex;
    std::set<std::thread::id> threads;
    /// Called with the index before each item is made (may throw to make the range throw).
    std::function<void(std::size_t)> before_each;
};

template <class Make>
class input_generator {
public:
    using value_type = std::invoke_result_t<Make&, std::size_t>;

    input_generator(std::size_t count, Make make, producer_log* log = nullptr)
        : count_(count), make_(std::move(make)), log_(log) {}

    class iterator {
    public:
        using iterator_concept = std::input_iterator_tag;
        using value_type = input_generator::value_type;
        using difference_type = std::ptrdiff_t;

        iterator() = default;
        explicit iterator(input_generator* g) : g_(g) {}

        value_type operator*() const { return g_->produce(i_); }
        iterator& operator++() {
            ++i_;
            return *this;
        }
        void operator++(int) { ++i_; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.i_ >= it.g_->count(); }

    private:
        input_generator* g_ = nullptr;
        std::size_t i_ = 0;
    };

    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() { return {}; }
    [[nodiscard]] std::size_t count() const noexcept { return count_; }

private:
    value_type produce(std::size_t i) {
        if (log_) {
            {
                std::lock_guard lock(log_->mutex);
                log_->threads.insert(std::this_thread::get_id());
            }
            if (log_->before_each) log_->before_each(i);
            ++log_->produced;
        }
        return make_(i);
    }

    std::size_t count_;
    Make make_;
    producer_log* log_;
};

template <class Make>
input_generator(std::size_t, Make, producer_log*) -> input_generator<Make>;
template <class Make>
input_generator(std::size_t, Make) -> input_generator<Make>;

// ---------------------------------------------------------------------------------------------
// run_coroutine: a coroutine on a fresh io_context driven by this thread, within a time limit.

/// Runs the coroutine `body` (a callable returning `asio::awaitable<void>`) on a fresh
/// io_context driven by this thread for at most `limit`; rethrows what it threw, and throws
/// std::runtime_error when it did not finish in time.
template <class Body>
void run_coroutine(Body body, std::chrono::steady_clock::duration limit = std::chrono::seconds(20)) {
    boost::asio::io_context ctx;
    bool finished = false;
    std::exception_ptr error;
    boost::asio::co_spawn(ctx, std::move(body), [&](std::exception_ptr e) {
        finished = true;
        error = e;
    });
    ctx.run_for(limit);
    if (!finished) throw std::runtime_error("kit::run_coroutine: the coroutine did not finish within its time limit");
    if (error) std::rethrow_exception(error);
}

/// An executor the test steps by hand: nothing queued on it runs until `step()`, which runs
/// every handler ready now and those they make ready, on the test's thread.
class manual_executor {
public:
    [[nodiscard]] boost::asio::io_context::executor_type get() noexcept { return ctx_.get_executor(); }
    /// Returns how many handlers ran.
    std::size_t step() {
        ctx_.restart();
        return ctx_.poll();
    }

private:
    boost::asio::io_context ctx_;
};

/// Whether `e` holds a boost::system::system_error with operation_aborted (a cancelled call).
inline bool is_operation_aborted(const std::exception_ptr& e) {
    try {
        if (e) std::rethrow_exception(e);
    } catch (const boost::system::system_error& s) {
        return s.code() == boost::asio::error::operation_aborted;
    } catch (...) {
    }
    return false;
}

}  // namespace kit
