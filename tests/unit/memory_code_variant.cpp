// memory_code_variant: one program, built several times with a define per build standing for an
// edit of its source (tests/meson.build). memory_code_change runs the builds one after the other
// against one cache and checks which edits invalidate the cached results of `costly`.
//
// memory_code_variant <cache dir>: calls costly(10) through the cache and prints
// "calls=<times costly ran> result=<value>".
#include <cojob/memory.hpp>

#include <cstdio>

#ifndef BODY_K
#define BODY_K 1.5
#endif
#ifndef HELPER_K
#define HELPER_K 2.0
#endif
#ifndef UNRELATED_K
#define UNRELATED_K 1
#endif
#ifndef VERSION_TAG
#define VERSION_TAG ""
#endif

namespace {
int calls = 0;
}  // namespace

#ifdef EXTRA_FUNCTION
// A new function placed before the others: everything after it moves.
[[gnu::noinline]] int extra_function(int x) { return x * 7 + 3; }
#endif

#ifdef INLINE_HELPER
[[gnu::always_inline]] inline double helper(double x) { return x * HELPER_K; }
#else
[[gnu::noinline]] double helper(double x) { return x * HELPER_K; }
#endif

double costly(int n) {
    ++calls;
    double s = 0;
    for (int i = 0; i < n; ++i) s += helper(i) * BODY_K;
    return s;
}

[[gnu::noinline]] int unrelated(int x) { return x + UNRELATED_K; }

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    cojob::memory mem{argv[1], {.verbose = 0}};
    auto cached = mem.cache(costly, {.version = VERSION_TAG});
    const double r = cached(10);
    std::printf("calls=%d result=%g\n", calls, r);
#ifdef EXTRA_FUNCTION
    if (extra_function(1) != 10) return 3;
#endif
    return unrelated(1) > 0 ? 0 : 3;
}
