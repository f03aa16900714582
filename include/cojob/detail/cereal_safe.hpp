// cojob/detail/cereal_safe.hpp - the types cereal's traits accept but cereal cannot write:
// checked before any code that would serialize them is instantiated.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <type_traits>

namespace cojob::detail {

/// What cereal's traits cannot see: a type is refused when it is, or holds as a template
/// argument, a pointer, a reference or a const type (`std::vector<int*>`, `std::pair<const K,
/// V>`). cereal would accept those by trait and then fail to compile inside (a static_assert),
/// which must not happen to a program that never serializes them: tasks that only run on
/// threads, memory arguments that are ignored.
template <class T>
struct cereal_safe : std::bool_constant<!std::is_pointer_v<T> && !std::is_member_pointer_v<T> && !std::is_reference_v<T> &&
                                      !std::is_const_v<T> && !std::is_volatile_v<T>> {};
template <template <class...> class Tmpl, class... A>
struct cereal_safe<Tmpl<A...>> : std::bool_constant<(cereal_safe<A>::value && ...)> {};
template <class T, std::size_t N>
struct cereal_safe<std::array<T, N>> : cereal_safe<T> {};
template <class T>
struct cereal_safe<std::allocator<T>> : std::true_type {};  // a map's allocator names pair<const K, V>
template <class T, std::size_t N>
struct cereal_safe<T[N]> : cereal_safe<T> {};

}  // namespace cojob::detail
