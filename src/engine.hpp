// src/engine.hpp - private: what a `parallel` object owns and its calls share: the resolved
// options, the backend and its workers, the tuned batch size, and the io_context on which
// blocking calls run.
#pragma once

#include "backend.hpp"
#include "progress.hpp"
#include "resolved_options.hpp"

#include <cojob/errors.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <optional>

namespace cojob::detail {

class call_state;

class engine {
public:
    explicit engine(resolved_options o);
    /// The backend goes first: worker pipes may be registered with blocking_context.
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    resolved_options opts;
    std::unique_ptr<backend_base> backend;
    batch_sizer sizer;                   ///< tuned size carries over between calls (joblib's `with`)
    boost::asio::io_context blocking_context{1};
    std::atomic<bool> running{false};    ///< a call holds the engine (see call_driver)
    std::optional<task_failure> last_failure;
    std::weak_ptr<call_state> active_async;  ///< for cancellation by the destructor
};

}  // namespace cojob::detail
