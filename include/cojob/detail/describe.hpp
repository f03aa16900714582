// cojob/detail/describe.hpp - printing a task's function and arguments for error reports.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

namespace cojob::detail {

/// Demangled form of a `typeid(...).name()`.
[[nodiscard]] std::string demangle(const char* mangled);
/// The symbol a code address belongs to (demangled), or "" when the program exports none.
[[nodiscard]] std::string symbol_name(std::uintptr_t address);
/// Appends `value` through `print`, cut to a readable length.
void append_streamed(std::string& out, const void* value, void (*print)(std::ostream&, const void*));
/// Appends a quoted, escaped and cut string.
void append_quoted(std::string& out, std::string_view text);

template <class T>
concept streamable = requires(std::ostream& os, const T& v) { os << v; };

template <class R, class... A>
[[nodiscard]] std::string callable_name(R (*const& f)(A...)) {
    std::string name = symbol_name(std::bit_cast<std::uintptr_t>(f));
    return name.empty() ? demangle(typeid(f).name()) : name;
}

template <class F>
[[nodiscard]] std::string callable_name(const F& f) {
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
        return {};  // resolved from the address by the overload above
    } else if constexpr (requires { typename F::memoized_callable; }) {
        return callable_name(f.function());  // a cojob::cached_function: what it wraps
    } else {
        return demangle(typeid(F).name());
    }
}

template <class T>
void append_value(std::string& out, const T& v);

template <class T>
void append_range(std::string& out, const T& r) {
    constexpr std::size_t shown = 8;
    out += '[';
    std::size_t i = 0;
    for (const auto& e : r) {
        if (i == shown) {
            out += ", ...";
            break;
        }
        if (i++) out += ", ";
        append_value(out, e);
    }
    out += ']';
}

/// One argument: strings quoted, streamable values printed, ranges of printable values listed,
/// anything else as `<type, N bytes>`.
template <class T>
void append_value(std::string& out, const T& v) {
    if constexpr (std::is_null_pointer_v<T>) {
        out += "nullptr";
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        if constexpr (std::is_pointer_v<T>) {
            if (!v) {
                out += "nullptr";
                return;
            }
        }
        append_quoted(out, std::string_view(v));
    } else if constexpr (std::is_same_v<T, bool>) {
        out += v ? "true" : "false";
    } else if constexpr (std::is_same_v<T, char>) {
        append_quoted(out, std::string_view(&v, 1));
    } else if constexpr (streamable<T>) {
        append_streamed(out, &v, [](std::ostream& os, const void* p) { os << *static_cast<const T*>(p); });
    } else if constexpr (std::ranges::input_range<const T>) {
        append_range(out, v);
    } else {
        std::size_t bytes = sizeof(T);
        if constexpr (std::ranges::sized_range<const T> && std::ranges::contiguous_range<const T>)
            bytes = std::ranges::size(v) * sizeof(std::ranges::range_value_t<const T>);
        out += '<';
        out += demangle(typeid(T).name());
        out += ", ";
        out += std::to_string(bytes);
        out += " bytes>";
    }
}

}  // namespace cojob::detail
