// tests/process/arrays_process_test.cpp - large arrays on backend=processes: spans
// inline below max_nbytes and shared above it, once per call; vectors shared; memmaps by
// reference (a writable output filled by workers); nothing left in temp_folder after success,
// exception, crash or cancellation; the options temp_folder, max_nbytes and mmap_mode.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "engine.hpp"
#include "kit.hpp"
#include "scratch_dir.hpp"
#include "sharing.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using cojob::backend::processes;

std::vector<double> ramp(std::size_t n) {
    std::vector<double> v(n);
    std::iota(v.begin(), v.end(), 1.0);
    return v;
}
double sum_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

/// Descriptors of this process open on files under `dir` (deleted ones included).
int fds_into(const std::filesystem::path& dir) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(e.path(), ec).string();
        if (!ec && target.rfind(dir.string() + "/", 0) == 0) ++n;
    }
    return n;
}

using kit::iota;

}  // namespace

// Outside the anonymous namespace: reports name functions through the dynamic symbol table.
namespace atest {

double span_sum(std::span<const double> s) { return std::accumulate(s.begin(), s.end(), 0.0); }
double two_spans(std::span<const double> a, std::span<const double> b) { return span_sum(a) + span_sum(b); }
double vector_sum(const std::vector<double>& v) { return sum_of(v); }
std::uintptr_t address_of(std::span<const double> s) { return reinterpret_cast<std::uintptr_t>(s.data()); }
int aligned_after_char(char, std::span<const double> s, char) {
    return reinterpret_cast<std::uintptr_t>(s.data()) % alignof(double) == 0 && s.size() == 5 && s[4] == 5.0 ? 1 : 0;
}

/// The file the span's memory is mapped from in this process ("" for anonymous memory).
std::string mapped_from(std::span<const double> s) {
    const auto at = reinterpret_cast<std::uintptr_t>(s.data());
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream in(line);
        std::string range, perms, offset, dev, inode, path;
        in >> range >> perms >> offset >> dev >> inode;
        std::getline(in >> std::ws, path);
        const auto dash = range.find('-');
        const auto lo = std::stoull(range.substr(0, dash), nullptr, 16), hi = std::stoull(range.substr(dash + 1), nullptr, 16);
        if (at >= lo && at < hi) return path;
    }
    return "?";
}

int fill(cojob::memmap<double> out, std::size_t i, double value) {
    out[i] = value;
    return 0;
}
double fail_on_one(std::span<const double> s, int i) {
    if (i == 1) throw std::runtime_error("boom");
    return s[0];
}
double crash_on_one(std::span<const double> s, int i) {
    if (i == 1) std::abort();
    return s[0];
}
double sleep_then_first(std::span<const double> s, int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return s[0];
}

}  // namespace atest

using namespace atest;

TEST_CASE("arrays: delayed keeps an lvalue vector given to a span parameter as a view, never a copy", "[arrays][delayed]") {
    const auto data = ramp(1000);
    auto t = cojob::delayed(span_sum)(data);
    STATIC_REQUIRE(std::is_same_v<decltype(t), cojob::task<double (*)(std::span<const double>), std::span<const double>>>);
    CHECK(std::get<0>(t.arguments()).data() == data.data());
    // Rvalues and other parameter types keep the decayed copy.
    STATIC_REQUIRE(std::is_same_v<decltype(cojob::delayed(span_sum)(ramp(3))),
                                  cojob::task<double (*)(std::span<const double>), std::vector<double>>>);
    STATIC_REQUIRE(std::is_same_v<decltype(cojob::delayed(vector_sum)(data)),
                                  cojob::task<double (*)(const std::vector<double>&), std::vector<double>>>);
    // On threads the task sees the caller's memory itself.
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
    const auto seen = par(iota(4) | std::views::transform([&](int) { return cojob::delayed(address_of)(data); }));
    for (auto a : seen) CHECK(a == reinterpret_cast<std::uintptr_t>(data.data()));
}

TEST_CASE("arrays: a span just under max_nbytes travels inline, one at max_nbytes is mapped from temp_folder", "[arrays][process]") {
    kit::scratch_dir dir("cojob-arrays");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .temp_folder = dir.path().string(), .max_nbytes = 8000}};
    const auto small = ramp(999), large = ramp(1000);
    const auto before = cojob::detail::sharing_totals();
    const auto inline_where = par(iota(2) | std::views::transform([&](int) { return cojob::delayed(mapped_from)(small); }));
    CHECK(cojob::detail::sharing_totals().arrays == before.arrays);
    for (const auto& w : inline_where) CHECK(w.rfind(dir.path().string(), 0) != 0);
    const auto shared_where = par(iota(2) | std::views::transform([&](int) { return cojob::delayed(mapped_from)(large); }));
    CHECK(cojob::detail::sharing_totals().arrays == before.arrays + 1);
    for (const auto& w : shared_where) CHECK_THAT(w, Catch::StartsWith(dir.path().string()) && Catch::Contains("(deleted)"));
    CHECK(par(iota(3) | std::views::transform([&](int) { return cojob::delayed(span_sum)(large); })) ==
          std::vector<double>(3, sum_of(large)));
    CHECK(par(iota(3) | std::views::transform([&](int) { return cojob::delayed(span_sum)(small); })) ==
          std::vector<double>(3, sum_of(small)));
}

