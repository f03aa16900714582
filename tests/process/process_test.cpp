// tests/process/process_test.cpp - backend=processes: results, errors, crashes, timeouts,
// cancellation, Ctrl-C, corrupt frames, parent death and the worker guard. Every wait is bounded.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "kit.hpp"
#include "process/spawn.hpp"
#include "roles.hpp"
#include "wire.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

using cojob::backend::processes;

}  // namespace

// ---- task functions (free functions, static members and captureless lambdas) ---------------
// Outside the anonymous namespace: reports name functions through the dynamic symbol table.
namespace ptest {

double square_root(int x) { return std::sqrt(static_cast<double>(x)); }
int worker_pid(int) { return static_cast<int>(::getpid()); }
std::string repeat(std::string s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}
std::vector<double> scaled(std::vector<double> v, double k) {
    for (auto& x : v) x *= k;
    return v;
}
std::map<std::string, int> histogram(std::vector<std::string> words) {
    std::map<std::string, int> h;
    for (auto& w : words) ++h[w];
    return h;
}
int fails_at(int i, int bad) {
    if (i == bad) throw std::invalid_argument("bad input " + std::to_string(i));
    return i;
}
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
int crash(int how) {
    switch (how) {
        case 0: ::raise(SIGSEGV); break;
        case 1: std::abort();
        case 2: ::_exit(3);
        case 3: ::kill(::getpid(), SIGKILL); break;
        default: break;
    }
    std::this_thread::sleep_for(1s);
    return how;
}
std::string env_of(std::string name) {
    const char* v = std::getenv(name.c_str());
    return v ? v : "<unset>";
}
int print_line(int i) {
    std::printf("[Worker %d] line %d\n", static_cast<int>(::getpid()), i);
    return i;
}

struct geometry {
    static int area(int w, int h) { return w * h; }
};

struct my_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct unregistered_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
int throws_my_error(int i) { throw my_error("mine " + std::to_string(i)); }
int throws_unregistered(int i) { throw unregistered_error("theirs " + std::to_string(i)); }
int throws_int(int) { throw 42; }

/// Bytes the test writes straight onto the worker's response pipe (descriptor 4): garbage (0),
/// a valid response header whose 100 bytes never come (1), a header of another version (2).
int write_raw(int kind) {
    using namespace cojob::detail;
    frame_header h;
    h.magic = frame_magic;
    h.version = kind == 2 ? 99 : wire_version;
    h.kind = static_cast<std::uint16_t>(frame_kind::response);
    h.length = 100;
    char frame[sizeof h];
    std::memcpy(frame, &h, sizeof h);
    if (kind == 0) std::memset(frame, 0x5a, sizeof frame);  // garbage
    (void)!::write(process::worker_response_fd, frame, sizeof frame);
    if (kind == 1) ::_exit(0);  // truncated: the header promises 100 bytes that never come
    std::this_thread::sleep_for(2s);
    return kind;
}

}  // namespace ptest

using namespace ptest;

namespace {

using kit::iota;

int zombie_children() { return children::zombies(); }

bool alive(int pid) { return ::kill(pid, 0) == 0; }

template <class F>
bool eventually(F&& condition, std::chrono::milliseconds limit = 3000ms) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (condition()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return condition();
}

}  // namespace

TEST_CASE("processes: results come back in input order, from worker processes", "[process]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    REQUIRE(par.backend() == processes);
    auto roots = par(iota(1000) | std::views::transform([](int i) { return cojob::delayed(square_root)(i * i); }));
    REQUIRE(roots.size() == 1000);
    for (int i = 0; i < 1000; ++i) CHECK(roots[static_cast<std::size_t>(i)] == static_cast<double>(i));

    auto pids = par(iota(50) | std::views::transform([](int i) { return cojob::delayed(worker_pid)(i); }));
    std::set<int> distinct(pids.begin(), pids.end());
    CHECK_FALSE(distinct.count(static_cast<int>(::getpid())));
    CHECK(distinct.size() <= 2);
    // The pool is reused: a second call runs on the same processes.
    auto again = par(iota(50) | std::views::transform([](int i) { return cojob::delayed(worker_pid)(i); }));
    for (int p : again) CHECK(distinct.count(p));
}

