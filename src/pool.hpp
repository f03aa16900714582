// src/pool.hpp - private: what a `cojob::pool` holds, which the runners built on it share.
#pragma once

#include "backend.hpp"
#include "resolved_options.hpp"

#include <memory>

namespace cojob::detail {

struct pool_state {
    resolved_workers workers;
    std::shared_ptr<backend_base> backend;
};

}  // namespace cojob::detail
