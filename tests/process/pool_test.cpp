// tests/process/pool_test.cpp - backend=processes at scale and at its edges: pools created and
// destroyed a thousand times without leaking a descriptor or a process, a million tasks, 1, 2
// and 4 workers, large results handed over through the workers' result arenas, and requests of
// every size through the request slot and the pipe.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "kit.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pool_test {

double root(int i) { return std::sqrt(static_cast<double>(i)); }
int pid_after_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return static_cast<int>(::getpid());
}
/// n doubles, each `i + k / n`: every element is checked on arrival.
std::vector<double> fraction_block(int i, std::int64_t n) {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < n; ++k) v[static_cast<std::size_t>(k)] = i + static_cast<double>(k) / static_cast<double>(n);
    return v;
}
/// The checksum of `text`'s bytes, and its length: a request's argument arrived whole.
std::uint64_t digest(int i, const std::string& text) {
    std::uint64_t h = static_cast<std::uint64_t>(i) * 1'000'003u + text.size();
    for (const unsigned char c : text) h = h * 31 + c;
    return h;
}
std::vector<double> block_or_crash(int i, std::int64_t n) {
    if (i == 3) ::raise(SIGSEGV);
    return fraction_block(i, n);
}

}  // namespace pool_test

using namespace pool_test;

namespace {

using cojob::backend::processes;

int open_descriptors() { return children::open_descriptors(); }
int child_processes() { return children::all(); }

bool block_is_right(const std::vector<double>& v, int i, std::int64_t n) {
    if (static_cast<std::int64_t>(v.size()) != n) return false;
    for (std::int64_t k = 0; k < n; k += 4099)
        if (v[static_cast<std::size_t>(k)] != i + static_cast<double>(k) / static_cast<double>(n)) return false;
    return n == 0 || v.back() == i + static_cast<double>(n - 1) / static_cast<double>(n);
}

auto blocks(int count, std::int64_t n) {
    return std::views::iota(0, count) | std::views::transform([n](int i) { return cojob::delayed(fraction_block)(i, n); });
}

}  // namespace

TEST_CASE("processes: a thousand pools created and destroyed leak no descriptor and no process", "[process][pool]") {
    {  // the first pool loads what stays loaded (the dynamic symbol table, Asio's reactor)
        cojob::parallel warm{{.n_jobs = 2, .backend = processes}};
        (void)warm(std::views::single(cojob::delayed(root)(4)));
    }
    const int fds = open_descriptors();
    REQUIRE(fds > 0);
    REQUIRE(child_processes() == 0);
    // A sanitized worker takes ~20x longer to start; the sanitizers watch leaks too.
    constexpr int cycles = kit::sanitized ? 100 : 1000;
    for (int cycle = 0; cycle < cycles; ++cycle) {
        cojob::parallel par{{.n_jobs = 2, .backend = processes}};
        const auto r = par(std::views::iota(0, 2) | std::views::transform([](int i) { return cojob::delayed(root)(i * i); }));
        if (r != std::vector<double>{0, 1}) FAIL("wrong results in cycle " << cycle);
    }
    CHECK(open_descriptors() == fds);
    CHECK(child_processes() == 0);
}

TEST_CASE("processes: a million tiny tasks come back complete and in order", "[process][pool][long]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    constexpr int n = 1'000'000;
    const auto r = par(std::views::iota(0, n) | std::views::transform([](int i) { return cojob::delayed(root)(i); }));
    REQUIRE(r.size() == static_cast<std::size_t>(n));
    int wrong = 0;
    for (int i = 0; i < n; ++i) wrong += r[static_cast<std::size_t>(i)] != std::sqrt(static_cast<double>(i));
    CHECK(wrong == 0);
}

