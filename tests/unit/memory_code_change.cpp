// memory_code_change: which edits of a cached function's program invalidate its stored results.
// The builds of tests/unit/memory_code_variant.cpp (one per edit, see tests/meson.build) run one
// after the other against one cache, as a user rebuilding after each edit would; each must
// compute or load as docs/memory.md ("Code changes") says.
//
// memory_code_change <build> <computes|loads> [<build> <computes|loads> ...]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

/// Runs `program cache` with its stdout in `out_file`; returns its output, or "" with `error` set.
std::string run(const std::string& program, const std::string& cache, const std::string& out_file,
                std::string& error) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {program, cache};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int e = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (e != 0) {
        error = std::string("posix_spawn: ") + std::strerror(e);
        return {};
    }
    int status = 0;
    pid_t r = 0;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while ((r = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(2ms);
    if (r == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        error = "timed out";
        return {};
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error = "failed (status " + std::to_string(status) + ")";
        return {};
    }
    std::ifstream in(out_file);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc % 2 != 1) {
        std::fprintf(stderr, "usage: memory_code_change <build> <computes|loads> ...\n");
        return 2;
    }
    std::string tmpl = (fs::temp_directory_path() / "cojob-code-change-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return 1;
    const fs::path dir = tmpl;
    const std::string cache = (dir / "cache").string();
    const std::string out = (dir / "out.txt").string();
    int failures = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string program = argv[i];
        const std::string expected = argv[i + 1];
        std::string error;
        std::string output = run(program, cache, out, error);
        while (!output.empty() && output.back() == '\n') output.pop_back();
        std::string verdict;
        if (!error.empty()) {
            verdict = error;
        } else if (output.rfind("calls=1 ", 0) == 0) {
            verdict = "computes";
        } else if (output.rfind("calls=0 ", 0) == 0) {
            verdict = "loads";
        } else {
            verdict = "unexpected output '" + output + "'";
        }
        const bool ok = verdict == expected;
        failures += !ok;
        std::printf("%s: %s %s (%s)%s\n", ok ? "ok" : "FAIL", fs::path(program).filename().c_str(), verdict.c_str(),
                    output.c_str(), ok ? "" : (", expected: " + expected).c_str());
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    return failures ? 1 : 0;
}
