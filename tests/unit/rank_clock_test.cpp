// tests/unit/rank_clock_test.cpp - a worker rank's task times onto rank 0's clock: untouched on
// one machine, shifted into each batch's request-response window when the clocks differ.
#include "mpi/rank_clock.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

using cojob::detail::rank_clock;

namespace {

constexpr std::int64_t ms = 1'000'000;

/// A batch rank 0 sends at `sent`, whose two tasks run from sent+1 ms to sent+3 ms on a clock
/// `ahead` of rank 0's, and whose response arrives at sent+4 ms.
std::vector<std::int64_t> batch(rank_clock& clock, std::int64_t sent, std::int64_t ahead) {
    std::vector<std::int64_t> times{sent + 1 * ms + ahead, sent + 2 * ms + ahead, sent + 2 * ms + ahead,
                                    sent + 3 * ms + ahead};
    clock.align(sent, sent + 4 * ms, times);
    return times;
}

}  // namespace

TEST_CASE("rank clock: one machine's times stay as they are", "[rank_clock]") {
    rank_clock clock;
    for (std::int64_t sent = 0; sent < 50 * ms; sent += 5 * ms) {
        const auto times = batch(clock, sent, 0);
        CHECK(times.front() == sent + 1 * ms);
        CHECK(times.back() == sent + 3 * ms);
    }
    CHECK(clock.offset() == 0);
}

TEST_CASE("rank clock: another machine's times land inside each request-response window", "[rank_clock]") {
    for (const std::int64_t ahead : {std::int64_t{3'600'000} * ms, -std::int64_t{7'200'000} * ms}) {
        INFO("the rank's clock is ahead by " << ahead / ms << " ms");
        rank_clock clock;
        for (std::int64_t sent = 0; sent < 50 * ms; sent += 5 * ms) {
            const auto times = batch(clock, sent, ahead);
            CHECK(times.front() >= sent);
            CHECK(times.back() <= sent + 4 * ms);
            CHECK(times[1] - times[0] == 1 * ms);  // durations are kept
        }
        // Within the slack of the window: the tasks took 2 ms of its 4.
        CHECK(clock.offset() >= -ahead - 1 * ms);
        CHECK(clock.offset() <= -ahead + 1 * ms);
    }
}

TEST_CASE("rank clock: impossible times are left alone", "[rank_clock]") {
    rank_clock clock;
    std::vector<std::int64_t> times{INT64_MIN, INT64_MAX};
    clock.align(0, 4 * ms, times);
    CHECK(times == std::vector<std::int64_t>{INT64_MIN, INT64_MAX});
    CHECK(clock.offset() == 0);
}
