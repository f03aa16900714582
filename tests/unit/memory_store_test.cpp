// memory, the store: the layout on disk, metadata, aligned arrays, compression, mapped loads,
// options, and damaged entries or unwritable directories (recomputed, one warning, no crash).
#include "kit.hpp"
#include "memory_kit.hpp"

#include <cojob/memory.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

extern char** environ;

namespace {

std::atomic<int> ramp_calls{0};
std::vector<double> counted_ramp(int n) {
    ++ramp_calls;
    std::vector<double> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 1.0);
    return v;
}

std::atomic<int> label_calls{0};
std::string label(int x, const std::string& prefix) {
    ++label_calls;
    return prefix + std::to_string(x);
}

/// The output.bin of `counted_ramp(n)`'s entry, stored by calling it through `cached`.
template <class C>
fs::path stored_output(const C& cached, int n) {
    return fs::path(cached.call_and_shelve(n).path()) / "output.bin";
}

}  // namespace

TEST_CASE("entries live under location/cojob/function/key with output, metadata and a gitignore", "[memory][layout]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(label);
    CHECK(cached(5, "x=") == "x=5");
    CHECK(memkit::read_bytes(dir.path() / ".gitignore") == "*\n");
    const fs::path entry = cached.call_and_shelve(5, std::string("x=")).path();
    CHECK(entry.parent_path().parent_path() == dir.path() / "cojob");
    CHECK_THAT(entry.parent_path().filename().string(), Catch::StartsWith("label-"));
    CHECK(entry.filename().string().size() == 32);
    CHECK(fs::exists(entry / "output.bin"));
    CHECK(fs::exists(entry.parent_path() / "func_code.json"));
    CHECK_THAT(memkit::read_bytes(entry.parent_path() / "func_code.json"), Catch::Contains("machine code of") && Catch::Contains("label(int"));
    const std::string meta = memkit::read_bytes(entry / "metadata.json");
    CHECK_THAT(meta, Catch::Contains("\"duration\": ") && Catch::Contains("\"time\": ") &&
                         Catch::Contains("\"input_args\": [\"5\", \"'x='\"]") && Catch::Contains("label(int"));
    for (const auto& f : fs::directory_iterator(entry))  // no temp file left behind
        CHECK_THAT(f.path().filename().string(), !Catch::EndsWith(".tmp"));
}

TEST_CASE("arrays in a stored result start on a 64-byte boundary of the entry file", "[memory][layout]") {
    memkit::temp_dir dir;
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(counted_ramp);
    const std::string bytes = memkit::read_bytes(stored_output(cached, 100));
    // header (128) + element count (8), then padding up to 192, then the doubles.
    REQUIRE(bytes.size() == 192 + 100 * sizeof(double));
    double first = 0, last = 0;
    std::memcpy(&first, bytes.data() + 192, sizeof first);
    std::memcpy(&last, bytes.data() + 192 + 99 * sizeof(double), sizeof last);
    CHECK(first == 1.0);
    CHECK(last == 100.0);
    // A result's array of 64 KiB or more is written from the result itself: the same layout,
    // and a checksum that a later load accepts (no recomputation).
    const std::string large = memkit::read_bytes(stored_output(cached, 20000));
    REQUIRE(large.size() == 192 + 20000 * sizeof(double));
    std::memcpy(&last, large.data() + 192 + 19999 * sizeof(double), sizeof last);
    CHECK(last == 20000.0);
    ramp_calls = 0;
    CHECK(cached(20000) == counted_ramp(20000));
    CHECK(ramp_calls == 1);  // the direct call above only
}

TEST_CASE("mmap_mode loads large results from a mapped entry file", "[memory][mmap]") {
    memkit::temp_dir dir;
    for (const char* mode : {"r", "c"}) {
        auto cached = cojob::memory{dir.path(), {.verbose = 0, .mmap_mode = mode}}.cache(counted_ramp);
        ramp_calls = 0;
        const auto a = cached(100000);  // 800 KB: mapped
        const auto b = cached(100000);
        CHECK(ramp_calls <= 1);
        CHECK(a == b);
        CHECK(b[99999] == 100000.0);
        CHECK(cached(3) == std::vector<double>{1, 2, 3});  // small: read
    }
}

