// tests/common/scripted_backend.cpp - the backend tests step by hand (see the header).
#include "scripted_backend.hpp"

#include "call_state.hpp"

#include <cojob/errors.hpp>

#include <stdexcept>
#include <utility>

namespace kit {

namespace det = cojob::detail;

scripted_backend::scripted_backend(script s)
    : script_(std::move(s)),
      profile_{.name = "ScriptedBackend", .workers = script_.workers, .runs_in_submit = false,
               .min_ideal_batch_seconds = 0.2} {}

std::size_t scripted_backend::queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

bool scripted_backend::take(job& j) {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return false;
    j = std::move(queue_.front());
    queue_.pop_front();
    return true;
}

bool scripted_backend::run_next() {
    job j;
    if (!take(j)) return false;
    j.batch->run(j.call->stop_flag(), j.call->tracks_tasks());
    det::call_state::finished(std::move(j.call), std::move(j.batch));
    return true;
}

bool scripted_backend::fail_next(std::exception_ptr e) {
    job j;
    if (!take(j)) return false;
    j.batch->error = std::move(e);
    det::call_state::finished(std::move(j.call), std::move(j.batch));
    return true;
}

bool scripted_backend::lose_next() {
    return fail_next(std::make_exception_ptr(cojob::worker_died("scripted: the worker holding this batch died")));
}

int scripted_backend::interrupts() const {
    std::lock_guard lock(mutex_);
    return interrupts_;
}
int scripted_backend::calls_begun() const {
    std::lock_guard lock(mutex_);
    return begun_;
}
int scripted_backend::calls_ended() const {
    std::lock_guard lock(mutex_);
    return ended_;
}

void scripted_backend::submit(std::unique_ptr<det::batch_base> batch, std::shared_ptr<det::call_state> call) noexcept {
    std::lock_guard lock(mutex_);
    queue_.push_back(job{std::move(batch), std::move(call)});
}

void scripted_backend::begin_call(det::call_state& /*call*/) {
    {
        std::lock_guard lock(mutex_);
        ++begun_;
    }
    if (!script_.refusal.empty()) throw cojob::error(script_.refusal);
}

void scripted_backend::end_call(det::call_state& /*call*/) noexcept {
    std::lock_guard lock(mutex_);
    ++ended_;
}

det::stop_effect scripted_backend::interrupt(det::call_state& call) noexcept {
    std::deque<job> back;
    {
        std::lock_guard lock(mutex_);
        ++interrupts_;
        if (!script_.stops_batches) return {false, " (the script lets it run)"};
        for (auto it = queue_.begin(); it != queue_.end();) {
            if (it->call.get() == &call) {
                back.push_back(std::move(*it));
                it = queue_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& j : back) {
        j.batch->error = std::make_exception_ptr(cojob::cancelled("scripted: stopped before it ran"));
        det::call_state::finished(std::move(j.call), std::move(j.batch));
    }
    return {true, " (the script stopped it)"};
}

namespace {
script active;
scripted_backend* latest = nullptr;

std::unique_ptr<det::backend_base> make_scripted(const det::resolved_options& /*opts*/) {
    auto b = std::make_unique<scripted_backend>(active);
    latest = b.get();
    return b;
}
}  // namespace

scripted_scope::scripted_scope(script s) {
    if (det::backend_seam) throw std::logic_error("kit::scripted_scope: scopes do not nest");
    active = std::move(s);
    det::backend_seam = &make_scripted;
}

scripted_scope::~scripted_scope() {
    det::backend_seam = nullptr;
    latest = nullptr;
}

scripted_backend& scripted_scope::backend() const {
    if (!latest) throw std::logic_error("kit::scripted_scope: no parallel object was made in this scope");
    return *latest;
}

}  // namespace kit
