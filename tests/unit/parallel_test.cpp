// parallel, blocking: results in input order, every kind of input range, lazy consumption of
// the input, worker reuse, and the progress callback.
#include "kit.hpp"

#include <cojob/parallel.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

long long_square(long i) { return i * i; }

// A task whose duration varies a little, so that batches complete out of input order.
long uneven_square(long i) {
    if (i % 97 == 3) std::this_thread::sleep_for(100us);
    return i * i;
}

auto varied_squares(long n) {
    return std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(uneven_square)(i); });
}

std::pair<double, double> modf_pair(double x) {
    double whole = 0;
    const double fraction = std::modf(x, &whole);
    return {fraction, whole};
}

}  // namespace

// --- results and order -------------------------------------------------------------------------

TEST_CASE("a blocking call returns every result in input order for any n_jobs and batch_size", "[parallel][order]") {
    const std::vector<int> n_jobs_values{1, 2, 4, cojob::cpu_count()};
    const std::vector<cojob::batch_size_spec> batch_sizes{1, 7, "auto"};
    const std::vector<const char*> batch_names{"1", "7", "auto"};
    for (int n_jobs : n_jobs_values) {
        for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
            for (long n : {0L, 1L, 1000L}) {
                INFO("n_jobs=" << n_jobs << " batch_size=" << batch_names[b] << " tasks=" << n);
                cojob::parallel par{{.n_jobs = n_jobs, .batch_size = batch_sizes[b]}};
                const std::vector<long> r = par(varied_squares(n));
                REQUIRE(r.size() == static_cast<std::size_t>(n));
                for (long i = 0; i < n; ++i) REQUIRE(r[static_cast<std::size_t>(i)] == i * i);
            }
        }
    }
}

TEST_CASE("a hundred thousand tiny tasks all come back in order", "[parallel][order]") {
    constexpr long n = 100'000;
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        const std::vector<long> r =
            par(std::views::iota(0L, n) | std::views::transform([](long i) { return cojob::delayed(long_square)(i); }));
        REQUIRE(r.size() == static_cast<std::size_t>(n));
        bool in_order = true;
        for (long i = 0; i < n; ++i) in_order = in_order && r[static_cast<std::size_t>(i)] == i * i;
        CHECK(in_order);
    }
}

TEST_CASE("an empty input runs nothing and returns an empty result", "[parallel][order]") {
    std::atomic<int> ran{0};
    for (int n_jobs : {1, 2}) {
        cojob::parallel par{{.n_jobs = n_jobs}};
        std::vector<decltype(cojob::delayed([&ran](int i) { return ++ran + i; })(0))> none;
        CHECK(par(none).empty());
    }
    CHECK(ran == 0);
}

TEST_CASE("void tasks each run exactly once and the call returns nothing", "[parallel][void]") {
    for (int n_jobs : {1, 2, 4}) {
        INFO("n_jobs=" << n_jobs);
        std::vector<std::atomic<int>> hits(500);
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 3}};
        auto tasks = std::views::iota(std::size_t{0}, hits.size()) |
                     std::views::transform([&hits](std::size_t i) { return cojob::delayed([&hits](std::size_t k) { ++hits[k]; })(i); });
        static_assert(std::is_void_v<decltype(par(tasks))>);
        par(tasks);
        for (const auto& h : hits) REQUIRE(h == 1);
    }
}

TEST_CASE("pair results unzip into two sequences, as in joblib's modf example", "[parallel][tuple]") {
    cojob::parallel par{{.n_jobs = 2}};
    const std::vector<std::pair<double, double>> r =
        par(std::views::iota(0, 10) | std::views::transform([](int i) { return cojob::delayed(modf_pair)(i / 2.0); }));
    REQUIRE(r.size() == 10);
    const std::vector<double> fractions(std::views::elements<0>(r).begin(), std::views::elements<0>(r).end());
    const std::vector<double> wholes(std::views::elements<1>(r).begin(), std::views::elements<1>(r).end());
    CHECK(fractions == std::vector<double>{0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5});
    CHECK(wholes == std::vector<double>{0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0});
}

