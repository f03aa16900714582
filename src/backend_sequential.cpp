// src/backend_sequential.cpp - runs each batch on the scheduler's own thread, at once.
#include "backend.hpp"
#include "call_state.hpp"
#include "util.hpp"

namespace cojob::detail {

namespace {

class sequential_backend final : public backend_base {
public:
    const dispatch_profile& profile() const noexcept override {
        static constexpr dispatch_profile p{.name = nullptr, .workers = 1, .runs_in_submit = true,
                                            .min_ideal_batch_seconds = 50e-6};
        return p;
    }
    void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) noexcept override {
        batch->worker = 0;
        if (batch->record_times) batch->thread = this_thread_id();
        batch->run(call->stop_flag(), false);
        call_state::finished(std::move(call), std::move(batch));
    }
};

}  // namespace

std::unique_ptr<backend_base> make_sequential_backend() { return std::make_unique<sequential_backend>(); }

}  // namespace cojob::detail
