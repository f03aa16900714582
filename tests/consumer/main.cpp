// A cojob user's program: squares in parallel, checks the sum, exits 0 when right.
#include <cojob/cojob.hpp>

#include <cstdio>
#include <numeric>
#include <ranges>

static long square(long x) { return x * x; }

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    cojob::parallel par{{.n_jobs = 2}};
    auto r = par(std::views::iota(0L, 100L) | std::views::transform([](long i) { return cojob::delayed(square)(i); }));
    const long sum = std::accumulate(r.begin(), r.end(), 0L);
    std::printf("consumer: sum of squares below 100 = %ld\n", sum);
    return sum == 328350 ? 0 : 1;
}
