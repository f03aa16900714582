// tests/unit/generator_test.cpp - cojob::generator<T>: a co_yield generator as a lazy input
// range, read directly and as the input of a call (laziness under pre_dispatch, exceptions from
// the body, references, move-only values, a suspended body destroyed early).
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>
#include <cojob/generator.hpp>

#include <atomic>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

static_assert(std::ranges::input_range<cojob::generator<int>> && std::ranges::view<cojob::generator<int>>);
static_assert(std::same_as<std::ranges::range_reference_t<cojob::generator<int>>, int&&>);
static_assert(std::same_as<std::ranges::range_reference_t<cojob::generator<int&>>, int&>);
static_assert(!std::ranges::forward_range<cojob::generator<int>>);

cojob::generator<int> count_to(int n) {
    for (int i = 0; i < n; ++i) co_yield i;
}

/// Yields 0, 1, ... and throws instead of yielding `fail_at` (never when it is negative).
cojob::generator<int> failing_generator(int n, int fail_at) {
    for (int i = 0; i < n; ++i) {
        if (i == fail_at) throw std::runtime_error("producer failed at " + std::to_string(i));
        co_yield i;
    }
}

/// Sets `*destroyed` when the body's locals go, wherever the body stopped.
struct sentinel {
    std::atomic<bool>* destroyed;
    ~sentinel() { *destroyed = true; }
};

cojob::generator<int> guarded(int n, std::atomic<bool>* destroyed, std::atomic<int>* produced) {
    sentinel s{destroyed};
    for (int i = 0; i < n; ++i) {
        ++*produced;
        co_yield i;
    }
}

int twice(int x) { return 2 * x; }

int fail_on_3(int x) {
    if (x == 3) throw std::invalid_argument("task 3 fails");
    return x;
}

template <class Range>
auto twice_each(Range&& r) {
    return std::forward<Range>(r) | std::views::transform([](int i) { return cojob::delayed(twice)(i); });
}

}  // namespace

TEST_CASE("generator: yields its values in order, once, and ends", "[generator]") {
    std::vector<int> seen;
    for (int v : count_to(4)) seen.push_back(v);
    CHECK(seen == std::vector<int>{0, 1, 2, 3});

    auto none = count_to(0);
    CHECK(none.begin() == std::default_sentinel);
}

TEST_CASE("generator: lvalues are copied, rvalues handed out where they are", "[generator]") {
    auto words = []() -> cojob::generator<std::string> {
        std::string w = "kept";
        co_yield w;  // a copy: the reader may move from what it gets
        co_yield std::string("temporary");
        CHECK(w == "kept");
    };
    std::vector<std::string> got;
    for (auto&& s : words()) got.push_back(std::move(s));
    CHECK(got == std::vector<std::string>{"kept", "temporary"});
}

TEST_CASE("generator: generator<T&> hands out the objects the body yields", "[generator]") {
    std::vector<int> data{1, 2, 3};
    auto each = [](std::vector<int>& v) -> cojob::generator<int&> {
        for (int& x : v) co_yield x;
    };
    for (int& x : each(data)) x *= 10;
    CHECK(data == std::vector<int>{10, 20, 30});
}

TEST_CASE("generator: move-only values", "[generator]") {
    auto boxes = []() -> cojob::generator<std::unique_ptr<int>> {
        for (int i = 0; i < 3; ++i) co_yield std::make_unique<int>(i);
    };
    std::vector<std::unique_ptr<int>> got;
    for (auto&& p : boxes()) got.push_back(std::move(p));
    REQUIRE(got.size() == 3);
    CHECK(*got[2] == 2);

    cojob::parallel par{{.n_jobs = 2}};
    auto tasks = boxes() | std::views::transform([](std::unique_ptr<int>&& p) { return cojob::delayed(twice)(*p); });
    CHECK(par(std::move(tasks)) == std::vector<int>{0, 2, 4});
}

TEST_CASE("generator: an exception from the body comes out of the step that resumed it", "[generator]") {
    const int fail_at = GENERATE(0, 2, 4);
    INFO("the body throws instead of yielding item " << fail_at);
    SECTION("read directly") {
        auto g = failing_generator(5, fail_at);
        std::vector<int> seen;
        CHECK_THROWS_WITH(
            [&] {
                for (int v : g) seen.push_back(v);
            }(),
            "producer failed at " + std::to_string(fail_at));
        CHECK(seen.size() == static_cast<std::size_t>(fail_at));
    }
    SECTION("as the input of a call, which fails with it") {
        cojob::parallel par{{.n_jobs = 2}};
        CHECK_THROWS_WITH(par(twice_each(failing_generator(5, fail_at))), "producer failed at " + std::to_string(fail_at));
        CHECK(par(twice_each(count_to(3))) == std::vector<int>{0, 2, 4});  // the object is usable again
    }
}

TEST_CASE("generator: a call pulls from it only as far as pre_dispatch allows", "[generator]") {
    // One task a batch and a window of two: item i is made only once i - 2 tasks have run.
    std::atomic<int> ran{0};
    std::vector<int> ran_when_made;
    auto producer = [&]() -> cojob::generator<int> {
        for (int i = 0; i < 12; ++i) {
            ran_when_made.push_back(ran.load());
            co_yield i;
        }
    };
    cojob::parallel par{{.n_jobs = 2, .pre_dispatch = "2", .batch_size = 1}};
    const auto out = par(producer() | std::views::transform([&ran](int i) {
                             return cojob::delayed([&ran](int x) {
                                 ++ran;
                                 return x;
                             })(i);
                         }));
    REQUIRE(out.size() == 12);
    REQUIRE(ran_when_made.size() == 12);
    for (std::size_t i = 2; i < ran_when_made.size(); ++i) {
        INFO("item " << i << " was made after " << ran_when_made[i] << " tasks had run");
        CHECK(ran_when_made[i] >= static_cast<int>(i) - 2);
    }
}

TEST_CASE("generator: a body suspended at co_yield is destroyed with its generator", "[generator]") {
    std::atomic<bool> destroyed{false};
    std::atomic<int> produced{0};
    SECTION("dropped after two items") {
        {
            auto g = guarded(100, &destroyed, &produced);
            auto it = g.begin();
            ++it;
            CHECK(*it == 1);
            CHECK_FALSE(destroyed);
        }
        CHECK(destroyed);
        CHECK(produced == 2);
    }
    SECTION("a call that fails stops pulling and destroys it") {
        cojob::parallel par{{.n_jobs = 2, .pre_dispatch = "2", .batch_size = 1}};
        CHECK_THROWS_AS(par(guarded(100, &destroyed, &produced) |
                            std::views::transform([](int i) { return cojob::delayed(fail_on_3)(i); })),
                        std::invalid_argument);
        CHECK(destroyed);
        CHECK(produced < 100);
    }
}