TEST_CASE("processes: free functions, static members, captureless lambdas; strings, vectors, maps", "[process]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 3}};
    auto areas = par(iota(10) | std::views::transform([](int i) { return cojob::delayed(&geometry::area)(i, i + 1); }));
    for (int i = 0; i < 10; ++i) CHECK(areas[static_cast<std::size_t>(i)] == i * (i + 1));

    auto cubes = par(iota(10) | std::views::transform([](int i) {
                         return cojob::delayed([](long x) { return x * x * x; })(static_cast<long>(i));
                     }));
    for (int i = 0; i < 10; ++i) CHECK(cubes[static_cast<std::size_t>(i)] == static_cast<long>(i) * i * i);

    auto strings = par(iota(5) | std::views::transform([](int i) { return cojob::delayed(repeat)(std::string("ab"), i); }));
    CHECK(strings == std::vector<std::string>{"", "ab", "abab", "ababab", "abababab"});

    std::vector<double> v(10000, 1.5);
    auto vs = par(iota(4) | std::views::transform([&v](int i) { return cojob::delayed(scaled)(v, double(i)); }));
    for (int i = 0; i < 4; ++i) {
        REQUIRE(vs[static_cast<std::size_t>(i)].size() == v.size());
        CHECK(vs[static_cast<std::size_t>(i)][9999] == 1.5 * i);
    }

    auto hs = par(std::views::single(cojob::delayed(histogram)(std::vector<std::string>{"a", "b", "a"})));
    CHECK(hs.at(0) == std::map<std::string, int>{{"a", 2}, {"b", 1}});

    std::vector<int> out;
    par(iota(6) | std::views::transform([](int i) { return cojob::delayed(sleep_ms)(i); }));  // void tasks
    CHECK(par(std::views::empty<decltype(cojob::delayed(square_root)(0))>).empty());
}

TEST_CASE("processes: a checked call compiles for remotable tasks", "[process]") {
    static_assert(cojob::remotable<decltype(cojob::delayed(square_root)(1))>);
    static_assert(!cojob::remotable<decltype(cojob::delayed([k = 1](int x) { return x + k; })(1))>);
    static_assert(!cojob::remotable<decltype(cojob::delayed([](int* p) { return *p; })(nullptr))>);
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    auto r = par(cojob::require_remotable, iota(4) | std::views::transform([](int i) { return cojob::delayed(square_root)(i); }));
    CHECK(r.size() == 4);
}

TEST_CASE("processes: tasks that cannot travel are refused before any work, naming why", "[process]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    int k = 3;
    auto tasks = iota(4) | std::views::transform([&k](int i) { return cojob::delayed([k](int x) { return x + k; })(i); });
    try {
        (void)par(tasks);
        FAIL("a capturing lambda was accepted");
    } catch (const cojob::error& e) {
        CHECK_THAT(e.what(), Catch::Contains("cannot be named in another process"));
        CHECK_THAT(e.what(), Catch::Contains("backend=threads"));
    }
    // The same tasks run on threads.
    cojob::parallel threads{{.n_jobs = 2, .backend = cojob::backend::threads}};
    CHECK(threads(tasks) == std::vector<int>{3, 4, 5, 6});
}

