// tests/process/stream_process_test.cpp - parallel::stream on backend=processes: input and
// completion order, empty input, errors at every position, dropping the stream (break, destroy,
// cancelling the awaiting coroutine) with the workers that ran the dropped tasks stopped, and
// backpressure against a slow consumer. Every wait is bounded by a watchdog.
#include "../unit/stream_kit.hpp"
#include "kit.hpp"

#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using stream_kit::watchdog;

constexpr auto processes = cojob::backend::processes;

/// Values of `tracked` that hold a result in this process (moved-from husks do not count).
std::atomic<int> tracked_values{0};

std::int64_t steady_ns() {
    // CLOCK_MONOTONIC: one clock for every process of the machine.
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

// ---- task functions and types (outside the anonymous namespace: reports name them) ---------
namespace pstream {

/// A result that counts itself, in whichever process it lives: in the parent, the values the
/// stream holds; in a worker, nothing the test reads.
class tracked {
public:
    tracked() = default;
    tracked(long index, std::int64_t started_ns) : index_(index), started_ns_(started_ns) { hold(); }
    tracked(const tracked& o) : index_(o.index_), started_ns_(o.started_ns_) {
        if (o.holds_) hold();
    }
    tracked(tracked&& o) noexcept
        : index_(o.index_), started_ns_(o.started_ns_), holds_(std::exchange(o.holds_, false)) {}
    tracked& operator=(tracked o) noexcept {
        release();
        index_ = o.index_;
        started_ns_ = o.started_ns_;
        holds_ = std::exchange(o.holds_, false);
        return *this;
    }
    ~tracked() { release(); }

    [[nodiscard]] long index() const noexcept { return index_; }
    [[nodiscard]] std::int64_t started_ns() const noexcept { return started_ns_; }

    template <class Archive>
    void save(Archive& ar) const {
        ar(index_, started_ns_);
    }
    template <class Archive>
    void load(Archive& ar) {
        ar(index_, started_ns_);
        if (!holds_) hold();
    }

private:
    void hold() noexcept {
        holds_ = true;
        ++tracked_values;
    }
    void release() noexcept {
        if (holds_) --tracked_values;
        holds_ = false;
    }

    long index_ = -1;
    std::int64_t started_ns_ = 0;
    bool holds_ = false;
};

long square(long i) { return i * i; }

long sleep_then(long i, long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return i;
}

long throw_at(long i, long bad) {
    if (i == bad) throw std::invalid_argument("bad " + std::to_string(i));
    if (i % 7 == 3) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return i;
}

/// The worker's pid, after `ms`.
long pid_after(long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return static_cast<long>(::getpid());
}

tracked timed(long i, long ms) {
    const std::int64_t t = steady_ns();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return tracked(i, t);
}

/// A large result: n doubles of value i.
std::vector<double> block(long i, long n) { return std::vector<double>(static_cast<std::size_t>(n), double(i)); }

}  // namespace pstream

using namespace pstream;

namespace {

auto squares(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(square)(i); });
}
auto failing_at(long n, long bad) {
    return std::views::iota(0L, n) | std::views::transform([bad](long i) { return cojob::delayed(throw_at)(i, bad); });
}
/// Tasks 0 and 1 return their worker's pid after 50 ms; the others after 30 s (long enough that
/// a call waiting for them would trip the watchdog).
auto two_quick_then_stuck(long n) {
    return std::views::iota(0L, n) |
           std::views::transform([](long i) { return cojob::delayed(pid_after)(i < 2 ? 50L : 30'000L); });
}
auto timed_tasks(long n, long ms) {
    return std::views::iota(0L, n) | std::views::transform([ms](long i) { return cojob::delayed(timed)(i, ms); });
}

std::vector<long> expected_squares(long n) {
    std::vector<long> v;
    for (long i = 0; i < n; ++i) v.push_back(i * i);
    return v;
}

/// Whether `pid` is a process that still runs (a zombie does not: its memory is gone).
bool running(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return false;
    const auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

/// Children of this process: (running, zombies).
std::pair<int, int> children() {
    std::pair<int, int> n{0, 0};
    std::ifstream f("/proc/self/task/" + std::to_string(::getpid()) + "/children");
    std::set<long> pids;
    for (long p; f >> p;) pids.insert(p);
    for (long p : pids) (running(p) ? n.first : n.second)++;
    return n;
}

/// The pids of the pool's workers: two tasks long enough that each worker takes one.
std::set<long> pool_pids(cojob::parallel& par) {
    auto pids = par(std::views::iota(0, 2) | std::views::transform([](int) { return cojob::delayed(pid_after)(200L); }));
    return {pids.begin(), pids.end()};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool is_operation_aborted(const std::exception_ptr& e) {
    try {
        if (e) std::rethrow_exception(e);
    } catch (const boost::system::system_error& s) {
        return s.code() == asio::error::operation_aborted;
    } catch (...) {
    }
    return false;
}

/// After a drop: the workers in `stuck` stop running soon, and the object runs a call at once,
/// on fresh workers, without zombies left behind.
void check_dropped_workers_stopped(cojob::parallel& par, const std::set<long>& stuck) {
    for (long pid : stuck) {
        INFO("worker " << pid);
        CHECK(kit::eventually([pid] { return !running(pid); }, 3s));
    }
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(par(squares(6)) == expected_squares(6));
    CHECK(seconds_since(t0) < 5.0);  // the 30 s tasks were not waited for
    const auto fresh = pool_pids(par);
    for (long pid : fresh) CHECK_FALSE(stuck.count(pid));
    CHECK(kit::eventually([] { return children().second == 0; }, 3s));
    CHECK(children().first <= 2);
}

}  // namespace

// --- order ------------------------------------------------------------------------------------

TEST_CASE("processes: a stream hands results out in input order for any batch size", "[process][stream]") {
    watchdog dog(120s, "input order");
    const std::vector<cojob::batch_size_spec> batch_sizes{1, 7, "auto"};
    for (int n_jobs : {2, 3}) {
        for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
            INFO("n_jobs=" << n_jobs << " batch_size#" << b);
            cojob::parallel par{{.n_jobs = n_jobs, .backend = processes, .batch_size = batch_sizes[b]}};
            std::vector<long> got;
            for (auto&& r : par.stream(squares(500), cojob::order::input)) got.push_back(r);
            CHECK(got == expected_squares(500));
        }
    }
}

TEST_CASE("processes: an unordered stream hands results out as workers finish them, each once",
          "[process][stream]") {
    watchdog dog(60s, "completion order");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    // Task 0 takes 600 ms, the others 1 ms: the other worker finishes most of them first (the
    // one running task 0 holds one more task queued behind it).
    auto tasks = std::views::iota(0L, 20L) |
                 std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, i == 0 ? 600L : 1L); });
    std::vector<long> got;
    for (auto&& r : par.stream(tasks, cojob::order::completion)) got.push_back(r);
    REQUIRE(got.size() == 20);
    CHECK(std::set<long>(got.begin(), got.end()).size() == 20);
    const auto pos0 = std::find(got.begin(), got.end(), 0L) - got.begin();
    CHECK(pos0 >= 10);

    std::vector<long> ordered;
    for (auto&& r : par.stream(tasks, cojob::order::input)) ordered.push_back(r);
    std::vector<long> expected(20);
    for (long i = 0; i < 20; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(ordered == expected);
}

TEST_CASE("processes: co_await next() streams results from worker processes on the caller's executor",
          "[process][stream]") {
    watchdog dog(60s, "co_await");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
        asio::io_context ctx;
        std::vector<long> got;
        bool same_thread = true;
        bool finished = false;
        std::exception_ptr error;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                const auto me = std::this_thread::get_id();
                auto s = par.stream(squares(300), o);
                while (auto r = co_await s.next()) {
                    got.push_back(*r);
                    same_thread = same_thread && std::this_thread::get_id() == me;
                }
            },
            [&](std::exception_ptr e) {
                finished = true;
                error = e;
            });
        ctx.run_for(30s);
        REQUIRE(finished);
        CHECK_FALSE(error);
        CHECK(same_thread);
        if (o == cojob::order::completion) std::sort(got.begin(), got.end());
        CHECK(got == expected_squares(300));
    }
}

