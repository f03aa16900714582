// src/mpi/backend_mpi.cpp - backend::mpi (the cojob-mpi library): rank 0 runs main and
// dispatches batches to the other ranks of the job, which serve them inside cojob::init.
//
// A batch's trip: this adapter hands it to the hub (hub.cpp), the one thread of rank 0 that
// talks to MPI; the hub sends it to a rank as a request frame (transport.cpp), after the large
// arrays it names (mpi_blocks.hpp); the rank runs it and answers (rank_worker.cpp); the hub
// hands the answer back to its call. mpi_runtime.cpp starts MPI on every rank and ends it.
// Ranks cannot be interrupted: a call that stops takes back the batches not sent yet, and the
// ones sent run to their end.
#include "backend_mpi.hpp"

#include <cojob/errors.hpp>

#include "../call_state.hpp"
#include "hub.hpp"

#include <optional>
#include <string>
#include <utility>

namespace cojob::detail::mpi {
namespace {

class mpi_backend final : public backend_base {
public:
    explicit mpi_backend(const resolved_options& o)
        : profile_{.name = backend_name(cojob::backend::mpi), .workers = static_cast<std::size_t>(o.n_jobs),
                   .runs_in_submit = false, .min_ideal_batch_seconds = 0.2},
          ranks_(o.n_jobs) {}
    ~mpi_backend() override {
        if (the_hub) the_hub->wait_idle(this);
    }

    const dispatch_profile& profile() const noexcept override { return profile_; }

    void begin_call(call_state& call) override {
        if (!the_hub) throw error("cojob: backend=mpi is not running (MPI ended, or this is not rank 0)");
        if (std::string why = call.remote_refusal(); !why.empty())
            throw error("cojob: backend=mpi cannot run these tasks: " + why + " (backend=threads runs any callable)");
    }
    void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) noexcept override {
        // Runners on one pool may set max_nbytes differently: each call brings its own.
        const auto max_nbytes = call->options().max_nbytes;
        the_hub->submit(mpi_job{std::move(batch), std::move(call), this, ranks_, max_nbytes});
    }
    /// Ranks cannot be stopped: the batches not sent yet come back, the others run to their end.
    stop_effect interrupt(call_state& call) noexcept override {
        try {
            the_hub->withdraw(call);
        } catch (...) {
        }
        return {false, " (its rank keeps running it until it returns)"};
    }
    void end_call(call_state& call) noexcept override {
        try {
            the_hub->end_call(call);
        } catch (...) {
        }
    }

private:
    dispatch_profile profile_;
    int ranks_;
};

}  // namespace

std::unique_ptr<backend_base> make_backend(const resolved_options& opts) { return std::make_unique<mpi_backend>(opts); }

}  // namespace cojob::detail::mpi