TEST_CASE("processes: a task's exception comes back with its type and the sub-process facts", "[process][error]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 2}};
    try {
        (void)par(iota(20) | std::views::transform([](int i) { return cojob::delayed(fails_at)(i, 7); }));
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::StartsWith("bad input 7"));
        CHECK_THAT(what, Catch::Contains("Sub-process traceback"));
        CHECK_THAT(what, Catch::Contains("fails_at"));
        CHECK_THAT(what, Catch::Contains("7, 7"));
    }
    REQUIRE(par.last_failure());
    const auto& f = *par.last_failure();
    CHECK(f.index == 7);
    CHECK(f.exception == "std::invalid_argument");
    CHECK(f.message == "bad input 7");
    CHECK(f.arguments == "7, 7");
    CHECK_THAT(f.function, Catch::Contains("fails_at"));
    CHECK(f.pid != static_cast<int>(::getpid()));
    CHECK_FALSE(f.host.empty());
    CHECK_FALSE(f.time.empty());
    // The object stays usable.
    CHECK(par(iota(3) | std::views::transform([](int i) { return cojob::delayed(fails_at)(i, -1); })) ==
          std::vector<int>{0, 1, 2});
}

TEST_CASE("processes: registered exception types come back as themselves, others as remote_error", "[process][error]") {
    cojob::register_exception<my_error>();
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    CHECK_THROWS_AS(par(std::views::single(cojob::delayed(throws_my_error)(1))), my_error);
    try {
        (void)par(std::views::single(cojob::delayed(throws_unregistered)(2)));
        FAIL("no exception");
    } catch (const cojob::remote_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("unregistered_error"));
        CHECK_THAT(e.what(), Catch::Contains("theirs 2"));
    }
    CHECK_THROWS_AS(par(std::views::single(cojob::delayed(throws_int)(3))), cojob::remote_error);
}

TEST_CASE("processes: a worker that dies fails the call with worker_died; the pool recovers", "[process][crash]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    // A sanitizer catches the segmentation fault itself, reports it and exits: AddressSanitizer
    // with code 1, ThreadSanitizer with 66.
    constexpr const char* segv = kit::asan ? "exited with code 1" : kit::tsan ? "exited with code 66" : "SIGSEGV";
    const std::pair<int, const char*> cases[] = {{0, segv}, {1, "SIGABRT"}, {2, "exited with code 3"}, {3, "SIGKILL"}};
    for (const auto& [how, text] : cases) {
        INFO("crash mode " << how);
        try {
            (void)par(iota(4) | std::views::transform([how](int i) { return cojob::delayed(crash)(i == 2 ? how : 9); }));
            FAIL("no exception");
        } catch (const cojob::worker_died& e) {
            CHECK_THAT(e.what(), Catch::Contains(text));
            CHECK_THAT(e.what(), Catch::Contains("task #2"));
        }
        CHECK(zombie_children() == 0);
        CHECK(par(iota(4) | std::views::transform([](int i) { return cojob::delayed(square_root)(i * i); })) ==
              std::vector<double>{0, 1, 2, 3});
    }
}

