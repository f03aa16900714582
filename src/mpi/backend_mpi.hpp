// src/mpi/backend_mpi.hpp - private: backend::mpi as rank 0's scheduler sees it.
#pragma once

#include "../backend.hpp"

#include <memory>

namespace cojob::detail::mpi {

/// The backend of one parallel object on rank 0: hands its batches to the hub.
std::unique_ptr<backend_base> make_backend(const resolved_options& opts);

}  // namespace cojob::detail::mpi
