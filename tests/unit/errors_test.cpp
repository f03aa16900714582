// parallel, blocking, when things go wrong: task exceptions, failing input ranges,
// re-entrance, timeouts, and reuse of the object afterwards.
#include "kit.hpp"

#include <cojob/errors.hpp>
#include <cojob/parallel.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// A user-defined exception carrying a payload.
struct quota_exceeded : std::runtime_error {
    quota_exceeded(int used_, int limit_) : std::runtime_error("quota exceeded"), used(used_), limit(limit_) {}
    int used;
    int limit;
};

/// A named function object, so that reports can be checked for its name.
struct fails_at_five {
    std::atomic<int>* started;
    int operator()(int i, const std::string& tag) const {
        ++*started;
        if (i == 5) throw std::invalid_argument("bad input " + std::to_string(i) + " for " + tag);
        return i;
    }
};

auto numbered(int n) {
    return std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed([](int k) { return k; })(i); });
}

template <class Task>
auto tasks_of(int n, Task make) {
    return std::views::iota(0, n) | std::views::transform(make);
}

}  // namespace

// --- task exceptions ---------------------------------------------------------------------------

TEST_CASE("a task that throws ends the call with its original exception type", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2, 4}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        auto tasks = tasks_of(50, [](int i) {
            return cojob::delayed([](int k) {
                if (k == 17) throw std::invalid_argument("seventeen");
                return k;
            })(i);
        });
        CHECK_THROWS_MATCHES(par(tasks), std::invalid_argument, Catch::Message("seventeen"));
    }
}

TEST_CASE("a user-defined exception arrives unchanged, with its payload", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        auto tasks = tasks_of(20, [](int i) {
            return cojob::delayed([](int k) {
                if (k == 3) throw quota_exceeded(k * 10, 25);
                return k;
            })(i);
        });
        try {
            par(tasks);
            FAIL("no exception");
        } catch (const quota_exceeded& e) {
            CHECK(e.used == 30);
            CHECK(e.limit == 25);
        }
    }
}

TEST_CASE("an exception of a non-std type such as int is rethrown as that type", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        auto tasks = tasks_of(20, [](int i) {
            return cojob::delayed([](int k) {
                if (k == 4) throw 42;
                return k;
            })(i);
        });
        try {
            par(tasks);
            FAIL("no exception");
        } catch (int value) {
            CHECK(value == 42);
        }
        REQUIRE(par.last_failure().has_value());
        CHECK(par.last_failure()->exception == "int");
        CHECK(par.last_failure()->index == 4);
    }
}

TEST_CASE("tasks after a failing one are not started", "[parallel][exceptions][error]") {
    SECTION("on two threads, far fewer than all tasks start") {
        std::atomic<int> started{0};
        cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
        auto tasks = tasks_of(1000, [&started](int i) { return cojob::delayed(fails_at_five{&started})(i, std::string("t")); });
        CHECK_THROWS_AS(par(tasks), std::invalid_argument);
        CHECK(started >= 6);
        CHECK(started < 100);
    }
    SECTION("sequentially, exactly the tasks up to the failing one start") {
        std::atomic<int> started{0};
        cojob::parallel par{{.n_jobs = 1, .batch_size = 1}};
        auto tasks = tasks_of(1000, [&started](int i) { return cojob::delayed(fails_at_five{&started})(i, std::string("t")); });
        CHECK_THROWS_AS(par(tasks), std::invalid_argument);
        CHECK(started == 6);
    }
    SECTION("the rest of the failing task's batch does not run") {
        std::atomic<int> started{0};
        cojob::parallel par{{.n_jobs = 1, .batch_size = 10}};
        auto tasks = tasks_of(30, [&started](int i) { return cojob::delayed(fails_at_five{&started})(i, std::string("t")); });
        CHECK_THROWS_AS(par(tasks), std::invalid_argument);
        CHECK(started == 6);
    }
}

