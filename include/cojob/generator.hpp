// cojob/generator.hpp - cojob::generator<T>: a function that `co_yield`s values, as a lazy
// input range, the C++ twin of a Python generator feeding joblib's Parallel.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

namespace cojob {

/// A coroutine that produces values with `co_yield`, read as a one-pass range: its body runs up
/// to the next `co_yield` each time the reader steps the iterator, so a `parallel` call fed by
/// it produces exactly as far as its `pre_dispatch` window asks.
///
/// @code
/// cojob::generator<int> producer() {
///     for (int i = 0; i < 6; ++i) co_yield i;
/// }
/// auto out = par(producer() | std::views::transform([](int i) { return cojob::delayed(f)(i); }));
/// @endcode
///
/// `generator<T>` hands out `T&&`: a value yielded as an rvalue is read (or moved from) where the
/// body left it, an lvalue is copied first; move-only types work. `generator<T&>` hands out
/// `T&`, the object the body yielded. It is a view (move-only) and an input range: `begin()` may
/// be called once. An exception thrown by the body comes out of the `begin()` or `++` that
/// resumed it, and ends the generator. Destroying a generator suspended at a `co_yield`
/// destroys its body's locals there (a call that ends early does). The body may not `co_await`
/// (a synchronous generator: it runs on the reader's thread).
template <class T>
class generator : public std::ranges::view_interface<generator<T>> {
    static_assert(!std::is_rvalue_reference_v<T>, "cojob::generator<T&&>: use generator<T>, which hands out T&&");

public:
    /// The values it yields, without reference or const.
    using value_type = std::remove_cvref_t<T>;
    /// What the iterator hands out: T& for generator<T&>, else T&&.
    using reference = std::conditional_t<std::is_reference_v<T>, T, T&&>;

    /// The coroutine's side, which the compiler drives: users never name it.
    class promise_type {
    public:
        /// The generator a call of the coroutine returns.
        generator get_return_object() noexcept {
            return generator(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        /// Lazy: the body starts at the first `begin()`.
        std::suspend_always initial_suspend() const noexcept { return {}; }
        /// Stays suspended at its end, so the generator can tell it is done.
        std::suspend_always final_suspend() const noexcept { return {}; }

        /// The yielded object lives in the body until it resumes: hand out its address.
        std::suspend_always yield_value(std::remove_reference_t<reference>& v) noexcept
            requires std::is_reference_v<T>
        {
            current_ = std::addressof(v);
            return {};
        }
        /// An rvalue of a generator<T>: handed out where it is, until the body resumes.
        std::suspend_always yield_value(value_type&& v) noexcept
            requires(!std::is_reference_v<T>)
        {
            current_ = std::addressof(v);
            return {};
        }
        /// An lvalue of a generator<T>: the reader may move from what it gets, so it gets a copy.
        std::suspend_always yield_value(const value_type& v)
            requires(!std::is_reference_v<T> && std::is_copy_constructible_v<value_type>)
        {
            copy_.reset();  // before the copy: a throwing copy leaves nothing half made
            copy_.emplace(v);
            current_ = std::addressof(*copy_);
            return {};
        }

        /// The body ended.
        void return_void() const noexcept {}
        /// The body threw: kept for the step that resumed it to rethrow.
        void unhandled_exception() noexcept { failure_ = std::current_exception(); }

        /// A synchronous generator: its body runs on the reader's thread and cannot wait.
        template <class U>
        std::suspend_never await_transform(U&&) = delete;

    private:
        friend class generator;
        std::remove_reference_t<reference>* current_ = nullptr;
        std::optional<value_type> copy_;  ///< the copy of the last lvalue yielded (generator<T>)
        std::exception_ptr failure_;
    };

    /// An input iterator over the values, compared with std::default_sentinel for the end.
    class iterator {
    public:
        /// See generator::value_type.
        using value_type = generator::value_type;
        /// Required of an iterator; never used.
        using difference_type = std::ptrdiff_t;

        iterator() = default;

        /// The value the body yielded last.
        reference operator*() const noexcept { return static_cast<reference>(*handle_.promise().current_); }
        /// Runs the body to its next `co_yield` or its end. @throws what the body threw.
        iterator& operator++() {
            resume(handle_);
            return *this;
        }
        /// As `++it`.
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.handle_.done(); }

    private:
        friend class generator;
        explicit iterator(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
        std::coroutine_handle<promise_type> handle_;
    };

    /// Takes over `other`'s body; `other` is left empty.
    generator(generator&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    /// Destroys this generator's body, then takes over `other`'s.
    generator& operator=(generator&& other) noexcept {
        if (this != &other) {
            if (handle_) handle_.destroy();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    generator(const generator&) = delete;
    generator& operator=(const generator&) = delete;
    /// Destroys the body where it stopped (its locals with it).
    ~generator() {
        if (handle_) handle_.destroy();
    }

    /// Runs the body to its first `co_yield` (or its end). Call once.
    /// @throws what the body threw before it.
    iterator begin() {
        resume(handle_);
        return iterator(handle_);
    }
    /// The end: an iterator equals it once the body has ended.
    [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }

private:
    explicit generator(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}

    static void resume(std::coroutine_handle<promise_type> h) {
        h.resume();
        if (auto failure = std::exchange(h.promise().failure_, nullptr)) std::rethrow_exception(failure);
    }

    std::coroutine_handle<promise_type> handle_;
};

}  // namespace cojob
