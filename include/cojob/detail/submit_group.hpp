// cojob/detail/submit_group.hpp - how `parallel::async_submit` batches submissions together.
//
// Submissions of one task type made with one executor wait in a queue of their own. While
// fewer groups than the runner has workers are running, a submission starts a group at once,
// together with every submission waiting in its queue; otherwise it waits for a running group
// to end, and the queues take the free places in turn. A group is a keep_going call over the
// tasks it took: its sink hands each task's result or failure to that task's submitter as soon
// as its batch is back, so one submission's failure is its own, and a submission costs a share
// of a batch instead of a call of its own.
#pragma once

#include <cojob/detail/batch.hpp>
#include <cojob/detail/call_signatures.hpp>
#include <cojob/detail/source.hpp>
#include <cojob/errors.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace cojob::detail {

class engine;

/// Starts an asynchronous call of `eng` (what `parallel::async_run` does): it runs on a strand
/// of `ex`, `slot` cancels it, `done` gets its end.
void start_async_call(const std::shared_ptr<engine>& eng, std::shared_ptr<void> keep_alive, source_base& source,
                      sink_base& sink, boost::asio::any_io_executor ex, boost::asio::cancellation_slot slot,
                      boost::asio::any_completion_handler<void(std::exception_ptr)> done);
/// Records `failure` as the last failure of the calling thread (see `parallel::last_failure`).
void note_last_failure(engine& eng, std::optional<task_failure> failure) noexcept;

/// One submission: its completion handler, called once, on its own executor, with the
/// task's result or failure, or with `operation_aborted` when cancelled first.
template <class R>
class submission : public std::enable_shared_from_this<submission<R>> {
public:
    using handler_type = boost::asio::any_completion_handler<typename submit_signature<R>::type>;

    submission(handler_type h, boost::asio::any_io_executor ex, std::weak_ptr<engine> eng)
        : handler_(std::move(h)),
          work_(boost::asio::prefer(std::move(ex), boost::asio::execution::outstanding_work.tracked)),
          engine_(std::move(eng)) {}

    /// Completes the submission with operation_aborted when its cancellation slot is emitted.
    void watch(boost::asio::cancellation_slot slot) {
        if (!slot.is_connected()) return;
        slot_ = slot;
        slot.emplace<canceller>(this->weak_from_this());
    }
    /// Whether it has completed (or been cancelled): its task need not run.
    [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }

    template <class... V>
    void succeed(V&&... value) {
        if (done_.exchange(true, std::memory_order_acq_rel)) return;
        post([v = std::tuple<std::decay_t<V>...>(std::forward<V>(value)...)](handler_type& h) mutable {
            std::apply([&h](auto&&... x) { std::move(h)(std::exception_ptr{}, std::move(x)...); }, std::move(v));
        }, std::nullopt);
    }
    void fail(std::exception_ptr e, std::optional<task_failure> why = std::nullopt) {
        if (done_.exchange(true, std::memory_order_acq_rel)) return;
        post([e](handler_type& h) {
            if constexpr (std::is_void_v<R>)
                std::move(h)(e);
            else
                std::move(h)(e, R{});
        }, std::move(why));
    }

private:
    struct canceller {
        std::weak_ptr<submission> self;
        void operator()(boost::asio::cancellation_type type) const {
            using boost::asio::cancellation_type;
            if ((type & (cancellation_type::terminal | cancellation_type::partial | cancellation_type::total)) ==
                cancellation_type::none)
                return;
            if (auto s = self.lock())
                s->fail(std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)));
        }
    };

    // Calls the handler on its executor, the thread's last failure set first (an async call's
    // failure is read first thing in its handler), the cancellation slot cleared first.
    template <class Call>
    void post(Call call, std::optional<task_failure> why) {
        auto ex = work_;
        boost::asio::post(std::move(ex), [self = this->shared_from_this(), call = std::move(call),
                                          why = std::move(why)]() mutable {
            if (self->slot_.is_connected()) self->slot_.clear();
            if (auto eng = self->engine_.lock()) note_last_failure(*eng, std::move(why));
            handler_type h = std::move(self->handler_);
            self->work_ = {};
            call(h);
        });
    }

    std::atomic<bool> done_{false};
    handler_type handler_;
    boost::asio::any_io_executor work_;  ///< the handler's executor, kept from running out of work
    boost::asio::cancellation_slot slot_;
    std::weak_ptr<engine> engine_;
};

