// tests/process/arrays_kept_test.cpp - shared segments kept across the calls of one parallel
// object (src/sharing.hpp): a changed array is never served stale, workers map a segment once
// and keep it while they use it, memmap files replaced between calls are read afresh, and
// nothing (file, descriptor, mapping, worker) is left after cancellation, a crash or the
// object's end.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "children.hpp"
#include "kit.hpp"
#include "scratch_dir.hpp"
#include "sharing.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <numeric>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using cojob::backend::processes;

std::vector<double> kept_ramp(std::size_t n, double from = 1.0) {
    std::vector<double> v(n);
    std::iota(v.begin(), v.end(), from);
    return v;
}
double total_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
using kit::iota;

/// Descriptors and mappings of this process on files under `dir` (deleted ones included).
struct held {
    int fds = 0;
    int maps = 0;
};
held held_in(const std::filesystem::path& dir) {
    held h;
    const std::string prefix = dir.string() + "/";
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(e.path(), ec).string();
        if (!ec && target.rfind(prefix, 0) == 0) ++h.fds;
    }
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);)
        if (line.find(prefix) != std::string::npos) ++h.maps;
    return h;
}

}  // namespace

// Outside the anonymous namespace: reports name functions through the dynamic symbol table.
namespace ktest {

double kept_sum(std::span<const double> s) { return std::accumulate(s.begin(), s.end(), 0.0); }
double kept_element(std::span<const double> s, std::size_t i) { return s[i]; }
/// How many elements differ from the ramp from, from + 1, ...
std::size_t kept_off_ramp(std::span<const double> s, double from) {
    std::size_t off = 0;
    for (std::size_t i = 0; i < s.size(); ++i) off += s[i] != from + static_cast<double>(i);
    return off;
}
/// This worker's pid, where the span's elements are, and how many segments and files it maps.
std::vector<std::uint64_t> kept_where(std::span<const double> s) {
    return {static_cast<std::uint64_t>(::getpid()), reinterpret_cast<std::uintptr_t>(s.data()),
            cojob::detail::worker_mapping_count()};
}
double kept_crash_on_one(std::span<const double> s, int i) {
    if (i == 1) std::abort();
    return s[0];
}
double kept_sleep(std::span<const double> s, int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return s[0];
}

}  // namespace ktest

using namespace ktest;

TEST_CASE("arrays: a segment kept across calls is brought up to date, never served stale", "[arrays][process][kept]") {
    kit::scratch_dir dir("cojob-kept");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .temp_folder = dir.path().string()}};
    auto data = kept_ramp(3 << 18);  // 6 MiB: several compared chunks
    const auto sums = [&] { return par(iota(4) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(data); })); };

    auto before = cojob::detail::sharing_totals();
    CHECK(sums() == std::vector<double>(4, total_of(data)));
    auto after = cojob::detail::sharing_totals();
    CHECK(after.segments == before.segments + 1);

    before = after;
    CHECK(sums() == std::vector<double>(4, total_of(data)));  // unchanged: compared, not copied
    after = cojob::detail::sharing_totals();
    CHECK(after.segments == before.segments);
    CHECK(after.bytes == before.bytes);
    CHECK(after.unchanged == before.unchanged + 1);

    // Changed in place: the first, a middle and the last element.
    const std::vector<std::size_t> at = {0, data.size() / 2 + 3, data.size() - 1};
    for (std::size_t i : at) data[i] = -7.5 - static_cast<double>(i);
    before = cojob::detail::sharing_totals();
    for (std::size_t i : at)
        CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_element)(data, i); })) ==
              std::vector<double>(2, data[i]));
    after = cojob::detail::sharing_totals();
    CHECK(after.bytes > before.bytes);
    CHECK(after.bytes - before.bytes < data.size() * sizeof(double));  // only the chunks that changed
    CHECK(sums() == std::vector<double>(4, total_of(data)));

    // Rewritten whole, then freed and allocated again (often at the same address).
    std::iota(data.begin(), data.end(), 1000.0);
    CHECK(sums() == std::vector<double>(4, total_of(data)));
    const std::size_t n = data.size();
    data = std::vector<double>();
    data = kept_ramp(n, -5.0);
    CHECK(sums() == std::vector<double>(4, total_of(data)));
    CHECK(held_in(dir.path()).fds <= 2);  // the new vector may live elsewhere: a second segment
}