TEST_CASE("processes: large results stream in order and sum correctly", "[process][stream]") {
    watchdog dog(60s, "large results");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    constexpr long n = 12, len = 1'000'000;  // 8 MB each
    auto tasks = std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(block)(i, long{len}); });
    long k = 0;
    for (auto&& v : par.stream(tasks)) {
        REQUIRE(v.size() == static_cast<std::size_t>(len));
        CHECK(v.front() == double(k));
        CHECK(v.back() == double(k));
        ++k;
    }
    CHECK(k == n);
}

TEST_CASE("processes: a stream over an empty input ends at once, in both orders", "[process][stream]") {
    watchdog dog(30s, "empty input");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
        auto s = par.stream(squares(0), o);
        CHECK(s.begin() == s.end());
    }
    asio::io_context ctx;
    bool finished = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(squares(0));
            CHECK_FALSE((co_await s.next()).has_value());
            CHECK_FALSE((co_await s.next()).has_value());
        },
        [&](std::exception_ptr e) {
            finished = true;
            CHECK_FALSE(e);
        });
    ctx.run_for(10s);
    CHECK(finished);
    CHECK(par(squares(3)) == expected_squares(3));
}

// --- errors -----------------------------------------------------------------------------------

TEST_CASE("processes: a failing task surfaces at its position in an ordered stream, after every result before it",
          "[process][stream][error]") {
    watchdog dog(120s, "ordered errors");
    for (int batch_size : {1, 3}) {
        for (long bad : {0L, 31L, 59L}) {
            INFO("batch_size=" << batch_size << " failing task " << bad);
            cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = batch_size}};
            std::vector<long> got;
            std::string message;
            try {
                for (auto&& r : par.stream(failing_at(60, bad))) got.push_back(r);
            } catch (const std::invalid_argument& e) {
                message = e.what();
            }
            CHECK_THAT(message, Catch::StartsWith("bad " + std::to_string(bad)) &&
                                    Catch::Contains("Sub-process traceback"));
            std::vector<long> expected(static_cast<std::size_t>(bad));
            for (long i = 0; i < bad; ++i) expected[static_cast<std::size_t>(i)] = i;
            CHECK(got == expected);
            REQUIRE(par.last_failure().has_value());
            CHECK(par.last_failure()->index == static_cast<std::size_t>(bad));
            CHECK(par.last_failure()->pid != static_cast<int>(::getpid()));
            CHECK(par(squares(5)) == expected_squares(5));  // usable again
        }
    }
}

