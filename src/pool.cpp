// src/pool.cpp - `cojob::pool`: workers made once, for the runners built on it.
#include <cojob/pool.hpp>

#include "pool.hpp"

namespace cojob {

namespace {

std::shared_ptr<detail::pool_state> make_state(int n_jobs, std::optional<cojob::backend> kind) {
    auto state = std::make_shared<detail::pool_state>();
    if (!kind) kind = parallel_config::current().backend;
    state->workers = detail::resolve_workers(n_jobs, kind);
    // The backend needs only the workers' count and kind; what else a call's options say
    // (sharing of large arrays, for one) each call brings along.
    detail::resolved_options shape;
    shape.n_jobs_requested = state->workers.n_jobs_requested;
    shape.n_jobs = state->workers.n_jobs;
    shape.kind = state->workers.kind;
    state->backend = detail::make_backend(shape);
    return state;
}

}  // namespace

pool::pool(int n_jobs, std::optional<cojob::backend> kind) : state_(make_state(n_jobs, kind)) {}

pool::~pool() = default;

int pool::n_jobs() const noexcept { return state_->workers.n_jobs; }

cojob::backend pool::backend() const noexcept { return state_->workers.kind; }

}  // namespace cojob
