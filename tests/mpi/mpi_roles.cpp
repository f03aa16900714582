// tests/mpi/mpi_roles.cpp - programs the mpi_faults script starts: a job whose worker rank
// aborts inside a task ("crash", under mpirun), and backend::mpi asked for outside a job
// ("unlaunched", started directly).
#include <cojob/cojob.hpp>
#include <cojob/mpi.hpp>

#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <string_view>

namespace {

int fragile(int x) {
    if (x == 3) std::abort();
    return x;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);
    const std::string_view role = argc > 1 ? argv[1] : "";
    cojob::options o;
    o.n_jobs = -1;
    o.backend = cojob::backend::mpi;
    o.batch_size = 1;
    if (role == "unlaunched") {
        try {
            cojob::parallel par(o);
        } catch (const cojob::error& e) {
            std::printf("refused: %s\n", e.what());
            return 0;
        }
        std::printf("not refused\n");
        return 1;
    }
    cojob::parallel par(o);
    auto r = par(std::views::iota(0, 8) | std::views::transform([](int i) { return cojob::delayed(fragile)(i); }));
    std::printf("returned %zu results\n", r.size());  // never: the job ends with the rank
    return 0;
}