TEST_CASE("last_failure names the function, its arguments, its index and the exception", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        std::atomic<int> started{0};
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
        CHECK_FALSE(par.last_failure().has_value());
        auto tasks = tasks_of(100, [&started](int i) { return cojob::delayed(fails_at_five{&started})(i, std::string("tag")); });
        CHECK_THROWS_AS(par(tasks), std::invalid_argument);
        REQUIRE(par.last_failure().has_value());
        const cojob::task_failure& f = *par.last_failure();
        CHECK_THAT(f.function, Catch::Contains("fails_at_five"));
        CHECK(f.arguments == "5, 'tag'");
        CHECK(f.index == 5);
        CHECK(f.exception == "std::invalid_argument");
        CHECK(f.message == "bad input 5 for tag");
        CHECK(f.pid == static_cast<int>(::getpid()));
        CHECK_FALSE(f.host.empty());
        const std::string report = f.report();
        CHECK_THAT(report, Catch::Contains("fails_at_five"));
        CHECK_THAT(report, Catch::Contains("5, 'tag'"));
        CHECK_THAT(report, Catch::Contains("std::invalid_argument"));
        CHECK_THAT(report, Catch::Contains("bad input 5 for tag"));
        CHECK_THAT(report, Catch::Contains("#5"));
    }
}

TEST_CASE("when several tasks fail, the rethrown exception is the one last_failure describes", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
        auto tasks = tasks_of(40, [](int i) {
            return cojob::delayed([](int k) {
                if (k >= 3) throw std::runtime_error("failure " + std::to_string(k));
                return k;
            })(i);
        });
        std::string message;
        try {
            par(tasks);
        } catch (const std::runtime_error& e) {
            message = e.what();
        }
        REQUIRE(par.last_failure().has_value());
        CHECK(message == par.last_failure()->message);
        CHECK(message == "failure " + std::to_string(par.last_failure()->index));
        if (n_jobs == 1) CHECK(par.last_failure()->index == 3);
    }
}

TEST_CASE("an input range that throws while being consumed ends the call with that exception", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        kit::producer_log log;
        log.before_each = [](std::size_t i) {
            if (i == 7) throw std::out_of_range("producer broke at 7");
        };
        kit::input_generator gen(100, [](std::size_t i) { return cojob::delayed([](std::size_t k) { return k; })(i); }, &log);
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
        CHECK_THROWS_MATCHES(par(gen), std::out_of_range, Catch::Message("producer broke at 7"));
        CHECK(log.produced == 7);
        CHECK_FALSE(par.last_failure().has_value());  // no task failed
        CHECK(par(numbered(10)).size() == 10);
    }
}

TEST_CASE("a parallel object is reusable after a task failed", "[parallel][exceptions][error]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        auto failing = tasks_of(100, [](int i) {
            return cojob::delayed([](int k) {
                if (k == 50) throw std::logic_error("fifty");
                return k;
            })(i);
        });
        for (int round = 0; round < 3; ++round) {
            CHECK_THROWS_AS(par(failing), std::logic_error);
            CHECK(par.last_failure().has_value());
            const std::vector<int> r = par(numbered(100));
            REQUIRE(r.size() == 100);
            CHECK(r[99] == 99);
            CHECK_FALSE(par.last_failure().has_value());  // cleared by the call that succeeded
        }
    }
}

// --- nothing runs after a failed call returned -------------------------------------------------

