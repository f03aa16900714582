// src/backend_sequential.cpp - runs each batch on the scheduler's own thread, at once.
#include "engine.hpp"

namespace cojob::detail {

namespace {

class sequential_backend final : public backend_base {
public:
    const char* name() const noexcept override { return backend_name(cojob::backend::sequential); }
    bool inline_completion() const noexcept override { return true; }
    double min_ideal_batch_seconds() const noexcept override { return 50e-6; }
    void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) override {
        batch->run(call->stop, false);
        call_state::finished(std::move(call), std::move(batch));
    }
};

}  // namespace

std::unique_ptr<backend_base> make_sequential_backend() { return std::make_unique<sequential_backend>(); }

}  // namespace cojob::detail
