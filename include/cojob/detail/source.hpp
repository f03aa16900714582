// cojob/detail/source.hpp - the sources of a call: what pulls tasks from the user's input into
// a staging area and cuts batches (batch.hpp) from it, for a range and, through async_source.hpp,
// for an asynchronous generator.
#pragma once

#include <cojob/detail/batch.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

namespace cojob::detail {

/// Pulls tasks from the user's input into a staging area, and cuts batches from it.
struct source_base {
    virtual ~source_base() = default;
    /// Pulls up to n more tasks; returns how many came. May throw what the input throws.
    /// An asynchronous source takes only what is ready, and sets `waiting` when it is waiting
    /// for its producer (it calls the `wake` given to `bind` once the next task is ready).
    virtual std::size_t fill(std::size_t n) = 0;
    /// Moves the first k staged tasks (k <= staged) into a new batch.
    virtual std::unique_ptr<batch_base> take(std::size_t k) = 0;
    /// Takes back a batch whose results were delivered, to reuse its buffers: fresh memory
    /// for every batch costs a page fault per 4 KiB, far more than dispatching does.
    virtual void recycle(std::unique_ptr<batch_base> b) noexcept = 0;
    /// Why the tasks cannot run in a worker process, or "" when they can.
    [[nodiscard]] virtual std::string remote_refusal() const = 0;
    /// An asynchronous source: its producer runs on `executor`, and `wake` (called there) tells
    /// the call that a task it waited for is ready. Before the first fill.
    virtual void bind(const boost::asio::any_io_executor& /*executor*/, std::function<void()> /*wake*/) {}
    /// The call has ended: an asynchronous source stops its producer where it waits.
    virtual void stop() noexcept {}

    std::size_t staged = 0;            ///< pulled, not yet in a batch
    std::size_t pulled = 0;            ///< pulled so far
    bool exhausted = false;            ///< the input has ended
    bool asynchronous = false;         ///< tasks come from a producer that may wait (see fill)
    bool waiting = false;              ///< an asynchronous source waits for its producer
    std::optional<std::size_t> total;  ///< known up front for sized ranges
};

/// The staging area and batch buffers of a source of Task, whatever feeds it.
template <class Task>
class staged_source : public source_base {
public:
    using task_type = Task;

    std::unique_ptr<batch_base> take(std::size_t k) override {
        std::unique_ptr<batch_type> b;
        if (free_.empty()) {
            b = std::make_unique<batch_type>();
        } else {
            b = std::move(free_.back());
            free_.pop_back();
        }
        if (head_ == 0 && k == staging_->tasks.size()) {
            b.swap(staging_);  // the staged tasks leave in their buffer; b's empty one stages next
        } else {
            // One by one, not insert: tasks (lambdas with captures) need not be assignable.
            auto& staged_tasks = staging_->tasks;
            reserve_present(b->tasks, k);
            for (std::size_t i = 0; i < k; ++i) b->tasks.emplace_back(std::move(staged_tasks[head_ + i]));
            head_ += k;
        }
        if (head_ >= staging_->tasks.size()) {
            staging_->tasks.clear();  // keeps its capacity for the next fill
            head_ = 0;
        }
        b->size = k;
        staged_now();
        return b;
    }

    std::string remote_refusal() const override { return detail::remote_refusal<task_type>(); }

    void recycle(std::unique_ptr<batch_base> b) noexcept override {
        if (free_.size() >= max_free) return;
        auto* typed = static_cast<batch_type*>(b.release());
        typed->reset();
        try {
            free_.emplace_back(typed);
        } catch (...) {
            delete typed;
        }
    }

protected:
    /// Stages one more task; the caller counts it in `pulled` (a loop counts once at its end).
    template <class U>
    void stage_one(U&& task) {
        staging_->tasks.emplace_back(std::forward<U>(task));
    }
    /// Stages one more task and counts it.
    template <class U>
    void stage(U&& task) {
        stage_one(std::forward<U>(task));
        ++pulled;
    }
    /// Room for n more tasks, in one allocation instead of regrowth per task.
    void reserve_more(std::size_t n) { reserve_present(staging_->tasks, staging_->tasks.size() + n); }
    /// Counts what fill staged.
    void staged_now() noexcept { staged = staging_->tasks.size() - head_; }

private:
    using batch_type = typed_batch<task_type>;
    static constexpr std::size_t max_free = 16;

    std::vector<std::unique_ptr<batch_type>> free_;
    /// Tasks pulled and not yet in a batch, from head_ on, held in a batch of their own: when
    /// a batch takes them all, that batch goes out as it is.
    std::unique_ptr<batch_type> staging_ = std::make_unique<batch_type>();
    std::size_t head_ = 0;
};

template <class T>
inline constexpr bool is_owning_view = false;
template <class T>
inline constexpr bool is_owning_view<std::ranges::owning_view<T>> = true;
template <class T>
inline constexpr bool is_owning_view<std::ranges::single_view<T>> = true;

/// A source over an input range, advanced lazily.
template <class Range>
class range_source final : public staged_source<std::ranges::range_value_t<Range>> {
public:
    explicit range_source(Range r) : range_(std::move(r)) {
        if constexpr (std::ranges::sized_range<Range>)
            this->total = static_cast<std::size_t>(std::ranges::size(range_));
    }

    std::size_t fill(std::size_t n) override {
        if (this->exhausted || n == 0) return 0;
        const auto& total = this->total;
        // A sized input needs no step past its end: at most what is left of it.
        if (total) n = std::min(n, *total - this->pulled);
        this->reserve_more(total ? n : std::min<std::size_t>(n, 1 << 16));
        // Advance lazily, just before taking the next task, so a generator-like range produces
        // nothing beyond what the window asks for. The iterator lives in a local while the loop
        // runs: kept in the member, every step would store and reload it.
        struct progress {  // written back however the loop ends (the input may throw)
            range_source& self;
            std::ranges::iterator_t<Range> it;
            bool started;
            std::size_t got = 0;
            ~progress() {
                if (started) self.it_.emplace(std::move(it));
                self.pulled += got;
                if (self.total && self.pulled == *self.total) self.exhausted = true;
                self.staged_now();
            }
        };
        const bool resumed = it_.has_value();
        progress p{*this, resumed ? std::move(*it_) : std::ranges::begin(range_), resumed};
        it_.reset();
        const auto end = std::ranges::end(range_);
        for (; p.got < n; ++p.got) {
            if (p.started) ++p.it;
            p.started = true;
            if (p.it == end) {
                this->exhausted = true;
                break;
            }
            if constexpr (owns_elements)
                this->stage_one(std::ranges::iter_move(p.it));  // an rvalue range: move its tasks out
            else
                this->stage_one(*p.it);
        }
        return p.got;
    }

private:
    static constexpr bool owns_elements = is_owning_view<Range>;

    Range range_;
    std::optional<std::ranges::iterator_t<Range>> it_;
};

}  // namespace cojob::detail
