// tests/mpi/mpi_test.cpp - backend::mpi, run by `meson test` under `mpirun -n 3`: rank 0 runs
// these cases, ranks 1 and 2 serve its tasks inside cojob::init. The cases tagged [fastest]
// run again under `mpirun -n 5`, with four worker ranks.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>
#include <cojob/mpi.hpp>

#include "fastest_first.hpp"
#include "kit.hpp"
#include "mpi_tasks.hpp"
#include "scratch_dir.hpp"
#include "trace_reader.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <ranges>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace mpi_tasks;
using namespace std::chrono_literals;

TEST_CASE("mpi: the job has three ranks and this is rank 0", "[mpi]") {
    CHECK(cojob::mpi::rank() == 0);
    CHECK(cojob::mpi::size() == 3);
}

TEST_CASE("mpi: results come back in input order, from both worker ranks", "[mpi]") {
    cojob::options o = on_ranks();
    o.batch_size = 1;
    cojob::parallel par(o);
    const auto r = par(std::views::iota(0, 2000) | std::views::transform([](int i) { return cojob::delayed(square)(i); }));
    REQUIRE(r.size() == 2000);
    for (int i = 0; i < 2000; ++i) REQUIRE(r[static_cast<std::size_t>(i)] == square(i));

    const auto ranks = par(std::views::iota(0, 200) | std::views::transform([](int i) { return cojob::delayed(rank_of)(i); }));
    const std::set<int> seen(ranks.begin(), ranks.end());
    CHECK(seen == std::set<int>{1, 2});

    // n_jobs counts worker ranks: one rank only, and more than there are is capped.
    cojob::parallel one(on_ranks(1));
    const auto only = one(std::views::iota(0, 50) | std::views::transform([](int i) { return cojob::delayed(rank_of)(i); }));
    CHECK(std::set<int>(only.begin(), only.end()) == std::set<int>{1});
    cojob::parallel many(on_ranks(16));
    CHECK(many(std::views::iota(0, 10) | std::views::transform([](int i) { return cojob::delayed(square)(i); })).size() == 10);
}

TEST_CASE("mpi: 1e5 tiny tasks with automatic batching", "[mpi]") {
    cojob::parallel par(on_ranks());
    const auto r = par(std::views::iota(0, 100000) | std::views::transform([](int i) { return cojob::delayed(square)(i); }));
    REQUIRE(r.size() == 100000);
    CHECK(r[99999] == square(99999));
}

TEST_CASE("mpi: a task's exception comes back with its type, and the object is usable again", "[mpi]") {
    cojob::parallel par(on_ranks());
    auto tasks = [] { return std::views::iota(0, 100) | std::views::transform([](int i) { return cojob::delayed(picky)(i); }); };
    try {
        (void)par(tasks());
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("picky refuses 37"));
        CHECK_THAT(what, Catch::Contains("picky"));
    }
    const auto again = par(std::views::iota(0, 10) | std::views::transform([](int i) { return cojob::delayed(square)(i); }));
    CHECK(again[9] == 81);
}