TEST_CASE("processes: 1, 2 and 4 workers each run their share of the tasks", "[process][pool]") {
    for (int n_jobs : {1, 2, 4}) {
        INFO("n_jobs=" << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs, .backend = processes, .batch_size = 1}};
        // Tasks long enough that every worker gets some: each takes 30 ms.
        const auto pids = par(std::views::iota(0, 4 * n_jobs) |
                              std::views::transform([](int) { return cojob::delayed(pid_after_ms)(30); }));
        const std::set<int> distinct(pids.begin(), pids.end());
        if (n_jobs == 1) {
            CHECK(par.backend() == cojob::backend::sequential);  // joblib: n_jobs=1 runs in the caller
            CHECK(distinct == std::set<int>{static_cast<int>(::getpid())});
        } else {
            CHECK(par.backend() == processes);
            CHECK(distinct.size() == static_cast<std::size_t>(n_jobs));
            CHECK_FALSE(distinct.count(static_cast<int>(::getpid())));
        }
        const auto r = par(std::views::iota(0, 1000) | std::views::transform([](int i) { return cojob::delayed(root)(i * i); }));
        for (int i = 0; i < 1000; i += 97) CHECK(r[static_cast<std::size_t>(i)] == i);
    }
    CHECK(child_processes() == 0);
}

TEST_CASE("processes: results of every size come back intact, through the pipe or the arena", "[process][pool][arena]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    // Around the arena threshold (256 KiB of payload), and well past it.
    for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{32'760}, std::int64_t{32'768}, std::int64_t{40'000},
                           std::int64_t{2'000'000}}) {
        INFO("doubles per result: " << n);
        const auto r = par(blocks(6, n));
        REQUIRE(r.size() == 6);
        for (int i = 0; i < 6; ++i) CHECK(block_is_right(r[static_cast<std::size_t>(i)], i, n));
    }
}

TEST_CASE("processes: many large results in a row, several per batch", "[process][pool][arena]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 3}};
    constexpr std::int64_t n = 2 << 20;  // 16 MiB each
    for (int round = 0; round < 3; ++round) {
        const auto r = par(blocks(12, n));
        REQUIRE(r.size() == 12);
        for (int i = 0; i < 12; ++i) CHECK(block_is_right(r[static_cast<std::size_t>(i)], i, n));
    }
}

TEST_CASE("processes: an arena grown past its keep size shrinks back, and the pool still serves", "[process][pool][arena]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    constexpr std::int64_t huge = 12 << 20;  // 96 MiB results
    const auto big = par(blocks(2, huge));
    CHECK(block_is_right(big.at(0), 0, huge));
    CHECK(block_is_right(big.at(1), 1, huge));
    const auto small = par(blocks(4, 1000));
    for (int i = 0; i < 4; ++i) CHECK(block_is_right(small[static_cast<std::size_t>(i)], i, 1000));
    const auto again = par(blocks(2, 3 << 20));
    for (int i = 0; i < 2; ++i) CHECK(block_is_right(again[static_cast<std::size_t>(i)], i, 3 << 20));
}

TEST_CASE("processes: a worker that crashes between large results is replaced and the arena is fresh",
          "[process][pool][arena][crash]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    constexpr std::int64_t n = 1 << 20;
    CHECK_THROWS_AS(par(std::views::iota(0, 6) |
                        std::views::transform([](int i) { return cojob::delayed(block_or_crash)(i, std::int64_t{1} << 20); })),
                    cojob::worker_died);
    const auto r = par(blocks(6, n));
    for (int i = 0; i < 6; ++i) CHECK(block_is_right(r[static_cast<std::size_t>(i)], i, n));
    CHECK(child_processes() == 2);
}

TEST_CASE("processes: small and large requests run in order through the request slot and the pipe", "[process]") {
    // One task per request: small ones fit the status page's slot, the 40 KiB and 200 KiB ones
    // go through the pipe, and with two requests held per worker the two ways interleave.
    const auto text = [](int i) {
        const std::size_t sizes[] = {8, 40 * 1024, 100, 200 * 1024, 3000};
        return std::string(sizes[static_cast<std::size_t>(i) % 5], static_cast<char>('a' + i % 26));
    };
    std::vector<std::uint64_t> expected;
    for (int i = 0; i < 200; ++i) expected.push_back(digest(i, text(i)));
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round);
        CHECK(par(kit::iota(200) | std::views::transform([&](int i) { return cojob::delayed(digest)(i, text(i)); })) ==
              expected);
    }
}
