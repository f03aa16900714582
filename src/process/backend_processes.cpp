// src/process/backend_processes.cpp - backend::processes: the pool of worker processes owned by
// one `parallel` object, and which worker gets each batch.
//
// A batch's trip: submit queues it here; the pool hands it to the least loaded worker with room,
// starting one when a worker is missing (spawn.cpp); that worker's channel (channel.cpp) sends
// it as a request frame, its large arrays placed once per call in shared segments
// (src/sharing.hpp); the worker, this program started again, serves it inside cojob::init
// (worker_loop.cpp) and answers through its pipe or, when the answer is large, its result arena
// (arena.hpp); the channel hands the answer back to the call. Every worker holds at most two
// batches, the running one and the next, which may be another call's; the rest wait here,
// shared between the calls that run at once round robin (src/fair_queue.hpp), until a worker
// has room, and a call with none on any worker takes the place of a batch held and not started
// (make_way). When a worker has nothing to do and nothing waits here, it takes the next batch
// of a busy worker that has not started it (rebalance), so a fast task never waits behind a
// slow one.
//
// Calls may run at once on several threads: every entry point takes the pool's lock
// (pool_guard.hpp), as do the handlers of the channels, which run on the pool's I/O thread
// (io_thread.hpp).
//
// A worker that dies, sends garbage or is killed by an interrupt (error, timeout,
// cancellation) is reaped at once and its batch comes back with the reason (failure_text.hpp);
// the pool starts a replacement when work is waiting or at the next call. A worker whose last
// results wait in its arena for a stream's consumer serves that stream only until they are
// taken; other calls get a worker started in its place, and the pool shrinks back to n_jobs
// when calls end.
#include "../backend.hpp"

#include "../call_state.hpp"
#include "../fair_queue.hpp"
#include "../sharing.hpp"
#include "channel.hpp"
#include "failure_text.hpp"
#include "io_thread.hpp"
#include "sigint_watch.hpp"
#include "spawn.hpp"

#include <cojob/errors.hpp>
#include <cojob/init.hpp>
#include <cojob/options.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cojob::detail {

namespace asio = boost::asio;

namespace {

using process::channel;
using process::job;
using process::pool_guard;

using channel_ptr = std::shared_ptr<channel>;

// Batches this long make a round trip of idling (~0.1 ms) cheap next to a badly placed batch.
constexpr std::int64_t long_batch_ns = 2'000'000;

/// SIGPIPE would kill the parent when it writes to a worker that just died; like CPython, cojob
/// ignores it when nobody has claimed it, and sees EPIPE instead.
void ignore_sigpipe_once() {
    static const bool done = [] {
        struct sigaction old {};
        if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
        return true;
    }();
    (void)done;
}

class process_backend final : public backend_base, private process::channel_owner {
public:
    explicit process_backend(const resolved_options& o)
        : profile_{.name = backend_name(cojob::backend::processes), .workers = static_cast<std::size_t>(o.n_jobs),
                   .runs_in_submit = false, .stops_batches = true, .min_ideal_batch_seconds = 0.002},
          workers_(o.n_jobs),
          inner_threads_(std::max(cpu_count() / std::max(o.n_jobs, 1), 1)),
          memory_limit_(o.worker_memory_limit.value_or(0)) {}

    ~process_backend() override {
        {
            const pool_guard::held lock(*guard_);
            shutdown();
        }
        // io_ goes next, after the pool: its thread ends once the dropped channels' handlers ran.
    }

    const dispatch_profile& profile() const noexcept override { return profile_; }

    void begin_call(call_state& call) override {
        if (!cojob::initialized()) {
            if (std::getenv(process::worker_env))
                throw error("cojob: this process was started as a cojob worker, but its main() reached a "
                            "parallel call without calling cojob::init(argc, argv) first; call it at the top of "
                            "main so that workers serve tasks instead of running the program");
            throw error("cojob: backend=processes needs cojob::init(argc, argv) at the top of main(): workers are "
                        "this program started again, and init is where they serve tasks instead of running main");
        }
        if (std::string why = call.remote_refusal(); !why.empty())
            throw error("cojob: backend=processes cannot run these tasks: " + why +
                        " (backend=threads runs any callable)");
        ignore_sigpipe_once();
        const pool_guard::held lock(*guard_);
        reap_idle_dead();
        while (live(nullptr) < workers_) pool_.push_back(start_worker());
        // Large array arguments: placed once per call, released in end_call (src/sharing.hpp),
        // as the call's runner says (runners on one pool may say differently).
        const resolved_options& o = call.options();
        sharing_[&call] = std::make_unique<call_sharing>(sharing_settings{o.temp_folder, o.max_nbytes, o.mmap_mode},
                                                         segments_);
    }

    void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) noexcept override {
        const pool_guard::held lock(*guard_);
        const void* key = call.get();
        queue_.push(key, job{std::move(batch), std::move(call)});
        pump();
    }

