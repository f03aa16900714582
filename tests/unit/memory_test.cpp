// memory: keys, hits and misses, versions, shelved results, clear, reduce_size,
// validation, metadata, verbose lines, and use from many threads and inside parallel tasks.
// (Damaged entries, unwritable directories, layout and compression: memory_store_test.cpp;
// ignored and unkeyable arguments: memory_ignore_test.cpp.)
#include "kit.hpp"
#include "memory_kit.hpp"

#include <cojob/memory.hpp>
#include <cojob/parallel.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <ranges>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::atomic<int> square_calls{0};
int square(int x) {
    ++square_calls;
    return x * x;
}

std::atomic<int> widen_calls{0};
long widen(long x) {
    ++widen_calls;
    return x + 1;
}

std::atomic<int> column_calls{0};
std::vector<double> column_of(const std::vector<double>& data, int column) {
    ++column_calls;
    std::vector<double> out;
    for (std::size_t i = static_cast<std::size_t>(column); i < data.size(); i += 4) out.push_back(data[i]);
    return out;
}

int version_a(int x) { return x + 1; }
int version_b(int x) { return x * 3 + 7; }

std::atomic<int> thrower_calls{0};
int sometimes_throws(int x) {
    ++thrower_calls;
    if (x < 0) throw std::invalid_argument("negative");
    return x;
}

struct point {
    double x = 0, y = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(x, y);
    }
    friend bool operator==(const point&, const point&) = default;
};

point mirror(point p) { return {p.y, p.x}; }

std::vector<double> sample_data() {
    std::vector<double> d(4000);
    std::iota(d.begin(), d.end(), 0.5);
    return d;
}

}  // namespace

TEST_CASE("a cached function computes once per distinct arguments and loads the result afterwards", "[memory]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto cached = mem.cache(square);
    square_calls = 0;
    CHECK(cached(3) == 9);
    CHECK(cached(3) == 9);
    CHECK(cached(4) == 16);
    CHECK(cached(3) == 9);
    CHECK(square_calls == 2);
    // Another object for the same function and location sees the same entries.
    auto again = cojob::memory{dir.path(), {.verbose = 0}}.cache(square);
    CHECK(again(4) == 16);
    CHECK(square_calls == 2);
}

TEST_CASE("a memory without location caches nothing and is transparent", "[memory]") {
    cojob::memory mem;
    CHECK_FALSE(mem.location());
    auto cached = mem.cache(square);
    square_calls = 0;
    CHECK(cached(5) == 25);
    CHECK(cached(5) == 25);
    CHECK(square_calls == 2);
    CHECK_FALSE(cached.check_call_in_cache(5));
    CHECK(cached.call_and_shelve(6).get() == 36);
    mem.clear();
    CHECK(mem.reduce_size(0).removed_items == 0);
}

TEST_CASE("large array arguments and results round-trip and key on their contents", "[memory]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto cached = mem.cache(column_of);
    auto data = sample_data();
    column_calls = 0;
    const auto first = cached(data, 1);
    CHECK(first == column_of(data, 1));
    column_calls = 0;
    CHECK(cached(data, 1) == first);
    CHECK(column_calls == 0);
    data[2001] += 1.0;  // one element changed: another key
    CHECK(cached(data, 1) == column_of(data, 1));
    CHECK(column_calls == 2);
}

TEST_CASE("arguments converted to the declared parameter type share a key", "[memory]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(widen);
    widen_calls = 0;
    CHECK(cached(41) == 42);   // int, converted to long
    CHECK(cached(41L) == 42);  // long
    CHECK(cached(short(41)) == 42);
    CHECK(widen_calls == 1);
}

TEST_CASE("a generic lambda keys on the types of its arguments", "[memory]") {
    memkit::temp_dir dir;
    std::atomic<int> calls{0};
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache([&calls](auto x) {
        ++calls;
        return static_cast<long>(x) * 2;
    });
    CHECK(cached(21) == 42);
    CHECK(cached(21L) == 42);  // another type: another key
    CHECK(cached(21) == 42);
    CHECK(calls == 2);
}

