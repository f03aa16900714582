// src/init.cpp - the worker guard. Until the process backend exists, every process is the
// user's own, so init only records that it ran.
#include <cojob/init.hpp>

#include <atomic>

namespace cojob {

namespace {
std::atomic<bool> init_ran{false};
}

void init(int /*argc*/, char** /*argv*/) { init_ran.store(true); }

bool initialized() noexcept { return init_ran.load(); }

}  // namespace cojob