TEST_CASE("compressed entries load back and take less room", "[memory][compress]") {
    memkit::temp_dir plain_dir, packed_dir;
    auto plain = cojob::memory{plain_dir.path(), {.verbose = 0}}.cache(counted_ramp);
    auto packed = cojob::memory{packed_dir.path(), {.verbose = 0, .compress = 3}}.cache(counted_ramp);
    ramp_calls = 0;
    CHECK(packed(50000) == counted_ramp(50000));
    CHECK(packed(50000) == plain(50000));
    CHECK(ramp_calls == 3);
    CHECK(fs::file_size(stored_output(packed, 50000)) < fs::file_size(stored_output(plain, 50000)) / 2);
}

TEST_CASE("invalid options are rejected when the memory is built", "[memory][error]") {
    const auto where = fs::temp_directory_path() / "cojob-memtest-unused";
    CHECK_THROWS_WITH(cojob::memory(where, {.mmap_mode = "w+"}), Catch::Contains("mmap_mode"));
    CHECK_THROWS_WITH(cojob::memory(where, {.compress = 20}), Catch::Contains("compress"));
    CHECK_THROWS_AS(cojob::memory(fs::path(), {}), cojob::error);
    memkit::warnings w;
    cojob::memory mixed{where, {.mmap_mode = "r", .compress = 1, .on_warning = w.sink()}};
    CHECK(w.list().size() == 1);
    CHECK_FALSE(fs::exists(where));  // nothing is created before the first store
}

namespace {

/// Damages the stored entry of counted_ramp(n) with `damage`, then checks that the next call
/// recomputes the right value with exactly one warning naming the problem, and that the entry
/// is valid again afterwards. `n` = 1000 (8 KB) is read; 100000 (800 KB) with `mmap_mode` is
/// mapped.
template <class Damage>
void check_recovers(Damage damage, const char* expected_warning, int n = 1000, std::string mmap_mode = {}) {
    memkit::temp_dir dir;
    memkit::warnings w;
    auto cached = cojob::memory{dir.path(), {.verbose = 0, .mmap_mode = mmap_mode, .on_warning = w.sink()}}.cache(counted_ramp);
    const fs::path output = stored_output(cached, n);
    std::string bytes = memkit::read_bytes(output);
    damage(bytes);
    memkit::write_bytes(output, bytes);
    ramp_calls = 0;
    CHECK(cached(n) == counted_ramp(n));
    CHECK(ramp_calls == 2);  // recomputed once (plus the reference call)
    CHECK(cached(n) == counted_ramp(n));
    CHECK(ramp_calls == 3);  // and stored again
    const auto warnings = w.list();
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains(expected_warning) && Catch::Contains("recomputing"));
}

}  // namespace

TEST_CASE("a truncated entry is recomputed with one warning", "[memory][corrupt]") {
    check_recovers([](std::string& b) { b.resize(b.size() / 2); }, "truncated");
    check_recovers([](std::string& b) { b.resize(40); }, "truncated");
    check_recovers([](std::string& b) { b.clear(); }, "truncated");
}

TEST_CASE("an entry with a flipped payload bit is recomputed with one warning", "[memory][corrupt]") {
    check_recovers([](std::string& b) { b[b.size() - 3] ^= 0x10; }, "checksum");
}

TEST_CASE("an entry with a damaged header is recomputed with one warning", "[memory][corrupt]") {
    check_recovers([](std::string& b) { b[60] ^= 0x01; }, "header");
    check_recovers([](std::string& b) { b.replace(0, 8, "NOTCOJOB"); }, "not a cojob cache entry");
}

TEST_CASE("a damaged entry read through mmap_mode is recomputed with one warning", "[memory][corrupt][mmap]") {
    check_recovers([](std::string& b) { b[b.size() / 2] ^= 0x40; }, "checksum", 100000, "r");
    check_recovers([](std::string& b) { b.resize(b.size() - 8); }, "truncated", 100000, "c");
}

TEST_CASE("an entry of a foreign format version is recomputed with one warning", "[memory][corrupt]") {
    check_recovers([](std::string& b) { b[8] = 99; }, "foreign format version");
}

TEST_CASE("a payload that does not deserialize is recomputed with one warning", "[memory][corrupt]") {
    // Checksums made consistent by storing garbage through another function with the same key
    // layout is not possible from outside; instead: a valid entry of a *different* result type.
    memkit::temp_dir dir;
    memkit::warnings w;
    cojob::memory mem{dir.path(), {.verbose = 0, .on_warning = w.sink()}};
    auto as_int = mem.cache([](int x) { return x; }, {.name = "retyped", .version = "1"});
    auto as_text = mem.cache([](int x) { return std::string(1000, char('a' + x)); }, {.name = "retyped", .version = "1"});
    CHECK(as_int(1) == 1);
    CHECK(as_text(1) == std::string(1000, 'b'));  // the stored 4 bytes are not a string
    REQUIRE(w.list().size() == 1);
    CHECK_THAT(w.list()[0], Catch::Contains("deserialized"));
    CHECK(as_text(1) == std::string(1000, 'b'));
}

