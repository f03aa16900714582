// tests/mpi/mpi_tasks.hpp - what the MPI test programs' cases share: a runner's options on the
// ranks, and the tasks the ranks run (inline: each program has one copy, under one name).
#pragma once

#include <cojob/cojob.hpp>
#include <cojob/mpi.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mpi_tasks {



inline cojob::options on_ranks(int n_jobs = -1) {
    cojob::options o;
    o.n_jobs = n_jobs;
    o.backend = cojob::backend::mpi;
    return o;
}

inline long square(int x) { return static_cast<long>(x) * x; }
inline int rank_of(int) { return cojob::mpi::rank(); }

inline int picky(int x) {
    if (x == 37) throw std::invalid_argument("picky refuses 37");
    return x;
}

inline int nap_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}

/// Allocates and touches `mb` megabytes on its rank; returns their count.
inline int take_mb(long mb) {
    std::vector<char> block(static_cast<std::size_t>(mb) << 20, 1);
    return static_cast<int>(block.size() >> 20) + block[block.size() / 2] - 1;
}

inline int slow_identity(int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(x % 3 == 0 ? 30 : 1));
    return x;
}

/// Sleeps, then leaves a file at `marker`: whoever sees no file knows the task has not finished.
inline int sleep_then_mark(int ms, std::string marker) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    std::ofstream(marker) << ms;
    return ms;
}

struct window_sum {
    double sum = 0;
    std::uintptr_t address = 0;  ///< where the array lies on the rank
    int rank = -1;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(sum, address, rank);
    }
};

inline window_sum sum_window(std::span<const double> data, std::size_t from) {
    window_sum w;
    w.sum = std::accumulate(data.begin() + static_cast<std::ptrdiff_t>(from),
                            data.begin() + static_cast<std::ptrdiff_t>(from + 1000), 0.0);
    w.address = reinterpret_cast<std::uintptr_t>(data.data());
    w.rank = cojob::mpi::rank();
    return w;
}

inline std::vector<double> filled(int i) { return std::vector<double>(std::size_t{1} << 20, static_cast<double>(i)); }

inline int fill(cojob::memmap<double> out, std::size_t i, double value) {
    out[i] = value;
    return cojob::mpi::rank();
}

inline int inner_threads(int x) {
    cojob::parallel inner{{.n_jobs = 2, .backend = cojob::backend::mpi}};  // becomes threads on a rank
    auto r = inner(std::views::iota(0, 4) | std::views::transform([](int i) { return cojob::delayed(square)(i); }));
    return x + static_cast<int>(std::accumulate(r.begin(), r.end(), 0L));
}

}  // namespace mpi_tasks