TEST_CASE("results of user types with a serialize function round-trip", "[memory]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(mirror);
    CHECK(cached(point{1, 2}) == point{2, 1});
    CHECK(cached(point{1, 2}) == point{2, 1});
    CHECK(cached.check_call_in_cache(point{1, 2}));
}

TEST_CASE("a task that throws stores nothing and its exception reaches the caller unchanged", "[memory][error]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(sometimes_throws);
    thrower_calls = 0;
    CHECK_THROWS_AS(cached(-1), std::invalid_argument);
    CHECK_THROWS_AS(cached(-1), std::invalid_argument);
    CHECK(thrower_calls == 2);
    CHECK_FALSE(cached.check_call_in_cache(-1));
    // Nothing of the failed calls is left on disk: no entry directory (only the lock file and
    // func_code.json in the function's directory).
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir.path() / "cojob"))
        CHECK_FALSE((f.is_directory() && f.path().parent_path().parent_path() == dir.path() / "cojob"));
    CHECK(cached(2) == 2);
}

TEST_CASE("an explicit version tag separates entries, and changing it recomputes", "[memory][version]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    std::atomic<int> calls{0};
    auto f = [&calls](int x) {
        ++calls;
        return x;
    };
    CHECK(mem.cache(f, {.name = "tagged", .version = "1"})(5) == 5);
    CHECK(mem.cache(f, {.name = "tagged", .version = "1"})(5) == 5);
    CHECK(calls == 1);
    CHECK(mem.cache(f, {.name = "tagged", .version = "2"})(5) == 5);
    CHECK(calls == 2);
}

TEST_CASE("changed machine code under the same name invalidates the function's entries", "[memory][version]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto a = mem.cache(version_a, {.name = "edited"});
    CHECK(a(1) == 2);
    CHECK(a.check_call_in_cache(1));
    // The same name with other code: what a rebuild after an edit looks like.
    auto b = mem.cache(version_b, {.name = "edited"});
    CHECK_FALSE(b.check_call_in_cache(1));
    CHECK(b(1) == 10);
    // The stored entries of the old version were removed when the new one was first seen.
    CHECK_FALSE(a.check_call_in_cache(1));
    // An unchanged function keeps its entries across `cache` calls.
    auto b2 = mem.cache(version_b, {.name = "edited"});
    CHECK(b2.check_call_in_cache(1));
}

TEST_CASE("call_and_shelve returns a reference whose get reloads and whose clear removes", "[memory]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(square);
    square_calls = 0;
    const auto ref = cached.call_and_shelve(12);
    CHECK(square_calls == 1);
    CHECK(ref.get() == 144);
    CHECK(ref.get() == 144);
    CHECK(square_calls == 1);
    CHECK(cached.call_and_shelve(12).get() == 144);
    CHECK(square_calls == 1);
    CHECK_FALSE(ref.path().empty());
    ref.clear();
    CHECK_FALSE(cached.check_call_in_cache(12));
    CHECK_THROWS_AS(ref.get(), cojob::error);
}

TEST_CASE("check_call_in_cache tells whether a result is stored without computing", "[memory]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(square);
    square_calls = 0;
    CHECK_FALSE(cached.check_call_in_cache(2));
    (void)cached(2);
    CHECK(cached.check_call_in_cache(2));
    CHECK_FALSE(cached.check_call_in_cache(3));
    CHECK(square_calls == 1);
}

TEST_CASE("call recomputes and stores whatever is stored", "[memory]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(square);
    square_calls = 0;
    CHECK(cached(9) == 81);
    CHECK(cached.call(9) == 81);
    CHECK(square_calls == 2);
    CHECK(cached(9) == 81);
    CHECK(square_calls == 2);
}

