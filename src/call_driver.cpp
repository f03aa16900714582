// src/call_driver.cpp - one call's start and end, for every form of call (see the header).
#include "call_driver.hpp"

#include <boost/asio/co_spawn.hpp>

namespace cojob::detail {

namespace asio = boost::asio;

call_driver::call_driver(std::shared_ptr<engine> eng) noexcept : eng_(std::move(eng)) {}

call_driver::~call_driver() {
    watch_.reset();
    work_.reset();
    if (context_) eng_->give_back_context(*context_);
}

void call_driver::start(source_base& source, sink_base& sink, std::shared_ptr<void> keep_alive,
                        std::optional<asio::any_io_executor> executor, asio::cancellation_slot slot,
                        call_hooks hooks) {
    engine& e = *eng_;
    hooks_ = std::move(hooks);
    const bool blocking = !executor;
    if (blocking) {
        if (!context_) context_ = &e.take_context();
        context_->restart();
        executor = context_->get_executor();
        work_.emplace(context_->get_executor());
    }
    call_ = std::make_shared<call_state>(eng_, source, sink, std::move(keep_alive), *executor, blocking);
    e.call_started(call_);
    if (blocking) {
        call_->on_interrupt(std::move(hooks_.interrupted));
        watch_ = e.backend->watch_interrupts(*context_, call_);
    }
    if (slot.is_connected()) {
        slot_ = slot;
        slot_.assign([call = call_](asio::cancellation_type type) {
            if (type != asio::cancellation_type::none) call->cancel_from_anywhere();
        });
    }
    asio::co_spawn(*executor, schedule(call_), [this, call = call_](std::exception_ptr ex) {
        ended(ex ? ex : call->result());
    });
}

void call_driver::ended(std::exception_ptr failure) noexcept {
    watch_.reset();
    work_.reset();
    if (slot_.is_connected()) slot_.clear();
    slot_ = {};
    auto call = std::move(call_);
    eng_->call_ended(call.get());
    // Told on the thread that ends the call: the caller's for a blocking call, and for an async
    // one the thread about to run its completion handler (parallel::last_failure).
    try {
        eng_->set_last_failure(call->take_failure());
    } catch (...) {
    }
    interrupted_ = call->interrupted();
    batches_out_ = call->left_batches_out();
    // The call may outlive its form (a batch still on a worker holds it): a late interrupt
    // handler must not reach the form's hook.
    call->on_interrupt(nullptr);
    // What the caller kept alive (an async call's results, and maybe this driver) lives until
    // the hook has run; nothing here touches `this` after it.
    auto keep = call->release_keep_alive();
    auto hook = std::move(hooks_.ended);
    call.reset();
    if (hook) hook(std::move(failure));
}

void call_driver::drain() noexcept {
    // A call that ended with every batch back left nothing queued that holds it.
    if (!std::exchange(batches_out_, false) || !context_) return;
    try {
        context_->restart();
        while (context_->poll() > 0) {
        }
    } catch (...) {
    }
}

}  // namespace cojob::detail