TEST_CASE("processes: a failing task surfaces when it finishes in an unordered stream", "[process][stream][error]") {
    watchdog dog(120s, "unordered errors");
    for (long bad : {0L, 31L, 59L}) {
        INFO("failing task " << bad);
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
        std::vector<long> got;
        std::string message;
        try {
            for (auto&& r : par.stream(failing_at(60, bad), cojob::order::completion)) got.push_back(r);
        } catch (const std::invalid_argument& e) {
            message = e.what();
        }
        CHECK_THAT(message, Catch::StartsWith("bad " + std::to_string(bad)));
        CHECK(std::find(got.begin(), got.end(), bad) == got.end());
        CHECK(std::set<long>(got.begin(), got.end()).size() == got.size());
        REQUIRE(par.last_failure().has_value());
        CHECK(par.last_failure()->index == static_cast<std::size_t>(bad));
        CHECK(par(squares(5)) == expected_squares(5));
    }
}

TEST_CASE("processes: co_await next() rethrows a task's exception after the results before it",
          "[process][stream][error]") {
    watchdog dog(60s, "co_await errors");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 2}};
    for (long bad : {0L, 31L, 59L}) {
        INFO("failing task " << bad);
        asio::io_context ctx;
        std::vector<long> got;
        std::string message;
        bool finished = false;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                auto s = par.stream(failing_at(60, bad));
                try {
                    while (auto r = co_await s.next()) got.push_back(*r);
                } catch (const std::invalid_argument& e) {
                    message = e.what();
                }
                CHECK_FALSE((co_await s.next()).has_value());
            },
            [&](std::exception_ptr e) {
                finished = true;
                CHECK_FALSE(e);
            });
        ctx.run_for(30s);
        REQUIRE(finished);
        CHECK_THAT(message, Catch::StartsWith("bad " + std::to_string(bad)));
        CHECK(got.size() == static_cast<std::size_t>(bad));
        CHECK(par(squares(3)) == expected_squares(3));
    }
}

// --- dropping early ---------------------------------------------------------------------------

