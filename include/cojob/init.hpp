// cojob/init.hpp - the worker guard, the C++ twin of joblib's `if __name__ == "__main__":`.
#pragma once

namespace cojob {

/// Call first thing in `main`. In the user's own process it returns at once and does nothing
/// else. In a worker process that cojob started by re-executing the program, it serves tasks
/// and exits without returning (the process backend).
void init(int argc, char** argv);

/// Whether `init` has run in this process.
[[nodiscard]] bool initialized() noexcept;

}  // namespace cojob
