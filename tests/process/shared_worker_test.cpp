// tests/process/shared_worker_test.cpp - a worker holding batches of two calls: the batch of a
// call that arrived while every worker was busy waits behind another call's running batch, and
// loses nothing to that call's crash, timeout or cancellation; cancelling the waiting call
// leaves the running batch alone.
#include "stream_process_kit.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <thread>

namespace shared_worker {

using namespace pstream;

inline long plus_one(long i) { return i + 1; }

/// Runs `busy` (two one-task batches, one per worker) on a thread of its own and, once both
/// run, a one-task call whose batch waits behind one of them; returns that call's result.
template <class Busy>
long one_task_behind(cojob::parallel& par, Busy&& busy) {
    std::jthread t(std::forward<Busy>(busy));  // joined however the call ends
    std::this_thread::sleep_for(100ms);
    return par(std::views::single(cojob::delayed(plus_one)(41L))).at(0);
}

}  // namespace shared_worker

using namespace shared_worker;

TEST_CASE("processes: a batch waiting behind another call's batch runs elsewhere when that worker dies",
          "[process][concurrent][crash]") {
    watchdog dog(60s, "batch behind a crash");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    (void)pool_pids(par);  // the workers are up
    bool died = false;
    const long r = one_task_behind(par, [&] {
        try {
            (void)par(std::views::iota(0L, 2L) | std::views::transform([](long) { return cojob::delayed(die_after)(300L); }));
        } catch (const cojob::worker_died&) {
            died = true;
        }
    });
    CHECK(died);
    CHECK(r == 42);
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
}

TEST_CASE("processes: a batch waiting behind another call's timed-out batch runs elsewhere",
          "[process][concurrent][timeout]") {
    watchdog dog(60s, "batch behind a timeout");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .timeout = 1s}};
    (void)pool_pids(par);
    bool timed_out = false;
    const long r = one_task_behind(par, [&] {
        try {
            (void)par(std::views::iota(0L, 2L) | std::views::transform([](long i) { return cojob::delayed(sleep_then)(i, stuck_ms); }));
        } catch (const cojob::timeout_error&) {
            timed_out = true;
        }
    });
    CHECK(timed_out);
    CHECK(r == 42);
    CHECK(kit::eventually([] { return running_and_zombies().second == 0; }, 3s));
}

TEST_CASE("processes: cancelling a call whose batch waits behind another call's leaves that one running",
          "[process][concurrent][cancel]") {
    watchdog dog(60s, "cancel a batch behind another call's");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    const auto workers = pool_pids(par);
    std::set<long> ran_on;
    std::thread busy([&] {
        auto pids = par(std::views::iota(0, 2) | std::views::transform([](int) { return cojob::delayed(pid_after)(600L); }));
        ran_on = {pids.begin(), pids.end()};
    });
    std::this_thread::sleep_for(100ms);
    asio::cancellation_signal stop;
    std::atomic<bool> done{false};
    std::exception_ptr error;
    par.async_run(std::views::single(cojob::delayed(plus_one)(1L)),
                  asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e, std::vector<long>) {
                      error = e;
                      done = true;
                  }));
    std::this_thread::sleep_for(50ms);
    stop.emit(asio::cancellation_type::terminal);
    REQUIRE(kit::eventually([&] { return done.load(); }, 10s));
    busy.join();
    CHECK(is_operation_aborted(error));
    CHECK(ran_on == workers);  // no worker was killed for the cancelled call
}