TEST_CASE("processes: breaking out of a stream stops the workers running its tasks; the object is usable at once",
          "[process][stream][cancel]") {
    watchdog dog(60s, "break");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto pool = pool_pids(par);
    REQUIRE(pool.size() == 2);
    std::set<long> seen;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto&& pid : par.stream(two_quick_then_stuck(20))) {
        seen.insert(pid);
        if (seen.size() == 2 || seconds_since(t0) > 5) break;  // both workers now run 30 s tasks
    }
    CHECK(seconds_since(t0) < 5.0);
    CHECK(seen == pool);
    check_dropped_workers_stopped(par, pool);
}

TEST_CASE("processes: destroying a stream at any stage frees the parallel object at once", "[process][stream][cancel]") {
    watchdog dog(120s, "destroy");
    for (int stage : {0, 1, 2}) {  // never consumed, with 30 s tasks running, consumed to the end
        INFO("stage " << stage);
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
        const auto pool = pool_pids(par);
        REQUIRE(pool.size() == 2);
        {
            std::optional<cojob::stream<long>> s;
            if (stage == 2) {
                s.emplace(par.stream(squares(30)));
                long n = 0;
                for (auto it = s->begin(); it != s->end(); ++it) ++n;
                CHECK(n == 30);
            } else {
                s.emplace(par.stream(two_quick_then_stuck(20)));
                if (stage == 1) {
                    auto it = s->begin();
                    ++it;  // the second quick result: both workers now run 30 s tasks
                    REQUIRE(it != s->end());
                }
            }
            const auto t0 = std::chrono::steady_clock::now();
            s.reset();
            CHECK(seconds_since(t0) < 1.0);
        }
        if (stage == 1) {
            check_dropped_workers_stopped(par, pool);
        } else {
            // Nothing was left running: the same workers serve the next call.
            const auto t0 = std::chrono::steady_clock::now();
            CHECK(par(squares(6)) == expected_squares(6));
            CHECK(seconds_since(t0) < 5.0);
            CHECK(pool_pids(par) == pool);
        }
    }
}

TEST_CASE("processes: cancelling a coroutine awaiting next() stops the workers and frees the object",
          "[process][stream][cancel]") {
    watchdog dog(60s, "co_await cancel");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto pool = pool_pids(par);
    REQUIRE(pool.size() == 2);
    asio::io_context ctx;
    asio::cancellation_signal signal;
    std::set<long> seen;
    std::exception_ptr outcome;
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(two_quick_then_stuck(20));
            while (auto pid = co_await s.next()) {
                seen.insert(*pid);
                if (seen.size() == 2) {  // cancel while the coroutine waits for a 30 s task
                    auto t = std::make_shared<asio::steady_timer>(ctx, 100ms);
                    t->async_wait([&, t](boost::system::error_code) { signal.emit(asio::cancellation_type::terminal); });
                }
            }
        },
        asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
            outcome = e;
            done = true;
        }));
    const auto t0 = std::chrono::steady_clock::now();
    ctx.run_for(20s);
    REQUIRE(done);
    CHECK(seconds_since(t0) < 5.0);
    CHECK(is_operation_aborted(outcome));
    CHECK(seen == pool);

    SECTION("and the next call may be another coroutine on the same io_context") {
        std::vector<long> again;
        bool finished = false;
        ctx.restart();
        asio::co_spawn(
            ctx, [&]() -> asio::awaitable<void> { again = co_await par.async_run(squares(5), asio::use_awaitable); },
            [&](std::exception_ptr e) {
                finished = true;
                CHECK_FALSE(e);
            });
        ctx.run_for(10s);
        CHECK(finished);
        CHECK(again == expected_squares(5));
        for (long pid : pool) CHECK(kit::eventually([pid] { return !running(pid); }, 3s));
    }
    SECTION("and the next call may be a blocking one") { check_dropped_workers_stopped(par, pool); }
}

TEST_CASE("processes: destroying the parallel object cancels its running stream and stops its workers",
          "[process][stream][cancel]") {
    watchdog dog(60s, "destroy parallel");
    auto par = std::make_unique<cojob::parallel>(cojob::options{.n_jobs = 2, .backend = processes, .batch_size = 1});
    const auto pool = pool_pids(*par);
    REQUIRE(pool.size() == 2);
    {
        auto s = par->stream(two_quick_then_stuck(20));
        auto it = s.begin();
        ++it;  // both workers now run 30 s tasks
        par.reset();
        const auto t0 = std::chrono::steady_clock::now();
        auto drain = [&] {
            for (; it != s.end(); ++it) {
            }
        };
        CHECK_THROWS_AS(drain(), cojob::cancelled);
        CHECK(seconds_since(t0) < 5.0);
    }
    for (long pid : pool) CHECK(kit::eventually([pid] { return !running(pid); }, 3s));
    CHECK(kit::eventually([] { return children() == std::pair<int, int>{0, 0}; }, 3s));
}

