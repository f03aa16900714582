// src/process/io_thread.hpp - private: the thread on which a pool of worker processes reads and
// writes its pipes. Calls of one `parallel` object may run on any threads and executors, and a
// call whose thread is busy elsewhere (a blocking stream's consumer between two results) must
// not keep another call waiting for a worker's answer: the pool's I/O has a thread of its own.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <thread>

namespace cojob::detail::process {

class io_thread {
public:
    io_thread() = default;
    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;
    /// Lets the thread finish what is queued and end; from the thread itself (the pool went away
    /// in one of its handlers) it is left to end on its own.
    ~io_thread() {
        if (!thread_.joinable()) return;
        work_.reset();
        if (std::this_thread::get_id() == thread_.get_id())
            thread_.detach();  // it holds the io_context, and returns from run() once idle
        else
            thread_.join();
    }

    /// The io_context's executor; the thread starts on first use.
    boost::asio::any_io_executor executor() {
        if (!thread_.joinable()) {
            work_.emplace(context_->get_executor());
            thread_ = std::thread([ctx = context_] {
                for (;;) {
                    try {
                        ctx->run();
                        return;
                    } catch (...) {  // a handler threw: the others still run
                    }
                }
            });
        }
        return context_->get_executor();
    }

private:
    std::shared_ptr<boost::asio::io_context> context_ = std::make_shared<boost::asio::io_context>(1);
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::thread thread_;
};

}  // namespace cojob::detail::process