/// The sink of a group: hands each task's result or failure to its submission.
template <class Task>
struct submit_sink final : sink_base {
    using result = typename Task::result_type;
    submit_sink() noexcept : sink_base(delivery::list, true) {}

    std::vector<std::shared_ptr<submission<result>>> to;  ///< by input position

    void accept(batch_base& b) override {
        std::size_t i = b.first;
        if constexpr (std::is_void_v<result>) {
            for (std::size_t k = b.error ? 1 : 0; k < b.size; ++k) to.at(i++)->succeed();
        } else {
            for (auto& v : static_cast<typed_batch<Task>&>(b).results) to.at(i++)->succeed(std::move(v));
            static_cast<typed_batch<Task>&>(b).results.clear();
        }
        if (b.error) to.at(i)->fail(b.error, b.origin);
    }
};

/// What the runner keeps of every queue of submissions.
class submit_queue_base {
public:
    submit_queue_base(const std::type_info& type, boost::asio::any_io_executor ex) : type_(&type), ex_(std::move(ex)) {}
    virtual ~submit_queue_base() = default;
    submit_queue_base(const submit_queue_base&) = delete;
    submit_queue_base& operator=(const submit_queue_base&) = delete;

    [[nodiscard]] bool serves(const std::type_info& type, const boost::asio::any_io_executor& ex) const {
        return *type_ == type && ex_ == ex;
    }
    /// What waits and was not cancelled, as a group counted as running: the returned function
    /// starts it, once the registry's lock is released (empty: nothing waits).
    virtual std::function<void()> take_group() = 0;
    /// Completes every waiting submission with `e` (the runner is going away).
    virtual void abort_waiting(std::exception_ptr e) = 0;
    /// Nothing waits and no group of it runs.
    [[nodiscard]] virtual bool idle() const noexcept = 0;

protected:
    const std::type_info* type_;
    boost::asio::any_io_executor ex_;
};

/// The queues of a runner's submissions, by task type and executor, and the groups running
/// now, at most `max_groups` (the runner's workers) over all queues. Everything here is
/// guarded by `mutex`.
struct submit_registry {
    explicit submit_registry(std::size_t groups) : max_groups(std::max<std::size_t>(1, groups)) {}

    std::mutex mutex;
    const std::size_t max_groups;
    std::size_t running = 0;
    bool closed = false;  ///< the runner is gone: submissions still waiting complete aborted
    std::vector<std::shared_ptr<submit_queue_base>> queues;

    /// Ends: every submission still waiting completes with operation_aborted.
    void close() {
        std::lock_guard lock(mutex);
        closed = true;
        const auto aborted = std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted));
        for (auto& q : queues) q->abort_waiting(aborted);
        queues.clear();
    }

    /// A group of `from` has ended: what waits starts in the free places, the queues after
    /// `from` first, so that no task type or executor waits behind another's stream of
    /// submissions. Takes the lock.
    void group_ended(const submit_queue_base* from) {
        std::vector<std::function<void()>> starts;
        {
            std::lock_guard lock(mutex);
            --running;
            if (!closed) {
                const auto it = std::find_if(queues.begin(), queues.end(), [from](auto& q) { return q.get() == from; });
                const std::size_t n = queues.size();
                const std::size_t at = it == queues.end() ? 0 : static_cast<std::size_t>(it - queues.begin());
                for (std::size_t k = 1; k <= n && running < max_groups; ++k)
                    if (auto start = queues[(at + k) % n]->take_group()) starts.push_back(std::move(start));
            }
            std::erase_if(queues, [](auto& q) { return q->idle(); });
        }
        for (auto& start : starts) start();
    }
};

