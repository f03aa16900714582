// cojob/detail/wire_traits.hpp - the test for "can this task travel to another process": its
// callable can be named there, and its arguments and result go through the wire archives.
#pragma once

#include <cojob/delayed.hpp>
#include <cojob/detail/cereal_safe.hpp>
#include <cojob/detail/wire_archive.hpp>

#include <tuple>
#include <type_traits>

namespace cojob::detail {

/// A value cereal can write and read back through the wire archives.
template <class T>
concept wire_value = cereal_safe<T>::value && std::is_default_constructible_v<T> && std::is_move_assignable_v<T> &&
                     cereal::traits::is_output_serializable<T, wire_out>::value &&
                     cereal::traits::is_input_serializable<T, wire_in>::value;

template <class F>
inline constexpr bool is_function_pointer = std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;

/// A callable with no state: a captureless lambda or an empty function object, rebuilt in the
/// worker by default construction.
template <class F>
inline constexpr bool is_stateless_callable =
    std::is_empty_v<F> && std::is_default_constructible_v<F> && std::is_trivially_copyable_v<F>;

/// A callable that can be named in another process of the same program.
template <class F>
concept wire_callable = is_function_pointer<F> || is_stateless_callable<F> || wire_value<F>;

template <class T>
struct task_traits;
template <class F, class... Args>
struct task_traits<task<F, Args...>> {
    using function = F;
    using arguments = std::tuple<Args...>;
    static constexpr bool callable_ok = wire_callable<F>;
    static constexpr bool arguments_ok = (wire_value<Args> && ...);
};

template <class Task>
constexpr bool result_ok() {
    using R = typename Task::result_type;
    if constexpr (std::is_void_v<R>)
        return true;
    else
        return wire_value<R> && !is_request_view<R>;  // a span result would point into a freed response
}

}  // namespace cojob::detail
