// src/parallel.cpp - the `parallel` object: builds the engine, and drives calls either from
// the caller's thread (blocking) or on the completion handler's executor (async_run).
#include <cojob/parallel.hpp>

#include "engine.hpp"
#include "mpi_link.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>

#include <signal.h>

#include <thread>

namespace cojob {

namespace asio = boost::asio;

namespace detail {

engine::engine(resolved_options o) : opts(std::move(o)) {
    switch (opts.kind) {
        case cojob::backend::sequential: backend = make_sequential_backend(); break;
        case cojob::backend::processes: backend = make_processes_backend(opts); break;
        case cojob::backend::mpi: backend = make_mpi_backend(opts); break;
        default: backend = make_threads_backend(opts.n_jobs); break;
    }
    sizer.configure(opts.batch_size, backend->min_ideal_batch_seconds());
}

// The backend goes first: worker pipes may be registered with blocking_context.
engine::~engine() { backend.reset(); }

namespace {

// Marks the engine busy for one call, or refuses a second one (joblib: "already running").
void claim(engine& e) {
    // par(range) and async_run return a list: a generator is asked for with par.stream(range).
    if (e.opts.return_as != cojob::return_as::list)
        throw error(std::string("cojob::parallel: options.return_as=") +
                    (e.opts.return_as == cojob::return_as::generator ? "generator" : "generator_unordered") +
                    " makes results a stream, which par(range) and async_run cannot return (they return a "
                    "std::vector); call par.stream(range) instead, or leave return_as at list");
    if (e.running.exchange(true))
        throw error("cojob::parallel: this parallel object is already running a call; "
                    "wait for it to finish, or use a second parallel object");
}

}  // namespace
}  // namespace detail

parallel::parallel(options opts) : engine_(std::make_shared<detail::engine>(detail::resolve(opts))) {}

parallel::~parallel() {
    // An async call still running keeps the engine alive; it is told to stop and completes
    // with operation_aborted on its own executor.
    if (auto call = engine_->active_async.lock(); call && call->cancel_from_anywhere()) return;
    // No call is running, but a task abandoned by a timeout may still hold a worker (and,
    // through its call, the engine): release the workers now, waiting for that task.
    engine_->backend.reset();
}

cojob::order parallel::stream_order() const noexcept {
    return engine_->opts.return_as == cojob::return_as::generator_unordered ? cojob::order::completion
                                                                             : cojob::order::input;
}

int parallel::n_jobs() const noexcept { return engine_->opts.n_jobs; }
cojob::backend parallel::backend() const noexcept { return engine_->opts.kind; }
const std::optional<task_failure>& parallel::last_failure() const noexcept { return engine_->last_failure; }

void parallel::run_blocking(detail::source_base& source, detail::sink_base& sink) {
    detail::engine& e = *engine_;
    detail::claim(e);
    struct release {
        detail::engine& e;
        ~release() { e.running.store(false); }
    } release_on_exit{e};
    e.last_failure.reset();

    auto& ctx = e.blocking_context;
    ctx.restart();
    auto call = std::make_shared<detail::call_state>(engine_, source, sink, nullptr, ctx.get_executor());
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(ctx, detail::schedule(call), [&](std::exception_ptr ex) {
        done = true;
        failure = ex ? ex : call->result();
    });
    // Ctrl-C stops the workers of a processes call and ends it with cojob::cancelled, when the
    // program has not claimed SIGINT for itself (Asio restores the default afterwards).
    std::optional<asio::signal_set> interrupt_signal;
    bool interrupted = false;
    if (e.opts.kind == cojob::backend::processes) {
        struct sigaction current {};
        if (::sigaction(SIGINT, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
            interrupt_signal.emplace(ctx, SIGINT);
            interrupt_signal->async_wait([&interrupted, call](boost::system::error_code ec, int) {
                if (ec) return;
                interrupted = true;
                call->request_cancel();
            });
        }
    }
    auto work = asio::make_work_guard(ctx);
    detail::backend_base& be = *e.backend;
    while (!done) {
        if (ctx.poll() > 0) continue;
        if (be.help(*call)) continue;  // inside a worker: run our own queued batches
        // Spin a little before sleeping in the kernel: completions often follow closely.
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        bool ran = false;
        while (!done && std::chrono::steady_clock::now() < spin_until) {
            if (ctx.poll() > 0) {
                ran = true;
                break;
            }
            std::this_thread::yield();
        }
        if (!ran && !done) ctx.run_one();
    }
    if (interrupt_signal) {
        interrupt_signal->cancel();
        ctx.poll();  // runs the cancelled wait's handler now, not in the next call
        interrupt_signal.reset();
    }
    if (interrupted)
        throw cancelled("cojob: the call was interrupted (SIGINT); the worker processes running its tasks were "
                        "stopped");
    if (failure) std::rethrow_exception(failure);
}

void parallel::start_async(std::shared_ptr<void> keep_alive, detail::source_base& source, detail::sink_base& sink,
                           asio::any_io_executor ex, asio::cancellation_slot slot,
                           asio::any_completion_handler<void(std::exception_ptr)> done) {
    detail::engine& e = *engine_;
    try {
        detail::claim(e);
    } catch (...) {
        asio::post(ex, [d = std::move(done), err = std::current_exception()]() mutable { std::move(d)(err); });
        return;
    }
    e.last_failure.reset();
    asio::any_io_executor strand = asio::make_strand(ex);
    auto call = std::make_shared<detail::call_state>(engine_, source, sink, std::move(keep_alive), strand);
    e.active_async = call;
    if (slot.is_connected()) {
        slot.assign([call](asio::cancellation_type type) {
            if (type != asio::cancellation_type::none) call->cancel_from_anywhere();
        });
    }
    asio::co_spawn(strand, detail::schedule(call),
                   [call, slot, d = std::move(done)](std::exception_ptr ex) mutable {
                       if (slot.is_connected()) slot.clear();
                       call->eng->running.store(false);
                       auto failure = ex ? ex : call->result();
                       auto keep = std::move(call->keep_alive);  // results live until the handler ran
                       call.reset();
                       std::move(d)(failure);
                   });
}

}  // namespace cojob
