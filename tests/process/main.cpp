// tests/process/main.cpp - the process suite's main: the worker guard first, as every program
// using backend=processes must, then the roles the tests start this program in.
#define CATCH_CONFIG_RUNNER
// The Ctrl-C test needs SIGINT at its default disposition, as in a user's program.
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "roles.hpp"

#include <cstdlib>
#include <string_view>

int main(int argc, char** argv) {
    const char* role_env = std::getenv("COJOB_TEST_ROLE");
    const std::string_view role = role_env ? role_env : "";
    const bool worker = std::getenv("COJOB_WORKER") != nullptr;
    // Programs that forget the guard: everywhere, or only in their workers.
    if (role == "no_init" || (role == "workers_skip_init" && worker)) return roles::forgetful_main();
    cojob::init(argc, argv);
    if (role == "orphan_maker") return roles::orphan_maker();
    if (role == "cached_map") return roles::cached_map();
    if (role == "ctrl_c_after_call") return roles::ctrl_c_after_call();
    if (role == "workers_skip_init") return roles::forgetful_main();
    return Catch::Session().run(argc, argv);
}
