// cojob/delayed.hpp - `delayed(f)(args...)`: a task value, the function plus its arguments.
#pragma once

#include <cojob/detail/describe.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace cojob {

/// A call waiting to happen: a callable and the arguments it will be given, owned by value.
///
/// Made by `delayed(f)(args...)`. Running it (`task()`) passes the stored arguments as lvalues,
/// so they stay intact for error reports; arguments that only work as rvalues (move-only
/// types taken by value) are moved in instead.
///
/// @par Thread safety
/// A task is a plain value: distinct tasks may run concurrently; one task runs once.
template <class F, class... Args>
class task {
    static constexpr bool by_lvalue = std::is_invocable_v<F&, Args&...>;
    static_assert(by_lvalue || std::is_invocable_v<F&&, Args&&...>,
                  "cojob::delayed(f)(args...): f cannot be called with these arguments");
    using raw_result = typename std::conditional_t<by_lvalue, std::invoke_result<F&, Args&...>,
                                          std::invoke_result<F&&, Args&&...>>::type;

public:
    /// What running the task yields (references decay to values).
    using result_type = std::conditional_t<std::is_void_v<raw_result>, void, std::remove_cvref_t<raw_result>>;

    task(F f, std::tuple<Args...> args) : f_(std::move(f)), args_(std::move(args)) {}

    /// Runs the call. May be called once (arguments taken by rvalue are moved from).
    result_type operator()() {
        if constexpr (by_lvalue)
            return std::apply(f_, args_);
        else
            return std::apply(std::move(f_), std::move(args_));
    }

    [[nodiscard]] const F& function() const noexcept { return f_; }
    [[nodiscard]] const std::tuple<Args...>& arguments() const noexcept { return args_; }

    /// The callable's name (its symbol, or its type when it has none).
    [[nodiscard]] std::string function_name() const { return detail::callable_name(f_); }

    /// The arguments as `a, b, c`: printed when printable, otherwise `<type, N bytes>`.
    [[nodiscard]] std::string describe_arguments() const {
        std::string out;
        std::apply([&out](const auto&... a) {
            std::size_t i = 0;
            ((out += (i++ ? ", " : ""), detail::append_value(out, a)), ...);
        }, args_);
        return out;
    }

    /// `name(a, b, c)`.
    [[nodiscard]] std::string describe() const { return function_name() + "(" + describe_arguments() + ")"; }

private:
    F f_;
    std::tuple<Args...> args_;
};

/// `delayed(f)`: the callable waiting for its arguments.
template <class F>
class delayed_function {
public:
    explicit delayed_function(F f) : f_(std::move(f)) {}

    /// Captures the arguments (copied, or moved from rvalues) into a task.
    template <class... Args>
    [[nodiscard]] task<F, std::decay_t<Args>...> operator()(Args&&... args) const& {
        return {f_, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
    }
    template <class... Args>
    [[nodiscard]] task<F, std::decay_t<Args>...> operator()(Args&&... args) && {
        return {std::move(f_), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
    }

private:
    F f_;
};

/// Wraps a callable so that calling it records the call instead of running it (joblib's
/// `delayed`): `cojob::delayed(f)(1, "x")` is a `cojob::task`.
///
/// @par Example
/// @code
/// std::vector<double> r = par(std::views::iota(0, 10)
///     | std::views::transform([](int i) { return cojob::delayed(square_root)(i * i); }));
/// @endcode
template <class F>
[[nodiscard]] delayed_function<std::decay_t<F>> delayed(F&& f) {
    return delayed_function<std::decay_t<F>>(std::forward<F>(f));
}

namespace detail {
template <class T>
inline constexpr bool is_task = false;
template <class F, class... A>
inline constexpr bool is_task<task<F, A...>> = true;
}  // namespace detail

/// A value made by `delayed(f)(args...)`.
template <class T>
concept task_value = detail::is_task<std::remove_cvref_t<T>>;

}  // namespace cojob
