// src/process/sigint_watch.hpp - private: Ctrl-C during blocking calls on worker processes.
#pragma once

#include "../backend.hpp"

#include <boost/asio/io_context.hpp>

#include <memory>

namespace cojob::detail::process {

/// Watches SIGINT on `ctx` for one blocking call and interrupts the call (if it is still there)
/// when it comes; null when the program has claimed SIGINT for itself. Every blocking call
/// running at once gets its watch, and all of them see one Ctrl-C; the default disposition is
/// back once the last watch has gone.
std::unique_ptr<call_watch> watch_sigint(boost::asio::io_context& ctx, std::weak_ptr<call_state> call);

}  // namespace cojob::detail::process