TEST_CASE("cached.clear removes one function's entries, mem.clear every function's", "[memory]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto sq = mem.cache(square);
    auto wd = mem.cache(widen);
    (void)sq(1);
    (void)wd(1);
    sq.clear();
    CHECK_FALSE(sq.check_call_in_cache(1));
    CHECK(wd.check_call_in_cache(1));
    (void)sq(1);
    mem.clear();
    CHECK_FALSE(sq.check_call_in_cache(1));
    CHECK_FALSE(wd.check_call_in_cache(1));
    // Still usable after clearing: directories come back on the next store.
    square_calls = 0;
    CHECK(sq(1) == 1);
    CHECK(sq(1) == 1);
    CHECK(square_calls == 1);
}

TEST_CASE("reduce_size evicts the least recently used entries first", "[memory][reduce]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto cached = mem.cache(square);
    for (int i = 0; i < 4; ++i) {
        (void)cached(i);
        std::this_thread::sleep_for(5ms);  // distinct access times
    }
    (void)cached(0);  // 0 is now the most recently used
    std::this_thread::sleep_for(5ms);
    const auto r = mem.reduce_size(std::nullopt, 2);
    CHECK(r.removed_items == 2);
    CHECK(r.kept_items == 2);
    CHECK(cached.check_call_in_cache(0));
    CHECK(cached.check_call_in_cache(3));
    CHECK_FALSE(cached.check_call_in_cache(1));
    CHECK_FALSE(cached.check_call_in_cache(2));

    const auto by_bytes = mem.reduce_size(r.kept_bytes / 2 + 1);
    CHECK(by_bytes.removed_items == 1);
    CHECK(cached.check_call_in_cache(0));  // the most recent one stays

    std::this_thread::sleep_for(20ms);
    const auto by_age = mem.reduce_size(std::nullopt, std::nullopt, 10ms);
    CHECK(by_age.removed_items == 1);
    CHECK(by_age.kept_items == 0);
    CHECK_THROWS_AS(mem.reduce_size(std::nullopt, std::nullopt, -1s), cojob::error);
}

TEST_CASE("a stored entry's last use is stamped from the precise clock, as a hit's is", "[memory][reduce]") {
    // The kernel would stamp the new file from its coarse clock, up to a tick behind; entries
    // stored a few milliseconds apart then tied or swapped in reduce_size's order.
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto cached = mem.cache(square);
    for (int i = 0; i < 20; ++i) {
        timespec before{};
        ::clock_gettime(CLOCK_REALTIME, &before);
        const std::string output = cached.call_and_shelve(100 + i).path() + "/output.bin";
        struct stat st{};
        REQUIRE(::stat(output.c_str(), &st) == 0);
        const auto ns = [](const timespec& t) { return std::int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec; };
        INFO("entry " << i << ": mtime " << ns(st.st_mtim) << ", call began " << ns(before));
        CHECK(ns(st.st_mtim) >= ns(before));
    }
}

TEST_CASE("a validation callback that refuses an entry makes it recompute", "[memory][validate]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    std::atomic<bool> accept{true};
    std::atomic<int> seen{0};
    auto cached = mem.cache(square, {.validate = [&](const cojob::entry_metadata& m) {
                                         ++seen;
                                         CHECK(m.duration >= 0s);
                                         CHECK(std::chrono::system_clock::now() - m.time < 60s);
                                         return accept.load();
                                     }});
    square_calls = 0;
    (void)cached(4);
    (void)cached(4);
    CHECK(square_calls == 1);
    accept = false;
    CHECK_FALSE(cached.check_call_in_cache(4));
    accept = true;
    (void)cached(4);
    CHECK(square_calls == 2);
    CHECK(seen >= 2);

    auto expiring = mem.cache(widen, {.validate = cojob::expires_after(30ms)});
    widen_calls = 0;
    (void)expiring(1);
    (void)expiring(1);
    CHECK(widen_calls == 1);
    std::this_thread::sleep_for(50ms);
    (void)expiring(1);
    CHECK(widen_calls == 2);
}

