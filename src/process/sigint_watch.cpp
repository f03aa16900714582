// src/process/sigint_watch.cpp - Ctrl-C during blocking calls on worker processes (see
// sigint_watch.hpp).
#include "sigint_watch.hpp"

#include "../call_state.hpp"

#include <boost/asio/signal_set.hpp>

#include <signal.h>

#include <mutex>
#include <optional>

namespace cojob::detail::process {

namespace {

namespace asio = boost::asio;

/// cojob's SIGINT watches alive in this process. While there is one, SIGINT's handler is the one
/// Asio installed for cojob, not the program's, so another call may watch too; Asio counts the
/// sets of each signal and restores the default disposition when the last one goes.
struct watch_registry {
    std::mutex mutex;
    int alive = 0;
};

watch_registry& registry() {
    static watch_registry r;
    return r;
}

struct sigint_watch final : call_watch {
    explicit sigint_watch(asio::io_context& ctx) : signals(std::in_place, ctx, SIGINT) {}
    ~sigint_watch() override {
        std::lock_guard lock(registry().mutex);
        boost::system::error_code ignored;
        signals->cancel(ignored);  // its handler runs later on the io_context, and returns
        signals.reset();
        --registry().alive;
    }
    std::optional<asio::signal_set> signals;
};

}  // namespace

std::unique_ptr<call_watch> watch_sigint(asio::io_context& ctx, std::weak_ptr<call_state> call) {
    std::lock_guard lock(registry().mutex);
    if (registry().alive == 0) {
        struct sigaction current {};
        if (::sigaction(SIGINT, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) return nullptr;
    }
    auto watch = std::make_unique<sigint_watch>(ctx);
    ++registry().alive;
    watch->signals->async_wait([call = std::move(call)](boost::system::error_code ec, int) {
        if (auto c = call.lock(); c && !ec) c->interrupt();
    });
    return watch;
}

}  // namespace cojob::detail::process
