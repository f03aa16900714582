// src/parallel.cpp - the `parallel` object: builds the engine, and drives calls either from
// the caller's thread (blocking) or on the completion handler's executor (async_run).
#include <cojob/parallel.hpp>

#include "call_driver.hpp"
#include "engine.hpp"
#include "pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace cojob {

namespace asio = boost::asio;

namespace detail {

namespace {

// par(range) and async_run return a list: a generator is asked for with par.stream(range).
void check_list(const engine& e) {
    if (e.opts.return_as != cojob::return_as::list)
        throw error(std::string("cojob::parallel: options.return_as=") +
                    (e.opts.return_as == cojob::return_as::generator ? "generator" : "generator_unordered") +
                    " makes results a stream, which par(range) and async_run cannot return (they return a "
                    "std::vector); call par.stream(range) instead, or leave return_as at list");
}

}  // namespace
}  // namespace detail

parallel::parallel(options opts) : engine_(std::make_shared<detail::engine>(detail::resolve(opts))) {}

parallel::parallel(const pool& workers, options opts)
    : engine_(std::make_shared<detail::engine>(detail::resolve(opts, workers.state_->workers),
                                               workers.state_->backend)) {}

parallel::~parallel() {
    // Submissions still waiting for a group complete with operation_aborted.
    submits_->close();
    // Async calls still running keep the engine alive; they are told to stop and complete
    // with operation_aborted on their own executors.
    if (engine_->cancel_all() > 0) return;
    // No call is running, but a task abandoned by a timeout may still hold a worker (and,
    // through its call, the engine): release the workers now, waiting for that task (a pool's
    // workers only when this was the last runner on a pool that is gone). What came back
    // meanwhile holds the engine from its own io_contexts: run them now.
    engine_->backend.reset();
    engine_->drain_contexts();
}

cojob::order parallel::stream_order() const noexcept {
    return engine_->opts.return_as == cojob::return_as::generator_unordered ? cojob::order::completion
                                                                             : cojob::order::input;
}

int parallel::n_jobs() const noexcept { return engine_->opts.n_jobs; }
cojob::backend parallel::backend() const noexcept { return engine_->opts.kind; }
const std::optional<task_failure>& parallel::last_failure() const noexcept {
    try {
        return engine_->last_failure();
    } catch (...) {  // std::mutex::lock failing
        static const std::optional<task_failure> none;
        return none;
    }
}

void parallel::run_blocking(detail::source_base& source, detail::sink_base& sink) {
    detail::check_list(*engine_);
    detail::call_driver driver(engine_);
    bool done = false;
    std::exception_ptr failure;
    driver.start(source, sink, nullptr, std::nullopt, {},
                 {.ended = [&](std::exception_ptr e) {
                      done = true;
                      failure = std::move(e);
                  },
                  .interrupted = {}});
    driver.drive([&] { return done; });
    driver.drain();
    if (driver.take_interrupted())
        throw cancelled("cojob: the call was interrupted (SIGINT); the worker processes running its tasks were "
                        "stopped");
    if (failure) std::rethrow_exception(failure);
}

void detail::start_async_call(const std::shared_ptr<engine>& eng, std::shared_ptr<void> keep_alive,
                              source_base& source, sink_base& sink, asio::any_io_executor ex,
                              asio::cancellation_slot slot, asio::any_completion_handler<void(std::exception_ptr)> done) {
    // The driver lives with the call's own state until the call has ended.
    struct async_call {
        async_call(std::shared_ptr<void> u, std::shared_ptr<engine> e) : user(std::move(u)), driver(std::move(e)) {}
        std::shared_ptr<void> user;
        call_driver driver;
    };
    auto held = std::make_shared<async_call>(std::move(keep_alive), eng);
    call_driver& driver = held->driver;
    try {
        check_list(*eng);
    } catch (...) {
        asio::post(ex, [d = std::move(done), err = std::current_exception()]() mutable { std::move(d)(err); });
        return;
    }
    // std::function needs a copyable target: the move-only handler is shared.
    auto handler = std::make_shared<asio::any_completion_handler<void(std::exception_ptr)>>(std::move(done));
    driver.start(source, sink, held, asio::make_strand(ex), slot,
                 {.ended = [handler](std::exception_ptr failure) { std::move (*handler)(std::move(failure)); },
                  .interrupted = {}});
}

void detail::note_last_failure(engine& eng, std::optional<task_failure> failure) noexcept {
    try {
        eng.set_last_failure(std::move(failure));
    } catch (...) {  // no room for the thread's slot: the handler runs all the same
    }
}

}  // namespace cojob
