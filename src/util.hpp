// src/util.hpp - private helpers shared by the compiled parts.
#pragma once

#include <cstddef>
#include <exception>
#include <span>
#include <string>
#include <string_view>

namespace cojob::detail {

/// The dynamic type (demangled) and `what()` of an exception.
void describe_exception(const std::exception_ptr& e, std::string& type, std::string& message);
[[nodiscard]] int current_pid() noexcept;
/// The kernel's id of the calling thread (gettid), read once per thread.
[[nodiscard]] long this_thread_id() noexcept;
[[nodiscard]] std::string host_name();
/// "0.7 MB", "123.4 MB": a size for messages (MB = 10^6 bytes).
[[nodiscard]] std::string megabytes(std::size_t bytes);
/// "0.5 s", "2 s": a duration for messages.
[[nodiscard]] std::string format_seconds(double seconds);
/// Writes `pieces`, in order, to `path` atomically: a temp file next to it, then rename (a
/// reader sees the old file or the new one; a failure leaves no temp file). Returns 0 or errno.
/// Compiled in src/memory_files.cpp.
[[nodiscard]] int write_atomically(const std::string& path, std::span<const std::string_view> pieces);

}  // namespace cojob::detail