TEST_CASE("arrays: inline spans arrive aligned whatever precedes them in the request", "[arrays][process]") {
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    const auto data = ramp(5);
    const auto ok = par(iota(6) | std::views::transform([&](int i) {
                            return cojob::delayed(aligned_after_char)(static_cast<char>(i), data, 'x');
                        }));
    CHECK(ok == std::vector<int>(6, 1));
}

TEST_CASE("arrays: the same array passed twice in every task of a call is placed once", "[arrays][process]") {
    kit::scratch_dir dir("cojob-arrays");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .temp_folder = dir.path().string()}};
    const auto data = ramp(1 << 18);  // 2 MiB
    const auto before = cojob::detail::sharing_totals();
    const auto sums = par(iota(10) | std::views::transform([&](int) { return cojob::delayed(two_spans)(data, data); }));
    CHECK(sums == std::vector<double>(10, 2 * sum_of(data)));
    const auto after = cojob::detail::sharing_totals();
    CHECK(after.arrays == before.arrays + 1);
    CHECK(after.bytes == before.bytes + data.size() * sizeof(double));
}

TEST_CASE("arrays: vectors above max_nbytes are shared and arrive intact; max_nbytes none copies them", "[arrays][process]") {
    kit::scratch_dir dir("cojob-arrays");
    const auto data = ramp(300000);
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .temp_folder = dir.path().string()}};
        const auto before = cojob::detail::sharing_totals();
        CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(vector_sum)(data); })) ==
              std::vector<double>(2, sum_of(data)));
        CHECK(cojob::detail::sharing_totals().arrays == before.arrays + 2);  // one copy per task: two arrays
    }
    cojob::parallel off{{.n_jobs = 2, .backend = processes, .temp_folder = dir.path().string(), .max_nbytes = "none"}};
    const auto before = cojob::detail::sharing_totals();
    CHECK(off(iota(2) | std::views::transform([&](int) { return cojob::delayed(span_sum)(data); })) ==
          std::vector<double>(2, sum_of(data)));
    CHECK(cojob::detail::sharing_totals().arrays == before.arrays);
}

TEST_CASE("arrays: workers fill a w+ memmap output the parent sees; a c memmap keeps their writes", "[arrays][process][memmap]") {
    kit::scratch_dir dir("cojob-arrays");
    cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1}};
    cojob::memmap<double> out(dir.file("out"), cojob::mmap_mode::w_plus, {20});
    par(iota(20) | std::views::transform([&](int i) {
            return cojob::delayed(fill)(out, static_cast<std::size_t>(i), 1.5 * i);
        }));
    for (std::size_t i = 0; i < 20; ++i) CHECK(out[i] == 1.5 * static_cast<double>(i));
    cojob::memmap<double> priv(dir.file("out"), cojob::mmap_mode::c);
    par(iota(4) | std::views::transform([&](int i) { return cojob::delayed(fill)(priv, static_cast<std::size_t>(i), -1.0); }));
    CHECK(out[0] == 0.0);
    CHECK(priv[1] == 1.5);
}

TEST_CASE("arrays: a memmap given to a span parameter is read by the workers from its file", "[arrays][process][memmap]") {
    kit::scratch_dir dir("cojob-arrays");
    const auto data = ramp(200000);
    cojob::dump(data, dir.file("data"));
    const auto mapped = cojob::load_mmap<double>(dir.file("data"));
    cojob::parallel par{{.n_jobs = 2, .backend = processes}};
    const auto before = cojob::detail::sharing_totals();
    CHECK(par(iota(4) | std::views::transform([&](int) { return cojob::delayed(span_sum)(mapped); })) ==
          std::vector<double>(4, sum_of(data)));
    CHECK(cojob::detail::sharing_totals().arrays == before.arrays);  // by reference: nothing placed
}