TEST_CASE("mpi: keep_going gives every task its outcome; a late task ends alone", "[mpi][keep_going]") {
    cojob::options o = on_ranks();
    o.timeout = 0.3s;
    cojob::parallel par(o);
    // Task 37 throws; the others return.
    const auto out = par(cojob::keep_going, std::views::iota(0, 100) | std::views::transform([](int i) {
                                                return cojob::delayed(picky)(i);
                                            }));
    REQUIRE(out.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(out[static_cast<std::size_t>(i)].has_value() == (i != 37));
    CHECK(out[37].failure().kind == cojob::failure_kind::exception);
    CHECK_THROWS_AS(out[37].value(), std::invalid_argument);
    // Task 2 naps past the timeout: its outcome is given at once, and its rank serves again
    // once it wakes.
    const auto late = par(cojob::keep_going, std::views::iota(0, 6) | std::views::transform([](int i) {
                                                 return cojob::delayed(nap_ms)(i == 2 ? 1500 : 1);
                                             }));
    REQUIRE(late.size() == 6);
    for (int i = 0; i < 6; ++i) CHECK(late[static_cast<std::size_t>(i)].has_value() == (i != 2));
    CHECK(late[2].failure().kind == cojob::failure_kind::timeout);
}

TEST_CASE("mpi: a task past worker_memory_limit fails as an OOM, and its rank serves on", "[mpi][keep_going]") {
    cojob::options o = on_ranks();
    o.worker_memory_limit = std::size_t{2} << 30;
    o.batch_size = 1;
    cojob::parallel par(o);
    // Task 3 asks for 64 GiB; the others for 16 MiB each, on the same ranks afterwards.
    const auto out = par(cojob::keep_going, std::views::iota(0, 12) | std::views::transform([](int i) {
                                                return cojob::delayed(take_mb)(i == 3 ? 64L << 10 : 16L);
                                            }));
    REQUIRE(out.size() == 12);
    for (int i = 0; i < 12; ++i) {
        INFO("task " << i);
        CHECK(out[static_cast<std::size_t>(i)].has_value() == (i != 3));
    }
    CHECK(out[3].failure().kind == cojob::failure_kind::worker_died);
    CHECK(out[3].failure().oom_suspected);
    CHECK_THROWS_AS(out[3].value(), cojob::worker_died);
    // Without keep_going the failure ends the call; the ranks are still there for the next.
    CHECK_THROWS_WITH(par(std::views::iota(0, 4) | std::views::transform([](int i) {
                              return cojob::delayed(take_mb)(i == 1 ? 64L << 10 : 1L);
                          })),
                      Catch::Contains("worker_memory_limit"));
    const auto again = par(std::views::iota(0, 8) | std::views::transform([](int) { return cojob::delayed(take_mb)(64L); }));
    CHECK(again[7] == 64);
}

TEST_CASE("mpi: streams in input order and in completion order", "[mpi]") {
    for (auto order : {cojob::return_as::generator, cojob::return_as::generator_unordered}) {
        cojob::options o = on_ranks();
        o.return_as = order;
        o.batch_size = 1;
        cojob::parallel par(o);
        std::vector<int> got;
        for (int v : par.stream(std::views::iota(0, 60) |
                                std::views::transform([](int i) { return cojob::delayed(slow_identity)(i); })))
            got.push_back(v);
        REQUIRE(got.size() == 60);
        if (order == cojob::return_as::generator) {
            for (int i = 0; i < 60; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
        } else {
            std::vector<int> sorted = got;
            std::sort(sorted.begin(), sorted.end());
            for (int i = 0; i < 60; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
        }
    }
}

TEST_CASE("mpi: a fast task never waits behind a slow one while a rank is free", "[mpi][fastest]") {
    const int ranks = cojob::mpi::size() - 1;
    const int n_jobs = GENERATE_COPY(filter([ranks](int n) { return n <= ranks; }, values({2, 4})));
    const long slow = GENERATE(0L, 1L);
    fastest_first::check(on_ranks(n_jobs), slow);
}

TEST_CASE("mpi: a stream dropped early leaves the object free", "[mpi]") {
    cojob::options o = on_ranks();
    o.return_as = cojob::return_as::generator;
    o.batch_size = 1;
    cojob::parallel par(o);
    int taken = 0;
    for (int v : par.stream(std::views::iota(0, 1000) |
                            std::views::transform([](int i) { return cojob::delayed(slow_identity)(i); }))) {
        CHECK(v == taken);
        if (++taken == 5) break;
    }
    cojob::parallel list(on_ranks());
    CHECK(list(std::views::iota(0, 5) | std::views::transform([](int i) { return cojob::delayed(square)(i); }))[4] == 16);
}

TEST_CASE("mpi: large results and a large array sent once per rank and call", "[mpi]") {
    cojob::parallel par(on_ranks());
    const auto big = par(std::views::iota(0, 6) | std::views::transform([](int i) { return cojob::delayed(filled)(i); }));
    REQUIRE(big.size() == 6);
    for (int i = 0; i < 6; ++i) {
        REQUIRE(big[static_cast<std::size_t>(i)].size() == (std::size_t{1} << 20));
        CHECK(big[static_cast<std::size_t>(i)].back() == i);
    }

    std::vector<double> data(2'000'000);  // 16 MB: above max_nbytes
    std::iota(data.begin(), data.end(), 0.0);
    cojob::options o = on_ranks();
    o.batch_size = 1;
    cojob::parallel shared(o);
    const auto sums = shared(std::views::iota(0, 40) | std::views::transform([&](int i) {
                                 return cojob::delayed(sum_window)(std::span<const double>(data),
                                                                   static_cast<std::size_t>(i) * 1000);
                             }));
    std::map<int, std::set<std::uintptr_t>> addresses;
    for (int i = 0; i < 40; ++i) {
        const auto& w = sums[static_cast<std::size_t>(i)];
        const double first = i * 1000.0;
        CHECK(w.sum == Approx(1000 * first + 999 * 1000 / 2.0));
        addresses[w.rank].insert(w.address);
    }
    // Each rank kept one copy for all its tasks.
    for (const auto& [rank, where] : addresses) {
        CHECK(rank >= 1);
        CHECK(where.size() == 1);
    }
}

TEST_CASE("mpi: a memmap travels by path: the ranks fill a w+ output rank 0 sees", "[mpi][memmap]") {
    kit::scratch_dir dir("cojob-mpi");
    cojob::memmap<double> out(dir.file("out"), cojob::mmap_mode::w_plus, {64});
    cojob::options o = on_ranks();
    o.batch_size = 1;
    cojob::parallel par(o);
    const auto ranks = par(std::views::iota(0, 64) | std::views::transform([&](int i) {
                               return cojob::delayed(fill)(out, static_cast<std::size_t>(i), 0.5 * i);
                           }));
    for (std::size_t i = 0; i < 64; ++i) CHECK(out[i] == 0.5 * static_cast<double>(i));
    CHECK(std::set<int>(ranks.begin(), ranks.end()) == std::set<int>{1, 2});
}

TEST_CASE("mpi: a timeout ends the call, and the ranks serve the next one when free", "[mpi]") {
    cojob::options o = on_ranks();
    o.timeout = 0.3s;
    o.batch_size = 1;
    cojob::parallel par(o);
    kit::scratch_dir dir("cojob-mpi");
    const std::string marker = dir.file("slow-task-done");
    CHECK_THROWS_AS(par(std::views::iota(0, 4) | std::views::transform([&](int i) {
                        return cojob::delayed(sleep_then_mark)(i == 1 ? 3000 : 1, i == 1 ? marker : dir.file("quick"));
                    })),
                    cojob::timeout_error);
    CHECK_FALSE(std::filesystem::exists(marker));  // the call did not wait for the slow task
    cojob::parallel next(on_ranks());
    CHECK(next(std::views::iota(0, 4) | std::views::transform([](int i) { return cojob::delayed(square)(i); }))[3] == 9);
}

TEST_CASE("mpi: an inner call on a rank runs on threads", "[mpi]") {
    cojob::parallel par(on_ranks());
    const auto r = par(std::views::iota(0, 4) | std::views::transform([](int i) { return cojob::delayed(inner_threads)(i); }));
    CHECK(r[3] == 3 + 0 + 1 + 4 + 9);
}

TEST_CASE("mpi: verbose lines name the MPI backend and its worker ranks", "[mpi]") {
    cojob::options o = on_ranks();
    o.verbose = 10;
    cojob::parallel par(o);
    kit::stream_capture err(2);
    CHECK(par(std::views::iota(0, 3) | std::views::transform([](int i) { return cojob::delayed(square)(i); })).size() == 3);
    const std::string text = err.text();
    CHECK_THAT(text, Catch::Contains("Using backend MPIBackend with 2 concurrent workers."));
    CHECK_THAT(text, Catch::Contains("Done 3 out of 3 | elapsed"));
}

int main(int argc, char** argv) {
    cojob::init(argc, argv);  // ranks 1 and 2 stay in here
    return Catch::Session().run(argc, argv);
}

TEST_CASE("mpi: on_task names the rank that ran each task, with ordered times", "[mpi]") {
    std::map<std::size_t, std::vector<cojob::task_event>> by_task;
    cojob::options o = on_ranks();
    o.on_task = [&](const cojob::task_event& e) { by_task[e.index].push_back(e); };
    cojob::parallel par(o);
    const auto ranks = par(std::views::iota(0, 100) | std::views::transform([](int i) { return cojob::delayed(rank_of)(i); }));
    REQUIRE(by_task.size() == 100);
    for (const auto& [index, ev] : by_task) {
        INFO("task " << index);
        REQUIRE(ev.size() == 3);
        CHECK(ev[0].what == cojob::task_status::dispatched);
        CHECK(ev[1].what == cojob::task_status::started);
        CHECK(ev[2].what == cojob::task_status::finished);
        CHECK(ev[2].backend == cojob::backend::mpi);
        CHECK(ev[2].worker == ranks[index]);
        // One host here: the ranks' steady clock is rank 0's.
        CHECK(ev[2].dispatched_at <= ev[2].started_at);
        CHECK(ev[2].started_at <= ev[2].ended_at);
    }
}

TEST_CASE("mpi: the trace puts each task on its rank's track", "[mpi][trace]") {
    kit::scratch_dir dir;
    cojob::options o = on_ranks();
    o.trace = dir.file("mpi.json");
    cojob::parallel par(o);
    const auto ranks = par(std::views::iota(0, 100) | std::views::transform([](int i) { return cojob::delayed(rank_of)(i); }));
    const auto trace = kit::read_trace(*o.trace);
    const auto by_task = trace.tasks();
    REQUIRE(by_task.size() == 100);
    for (int i = 0; i < 100; ++i) {
        INFO("task " << i);
        REQUIRE(by_task.at({1, i}).size() == 1);
        CHECK(trace.track_of(*by_task.at({1, i}).front()) == "MPI rank " + std::to_string(ranks[static_cast<std::size_t>(i)]));
    }
    CHECK(trace.transfers > 0);
}
