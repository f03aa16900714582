// cojob/mmap_mode.hpp - how a file-backed array is mapped (numpy's and joblib's `mmap_mode`).
#pragma once

#include <string>
#include <string_view>

namespace cojob {

/// How a file is mapped into memory, as numpy spells it:
///
/// | mode     | file opened | writes through the array                          |
/// |----------|-------------|---------------------------------------------------|
/// | `r`      | read-only   | refused (`cojob::error`; the pages are read-only) |
/// | `r_plus` | read-write  | reach the file, seen by every mapping of it       |
/// | `w_plus` | created or truncated, then read-write | as `r_plus`; starts zeroed |
/// | `c`      | read-only   | copy-on-write: private to this mapping, never reach the file |
enum class mmap_mode {
    r,       ///< "r"
    r_plus,  ///< "r+"
    w_plus,  ///< "w+"
    c,       ///< "c"
};

/// "r", "r+", "w+" or "c".
[[nodiscard]] const char* to_string(mmap_mode mode) noexcept;

/// The mode named by "r", "r+", "w+" or "c".
/// @throws cojob::error naming the text and the accepted values.
[[nodiscard]] mmap_mode parse_mmap_mode(std::string_view text);

}  // namespace cojob
