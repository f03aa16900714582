// src/mpi/rank_listener.hpp - private: a worker rank's second thread, which answers rank 0's
// take-backs (src/request_gate.hpp) while the rank's main thread runs a task: rank 0 asks for
// the request the rank holds behind its running one, and the listener gives it back unless the
// rank has started it. It polls with the shared backoff (a probe every 4 ms when idle) and
// exists only when MPI may be called from two threads at once.
#pragma once

#include "../request_gate.hpp"

#include <atomic>
#include <thread>

namespace cojob::detail::mpi {

class take_back_listener {
public:
    /// Starts answering for `gate`.
    explicit take_back_listener(request_gate& gate);
    /// Stops answering (before the rank says bye) and joins the thread.
    ~take_back_listener();
    take_back_listener(const take_back_listener&) = delete;
    take_back_listener& operator=(const take_back_listener&) = delete;

private:
    void loop() noexcept;
    /// Answers the questions that came; true when one did.
    bool answer();

    request_gate* gate_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace cojob::detail::mpi
