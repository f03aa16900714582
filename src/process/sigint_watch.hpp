// src/process/sigint_watch.hpp - private: Ctrl-C during blocking calls on worker processes.
#pragma once

#include "../backend.hpp"

#include <boost/asio/io_context.hpp>

#include <memory>

namespace cojob::detail::process {

/// Watches SIGINT for one blocking call and interrupts the call (if it is still there) on
/// `ctx` when it comes; null when the program has claimed SIGINT for itself. Every blocking
/// call running at once gets its watch, and all of them see one Ctrl-C. cojob's handler stays
/// a moment after the last watch has gone (while none watches it acts as the default would:
/// the program ends), then the default disposition is back.
std::unique_ptr<call_watch> watch_sigint(boost::asio::io_context& ctx, std::weak_ptr<call_state> call);

/// Blocking calls watching SIGINT now (for tests: a Ctrl-C sent while none watches ends the
/// program).
[[nodiscard]] int sigint_watchers() noexcept;

}  // namespace cojob::detail::process
