// src/init.cpp - the worker guard. In the user's own process `init` records argv[0] and
// returns. In a process the process backend started, it serves the parent's requests until the
// parent closes the pipe (or dies), then exits without returning to main
// (src/process/worker_loop.cpp). In an MPI job, the ranks other than 0 serve rank 0 (src/mpi/).
#include <cojob/init.hpp>

#include "mpi_link.hpp"
#include "process/spawn.hpp"
#include "process/worker_loop.hpp"
#include "worker.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

namespace cojob {

namespace detail {
namespace {

std::atomic<bool> init_ran{false};
std::atomic<bool> serving{false};
std::string& name_storage() {
    static std::string s;
    return s;
}

}  // namespace

const std::string& program_name() { return name_storage(); }
bool in_worker_process() noexcept { return serving.load(); }
void enter_worker_mode() noexcept { serving.store(true); }

}  // namespace detail

void init(int argc, char** argv) {
    if (argc > 0 && argv && argv[0]) detail::name_storage() = argv[0];
    const bool again = detail::init_ran.exchange(true);
    const char* spec = std::getenv(detail::process::worker_env);
    if (!spec) {
        // An MPI job: rank 0 returns to run main, the other ranks serve it (src/mpi/).
        if (const auto* mpi = detail::linked_mpi_support(); mpi && !again && detail::launched_by_mpi())
            mpi->start(argc, argv);
        return;
    }
    detail::process::serve(spec);  // returns only when the marker was not meant for this process
}

bool initialized() noexcept { return detail::init_ran.load(); }

}  // namespace cojob
