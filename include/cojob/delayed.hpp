// cojob/delayed.hpp - `delayed(f)(args...)`: a task value, the function plus its arguments.
#pragma once

#include <cojob/detail/describe.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace cojob {

namespace detail {

/// The parameter types of a callable with one signature (function pointer, or a class with one
/// non-template call operator); `void` when they cannot be known (overloads, generic lambdas).
template <class F>
struct view_parameters_of {
    using type = void;
};
template <class R, class... P>
struct view_parameters_of<R (*)(P...)> {
    using type = std::tuple<P...>;
};
template <class R, class... P>
struct view_parameters_of<R (*)(P...) noexcept> {
    using type = std::tuple<P...>;
};
template <class M>
struct view_member_parameters {
    using type = void;
};
#define COJOB_DETAIL_VIEW_MEMBER_PARAMETERS(QUALIFIERS)       \
    template <class R, class C, class... P>             \
    struct view_member_parameters<R (C::*)(P...) QUALIFIERS> { \
        using type = std::tuple<P...>;                  \
    };
COJOB_DETAIL_VIEW_MEMBER_PARAMETERS()
COJOB_DETAIL_VIEW_MEMBER_PARAMETERS(const)
COJOB_DETAIL_VIEW_MEMBER_PARAMETERS(noexcept)
COJOB_DETAIL_VIEW_MEMBER_PARAMETERS(const noexcept)
#undef COJOB_DETAIL_VIEW_MEMBER_PARAMETERS
template <class F>
    requires requires { &F::operator(); }
struct view_parameters_of<F> : view_member_parameters<decltype(&F::operator())> {};

template <class T>
inline constexpr bool is_std_vector = false;
template <class E, class A>
inline constexpr bool is_std_vector<std::vector<E, A>> = true;

/// Parameter I of F, or void.
template <class Params, std::size_t I>
struct view_parameter_at {
    using type = void;
};
template <class... P, std::size_t I>
    requires(I < sizeof...(P))
struct view_parameter_at<std::tuple<P...>, I> {
    using type = std::tuple_element_t<I, std::tuple<P...>>;
};

/// What `delayed(f)(args...)` stores for argument I: a decayed copy, except that an lvalue
/// `std::vector<E>` given to a `std::span<const E>` parameter is stored as that span (a view:
/// nothing is copied; the vector must outlive the task).
template <class F, std::size_t I, class Arg>
struct stored_argument {
    using type = std::decay_t<Arg>;
};
template <class F, std::size_t I, class Arg>
    requires std::is_lvalue_reference_v<Arg> && is_std_vector<std::remove_cvref_t<Arg>> &&
             std::is_same_v<std::remove_cvref_t<typename view_parameter_at<typename view_parameters_of<F>::type, I>::type>,
                            std::span<const typename std::remove_cvref_t<Arg>::value_type>>
struct stored_argument<F, I, Arg> {
    using type = std::span<const typename std::remove_cvref_t<Arg>::value_type>;
};
template <class F, std::size_t I, class Arg>
using stored_argument_t = typename stored_argument<F, I, Arg>::type;

}  // namespace detail

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
    /// Whether the task may run more than once: its arguments are not moved into the call.
    static constexpr bool repeatable = by_lvalue;

    /// What running the task yields (references decay to values).
    using result_type = std::conditional_t<std::is_void_v<raw_result>, void, std::remove_cvref_t<raw_result>>;

    /// Use `delayed(f)(args...)`.
    task(F f, std::tuple<Args...> args) : f_(std::move(f)), args_(std::move(args)) {}

    /// Runs the call. May be called once (arguments taken by rvalue are moved from).
    result_type operator()() {
        if constexpr (by_lvalue)
            return std::apply(f_, args_);
        else
            return std::apply(std::move(f_), std::move(args_));
    }

    /// The callable.
    [[nodiscard]] const F& function() const noexcept { return f_; }
    /// The captured arguments.
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
    /// Use `delayed(f)`.
    explicit delayed_function(F f) : f_(std::move(f)) {}

    /// Captures the arguments into a task: copied, or moved from rvalues; except that an lvalue
    /// `std::vector<E>` passed where f takes a `std::span<const E>` is kept as that span, so a
    /// large array is never copied per task (on backend::processes it is then shared, see
    /// docs/arrays.md). Such a vector must outlive the task: true for a blocking `par(range)`;
    /// for `async_run` and streams keep it alive until the call completes.
    template <class... Args>
    [[nodiscard]] auto operator()(Args&&... args) const& {
        return make(f_, std::index_sequence_for<Args...>{}, std::forward<Args>(args)...);
    }
    /// The same, moving the callable into the task.
    template <class... Args>
    [[nodiscard]] auto operator()(Args&&... args) && {
        return make(std::move(f_), std::index_sequence_for<Args...>{}, std::forward<Args>(args)...);
    }

private:
    template <class G, std::size_t... I, class... Args>
    static task<F, detail::stored_argument_t<F, I, Args&&>...> make(G&& f, std::index_sequence<I...>, Args&&... args) {
        return {std::forward<G>(f),
                std::tuple<detail::stored_argument_t<F, I, Args&&>...>(std::forward<Args>(args)...)};
    }

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
