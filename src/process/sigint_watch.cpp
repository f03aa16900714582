// src/process/sigint_watch.cpp - Ctrl-C during blocking calls on worker processes (see
// sigint_watch.hpp).
//
// One handler for the whole process, cojob's own, installed when a blocking call starts while
// SIGINT has its default disposition, and left in place between calls: installing and
// restoring a handler around every call (an Asio signal_set per call) took three system calls
// and gave the call's io_context a reactor to poll, a third of a one-task call on processes.
// With no call watching, the handler does what the default would: it puts the default back and
// raises the signal again, which ends the program. With calls watching, it writes a byte to a
// pipe (all a handler may safely do); a relay thread reads it and posts the interrupt to each
// watching call's io_context. The same thread puts the default disposition back once no call
// has watched for `linger`.
#include "sigint_watch.hpp"

#include "../call_state.hpp"

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <list>
#include <mutex>
#include <thread>

namespace cojob::detail::process {

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

/// How long cojob's handler stays once no call watches: calls that follow one another closely
/// (a loop of small maps) install it once.
constexpr auto linger = std::chrono::milliseconds(200);

std::atomic<int> watching{0};        ///< calls watching now (read by the handler)
std::atomic<int> relay_write_end{-1};

void on_sigint(int /*signal*/) {
    if (watching.load(std::memory_order_acquire) > 0) {
        const int saved = errno;
        const char byte = 1;
        (void)!::write(relay_write_end.load(std::memory_order_relaxed), &byte, 1);
        errno = saved;
        return;
    }
    // Nobody watches: the default action, as if cojob had never been there.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGINT, &dfl, nullptr);
    ::raise(SIGINT);  // delivered once this handler returns: it ends the program
}

/// Puts SIGINT's default disposition back, unless the program has installed a handler of its
/// own meanwhile.
void restore_default() noexcept {
    struct sigaction current {};
    if (::sigaction(SIGINT, nullptr, &current) != 0 || current.sa_handler != on_sigint) return;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGINT, &dfl, nullptr);
}

struct watcher {
    asio::io_context* ctx;
    std::weak_ptr<call_state> call;
};

class relay {
public:
    /// Never destroyed: its thread may still run while the program's statics go.
    static relay& get() {
        static relay* r = new relay;
        return *r;
    }

    std::unique_ptr<call_watch> watch(asio::io_context& ctx, std::weak_ptr<call_state> call);
    void forget(std::list<watcher>::iterator it) noexcept {
        const std::lock_guard lock(mutex_);
        watchers_.erase(it);
        if (watching.fetch_sub(1, std::memory_order_acq_rel) == 1) last_end_ = clock_type::now();
    }

private:
    /// Installs the handler when SIGINT has its default disposition; false when the program
    /// has claimed it. Under mutex_.
    bool install();
    void run();

    std::mutex mutex_;
    std::list<watcher> watchers_;
    bool installed_ = false;
    clock_type::time_point last_end_{};
    int pipe_[2] = {-1, -1};
    bool started_ = false;
};

struct sigint_watch final : call_watch {
    explicit sigint_watch(std::list<watcher>::iterator it) : it_(it) {}
    ~sigint_watch() override { relay::get().forget(it_); }
    std::list<watcher>::iterator it_;
};

bool relay::install() {
    if (installed_) return true;
    if (!started_) {
        if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) return false;
        relay_write_end.store(pipe_[1], std::memory_order_relaxed);
        try {
            std::thread([this] { run(); }).detach();
        } catch (...) {  // no thread: Ctrl-C keeps its default action
            ::close(pipe_[0]);
            ::close(pipe_[1]);
            relay_write_end.store(-1, std::memory_order_relaxed);
            return false;
        }
        started_ = true;
    }
    struct sigaction ours {}, old {};
    ours.sa_handler = on_sigint;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = SA_RESTART;
    if (::sigaction(SIGINT, &ours, &old) != 0) return false;
    if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO) != 0) {
        ::sigaction(SIGINT, &old, nullptr);  // the program's own: it stays
        return false;
    }
    installed_ = true;
    return true;
}

std::unique_ptr<call_watch> relay::watch(asio::io_context& ctx, std::weak_ptr<call_state> call) {
    const std::lock_guard lock(mutex_);
    if (!install()) return nullptr;
    watchers_.push_back({&ctx, std::move(call)});
    watching.fetch_add(1, std::memory_order_acq_rel);
    return std::make_unique<sigint_watch>(std::prev(watchers_.end()));
}

void relay::run() {
    for (;;) {
        pollfd p{pipe_[0], POLLIN, 0};
        int timeout_ms = -1;
        {
            const std::lock_guard lock(mutex_);
            if (installed_ && watchers_.empty()) {
                const auto left = linger - (clock_type::now() - last_end_);
                if (left <= clock_type::duration::zero()) {
                    restore_default();
                    installed_ = false;
                } else {
                    timeout_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
                }
            } else if (installed_) {
                timeout_ms = static_cast<int>(linger.count());  // to look again once they have gone
            }
        }
        if (::poll(&p, 1, timeout_ms) <= 0) continue;
        char bytes[64];
        while (::read(pipe_[0], bytes, sizeof bytes) > 0) {
        }
        const std::lock_guard lock(mutex_);
        if (watchers_.empty()) {
            // The calls ended between the signal and now: what the default would have done.
            restore_default();
            installed_ = false;
            ::raise(SIGINT);
            continue;
        }
        // Every call watching sees the one Ctrl-C; each is interrupted on its own io_context,
        // which lives at least as long as its watch.
        for (const auto& w : watchers_)
            asio::post(*w.ctx, [call = w.call] {
                if (auto c = call.lock()) c->interrupt();
            });
    }
}

}  // namespace

std::unique_ptr<call_watch> watch_sigint(asio::io_context& ctx, std::weak_ptr<call_state> call) {
    return relay::get().watch(ctx, std::move(call));
}

int sigint_watchers() noexcept { return watching.load(std::memory_order_acquire); }

}  // namespace cojob::detail::process