TEST_CASE("verbose output follows joblib's Calling and Loading lines", "[memory][verbose]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 2}};
    auto cached = mem.cache(square);
    kit::stream_capture out(STDOUT_FILENO);
    (void)cached(7);
    (void)cached(7);
    const auto lines = kit::lines_of(out.text());
    REQUIRE(lines.size() == 5);
    CHECK(lines[0] == std::string(80, '_'));
    CHECK_THAT(lines[1], Catch::StartsWith("[Memory] Calling ") && Catch::Contains("square") && Catch::EndsWith("..."));
    CHECK(lines[2] == "square(7)");
    CHECK(lines[3].size() == 80);
    CHECK_THAT(lines[3], Catch::StartsWith("____") && Catch::EndsWith("square - 0.0s, 0.0min"));
    CHECK_THAT(lines[4], Catch::Matches(R"(\[Memory\]\d+\.\ds, \d+\.\dmin    : Loading square\.\.\.)"));
}

TEST_CASE("verbose lines name a lambda after its enclosing function, without its call operator", "[memory][verbose]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 1}}.cache([](int x) { return x + 1; });
    kit::stream_capture out(STDOUT_FILENO);
    (void)cached(3);
    const auto lines = kit::lines_of(out.text());
    REQUIRE(lines.size() == 4);
    // A lambda's name is the compiler's: GCC's `{lambda(int)#1}`, clang's `$_0`.
    const std::string lambda = R"((\{lambda\(int\)#\d+\}|\$_\d+))";
    CHECK_THAT(lines[2], Catch::Matches(".*::" + lambda + R"(\(3\))"));
    CHECK_THAT(lines[3], Catch::Matches(".*::" + lambda + R"( - 0\.0s, 0\.0min)"));
}

TEST_CASE("verbose 0 prints nothing; verbose 1 prints computations only", "[memory][verbose]") {
    memkit::temp_dir dir;
    auto quiet = cojob::memory{dir.path(), {.verbose = 0}}.cache(square);
    auto normal = cojob::memory{dir.path(), {.verbose = 1}}.cache(widen);
    kit::stream_capture out(STDOUT_FILENO);
    (void)quiet(1);
    (void)quiet(1);
    (void)normal(1);
    (void)normal(1);
    const auto lines = kit::lines_of(out.text());
    CHECK(lines.size() == 4);
}

TEST_CASE("concurrent callers of one key in eight threads compute it once and all get it", "[memory][threads]") {
    memkit::temp_dir dir;
    std::atomic<int> calls{0};
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(
        [&calls](int x) {
            ++calls;
            std::this_thread::sleep_for(50ms);
            return std::vector<int>(1000, x);
        },
        {.name = "slow_fill"});
    std::vector<std::thread> threads;
    std::atomic<int> right{0};
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            if (cached(3) == std::vector<int>(1000, 3)) ++right;
        });
    CHECK(kit::eventually([&] { return right.load() == 8; }, 10s));
    for (auto& t : threads) t.join();
    CHECK(calls == 1);
    CHECK(cached.check_call_in_cache(3));
}

TEST_CASE("cached calls inside parallel tasks compute in parallel once and load on the second round",
          "[memory][threads][parallel]") {
    // (The process backend: tests/unit/memory_hammer.cpp, whose main is the worker guard.)
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    auto cached = mem.cache(column_of);
    const auto data = sample_data();
    auto mean_of = [&cached, &data](int col) {
        const auto c = cached(data, col);
        return std::accumulate(c.begin(), c.end(), 0.0) / double(c.size());
    };
    auto tasks = [&] {
        return std::views::iota(0, 4) | std::views::transform([&](int c) { return cojob::delayed(mean_of)(c); });
    };
    const std::pair<int, cojob::backend> runs[] = {{1, cojob::backend::sequential},
                                                  {1, cojob::backend::threads},
                                                  {2, cojob::backend::threads},
                                                  {4, cojob::backend::threads}};
    for (const auto& [jobs, backend] : runs) {
        mem.clear();
        column_calls = 0;
        cojob::parallel par{{.n_jobs = jobs, .backend = backend}};
        const auto first = par(tasks());
        CHECK(column_calls == 4);
        const auto second = par(tasks());
        CHECK(column_calls == 4);
        CHECK(first == second);
    }
}
