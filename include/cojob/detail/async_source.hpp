// cojob/detail/async_source.hpp - a call's source over a cojob::async_generator of tasks: the
// body runs on the call's executor, only when the pre_dispatch window asks for a task.
#pragma once

#include <cojob/async_generator.hpp>
#include <cojob/detail/source.hpp>

#include <cstddef>
#include <functional>
#include <utility>

namespace cojob::detail {

template <class Task>
class async_source final : public staged_source<Task> {
public:
    explicit async_source(async_generator<Task> g) : gen_(std::move(g)), body_(async_reader::body(gen_)) {
        this->asynchronous = true;
    }

    void bind(const boost::asio::any_io_executor& executor, std::function<void()> wake) override {
        executor_ = executor;
        wake_ = std::move(wake);
    }

    /// Takes what the body yields without waiting; stops at the first operation it waits for.
    std::size_t fill(std::size_t n) override {
        std::size_t got = 0;
        while (got < n && !this->exhausted && !this->waiting) {
            switch (async_reader::step(body_, executor_, &arrived, this)) {
            case async_reader::state::ready:
                this->stage(async_reader::take(body_));
                ++got;
                break;
            case async_reader::state::ended:
                this->exhausted = true;
                break;
            case async_reader::state::waiting:
                this->waiting = true;
                break;
            }
        }
        this->staged_now();
        return got;
    }

    void stop() noexcept override {
        stopped_ = true;
        async_reader::stop(body_);
    }

private:
    /// The body yielded or ended after waiting (on the call's executor).
    static void arrived(void* self) {
        auto& s = *static_cast<async_source*>(self);
        s.waiting = false;
        if (!s.stopped_ && s.wake_) s.wake_();
    }

    async_generator<Task> gen_;
    async_reader::handle<Task> body_;
    boost::asio::any_io_executor executor_;
    std::function<void()> wake_;
    bool stopped_ = false;
};

}  // namespace cojob::detail