TEST_CASE("an unwritable cache directory computes without caching and warns once", "[memory][unwritable]") {
    memkit::temp_dir dir;
    const fs::path blocked = dir.path() / "not-a-directory";
    memkit::write_bytes(blocked, "a file where the cache directory should be");
    memkit::warnings w;
    auto cached = cojob::memory{blocked, {.verbose = 0, .on_warning = w.sink()}}.cache(label);
    label_calls = 0;
    for (int i = 0; i < 3; ++i) CHECK(cached(i, "n") == "n" + std::to_string(i));
    CHECK(cached(0, "n") == "n0");
    CHECK(label_calls == 4);
    CHECK(w.list().size() == 1);
    CHECK_THAT(w.list()[0], Catch::Contains("without caching"));
    CHECK(cached.call_and_shelve(7, "s").get() == "s7");  // a shelved result keeps its value
}

TEST_CASE("a read-only cache directory computes without caching and warns once", "[memory][unwritable]") {
    if (::geteuid() == 0) {
        WARN("skipped: permissions do not stop root");
        return;
    }
    memkit::temp_dir dir;
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
    memkit::warnings w;
    auto cached = cojob::memory{dir.path() / "cache", {.verbose = 0, .on_warning = w.sink()}}.cache(label);
    label_calls = 0;
    CHECK(cached(1, "r") == "r1");
    CHECK(cached(1, "r") == "r1");
    CHECK(label_calls == 2);
    CHECK(w.list().size() == 1);
}

namespace {
constexpr const char* full_disk_env = "COJOB_MEMTEST_FULL_DISK_DIR";
}  // namespace

// A full disk, simulated without privileges: the file size limit (RLIMIT_FSIZE) makes write(2)
// fail with EFBIG past 16 KiB, as ENOSPC would. The limit applies to the whole process, so the
// test runs the hidden case below in a copy of this program.
TEST_CASE("a disk that fills up computes without caching and warns once", "[memory][unwritable]") {
    memkit::temp_dir dir;
    const std::string self = fs::read_symlink("/proc/self/exe").string();
    const std::string env = std::string(full_disk_env) + "=" + dir.path().string();
    std::vector<std::string> args = {self, "--use-colour", "no", "[.memory-full-disk-child]"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = {env};
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    REQUIRE(::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) == 0);
    int status = 0;
    const bool ended = kit::eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 60s);
    if (!ended) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    REQUIRE(ended);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // the child's checks passed (its report is on stdout)
    // The big result was never stored, and no temp file of the failed writes is left behind.
    std::size_t outputs = 0;
    for (const auto& f : fs::recursive_directory_iterator(dir.path())) {
        CHECK_THAT(f.path().filename().string(), !Catch::EndsWith(".tmp"));
        outputs += f.path().filename() == "output.bin";
    }
    CHECK(outputs == 1);  // the small one
}

TEST_CASE("(child of the full disk test)", "[.memory-full-disk-child]") {
    const char* where = std::getenv(full_disk_env);
    if (!where) {
        WARN("run by the test \"a disk that fills up computes without caching and warns once\"");
        return;
    }
    ::signal(SIGXFSZ, SIG_IGN);  // write(2) then fails with EFBIG instead of killing the process
    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &limit) == 0);
    limit.rlim_cur = 16 * 1024;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
    memkit::warnings w;
    auto cached = cojob::memory{fs::path(where) / "cache", {.verbose = 0, .on_warning = w.sink()}}.cache(counted_ramp);
    const auto small = counted_ramp(100), big = counted_ramp(50000);
    ramp_calls = 0;
    CHECK(cached(100) == small);  // 1 KB: fits, stored
    CHECK(cached(100) == small);
    CHECK(ramp_calls == 1);
    CHECK(cached(50000) == big);  // 400 KB: the write fails, the result is still returned
    CHECK(cached(50000) == big);
    CHECK(ramp_calls == 3);
    CHECK_FALSE(cached.check_call_in_cache(50000));
    CHECK(cached.call_and_shelve(50000).get() == big);  // the handle keeps the value
    REQUIRE(w.list().size() == 1);
    CHECK_THAT(w.list()[0], Catch::Contains("without caching") && Catch::Contains("too large"));
}
