// tests/process/not_remotable.cpp - compiled by compile_fail.sh with CASE=0..4: case 0 must
// compile; the others must fail with the static_assert that names what cannot travel.
#include <cojob/cojob.hpp>

#include <mutex>
#include <ranges>

struct no_serialize {
    int x = 0;
};
int use(no_serialize s) { return s.x; }
int deref(const int* p) { return *p; }
no_serialize make(int x) { return {x}; }
double half(int x) { return x / 2.0; }

int main() {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
    auto tasks = [](auto make_task) { return std::views::iota(0, 4) | std::views::transform(make_task); };
#if CASE == 0
    (void)par(cojob::require_remotable, tasks([](int i) { return cojob::delayed(half)(i); }));
#elif CASE == 1
    int k = 2;
    (void)par(cojob::require_remotable, tasks([k](int i) { return cojob::delayed([k](int x) { return x * k; })(i); }));
#elif CASE == 2
    static int value = 1;
    (void)par(cojob::require_remotable, tasks([](int) { return cojob::delayed(deref)(&value); }));
#elif CASE == 3
    (void)par(cojob::require_remotable, tasks([](int i) { return cojob::delayed(use)(no_serialize{i}); }));
#elif CASE == 4
    (void)par(cojob::require_remotable, tasks([](int i) { return cojob::delayed(make)(i); }));
#endif
}