TEST_CASE("tuple results come back whole and in order", "[parallel][tuple]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 2}};
    const auto r = par(std::views::iota(0, 20) | std::views::transform([](int i) {
                           return cojob::delayed([](int k) { return std::tuple<int, std::string>(k, std::to_string(k)); })(i);
                       }));
    REQUIRE(r.size() == 20);
    for (int i = 0; i < 20; ++i) {
        CHECK(std::get<0>(r[static_cast<std::size_t>(i)]) == i);
        CHECK(std::get<1>(r[static_cast<std::size_t>(i)]) == std::to_string(i));
    }
}

TEST_CASE("move-only results come back", "[parallel][order]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 3}};
    const std::vector<std::unique_ptr<int>> r = par(std::views::iota(0, 50) | std::views::transform([](int i) {
                                                        return cojob::delayed([](int k) { return std::make_unique<int>(k); })(i);
                                                    }));
    REQUIRE(r.size() == 50);
    for (int i = 0; i < 50; ++i) CHECK(*r[static_cast<std::size_t>(i)] == i);
}

namespace {
struct frozen {
    const int value;
};
}  // namespace

TEST_CASE("results that can be constructed but not assigned come back in order", "[parallel][order]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 3}};
    const auto a = par(std::views::iota(0, 30) | std::views::transform([](int i) {
                           return cojob::delayed([](int k) { return frozen{k}; })(i);
                       }));
    REQUIRE(a.size() == 30);
    for (int i = 0; i < 30; ++i) CHECK(a[static_cast<std::size_t>(i)].value == i);
    const auto b = par(std::views::iota(0, 30) | std::views::transform([](int i) {
                           return cojob::delayed([](int k) { return std::pair<const std::string, int>(std::to_string(k), k); })(i);
                       }));
    REQUIRE(b.size() == 30);
    CHECK(b[29].first == "29");
    CHECK(b[29].second == 29);
}

// --- input ranges ------------------------------------------------------------------------------

TEST_CASE("an lvalue vector of tasks is run and left intact for another call", "[parallel][input]") {
    std::vector<decltype(cojob::delayed(long_square)(0L))> tasks;
    for (long i = 0; i < 100; ++i) tasks.push_back(cojob::delayed(long_square)(i));
    cojob::parallel par{{.n_jobs = 2, .batch_size = 5}};
    const std::vector<long> first = par(tasks);
    REQUIRE(tasks.size() == 100);
    CHECK(std::get<0>(tasks[42].arguments()) == 42);
    const std::vector<long> second = par(tasks);
    CHECK(first == second);
    CHECK(first[99] == 99 * 99);
}

TEST_CASE("an rvalue vector of tasks is run", "[parallel][input]") {
    auto make = [] {
        std::vector<decltype(cojob::delayed(long_square)(0L))> tasks;
        for (long i = 0; i < 100; ++i) tasks.push_back(cojob::delayed(long_square)(i));
        return tasks;
    };
    cojob::parallel par{{.n_jobs = 2}};
    const std::vector<long> r = par(make());
    REQUIRE(r.size() == 100);
    CHECK(r[10] == 100);
    CHECK(r[99] == 99 * 99);
}

TEST_CASE("tasks holding counted arguments are all destroyed after the call", "[parallel][input]") {
    kit::counts n;
    {
        std::vector<decltype(cojob::delayed(kit::read_value)(kit::counted(n, 0)))> tasks;
        for (int i = 0; i < 30; ++i) tasks.push_back(cojob::delayed(kit::read_value)(kit::counted(n, i)));
        cojob::parallel par{{.n_jobs = 2, .batch_size = 4}};
        const std::vector<int> r = par(tasks);
        REQUIRE(r.size() == 30);
        CHECK(r[29] == 29);
    }
    CHECK(n.alive() == 0);
}

TEST_CASE("an input-only range without a size is run in order", "[parallel][input]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        kit::input_generator gen(300, [](std::size_t i) { return cojob::delayed(uneven_square)(static_cast<long>(i)); });
        static_assert(std::ranges::input_range<decltype(gen)>);
        static_assert(!std::ranges::forward_range<decltype(gen)>);
        static_assert(!std::ranges::sized_range<decltype(gen)>);
        cojob::parallel par{{.n_jobs = n_jobs}};
        const std::vector<long> r = par(gen);
        REQUIRE(r.size() == 300);
        for (long i = 0; i < 300; ++i) REQUIRE(r[static_cast<std::size_t>(i)] == i * i);
    }
}

