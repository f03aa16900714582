// src/util.hpp - private helpers shared by the compiled parts.
#pragma once

#include <exception>
#include <string>

namespace cojob::detail {

/// The dynamic type (demangled) and `what()` of an exception.
void describe_exception(const std::exception_ptr& e, std::string& type, std::string& message);
[[nodiscard]] int current_pid() noexcept;
[[nodiscard]] std::string host_name();
/// "0.5 s", "2 s": a duration for messages.
[[nodiscard]] std::string format_seconds(double seconds);

}  // namespace cojob::detail