TEST_CASE("arrays: nothing is left in temp_folder and no segment stays open after success, exception, crash and Ctrl-C",
          "[arrays][process][cancel][crash][error]") {
    kit::scratch_dir dir("cojob-arrays");
    const auto data = ramp(1 << 18);
    {
        cojob::parallel par{{.n_jobs = 2, .backend = processes, .batch_size = 1, .temp_folder = dir.path().string()}};
        par(iota(4) | std::views::transform([&](int) { return cojob::delayed(span_sum)(data); }));
        CHECK(dir.entries().empty());
        CHECK_THROWS_WITH(par(iota(4) | std::views::transform([&](int i) { return cojob::delayed(fail_on_one)(data, i); })),
                          Catch::Contains("boom"));
        CHECK(dir.entries().empty());
        CHECK_THROWS_AS(par(iota(4) | std::views::transform([&](int i) { return cojob::delayed(crash_on_one)(data, i); })),
                        cojob::worker_died);
        CHECK(dir.entries().empty());
        std::thread interrupter([] {
            std::this_thread::sleep_for(300ms);
            ::kill(::getpid(), SIGINT);
        });
        CHECK_THROWS_AS(par(iota(6) | std::views::transform([&](int) { return cojob::delayed(sleep_then_first)(data, 20000); })),
                        cojob::cancelled);
        interrupter.join();
        CHECK(dir.entries().empty());
        CHECK(fds_into(dir.path()) <= 1);  // the pooled segment, reused by the next call
        CHECK(par(iota(2) | std::views::transform([&](int) { return cojob::delayed(span_sum)(data); })) ==
              std::vector<double>(2, sum_of(data)));
    }
    CHECK(dir.entries().empty());
    CHECK(fds_into(dir.path()) == 0);
}

TEST_CASE("arrays: temp_folder resolves from the option, COJOB_TEMP_FOLDER, /dev/shm, then the temp directory", "[arrays][options]") {
    kit::scratch_dir dir("cojob-arrays");
    CHECK(cojob::detail::resolve_temp_folder(dir.path().string()) == dir.path().string());
    ::setenv("COJOB_TEMP_FOLDER", dir.path().c_str(), 1);
    CHECK(cojob::detail::resolve_temp_folder(std::nullopt) == dir.path().string());
    ::setenv("COJOB_TEMP_FOLDER", "/nonexistent/cojob", 1);
    CHECK_THROWS_WITH(cojob::detail::resolve_temp_folder(std::nullopt),
                      Catch::Contains("COJOB_TEMP_FOLDER") && Catch::Contains("/nonexistent/cojob"));
    ::unsetenv("COJOB_TEMP_FOLDER");
    const std::string fallback = cojob::detail::resolve_temp_folder(std::nullopt);
    CHECK((fallback == "/dev/shm" || fallback == std::filesystem::temp_directory_path().string()));
    CHECK_THROWS_WITH((cojob::parallel{{.n_jobs = 2, .backend = processes, .temp_folder = "/nonexistent/cojob"}}),
                      Catch::Contains("temp_folder=\"/nonexistent/cojob\""));
    CHECK_NOTHROW((cojob::parallel{{.n_jobs = 2, .backend = cojob::backend::threads, .temp_folder = "/nonexistent"}}));
}

TEST_CASE("arrays: max_nbytes takes counts, K/M/G strings and none; bad values name the option", "[arrays][options]") {
    CHECK(cojob::nbytes_spec("1M").evaluate() == std::size_t{1} << 20);
    CHECK(cojob::nbytes_spec("500K").evaluate() == 500u << 10);
    CHECK(cojob::nbytes_spec("2g").evaluate() == std::size_t{2} << 30);
    CHECK(cojob::nbytes_spec("1234").evaluate() == 1234u);
    CHECK(cojob::nbytes_spec(0).evaluate() == 0u);
    CHECK_FALSE(cojob::nbytes_spec("none").evaluate().has_value());
    for (const char* bad : {"1.5M", "1MB", "", "M", "-1", "12T"})
        CHECK_THROWS_WITH(cojob::nbytes_spec(bad).evaluate(), Catch::Contains("max_nbytes=\"" + std::string(bad) + "\""));
    CHECK_THROWS_WITH(cojob::nbytes_spec(-5).evaluate(), Catch::Contains("max_nbytes=-5"));
    CHECK_THROWS_WITH((cojob::parallel{{.n_jobs = 2, .max_nbytes = "1X"}}), Catch::Contains("max_nbytes"));
    CHECK_THROWS_WITH((cojob::parallel{{.n_jobs = 2, .mmap_mode = cojob::mmap_mode::w_plus}}),
                      Catch::Contains("mmap_mode=w+") && Catch::Contains("expected r, r+ or c"));
    cojob::parallel_config scope({.max_nbytes = "2M", .mmap_mode = cojob::mmap_mode::c});
    CHECK(cojob::parallel_config::current().max_nbytes.has_value());
    CHECK(cojob::parallel_config::current().mmap_mode == cojob::mmap_mode::c);
}