TEST_CASE("tasks made from lambdas with captures run", "[parallel][input]") {
    long offset = 10;  // not const: a constant would need no capture
    auto add = [offset](long i) { return i + offset; };
    cojob::parallel par{{.n_jobs = 2, .batch_size = 3}};
    std::vector<decltype(cojob::delayed(add)(0L))> tasks;
    for (long i = 0; i < 20; ++i) tasks.push_back(cojob::delayed(add)(i));
    const std::vector<long> r = par(tasks);
    REQUIRE(r.size() == 20);
    CHECK(r[19] == 29);
    const std::vector<long> s = par(std::views::iota(0L, 20L) | std::views::transform([&offset](long i) {
                                        return cojob::delayed([&offset](long k) { return k * offset; })(i);
                                    }));
    REQUIRE(s.size() == 20);
    CHECK(s[19] == 190);
}

TEST_CASE("tasks with move-only arguments made by a view are run", "[parallel][input]") {
    cojob::parallel par{{.n_jobs = 2, .batch_size = 2}};
    const std::vector<int> r = par(std::views::iota(0, 20) | std::views::transform([](int i) {
                                       return cojob::delayed([](std::unique_ptr<int> p) { return *p * 3; })(std::make_unique<int>(i));
                                   }));
    REQUIRE(r.size() == 20);
    CHECK(r[7] == 21);
}

// --- lazy consumption --------------------------------------------------------------------------

TEST_CASE("with pre_dispatch=3 the input is never more than 3 tasks ahead of completed ones", "[parallel][lazy]") {
    kit::producer_log log;
    std::atomic<long> completed{0};
    std::atomic<long> most_ahead{0};
    std::atomic<long> most_ahead_at_progress{0};
    log.before_each = [&](std::size_t i) { kit::raise_to(most_ahead, static_cast<long>(i) + 1 - completed.load()); };
    kit::input_generator gen(60, [&completed](std::size_t i) {
        return cojob::delayed([&completed](std::size_t k) {
            std::this_thread::sleep_for(200us);
            ++completed;
            return k;
        })(i);
    }, &log);
    cojob::parallel par{{.n_jobs = 2,
                         .pre_dispatch = 3,
                         .batch_size = 1,
                         .progress = [&](const cojob::progress_event& e) {
                             kit::raise_to(most_ahead_at_progress,
                                           static_cast<long>(log.produced.load()) - static_cast<long>(e.completed));
                         }}};
    const std::vector<std::size_t> r = par(gen);
    REQUIRE(r.size() == 60);
    CHECK(log.produced == 60);
    CHECK(most_ahead >= 1);
    CHECK(most_ahead <= 3);
    CHECK(most_ahead_at_progress <= 3);
}

TEST_CASE("the default pre_dispatch of 2*n_jobs keeps a generator close to the completed tasks", "[parallel][lazy]") {
    kit::producer_log log;
    std::atomic<long> completed{0};
    std::atomic<long> most_ahead{0};
    log.before_each = [&](std::size_t i) { kit::raise_to(most_ahead, static_cast<long>(i) + 1 - completed.load()); };
    kit::input_generator gen(40, [&completed](std::size_t i) {
        return cojob::delayed([&completed](std::size_t k) {
            std::this_thread::sleep_for(200us);
            ++completed;
            return k;
        })(i);
    }, &log);
    cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
    REQUIRE(par(gen).size() == 40);
    CHECK(most_ahead <= 4);
}

TEST_CASE("pre_dispatch=\"all\" takes the whole input before the first completion is handled", "[parallel][lazy]") {
    kit::producer_log log;
    std::vector<std::size_t> produced_at_progress;
    kit::input_generator gen(50, [](std::size_t i) { return cojob::delayed([](std::size_t k) { return k; })(i); }, &log);
    cojob::parallel par{{.n_jobs = 2,
                         .pre_dispatch = "all",
                         .batch_size = 1,
                         .progress = [&](const cojob::progress_event&) { produced_at_progress.push_back(log.produced); }}};
    REQUIRE(par(gen).size() == 50);
    REQUIRE_FALSE(produced_at_progress.empty());
    CHECK(produced_at_progress.front() == 50);
}

