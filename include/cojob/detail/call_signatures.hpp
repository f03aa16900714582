// cojob/detail/call_signatures.hpp - what a call of `cojob::parallel` hands back, by the
// result type of its tasks: the list type and the completion signatures of `async_run` and
// `async_submit`; and the source of a call over a range.
#pragma once

#include <cojob/detail/source.hpp>

#include <exception>
#include <ranges>
#include <vector>

namespace cojob::detail {

/// `std::vector<R>` for tasks returning R, `void` for void tasks; and the matching
/// completion signature of `async_run`.
template <class R>
struct result_list {
    using type = std::vector<R>;
    using signature = void(std::exception_ptr, std::vector<R>);
};
template <>
struct result_list<void> {
    using type = void;
    using signature = void(std::exception_ptr);
};

/// The completion signature of `async_submit` for a task returning R.
template <class R>
struct submit_signature {
    using type = void(std::exception_ptr, R);
};
template <>
struct submit_signature<void> {
    using type = void(std::exception_ptr);
};

/// The source of a call over a range: a view of it, advanced lazily.
template <class R>
using range_source_for = range_source<std::views::all_t<R>>;

}  // namespace cojob::detail