/// The submissions of tasks of type Task made with one executor.
template <class Task>
class submit_queue final : public submit_queue_base, public std::enable_shared_from_this<submit_queue<Task>> {
    using result = typename Task::result_type;
    struct waiting {
        Task task;
        std::shared_ptr<submission<result>> to;
    };
    struct group {
        explicit group(std::vector<Task> tasks) : source(std::views::all(std::move(tasks))) {}
        range_source<std::views::all_t<std::vector<Task>>> source;
        submit_sink<Task> sink;
    };

public:
    submit_queue(boost::asio::any_io_executor ex, std::shared_ptr<engine> eng, std::shared_ptr<submit_registry> reg)
        : submit_queue_base(typeid(Task), std::move(ex)), engine_(std::move(eng)), registry_(std::move(reg)) {}

    /// Submits `task` to `reg`, completing `handler` (see `parallel::async_submit`).
    template <class Handler>
    static void submit(const std::shared_ptr<submit_registry>& reg, const std::shared_ptr<engine>& eng, Handler handler,
                       Task task) {
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        boost::asio::any_io_executor ex = boost::asio::get_associated_executor(handler);
        auto to = std::make_shared<submission<result>>(std::move(handler), ex, eng);
        to->watch(slot);
        enqueue(reg, eng, ex, std::move(task), std::move(to));
    }

private:
    /// Queues a submission to `reg`, in the queue for Task and `ex` (made on first use), and
    /// starts it in a group at once when there is room.
    static void enqueue(const std::shared_ptr<submit_registry>& reg, const std::shared_ptr<engine>& eng,
                       const boost::asio::any_io_executor& ex, Task task, std::shared_ptr<submission<result>> to) {
        std::function<void()> start;
        {
            std::lock_guard lock(reg->mutex);
            if (reg->closed) {
                to->fail(std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)));
                return;
            }
            std::shared_ptr<submit_queue> q;
            for (auto& other : reg->queues)
                if (other->serves(typeid(Task), ex)) q = std::static_pointer_cast<submit_queue>(other);
            if (!q) {
                q = std::make_shared<submit_queue>(ex, eng, reg);
                reg->queues.push_back(q);
            }
            q->waiting_.push_back({std::move(task), std::move(to)});
            if (reg->running < reg->max_groups) start = q->take_group();
        }
        if (start) start();
    }

public:
    std::function<void()> take_group() override {
        std::vector<Task> tasks;
        std::vector<std::shared_ptr<submission<result>>> to;
        tasks.reserve(waiting_.size());
        to.reserve(waiting_.size());
        for (auto& w : waiting_) {
            if (w.to->done()) continue;
            tasks.push_back(std::move(w.task));
            to.push_back(std::move(w.to));
        }
        waiting_.clear();
        if (tasks.empty()) return {};
        ++running_;
        ++registry_->running;
        auto g = std::make_shared<group>(std::move(tasks));
        g->sink.to = std::move(to);
        return [self = this->shared_from_this(), g = std::move(g)] { self->start(g); };
    }

    void abort_waiting(std::exception_ptr e) override {
        for (auto& w : waiting_) w.to->fail(e);
        waiting_.clear();
    }

    [[nodiscard]] bool idle() const noexcept override { return running_ == 0 && waiting_.empty(); }

private:
    void start(const std::shared_ptr<group>& g) {
        auto& source = g->source;
        auto& sink = g->sink;
        start_async_call(engine_, g, source, sink, ex_, {},
                         [self = this->shared_from_this(), g](std::exception_ptr e) { self->ended(*g, e); });
    }

    // On the group's executor: a submission the group could not answer gets its error.
    void ended(group& g, std::exception_ptr e) {
        if (!e) e = std::make_exception_ptr(error("cojob::parallel::async_submit: the task's call ended without its result"));
        for (auto& to : g.sink.to) to->fail(e);
        {
            std::lock_guard lock(registry_->mutex);
            --running_;
        }
        registry_->group_ended(this);
    }

    std::shared_ptr<engine> engine_;
    std::shared_ptr<submit_registry> registry_;
    std::vector<waiting> waiting_;  ///< guarded by the registry's mutex
    std::size_t running_ = 0;       ///< groups of this queue running; guarded by the registry's mutex
};

}  // namespace cojob::detail