namespace {

/// How a failed call left its tasks: how many still ran when it returned, how many started later.
struct aftermath {
    int running_at_return = -1;
    int started_after_return = 0;
    std::string caught;
};

constexpr std::size_t no_report_fails = static_cast<std::size_t>(-1);

/// Runs 100 tasks of 2 ms on two threads; task `failing_task` throws, the input throws at
/// `failing_input` (-1: never), the progress callback at `failing_report` completions.
aftermath run_failing_call(int failing_task, int failing_input, std::size_t failing_report) {
    // Shared by value with the tasks: a task that outlives the call must not touch this frame.
    struct shared {
        std::atomic<int> running{0};
        std::atomic<bool> returned{false};
        std::atomic<int> started_after{0};
    };
    auto st = std::make_shared<shared>();
    kit::producer_log log;
    log.before_each = [failing_input](std::size_t i) {
        if (static_cast<int>(i) == failing_input) throw std::runtime_error("input failed");
    };
    kit::input_generator gen(100, [st, failing_task](std::size_t i) {
        return cojob::delayed([st, failing_task](std::size_t k) {
            if (st->returned) ++st->started_after;
            ++st->running;
            std::this_thread::sleep_for(2ms);
            --st->running;
            if (static_cast<int>(k) == failing_task) throw std::runtime_error("task failed");
            return k;
        })(i);
    }, &log);
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .progress = [failing_report](const cojob::progress_event& e) {
                             if (e.completed == failing_report) throw std::runtime_error("report failed");
                         }}};
    aftermath a;
    try {
        (void)par(gen);
    } catch (const std::runtime_error& e) {
        a.running_at_return = st->running;
        st->returned = true;
        a.caught = e.what();
    }
    std::this_thread::sleep_for(20ms);  // long enough for queued tasks to start, were they still allowed to
    a.started_after_return = st->started_after;
    return a;
}

}  // namespace

TEST_CASE("a call ended by a failing task returns only once none of its tasks runs", "[parallel][exceptions][error]") {
    const aftermath a = run_failing_call(6, -1, no_report_fails);
    CHECK(a.caught == "task failed");
    CHECK(a.running_at_return == 0);
    CHECK(a.started_after_return == 0);
}

TEST_CASE("a call ended by a failing input returns only once none of its tasks runs", "[parallel][exceptions][error]") {
    const aftermath a = run_failing_call(-1, 6, no_report_fails);
    CHECK(a.caught == "input failed");
    CHECK(a.running_at_return == 0);
    CHECK(a.started_after_return == 0);
}

TEST_CASE("a progress callback that throws ends the call with its exception once none of its tasks runs",
          "[parallel][error][progress]") {
    const aftermath a = run_failing_call(-1, -1, 2);
    CHECK(a.caught == "report failed");
    CHECK(a.running_at_return == 0);
    CHECK(a.started_after_return == 0);
}

// --- re-entrance -------------------------------------------------------------------------------

TEST_CASE("a task may call the object that runs it: the inner call runs nested", "[parallel][reentrance]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        auto tasks = tasks_of(4, [&par](int i) {
            return cojob::delayed([&par](int k) {
                if (k == 2) return static_cast<int>(par(numbered(3)).size()) * 10;
                return k;
            })(i);
        });
        const std::vector<int> r = par(tasks);
        CHECK(r == std::vector<int>{0, 1, 30, 3});
        CHECK(par(numbered(5)).size() == 5);  // and the object still works
    }
}

TEST_CASE("an inner call that fails ends the outer call with its exception only when left uncaught",
          "[parallel][error][reentrance]") {
    cojob::parallel par{{.n_jobs = 2}};
    auto failing = [] {
        return std::views::iota(0, 3) | std::views::transform([](int i) {
                   return cojob::delayed([](int k) {
                       if (k == 1) throw std::runtime_error("inner task 1");
                       return k;
                   })(i);
               });
    };
    auto tasks = tasks_of(4, [&](int i) {
        return cojob::delayed([&](int k) {
            if (k == 2) return static_cast<int>(par(failing()).size());
            return k;
        })(i);
    });
    CHECK_THROWS_WITH(par(tasks), "inner task 1");
    CHECK(par(numbered(5)).size() == 5);
}

// --- timeout -----------------------------------------------------------------------------------

namespace {

/// What the tasks of the timeout tests share. Held by shared_ptr and captured by value, so a
/// task that outlives its call (as a timed-out task does) never touches a destroyed object.
struct slow_state {
    kit::gate release;
    std::atomic<bool> slow_returned{false};
    std::atomic<bool> call_returned{false};
    std::atomic<int> started_after{0};
};

/// n tasks; task `slow` waits on the gate for at most `limit`.
auto slow_tasks(const std::shared_ptr<slow_state>& st, int n, int slow, std::chrono::milliseconds limit) {
    return tasks_of(n, [st, slow, limit](int i) {
        return cojob::delayed([st, slow, limit](int k) {
            if (st->call_returned) ++st->started_after;
            if (k == slow) {
                st->release.wait_for(limit);
                st->slow_returned = true;
            }
            return k;
        })(i);
    });
}

}  // namespace

