// tests/process/fastest_first_test.cpp - on worker processes, a fast task never waits behind a
// slow one while a worker is free (tests/common/fastest_first.hpp).
#include "fastest_first.hpp"

TEST_CASE("processes: a fast task never waits behind a slow one while a worker is free", "[process][order]") {
    const int n_jobs = GENERATE(2, 4);
    const long slow = GENERATE(0L, 1L);
    fastest_first::check({.n_jobs = n_jobs, .backend = cojob::backend::processes}, slow);
}
