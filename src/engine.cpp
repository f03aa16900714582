// src/engine.cpp - what the calls of one `parallel` object share (see engine.hpp).
#include "engine.hpp"

#include "call_state.hpp"

#include <algorithm>

namespace cojob::detail {

engine::engine(resolved_options o) : engine(std::move(o), nullptr) {}

engine::engine(resolved_options o, std::shared_ptr<backend_base> shared)
    : opts(std::move(o)), backend(shared ? std::move(shared) : make_backend(opts)) {
    sizer_.configure(opts.batch_size, backend->profile().min_ideal_batch_seconds);
}

engine::~engine() { backend.reset(); }

batch_sizer engine::sizer() const {
    std::lock_guard lock(mutex_);
    return sizer_;
}

void engine::keep_sizer(const batch_sizer& tuned) {
    std::lock_guard lock(mutex_);
    sizer_ = tuned;
}

boost::asio::io_context& engine::take_context() {
    std::lock_guard lock(mutex_);
    if (!free_contexts_.empty()) {
        auto* ctx = free_contexts_.back();
        free_contexts_.pop_back();
        return *ctx;
    }
    // Reserved first: giving a context back must not allocate.
    free_contexts_.reserve(contexts_.size() + 1);
    return *contexts_.emplace_back(std::make_unique<boost::asio::io_context>(1));
}

void engine::give_back_context(boost::asio::io_context& ctx) noexcept {
    std::lock_guard lock(mutex_);
    free_contexts_.push_back(&ctx);
}

void engine::drain_contexts() noexcept {
    std::vector<boost::asio::io_context*> all;
    try {
        std::lock_guard lock(mutex_);
        for (auto& c : contexts_) all.push_back(c.get());
    } catch (...) {
        return;
    }
    for (auto* ctx : all) {
        try {
            ctx->restart();
            while (ctx->poll() > 0) {
            }
        } catch (...) {
        }
    }
}

void engine::call_started(const std::shared_ptr<call_state>& call) {
    std::lock_guard lock(mutex_);
    std::erase_if(calls_, [](const auto& c) { return c.second.expired(); });
    calls_.emplace_back(call.get(), call);
}

void engine::call_ended(const call_state* call) noexcept {
    std::lock_guard lock(mutex_);
    std::erase_if(calls_, [call](const auto& c) { return c.first == call; });
}

std::size_t engine::cancel_all() {
    std::vector<std::shared_ptr<call_state>> running;
    {
        std::lock_guard lock(mutex_);
        for (auto& c : calls_)
            if (auto p = c.second.lock()) running.push_back(std::move(p));
    }
    std::size_t told = 0;
    for (auto& c : running) told += c->cancel_from_anywhere();
    return told;
}

namespace {

/// The failure slots this thread has, erased when it ends.
class thread_slots {
public:
    thread_slots() = default;
    thread_slots(const thread_slots&) = delete;
    thread_slots& operator=(const thread_slots&) = delete;
    ~thread_slots() {
        const auto id = std::this_thread::get_id();
        for (auto& weak : held_)
            if (auto slots = weak.lock()) {
                std::lock_guard lock(slots->mutex);
                slots->by_thread.erase(id);
            }
    }
    void add(const std::shared_ptr<failure_slots>& slots) {
        std::erase_if(held_, [](const auto& w) { return w.expired(); });  // engines gone since
        held_.push_back(slots);
    }

private:
    std::vector<std::weak_ptr<failure_slots>> held_;
};

thread_local thread_slots this_thread_slots;

}  // namespace

const std::optional<task_failure>& engine::last_failure() const {
    static const std::optional<task_failure> none;
    std::lock_guard lock(failures_->mutex);
    const auto it = failures_->by_thread.find(std::this_thread::get_id());
    return it == failures_->by_thread.end() ? none : it->second;
}

void engine::set_last_failure(std::optional<task_failure> f) {
    std::optional<task_failure>* slot = nullptr;
    {
        std::lock_guard lock(failures_->mutex);
        const auto id = std::this_thread::get_id();
        auto it = failures_->by_thread.find(id);
        if (it == failures_->by_thread.end()) {
            // A thread gets a slot only once a call of its own fails.
            if (!f) return;
            it = failures_->by_thread.try_emplace(id).first;
            this_thread_slots.add(failures_);
        }
        slot = &it->second;
    }
    *slot = std::move(f);  // only this thread writes its slot
}

std::size_t engine::failure_slot_count() const {
    std::lock_guard lock(failures_->mutex);
    return failures_->by_thread.size();
}

}  // namespace cojob::detail