TEST_CASE("arrays: an array large enough for two filling threads arrives intact, the first time and when changed",
          "[arrays][process][kept]") {
    kit::scratch_dir dir("cojob-kept");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .temp_folder = dir.path().string()}};
    // 20 MiB and 3 elements: past the two-thread threshold (16 MiB), and a last chunk that is not whole.
    auto data = kept_ramp((std::size_t{20} << 17) + 3, 0.5);
    const auto off = [&](double from) {
        return par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_off_ramp)(data, from); }));
    };
    auto before = cojob::detail::sharing_totals();
    CHECK(off(0.5) == std::vector<std::size_t>(2, 0));
    auto after = cojob::detail::sharing_totals();
    CHECK(after.segments == before.segments + 1);
    CHECK(after.bytes == before.bytes + data.size() * sizeof(double));

    // Chunks at both ends and around the middle, where the two threads meet.
    const std::vector<std::size_t> at = {0, data.size() / 2 - 1, data.size() / 2, data.size() / 2 + 131072, data.size() - 1};
    for (std::size_t i : at) data[i] = -1.0;
    before = after;
    CHECK(off(0.5) == std::vector<std::size_t>(2, at.size()));
    for (std::size_t i : at) data[i] = 0.5 + static_cast<double>(i);
    CHECK(off(0.5) == std::vector<std::size_t>(2, 0));
    after = cojob::detail::sharing_totals();
    CHECK(after.segments == before.segments);
    CHECK(after.bytes - before.bytes < data.size() * sizeof(double));  // only the changed chunks, twice

    std::iota(data.begin(), data.end(), 7.0);  // rewritten whole
    CHECK(off(7.0) == std::vector<std::size_t>(2, 0));
}

TEST_CASE("arrays: a folder that cannot hold a new segment gives a clear error and leaves nothing behind",
          "[arrays][process][kept]") {
    kit::scratch_dir dir("cojob-kept");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .temp_folder = dir.path().string()}};
    const auto data = kept_ramp(std::size_t{3} << 20);  // 24 MiB
    const auto sums = [&] { return par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(data); })); };
    {
        // A full folder, simulated without privileges: past the file size limit (RLIMIT_FSIZE)
        // growing a file fails with EFBIG, as it would with ENOSPC. Restored before any check.
        rlimit saved{};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = saved;
        small.rlim_cur = 4 << 20;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
        std::string message;
        try {
            (void)sums();
        } catch (const cojob::error& e) {
            message = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, old_handler);
        CHECK_THAT(message, Catch::Contains("cannot place a shared argument of 25165824 bytes") &&
                                Catch::Contains(dir.path().string()) && Catch::Contains("raise max_nbytes"));
    }
    const held h = held_in(dir.path());
    CHECK(h.fds == 0);
    CHECK(h.maps == 0);
    CHECK(sums() == std::vector<double>(2, total_of(data)));  // the same object works once there is room
}

TEST_CASE("arrays: a worker maps a shared array once for all its tasks, and keeps it for the next call on it",
          "[arrays][process][kept]") {
    kit::scratch_dir dir("cojob-kept");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .temp_folder = dir.path().string()}};
    const auto a = kept_ramp(1 << 18), b = kept_ramp(1 << 18, 3.0);
    const auto where = [&](const std::vector<double>& v) {
        std::map<std::uint64_t, std::set<std::uint64_t>> at;  // pid -> addresses
        for (const auto& w : par(iota(8) | std::views::transform([&](int) { return cojob::delayed(kept_where)(v); })))
            at[w[0]].insert(w[1]);
        return at;
    };
    const auto first = where(a);
    for (const auto& [pid, addresses] : first) CHECK(addresses.size() == 1);
    const auto second = where(a);
    for (const auto& [pid, addresses] : second)
        if (first.count(pid)) CHECK(addresses == first.at(pid));

    // One task per call, so one worker serves them all (the first idle one): a mapping no
    // request uses any more is dropped after the next request.
    std::set<std::uint64_t> pids;
    const auto count = [&](const std::vector<double>& v) {
        const auto w = par(std::views::single(cojob::delayed(kept_where)(v))).at(0);
        pids.insert(w[0]);
        return w[2];
    };
    CHECK(count(b) >= 1);  // with a's mapping, if this worker ran a task above
    CHECK(count(b) == 1);  // a's went when the request before was answered
    CHECK(count(a) == 2);  // b's is still there during this request...
    CHECK(count(a) == 1);  // ...and gone after it
    CHECK(pids.size() == 1);
}

