#include <cojob/parallel.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <ranges>

namespace {
double root(double x) { return std::sqrt(x); }
}

TEST_CASE("a blocking call returns results in input order", "[parallel]") {
    for (int n : {1, 2, 4}) {
        cojob::parallel par{{.n_jobs = n}};
        auto r = par(std::views::iota(0, 1000) | std::views::transform([](int i) { return cojob::delayed(root)(double(i) * i); }));
        REQUIRE(r.size() == 1000);
        for (int i = 0; i < 1000; ++i) REQUIRE(r[std::size_t(i)] == Approx(i));
    }
}
