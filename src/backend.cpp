// src/backend.cpp - the one place that maps a backend's name in the options to its
// implementation.
#include "backend.hpp"

namespace cojob::detail {

std::unique_ptr<backend_base> (*backend_seam)(const resolved_options& opts) = nullptr;

std::unique_ptr<backend_base> make_backend(const resolved_options& opts) {
    if (backend_seam)
        if (auto b = backend_seam(opts)) return b;
    switch (opts.kind) {
        case cojob::backend::sequential: return make_sequential_backend();
        case cojob::backend::processes: return make_processes_backend(opts);
        case cojob::backend::mpi: return make_mpi_backend(opts);
        case cojob::backend::threads: break;
    }
    return make_threads_backend(opts.n_jobs);
}

}  // namespace cojob::detail
