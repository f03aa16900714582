// src/process/futex_word.hpp - private: waiting on a 32-bit word in memory a worker and its parent
// both map (the status page), and waking its waiter: a futex, not FUTEX_PRIVATE_FLAG.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ctime>

namespace cojob::detail::process {

/// Sleeps while `word` holds `expected`, at most `limit` (a wake may come before the sleep: the
/// kernel then returns at once, the word having changed).
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, const timespec& limit) noexcept {
    (void)::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &limit, nullptr, 0);
}

/// Wakes one process sleeping on `word`.
inline void futex_wake(std::atomic<std::uint32_t>& word) noexcept {
    (void)::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

}  // namespace cojob::detail::process
