// cojob/detail/outcomes.hpp - the sinks of a `keep_going` call: an outcome for every task, in a
// list or a stream. The call hands them batches that returned and, for a task that failed for
// good, a batch of that one task whose `error` and `origin` say how (src/call_failures.cpp).
#pragma once

#include <cojob/detail/batch.hpp>
#include <cojob/detail/stream_state.hpp>
#include <cojob/outcome.hpp>

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace cojob::detail {

/// Appends the outcomes of a delivered batch: one per task that returned (its result moved
/// from `results`), then the failure the batch may carry.
template <class R, class Results>
void append_outcomes(batch_base& b, Results& results, std::vector<outcome<R>>& out) {
    outcome_record_ptr retried;  // a task that returned at a later attempt says so
    if (b.attempt > 1) {
        auto r = boost::intrusive_ptr<outcome_record>(new outcome_record);
        r->attempts = b.attempt;
        retried = std::move(r);
    }
    if constexpr (std::is_void_v<R>) {
        (void)results;
        for (std::size_t i = b.error ? 1 : 0; i < b.size; ++i) out.emplace_back(retried);
    } else if (retried) {
        for (auto&& v : results) {  // auto&&: a vector<bool> hands out proxies
            R value(std::move(v));
            out.emplace_back(retried, &value);
        }
    } else {
        for (auto&& v : results) out.emplace_back(std::move(v));
    }
    if (b.error) {
        auto r = boost::intrusive_ptr<outcome_record>(new outcome_record);
        r->attempts = b.attempt;
        r->error = b.error;
        if (b.origin) r->failure = *b.origin;
        if constexpr (std::is_void_v<R>)
            out.emplace_back(std::move(r));
        else
            out.emplace_back(std::move(r), nullptr);
    }
}

/// Collects the outcomes of a keep_going call, in input order.
template <class Task>
struct outcome_sink final : sink_base {
    using result = typename Task::result_type;
    outcome_sink() noexcept : sink_base(delivery::list, true) {}
    std::vector<outcome<result>> out;

    void expect(std::size_t results) override { reserve_huge(out, results); }
    void accept(batch_base& b) override {
        ahead_.room(out, b.size);
        append_outcomes<result>(b, static_cast<typed_batch<Task>&>(b).results, out);
    }

private:
    present_ahead ahead_;
};

/// A keep_going list call: its source and its outcomes.
template <class Source>
using outcome_call = list_call<Source, outcome_sink>;

/// A keep_going stream over a source of tasks: hands out each task's outcome.
template <class Source>
class outcome_stream_call final : public stream_state<outcome<typename Source::task_type::result_type>> {
    using task_type = typename Source::task_type;
    using result = typename task_type::result_type;
    using base = stream_state<outcome<result>>;

public:
    template <class Input>
    outcome_stream_call(std::shared_ptr<engine> eng, bool completion_order, Input&& in)
        : base(std::move(eng), completion_order, true), source_(std::forward<Input>(in)) {}

    void accept(batch_base& b) override {
        auto& results = static_cast<typed_batch<task_type>&>(b).results;
        if constexpr (!std::is_void_v<result>) {
            if (b.deferred) {  // still in a worker's memory: read now, an outcome wraps each
                results = read_deferred<result>(*b.deferred);
                b.deferred.reset();
            }
        }
        std::vector<outcome<result>> out;
        out.reserve(b.size);
        append_outcomes<result>(b, results, out);
        if constexpr (!std::is_void_v<result>) results.clear();  // moved from
        this->push(std::move(out));
    }

private:
    source_base& source() noexcept override { return source_; }

    Source source_;
};

}  // namespace cojob::detail