TEST_CASE("the input range is only touched from the caller's thread", "[parallel][lazy]") {
    for (int n_jobs : {1, 2, 4}) {
        INFO("n_jobs=" << n_jobs);
        kit::producer_log log;
        kit::input_generator gen(200, [](std::size_t i) { return cojob::delayed([](std::size_t k) { return k + 1; })(i); }, &log);
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1}};
        REQUIRE(par(gen).size() == 200);
        CHECK(log.threads == std::set<std::thread::id>{std::this_thread::get_id()});
    }
}

// --- workers -----------------------------------------------------------------------------------

TEST_CASE("the threads backend runs tasks on at most n_jobs threads, sequential on the caller's", "[parallel][workers]") {
    std::mutex m;
    std::set<std::thread::id> seen;
    auto record = [&](int i) {
        std::this_thread::sleep_for(100us);
        std::lock_guard lock(m);
        seen.insert(std::this_thread::get_id());
        return i;
    };
    auto tasks = std::views::iota(0, 200) | std::views::transform([&](int i) { return cojob::delayed(record)(i); });
    {
        cojob::parallel par{{.n_jobs = 2, .batch_size = 1}};
        par(tasks);
        CHECK(seen.size() <= 2);
    }
    seen.clear();
    {
        cojob::parallel par;
        par(tasks);
        CHECK(seen == std::set<std::thread::id>{std::this_thread::get_id()});
    }
}

TEST_CASE("a parallel object keeps its workers across calls and releases them when destroyed", "[parallel][workers]") {
    const std::size_t before = kit::thread_count();
    {
        cojob::parallel par{{.n_jobs = 2}};
        REQUIRE(par(varied_squares(100)).size() == 100);
        const std::size_t after_first = kit::thread_count();
        CHECK(after_first <= before + 2);
        for (int call = 0; call < 5; ++call) REQUIRE(par(varied_squares(100)).size() == 100);
        CHECK(kit::thread_count() <= after_first);  // no new threads per call
    }
    CHECK(kit::eventually([&] { return kit::thread_count() <= before; }, 5s));
}

// --- progress callback -------------------------------------------------------------------------

TEST_CASE("the progress callback sees completed counts rise to the total and finished once at the end",
          "[parallel][progress]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        std::vector<cojob::progress_event> events;
        std::set<std::thread::id> threads;
        cojob::parallel par{{.n_jobs = n_jobs,
                             .batch_size = 1,
                             .progress = [&](const cojob::progress_event& e) {
                                 events.push_back(e);
                                 threads.insert(std::this_thread::get_id());
                             }}};
        REQUIRE(par(varied_squares(25)).size() == 25);
        REQUIRE_FALSE(events.empty());
        for (std::size_t i = 1; i < events.size(); ++i) CHECK(events[i].completed >= events[i - 1].completed);
        for (const auto& e : events) {
            CHECK(e.completed <= e.dispatched);
            CHECK(e.total == std::optional<std::size_t>(25));
        }
        CHECK(events.back().completed == 25);
        CHECK(events.back().finished);
        CHECK(std::count_if(events.begin(), events.end(), [](const auto& e) { return e.finished; }) == 1);
        CHECK(threads == std::set<std::thread::id>{std::this_thread::get_id()});  // the scheduler's thread
    }
}

TEST_CASE("for an unsized input the progress total is known once the input ran out", "[parallel][progress]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs=" << n_jobs);
        std::vector<cojob::progress_event> events;
        kit::input_generator gen(30, [](std::size_t i) { return cojob::delayed([](std::size_t k) { return k; })(i); });
        cojob::parallel par{{.n_jobs = n_jobs, .batch_size = 1, .progress = [&](const cojob::progress_event& e) {
                                 events.push_back(e);
                             }}};
        REQUIRE(par(gen).size() == 30);
        REQUIRE_FALSE(events.empty());
        CHECK(events.back().finished);
        CHECK(events.back().completed == 30);
        CHECK(events.back().total == std::optional<std::size_t>(30));
        CHECK(std::count_if(events.begin(), events.end(), [](const auto& e) { return e.finished; }) == 1);
    }
}

TEST_CASE("an empty call still reports that it finished", "[parallel][progress]") {
    std::vector<cojob::progress_event> events;
    cojob::parallel par{{.n_jobs = 2, .progress = [&](const cojob::progress_event& e) { events.push_back(e); }}};
    CHECK(par(varied_squares(0)).empty());
    REQUIRE_FALSE(events.empty());
    CHECK(events.back().finished);
    CHECK(events.back().completed == 0);
}
