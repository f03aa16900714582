// tests/fuzz/driver.cpp - the fuzz targets without libFuzzer, for every build:
//   fuzz_driver seeds DIR      writes each target's seed inputs to DIR/<target>/ (a frame names
//                              functions by their place in this program: the libFuzzer programs
//                              write their own, see libfuzzer_main.cpp)
//   fuzz_driver check-seeds    every seed decodes as a whole (the targets and encoders agree)
//   fuzz_driver replay DIR     feeds every file of DIR/<target>/ to that target (the inputs that
//                              once crashed one; a crash or an escaped exception fails the run)
#include "targets.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

int write_seeds(const fs::path& dir) {
    std::size_t total = 0;
    for (const cojob_fuzz::target& t : cojob_fuzz::all_targets()) total += cojob_fuzz::write_seeds(t, (dir / t.name).string());
    std::printf("fuzz_driver: %zu seeds written to %s\n", total, dir.c_str());
    return 0;
}

int check_seeds() {
    int failures = 0;
    for (const cojob_fuzz::target& t : cojob_fuzz::all_targets()) {
        std::vector<std::string> seeds;
        t.seeds(seeds);
        if (seeds.empty()) {
            std::printf("FAIL %s: no seeds\n", t.name);
            ++failures;
        }
        for (std::size_t i = 0; i < seeds.size(); ++i) {
            const auto* data = reinterpret_cast<const std::uint8_t*>(seeds[i].data());
            if (!t.run(data, seeds[i].size())) {
                std::printf("FAIL %s: seed %zu does not decode\n", t.name, i);
                ++failures;
            }
        }
        std::printf("%s: %zu seeds decode\n", t.name, seeds.size());
    }
    return failures == 0 ? 0 : 1;
}

int replay(const fs::path& dir) {
    std::size_t inputs = 0;
    for (const cojob_fuzz::target& t : cojob_fuzz::all_targets()) {
        const fs::path sub = dir / t.name;
        if (!fs::is_directory(sub)) continue;
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(sub))
            if (e.is_regular_file()) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const fs::path& file : files) {
            std::ifstream in(file, std::ios::binary);
            const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
            std::printf("%s: %s\n", t.name, file.filename().c_str());
            std::fflush(stdout);
            (void)t.run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
            ++inputs;
        }
    }
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && !cojob_fuzz::find_target(e.path().filename().string())) {
            std::printf("FAIL: %s names no target\n", e.path().c_str());
            return 1;
        }
    std::printf("fuzz_driver: %zu inputs replayed without a crash\n", inputs);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string_view command = argc > 1 ? argv[1] : "";
    try {
        if (command == "seeds" && argc == 3) return write_seeds(argv[2]);
        if (command == "check-seeds" && argc == 2) return check_seeds();
        if (command == "replay" && argc == 3) return replay(argv[2]);
    } catch (const std::exception& e) {
        std::printf("FAIL: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: fuzz_driver seeds DIR | check-seeds | replay DIR\n");
    return 2;
}
