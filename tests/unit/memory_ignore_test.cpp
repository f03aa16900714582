// memory: arguments left out of the key (cache_options::ignore) may be of any type, pointers
// and move-only values included; an argument that cannot be keyed and is not ignored is refused
// with an error naming it, when the function is cached if its parameters are known.
#include "kit.hpp"
#include "memory_kit.hpp"

#include <cojob/memory.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace {

struct not_serializable {
    int value = 0;
};

/// A mutable object a cached function reports to: the twin of the dict joblib's tests ignore.
struct tally {
    int calls = 0;
};

int twice_and_count(int x, tally* t) {
    ++t->calls;
    return 2 * x;
}

}  // namespace

TEST_CASE("ignored arguments do not count in the key and need not be serializable", "[memory]") {
    memkit::temp_dir dir;
    std::atomic<int> calls{0};
    auto f = [&calls](int x, not_serializable log, bool verbose) {
        ++calls;
        return x + log.value * 0 + (verbose ? 0 : 0);
    };
    auto cached = cojob::memory{dir.path(), {.verbose = 0}}.cache(f, {.ignore = {1, 2}});
    CHECK(cached(7, not_serializable{1}, true) == 7);
    CHECK(cached(7, not_serializable{2}, false) == 7);
    CHECK(calls == 1);
    CHECK(cached(8, not_serializable{2}, false) == 8);
    CHECK(calls == 2);
}

TEST_CASE("an ignored argument may be a raw pointer", "[memory]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    tally t;
    SECTION("of a function") {
        auto cached = mem.cache(twice_and_count, {.ignore = {1}});
        CHECK(cached(4, &t) == 8);
        CHECK(cached(4, &t) == 8);
        CHECK(cached(4, nullptr) == 8);  // the pointer is not part of the key: a hit
    }
    SECTION("of a lambda") {
        auto cached = mem.cache([](int x, tally* to) { return twice_and_count(x, to); }, {.ignore = {1}});
        CHECK(cached(5, &t) == 10);
        CHECK(cached(5, &t) == 10);
    }
    CHECK(t.calls == 1);
}

TEST_CASE("an ignored argument may be a reference to anything, or move-only", "[memory]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    not_serializable seen;
    auto by_reference = mem.cache(
        [](int x, not_serializable& s) {
            ++s.value;
            return x + 1;
        },
        {.ignore = {1}});
    CHECK(by_reference(1, seen) == 2);
    CHECK(by_reference(1, seen) == 2);
    CHECK(seen.value == 1);

    std::atomic<int> calls{0};
    auto move_only = mem.cache(
        [&calls](const std::string& name, std::unique_ptr<int> p) {
            ++calls;
            return name + std::to_string(p ? *p : -1);
        },
        {.ignore = {1}});
    CHECK(move_only("a", std::make_unique<int>(1)) == "a1");
    CHECK(move_only("a", std::make_unique<int>(2)) == "a1");  // a hit: the pointer is ignored
    CHECK(calls == 1);
}

TEST_CASE("an argument that cannot be keyed and is not ignored is refused, naming it", "[memory][error]") {
    memkit::temp_dir dir;
    cojob::memory mem{dir.path(), {.verbose = 0}};
    const auto refused = [](const std::string& what, const std::string& position, const std::string& type) {
        CHECK_THAT(what, Catch::Contains("argument " + position) && Catch::Contains(type) &&
                             Catch::Contains("cache_options::ignore"));
    };
    SECTION("a pointer, when the function is cached") {
        refused(kit::message_of<cojob::error>([&] { (void)mem.cache(twice_and_count); }), "1", "tally*");
        refused(kit::message_of<cojob::error>([&] { (void)mem.cache(twice_and_count, {.ignore = {0}}); }), "1",
                "tally*");
    }
    SECTION("a type cereal cannot write, when the function is cached") {
        refused(kit::message_of<cojob::error>([&] { (void)mem.cache([](int x, not_serializable) { return x; }); }), "1",
                "not_serializable");
    }
    SECTION("a generic callable's argument, when it is called") {
        auto cached = mem.cache([](auto x, auto* t) { return twice_and_count(x, t); });
        tally t;
        refused(kit::message_of<cojob::error>([&] { (void)cached(1, &t); }), "1", "tally*");
        CHECK(t.calls == 0);
        auto ignoring = mem.cache([](auto x, auto* to) { return twice_and_count(x, to); }, {.ignore = {1}});
        CHECK(ignoring(3, &t) == 6);
        CHECK(ignoring(3, &t) == 6);
        CHECK(t.calls == 1);
    }
}
