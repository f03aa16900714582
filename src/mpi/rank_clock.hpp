// src/mpi/rank_clock.hpp - private: puts a worker rank's task times on rank 0's steady clock.
// Ranks on one machine share CLOCK_MONOTONIC; ranks on other machines count from their own
// boot. No extra message is needed to tell: every timed batch bounds the offset between the
// clocks, since its tasks started after rank 0 wrote the request and ended before rank 0
// received the response.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace cojob::detail {

class rank_clock {
public:
    /// A batch written at `sent_ns` and received at `received_ns` (rank 0's clock) whose tasks
    /// reported `times` (the rank's clock, start and end pairs): narrows the offset, then moves
    /// the times onto rank 0's clock.
    void align(std::int64_t sent_ns, std::int64_t received_ns, std::vector<std::int64_t>& times) {
        // Steady times are far from the ends of the range; bytes that say otherwise are left
        // as they are rather than overflow.
        constexpr std::int64_t limit = std::int64_t{1} << 62;
        if (times.empty() || std::any_of(times.begin(), times.end(), [](std::int64_t t) { return t < -limit || t > limit; }))
            return;
        low_ = std::max(low_, sent_ns - times.front());
        high_ = std::min(high_, received_ns - times.back());
        const std::int64_t shift = offset();
        if (shift != 0)
            for (auto& t : times) t += shift;
    }
    /// What is added to the rank's times: 0 while that fits every batch seen (one machine, or
    /// clocks closer than a message takes), else the smallest shift that does; the middle of
    /// the bounds if they cross (clocks drifting apart over a long job).
    [[nodiscard]] std::int64_t offset() const noexcept {
        if (low_ > high_) return low_ / 2 + high_ / 2;
        if (low_ > 0) return low_;
        if (high_ < 0) return high_;
        return 0;
    }

private:
    std::int64_t low_ = std::numeric_limits<std::int64_t>::min();
    std::int64_t high_ = std::numeric_limits<std::int64_t>::max();
};

}  // namespace cojob::detail