TEST_CASE("processes: a task over the timeout raises timeout_error and its worker is replaced", "[process][timeout]") {
    kit::watchdog dog(60s, "timeout on processes");  // the 10-minute task must not be waited for
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .timeout = 300ms}};
    CHECK_THROWS_AS(par(iota(4) | std::views::transform([](int i) { return cojob::delayed(sleep_ms)(i == 1 ? 600'000 : 1); })),
                    cojob::timeout_error);
    CHECK(zombie_children() == 0);
    par(iota(4) | std::views::transform([](int i) { return cojob::delayed(sleep_ms)(i); }));
}

TEST_CASE("processes: cancelling async_run stops the workers and completes with operation_aborted", "[process][cancel]") {
    asio::io_context io;
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    asio::cancellation_signal cancel;
    auto fut = par.async_run(iota(8) | std::views::transform([](int) { return cojob::delayed(sleep_ms)(20000); }),
                             asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
    asio::steady_timer timer(io, 200ms);
    timer.async_wait([&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
    std::thread runner([&] { io.run_for(10s); });
    // The call runs on the future's executor (system executor): wait for it with a bound.
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    runner.join();
    try {
        fut.get();
        FAIL("not cancelled");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
    }
    CHECK(zombie_children() == 0);
    par(iota(2) | std::views::transform([](int i) { return cojob::delayed(sleep_ms)(i); }));
}

TEST_CASE("processes: garbage, truncated and wrong-version frames are clear errors; the worker is replaced", "[process][wire]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const std::pair<int, const char*> cases[] = {
        {0, "bad magic"}, {1, "closed inside a frame, after 32 of its 132 bytes"}, {2, "wire version 99"}};
    for (const auto& [kind, text] : cases) {
        INFO("frame fault " << kind);
        try {
            (void)par(std::views::single(cojob::delayed(write_raw)(kind)));
            FAIL("no exception");
        } catch (const cojob::error& e) {
            CHECK_THAT(e.what(), Catch::Contains(text));
        }
        CHECK(zombie_children() == 0);
        CHECK(par(iota(3) | std::views::transform([](int i) { return cojob::delayed(square_root)(i * i); })) ==
              std::vector<double>{0, 1, 2});
    }
}

TEST_CASE("processes: workers get thread-count variables and see the joblib nesting rule", "[process]") {
    ::unsetenv("OMP_NUM_THREADS");
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    const auto expected = std::to_string(std::max(cojob::cpu_count() / 2, 1));
    CHECK(par(std::views::single(cojob::delayed(env_of)(std::string("OMP_NUM_THREADS")))).at(0) == expected);
    CHECK(par(std::views::single(cojob::delayed(env_of)(std::string("COJOB_WORKER")))).at(0) == "<unset>");
    // An inner call that asks for processes runs on threads inside the worker.
    auto inner = par(std::views::single(cojob::delayed([](int n) {
        cojob::parallel in{{.n_jobs = n, .backend = cojob::backend::processes}};
        const auto r = in(std::views::iota(0, 4) | std::views::transform([](int i) { return cojob::delayed(square_root)(i); }));
        return static_cast<int>(in.backend()) * 100 + static_cast<int>(r.size());
    })(2)));
    CHECK(inner.at(0) == static_cast<int>(cojob::backend::threads) * 100 + 4);
}

TEST_CASE("processes: what workers print reaches the parent's stdout before the results", "[process]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::fflush(stdout);
    const int saved = ::dup(1);
    ::dup2(fds[1], 1);
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes}};  // workers inherit the redirected stdout
        par(iota(3) | std::views::transform([](int i) { return cojob::delayed(print_line)(i); }));
    }
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(saved);
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    for (int i = 0; i < 3; ++i) CHECK_THAT(text, Catch::Contains("line " + std::to_string(i)));
    CHECK_THAT(text, Catch::Contains("[Worker "));
}

TEST_CASE("processes: workers exit on their own when the parent is killed", "[process][orphan]") {
    auto [pid, out] = roles::start("COJOB_TEST_ROLE=orphan_maker");
    // The role prints its worker pids on one line once they run a task.
    std::string line;
    char c;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until && ::read(out, &c, 1) == 1 && c != '\n') line += c;
    std::istringstream pids(line);
    std::vector<int> workers;
    for (int p; pids >> p;) workers.push_back(p);
    REQUIRE(workers.size() == 2);
    for (int p : workers) CHECK(alive(p));
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    ::close(out);
    for (int p : workers) CHECK(eventually([p] { return !alive(p); }));
}

TEST_CASE("processes: a worker whose main skips init fails loudly instead of spawning workers", "[process][guard]") {
    const auto [text, st] = roles::run("COJOB_TEST_ROLE=workers_skip_init");
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
    // The worker refused to start workers of its own, said why, and exited...
    CHECK_THAT(text, Catch::Contains("started as a cojob worker"));
    // ...and the parent reported it with the fix.
    CHECK_THAT(text, Catch::Contains("worker_died"));
    CHECK_THAT(text, Catch::Contains("before its handshake"));
    CHECK_THAT(text, Catch::Contains("cojob::init(argc, argv)"));
}

TEST_CASE("processes: a program without init gets a clear error naming the fix", "[process][guard]") {
    const auto [text, st] = roles::run("COJOB_TEST_ROLE=no_init");
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 1);
    CHECK_THAT(text, Catch::Contains("needs cojob::init(argc, argv) at the top of main"));
}
