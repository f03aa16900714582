// tests/fuzz/libfuzzer_main.cpp - libFuzzer's entry point for one target, named at build time
// (COJOB_FUZZ_TARGET, set by tests/fuzz/meson.build for each executable). With COJOB_FUZZ_SEEDS
// set to a folder, the program writes its target's seeds there and exits: seeds are made by the
// program that fuzzes them, since a frame names its function by where it lies in that program.
#include "targets.hpp"

#include <cstdio>
#include <cstdlib>

namespace {

const cojob_fuzz::target& chosen() {
    static const cojob_fuzz::target* t = [] {
        const cojob_fuzz::target* found = cojob_fuzz::find_target(COJOB_FUZZ_TARGET);
        if (!found) {
            std::fprintf(stderr, "cojob fuzz: no target called %s\n", COJOB_FUZZ_TARGET);
            std::abort();
        }
        return found;
    }();
    return *t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    if (const char* dir = std::getenv("COJOB_FUZZ_SEEDS")) {
        std::printf("%s: %zu seeds\n", chosen().name, cojob_fuzz::write_seeds(chosen(), dir));
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    (void)chosen().run(data, size);
    return 0;
}