TEST_CASE("processes: a stream dropped while a large result is in the pipe leaves the pool sound",
          "[process][stream][cancel]") {
    watchdog dog(60s, "drop large");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    constexpr long len = 2'000'000;  // 16 MB each
    auto tasks =
        std::views::iota(0L, 40L) | std::views::transform([](long i) { return cojob::delayed(block)(i, long{len}); });
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round);
        long k = 0;
        for (auto&& v : par.stream(tasks, round == 1 ? cojob::order::completion : cojob::order::input)) {
            CHECK(v.size() == static_cast<std::size_t>(len));
            if (++k == 3 + round) break;
        }
        CHECK(par(squares(4)) == expected_squares(4));
    }
    CHECK(kit::eventually([] { return children().second == 0; }, 3s));
    CHECK(children().first <= 2);
}

// --- backpressure -----------------------------------------------------------------------------

TEST_CASE("processes: a slow consumer holds the workers back: results in flight stay within the window",
          "[process][stream][backpressure]") {
    watchdog dog(120s, "backpressure");
    struct setup {
        cojob::pre_dispatch_spec pre_dispatch;
        long window;
    };
    for (const auto& [pre, window] : {setup{"2*n_jobs", 4}, setup{3, 3}}) {
        for (cojob::order o : {cojob::order::input, cojob::order::completion}) {
            INFO("window " << window << (o == cojob::order::input ? " input order" : " completion order"));
            cojob::parallel par{{.n_jobs = 2, .backend = processes, .pre_dispatch = pre, .batch_size = 1}};
            constexpr long n = 40;
            std::vector<std::int64_t> starts;
            std::vector<std::int64_t> consumed;  // when the consumer had each result
            int max_alive = 0;
            for (auto&& r : par.stream(timed_tasks(n, 1), o)) {
                consumed.push_back(steady_ns());
                starts.push_back(r.started_ns());
                max_alive = std::max(max_alive, tracked_values.load());
                std::this_thread::sleep_for(15ms);  // far slower than the workers
                max_alive = std::max(max_alive, tracked_values.load());
            }
            REQUIRE(starts.size() == static_cast<std::size_t>(n));
            // Results held in this process: the window plus the one the consumer holds, far
            // below the 40 a list would hold.
            CHECK(max_alive <= window + 1);
            CHECK(tracked_values.load() == 0);
            // When any task started, tasks started minus results consumed: within the window.
            std::sort(starts.begin(), starts.end());
            long max_ahead = 0;
            for (std::size_t k = 0; k < starts.size(); ++k) {
                const auto taken = std::upper_bound(consumed.begin(), consumed.end(), starts[k]) - consumed.begin();
                max_ahead = std::max(max_ahead, static_cast<long>(k + 1) - static_cast<long>(taken));
            }
            CHECK(max_ahead <= window);
            CHECK(max_ahead >= 2);  // and the workers did run ahead of the consumer
        }
    }
}

TEST_CASE("processes: a slow coroutine consumer holds the workers back", "[process][stream][backpressure]") {
    watchdog dog(60s, "co_await backpressure");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    asio::io_context ctx;
    int max_alive = 0;
    long seen = 0;
    bool finished = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto s = par.stream(timed_tasks(30, 1), cojob::order::completion);
            asio::steady_timer t(ctx);
            while (auto r = co_await s.next()) {
                ++seen;
                max_alive = std::max(max_alive, tracked_values.load());
                t.expires_after(15ms);
                co_await t.async_wait(asio::use_awaitable);
                max_alive = std::max(max_alive, tracked_values.load());
            }
        },
        [&](std::exception_ptr e) {
            finished = true;
            CHECK_FALSE(e);
        });
    ctx.run_for(40s);
    REQUIRE(finished);
    CHECK(seen == 30);
    CHECK(max_alive <= 4 + 1);
    CHECK(tracked_values.load() == 0);
}