TEST_CASE("a task running past the timeout ends the call with cojob::timeout_error while it still runs",
          "[parallel][error][timeout]") {
    auto st = std::make_shared<slow_state>();
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .timeout = 50ms}};
    auto tasks = slow_tasks(st, 6, 1, 2000ms);  // task 1 "sleeps 2 s", unless the test releases it first
    const auto start = std::chrono::steady_clock::now();
    const std::string message = kit::message_of<cojob::timeout_error>([&] { (void)par(tasks); });
    st->call_returned = true;
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK_FALSE(st->slow_returned);  // the call did not wait for the slow task
    CHECK(took < 1500ms);
    CHECK_THAT(message, Catch::Contains("timeout"));
    CHECK_THAT(message, Catch::Contains("#1"));

    std::this_thread::sleep_for(20ms);
    CHECK(st->started_after == 0);  // no other task of the timed-out call starts later

    // The object stays usable while the slow task still holds one of its threads.
    const std::vector<int> r = par(numbered(20));
    CHECK(r.size() == 20);
    CHECK_FALSE(st->slow_returned);
    st->release.open();
    CHECK(kit::eventually([&] { return st->slow_returned.load(); }, 5s));
}

TEST_CASE("a timeout error is a cojob::error", "[parallel][error][timeout]") {
    auto st = std::make_shared<slow_state>();
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .timeout = 20ms}};
    auto tasks = slow_tasks(st, 2, 0, 2000ms);
    CHECK_THROWS_AS(par(tasks), cojob::error);
    st->release.open();
    CHECK(kit::eventually([&] { return st->slow_returned.load(); }, 5s));
}

TEST_CASE("destroying a parallel object waits for a task that outlived its call's timeout", "[parallel][timeout]") {
    auto st = std::make_shared<slow_state>();
    {
        cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .timeout = 20ms}};
        auto tasks = slow_tasks(st, 2, 0, 300ms);  // never released: returns after 300 ms
        CHECK_THROWS_AS(par(tasks), cojob::timeout_error);
        CHECK_FALSE(st->slow_returned);
    }
    // The destructor released the workers: no task of the object may still run.
    CHECK(st->slow_returned);
    CHECK(kit::eventually([&] { return st->slow_returned.load(); }, 5s));  // before the next test, either way
}

TEST_CASE("tasks within the timeout complete normally", "[parallel][timeout]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1, .timeout = 1s}};
    auto tasks = tasks_of(10, [](int i) {
        return cojob::delayed([](int k) {
            std::this_thread::sleep_for(1ms);
            return k;
        })(i);
    });
    CHECK(par(tasks).size() == 10);
}

TEST_CASE("the timeout is ignored by the sequential backend, as in joblib", "[parallel][timeout]") {
    cojob::parallel par{{.n_jobs = 1, .timeout = 5ms}};
    auto tasks = tasks_of(2, [](int i) {
        return cojob::delayed([](int k) {
            std::this_thread::sleep_for(30ms);
            return k;
        })(i);
    });
    CHECK(par(tasks) == std::vector<int>{0, 1});
}

// --- progress after errors ---------------------------------------------------------------------

TEST_CASE("a call that fails never reports finished to the progress callback", "[parallel][error][progress]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        int finished = 0;
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1, .progress = [&](const cojob::progress_event& e) {
                                 finished += e.finished ? 1 : 0;
                             }}};
        auto tasks = tasks_of(30, [](int i) {
            return cojob::delayed([](int k) {
                if (k == 20) throw std::runtime_error("late failure");
                return k;
            })(i);
        });
        CHECK_THROWS_AS(par(tasks), std::runtime_error);
        CHECK(finished == 0);
    }
}
