// tests/process/roles.cpp - the programs behind roles.hpp.
#include "roles.hpp"

#include <cojob/cojob.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ranges>
#include <thread>

namespace {
int role_pid_after(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return static_cast<int>(::getpid());
}
int report_pid(int) {
    std::printf("%d ", static_cast<int>(::getpid()));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}
}  // namespace

namespace roles {

int orphan_maker() {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 1}};
    // Learn the worker pids first, then block both workers in long tasks.
    auto pids = par(std::views::iota(0, 2) | std::views::transform([](int) { return cojob::delayed(role_pid_after)(100); }));
    std::printf("%d %d\n", pids[0], pids[1]);
    std::fflush(stdout);
    (void)par(std::views::iota(0, 2) | std::views::transform([](int i) { return cojob::delayed(report_pid)(i); }));
    return 0;
}

int forgetful_main() {
    try {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
        (void)par(std::views::iota(0, 2) | std::views::transform([](int i) { return cojob::delayed(role_pid_after)(i); }));
        std::printf("ok\n");
        return 0;
    } catch (const cojob::worker_died& e) {
        std::printf("worker_died: %s\n", e.what());
        return 0;
    } catch (const cojob::error& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}

}  // namespace roles