TEST_CASE("arrays: a memmap file replaced between calls is read afresh by the workers", "[arrays][process][kept][memmap]") {
    kit::scratch_dir dir("cojob-kept");
    cojob::parallel par{{.n_jobs = 1, .backend = processes}};
    const std::string file = dir.file("data.bin");
    const auto v1 = kept_ramp(1 << 16), v2 = kept_ramp(1 << 16, 100.0);
    cojob::dump(v1, file);
    const auto m1 = cojob::load_mmap<double>(file);
    CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(m1); })) ==
          std::vector<double>(2, total_of(v1)));
    cojob::dump(v2, file);  // a new file under the same name (dump renames into place)
    const auto m2 = cojob::load_mmap<double>(file);
    CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(m2); })) ==
          std::vector<double>(2, total_of(v2)));
    // Changed in place through a writable mapping: every mapping of the file sees it.
    auto w = cojob::load_mmap<double>(file, cojob::mmap_mode::r_plus);
    w[5] = -1.0;
    CHECK(par(std::views::single(cojob::delayed(kept_element)(m2, std::size_t{5}))) == std::vector<double>{-1.0});
}

TEST_CASE("arrays: kept segments go with the parallel object, after a crash too, and at most 8 are kept",
          "[arrays][process][kept][crash]") {
    kit::scratch_dir dir("cojob-kept");
    std::vector<std::vector<double>> arrays;
    for (int i = 0; i < 10; ++i) arrays.push_back(kept_ramp(1 << 17, i));  // 1 MiB each
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .temp_folder = dir.path().string()}};
        for (int i = 0; i < 3; ++i)
            CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(arrays[i]); })) ==
                  std::vector<double>(2, total_of(arrays[i])));
        CHECK(held_in(dir.path()).fds == 3);
        CHECK_THROWS_AS(par(iota(4) | std::views::transform([&](int i) { return cojob::delayed(kept_crash_on_one)(arrays[0], i); })),
                        cojob::worker_died);
        CHECK(held_in(dir.path()).fds == 3);
        CHECK(par(iota(4) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(arrays[0]); })) ==
              std::vector<double>(4, total_of(arrays[0])));
        for (const auto& a : arrays)
            CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(a); })) ==
                  std::vector<double>(2, total_of(a)));
        CHECK(held_in(dir.path()).fds == 8);
        CHECK(dir.entries().empty());
    }
    const held h = held_in(dir.path());
    CHECK(h.fds == 0);
    CHECK(h.maps == 0);
    CHECK(dir.entries().empty());
    CHECK(children::zombies() == 0);
}

TEST_CASE("arrays: cancelling async_run leaves no file, descriptor, mapping or worker behind", "[arrays][process][kept][cancel]") {
    kit::scratch_dir dir("cojob-kept");
    const auto data = kept_ramp(1 << 18);
    {
        // What the first async call on the system executor opens for good (its reactor: an
        // epoll, an eventfd and a timerfd) is not a leak.
        cojob::parallel warm{{.n_jobs = 2, .backend = processes}};
        const std::vector<double> small(4, 1.0);
        auto fut = warm.async_run(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(small); }),
                                  asio::use_future);
        REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    }
    const int descriptors = children::open_descriptors();
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .temp_folder = dir.path().string()}};
        asio::io_context io;
        asio::cancellation_signal cancel;
        auto fut = par.async_run(iota(8) | std::views::transform([&](int) { return cojob::delayed(kept_sleep)(data, 20000); }),
                                 asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
        asio::steady_timer timer(io, 300ms);
        timer.async_wait([&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
        std::thread runner([&] { io.run_for(10s); });
        REQUIRE(fut.wait_for(10s) == std::future_status::ready);
        runner.join();
        try {
            fut.get();
            FAIL("not cancelled");
        } catch (const boost::system::system_error& e) {
            CHECK(e.code() == asio::error::operation_aborted);
        }
        CHECK(dir.entries().empty());
        CHECK(held_in(dir.path()).fds <= 1);  // kept for the next call
        CHECK(children::zombies() == 0);
        CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(kept_sum)(data); })) ==
              std::vector<double>(2, total_of(data)));
    }
    const held h = held_in(dir.path());
    CHECK(h.fds == 0);
    CHECK(h.maps == 0);
    CHECK(dir.entries().empty());
    CHECK(children::zombies() == 0);
    CHECK(children::open_descriptors() == descriptors);
}
