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

const std::optional<task_failure>& engine::last_failure() const {
    static const std::optional<task_failure> none;
    std::lock_guard lock(mutex_);
    const auto it = failures_.find(std::this_thread::get_id());
    return it == failures_.end() ? none : it->second;
}

void engine::set_last_failure(std::optional<task_failure> f) {
    std::optional<task_failure>* slot = nullptr;
    {
        std::lock_guard lock(mutex_);
        const auto id = std::this_thread::get_id();
        if (f) {
            slot = &failures_[id];
        } else {
            // A thread gets a slot only once a call of its own fails: a service whose handlers
            // come and go on fresh threads leaves no slot behind for each of them.
            const auto it = failures_.find(id);
            if (it == failures_.end()) return;
            slot = &it->second;
        }
    }
    *slot = std::move(f);  // only this thread writes its slot
}

}  // namespace cojob::detail
