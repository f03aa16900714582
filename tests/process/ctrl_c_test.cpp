// tests/process/ctrl_c_test.cpp - Ctrl-C (SIGINT) and blocking calls on worker processes: during
// a call it ends the call; between calls it ends the program, as its default disposition would.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "kit.hpp"
#include "process/sigint_watch.hpp"
#include "roles.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ranges>
#include <string>
#include <thread>

namespace ctrl_c {
void nap_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
}  // namespace ctrl_c

namespace {

using namespace std::chrono_literals;

auto naps(int n, int ms) {
    return std::views::iota(0, n) | std::views::transform([ms](int) { return cojob::delayed(ctrl_c::nap_ms)(ms); });
}

}  // namespace

TEST_CASE("processes: Ctrl-C during a blocking call ends it with cojob::cancelled", "[process][cancel]") {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 1}};
    // Ctrl-C once the call watches for it; sent before, it would end the test binary.
    // Uninterrupted, the call would take a minute and not throw.
    std::thread interrupter([] {
        if (kit::eventually([] { return cojob::detail::process::sigint_watchers() > 0; }, 10s))
            ::kill(::getpid(), SIGINT);
    });
    CHECK_THROWS_AS(par(naps(6, 20000)), cojob::cancelled);
    interrupter.join();
    CHECK(children::zombies() == 0);
    // cojob's handler goes a moment after the last call, and the default disposition is back.
    CHECK(kit::eventually([] { return kit::sigint_is_default(); }, 5s));
    par(naps(2, 1));
}

TEST_CASE("processes: Ctrl-C just after a blocking call ends the program, as the default would", "[process][cancel]") {
    const auto [text, st] = roles::run("COJOB_TEST_ROLE=ctrl_c_after_call");
    CHECK(text == "called\n");
    CHECK(WIFSIGNALED(st));
    CHECK(WTERMSIG(st) == SIGINT);
}