    bool help(const call_state& call) override {
        const pool_guard::held lock(*guard_);
        return read_each([&](channel& w) { return !w.dead() && w.serves(call) && w.poll_responses(call); });
    }

    bool before_sleep(const call_state& call) override {
        const pool_guard::held lock(*guard_);
        return read_each([&](channel& w) { return w.before_sleep(call); });
    }

    /// Ctrl-C during a blocking call stops its workers, when the program has not claimed
    /// SIGINT for itself.
    std::unique_ptr<call_watch> watch_interrupts(asio::io_context& ctx, std::weak_ptr<call_state> call) override {
        return process::watch_sigint(ctx, std::move(call));
    }

    stop_effect interrupt(call_state& call) noexcept override {
        const pool_guard::held lock(*guard_);
        // Only the call's batches stop: another call's that a worker holds runs elsewhere, or
        // first (channel::interrupt_for).
        for (auto& w : pool_)
            if (w->serves(call)) w->interrupt_for(call);
        // Batches not sent yet come back at once.
        queue_.remove(&call, [this](job j) {
            j.batch->error = process::batch_not_sent();
            guard_->give_back(std::move(j));
        });
        return {true, " (its worker process was killed and will be replaced)"};
    }

    /// The worker running `b` is killed: `b` comes back with its error, the batch behind it
    /// (not started) too when it is b's call's, else it runs elsewhere; a worker starts in its
    /// place when work waits. A batch answered or not sent yet comes back on its own.
    void stop_batch(call_state& call, batch_base& b) noexcept override {
        const pool_guard::held lock(*guard_);
        for (auto& w : pool_)
            if (w->runs(b)) w->interrupt_for(call);
    }

    /// A worker with nothing to do takes the batch a busy worker holds behind its running one
    /// (when that worker has not started it): a fast task does not wait behind a slow one.
    void rebalance(call_state& /*call*/) noexcept override {
        const pool_guard::held lock(*guard_);
        if (!queue_.empty()) return;  // workers with room take from the queue first
        for (auto& idle : pool_) {
            if (!idle->idle() || !idle->has_room_for(nullptr) || idle->interrupted()) continue;
            for (auto& busy : pool_) {
                if (busy == idle) continue;
                if (auto j = busy->take_back()) {
                    send_to(*idle, std::move(*j));
                    break;
                }
            }
        }
    }

    void refresh_progress(call_state& call) noexcept override {
        const pool_guard::held lock(*guard_);
        for (auto& w : pool_) w->publish_progress(call);
    }

    void end_call(call_state& call) noexcept override {
        const pool_guard::held lock(*guard_);
        (void)read_each([&](channel& w) {
            w.call_ended(call);
            return false;
        });
        std::erase_if(pool_, [](const channel_ptr& w) { return w->dead(); });
        sharing_.erase(&call);
        shrink();
    }

private:
    void refill() override { pump(); }
    void requeue(job j) noexcept override {
        if (j.call->stop_flag().load(std::memory_order_relaxed)) {  // its call is over: nothing to run
            j.batch->error = process::batch_not_sent();
            guard_->give_back(std::move(j));
            return;
        }
        const void* key = j.call.get();
        queue_.push_front(key, std::move(j));
    }
    void batch_took(std::int64_t ns) noexcept override { long_batches_ = ns > long_batch_ns; }

    /// Calls `read(channel)` on every worker; true if any call returned true. An answer read
    /// refills its worker (pump), which may start or drop workers: no iterator into pool_
    /// survives that, so by index, each channel held while it reads.
    template <class Read>
    bool read_each(Read read) {
        bool any = false;
        for (std::size_t i = 0; i < pool_.size(); ++i) {
            const channel_ptr w = pool_[i];
            any = read(*w) || any;
        }
        return any;
    }

    /// Workers that can serve `j` now or once they have room (null: a batch of any call): not
    /// on their way out (interrupted ones are), not held for a stream that waits for `j`.
    [[nodiscard]] int live(const job* j) const noexcept {
        int n = 0;
        for (const auto& w : pool_) n += !w->dead() && !w->interrupted() && !w->held_from(j);
        return n;
    }

    channel_ptr start_worker() {
        process::channel_owner& owner = *this;
        auto w = std::make_shared<channel>(process::spawn_worker(inner_threads_, memory_limit_), owner, guard_,
                                           io_.executor(), static_cast<std::uint32_t>(std::max(workers_, 1)));
        w->watch();
        return w;
    }

    /// Workers started in place of ones held for a stream are retired once idle: the pool goes
    /// back to n_jobs processes.
    void shrink() noexcept {
        int alive = 0;
        for (const auto& w : pool_) alive += !w->dead() && !w->interrupted();
        for (auto& w : pool_) {
            if (alive <= workers_) break;
            if (w->idle() && w->has_room_for(nullptr) && !w->interrupted()) {
                w->retire();
                --alive;
            }
        }
        std::erase_if(pool_, [](const channel_ptr& w) { return w->dead(); });
    }

    /// Lets go of idle workers killed on purpose, and of those that died while idle (the OOM
    /// killer, a signal), which their channels reaped when their pipes ended.
    void reap_idle_dead() {
        for (auto& w : pool_)
            if (w->idle() && w->interrupted()) w->retire();
        std::erase_if(pool_, [](const channel_ptr& x) { return x->dead(); });
    }

    /// Where a batch goes: the least loaded worker with room for its call (an idle one first),
    /// or a worker to start when one is missing; nothing when it must wait.
    struct placement {
        channel_ptr to;  ///< null: start a worker for it
    };
    std::optional<placement> place(const job& j) const {
        channel_ptr best;
        for (auto& w : pool_)
            if (w->has_room_for(&j) && (!best || w->load() < best->load())) best = w;
        if ((!best || best->load() > 0) && live(&j) < workers_) return placement{nullptr};
        if (!best) return std::nullopt;
        // At the end of a call's input, a batch of long tasks waits for an idle worker
        // instead of queueing behind a running batch of its call: the other worker may free
        // up first, and a task queued on the wrong worker costs the call a whole task at its
        // end. Behind another call's batch it does queue: with calls competing, no worker may
        // idle before they end.
        if (best->load() > 0 && long_batches_ && j.call->input_exhausted() && best->serves(*j.call))
            return std::nullopt;
        return placement{best};
    }

    /// Whether any queued batch might be placed: a worker has room, or one might start. With
    /// every worker full this spares asking for each of the many calls queued.
    [[nodiscard]] bool could_place() const noexcept {
        if (live(nullptr) < workers_) return true;
        for (const auto& w : pool_)
            if (!w->full()) return true;
        return false;
    }

    void pump() {
        while (!queue_.empty() && could_place()) {
            std::optional<placement> where;
            std::optional<job> j = queue_.take_first([&](const job& q) {
                where = place(q);
                return where.has_value();
            });
            if (!j) break;
            channel_ptr to = std::move(where->to);
            if (!to) {
                try {
                    to = start_worker();
                } catch (...) {
                    j->batch->error = std::current_exception();
                    guard_->give_back(std::move(*j));
                    continue;
                }
                pool_.push_back(to);
            }
            send_to(*to, std::move(*j));
        }
        if (!queue_.empty()) make_way();
    }

    /// A call with no batch on any worker, while every worker holds batches of others, takes
    /// the place of a batch held behind a running one and not started yet, which goes back
    /// first in its call's lane: a call that arrives while other calls keep every worker busy
    /// waits one batch, not until a worker idles. The call that makes way keeps its running
    /// batch, so it never needs to take a place back.
    void make_way() {
        for (;;) {
            channel_ptr from;
            std::optional<job> j = queue_.take_first([&](const job& q) {
                for (const auto& w : pool_)
                    if (w->serves(*q.call)) return false;
                for (const auto& w : pool_)
                    if (w->could_make_way()) {
                        from = w;
                        return true;
                    }
                return false;
            });
            if (!j) return;
            std::optional<job> held = from->take_back();
            if (!held) {  // it started that batch meanwhile
                const void* key = j->call.get();
                queue_.push_front(key, std::move(*j));
                return;
            }
            const void* key = held->call.get();
            queue_.push_front(key, std::move(*held));
            send_to(*from, std::move(*j));
        }
    }

    /// Sends `j` to worker `w`, its large arrays placed for its call.
    void send_to(channel& w, job j) {
        const auto shared = sharing_.find(j.call.get());
        w.send(std::move(j), shared == sharing_.end() ? nullptr : shared->second.get());
    }

    /// Closing a worker's request pipe tells it to exit; those that do not within a second
    /// (a task still running) are killed.
    void shutdown() noexcept {
        for (auto& w : pool_) w->close_requests();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        for (auto& w : pool_) w->finish(deadline);
        pool_.clear();
    }

    dispatch_profile profile_;
    int workers_;
    int inner_threads_;
    std::size_t memory_limit_;  ///< options::worker_memory_limit, 0: none
    process::io_thread io_;  ///< before the pool, so it goes after it: the channels' handlers run there
    std::shared_ptr<process::pool_guard> guard_ = std::make_shared<process::pool_guard>();
    std::vector<channel_ptr> pool_;
    fair_queue<job> queue_;
    bool long_batches_ = false;  ///< the last batch answered took longer than long_batch_ns
    segment_store segments_;  ///< before sharing_: the calls give their segments back to it
    std::map<const call_state*, std::unique_ptr<call_sharing>> sharing_;
};

}  // namespace

std::unique_ptr<backend_base> make_processes_backend(const resolved_options& opts) {
    return std::make_unique<process_backend>(opts);
}

}  // namespace cojob::detail
