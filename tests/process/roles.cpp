// tests/process/roles.cpp - the programs behind roles.hpp.
#include "roles.hpp"

#include <cojob/cojob.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {
int role_pid_after(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return static_cast<int>(::getpid());
}
int report_pid(int) {
    std::printf("%d ", static_cast<int>(::getpid()));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}
}  // namespace

namespace roles {

std::pair<pid_t, int> start(const std::string& role_env) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    env.push_back(role_env);
    std::vector<char*> envp;
    for (auto& v : env) envp.push_back(v.data());
    envp.push_back(nullptr);
    char arg0[] = "process_tests";
    char* argv[] = {arg0, nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (rc != 0) {
        ::close(out[0]);
        throw std::runtime_error("posix_spawn failed");
    }
    return {pid, out[0]};
}

ended run(const std::string& role_env) {
    const auto [pid, out] = start(role_env);
    ended e;
    char buf[4096];
    for (ssize_t n; (n = ::read(out, buf, sizeof buf)) > 0;) e.out.append(buf, static_cast<std::size_t>(n));
    ::close(out);
    if (::waitpid(pid, &e.status, 0) != pid) throw std::runtime_error("waitpid failed");
    return e;
}

int resume_task(int i, int victim, std::string dir) {
    const std::string line = std::to_string(i) + "\n";
    const int fd = ::open((dir + "/computed").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        (void)!::write(fd, line.data(), line.size());
        ::close(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (i == victim) {
        const int first = ::open((dir + "/killed").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (first >= 0) {
            ::close(first);
            ::kill(::getppid(), SIGKILL);  // the map's own process, halfway
        }
    }
    return i * i;
}

int cached_map() {
    const char* dir = std::getenv("COJOB_TEST_DIR");
    if (!dir) return 2;
    cojob::memory mem{std::string(dir) + "/cache", {.verbose = 0}};
    const auto cached = mem.cache(resume_task);
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 2}};
    (void)par(std::views::iota(0, 40) | std::views::transform([&](int i) {
                  return cojob::delayed(cached)(i, 20, std::string(dir));
              }));
    return 0;
}

int orphan_maker() {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes, .batch_size = 1}};
    // Learn the worker pids first, then block both workers in long tasks.
    auto pids = par(std::views::iota(0, 2) | std::views::transform([](int) { return cojob::delayed(role_pid_after)(100); }));
    std::printf("%d %d\n", pids[0], pids[1]);
    std::fflush(stdout);
    (void)par(std::views::iota(0, 2) | std::views::transform([](int i) { return cojob::delayed(report_pid)(i); }));
    return 0;
}

int ctrl_c_after_call() {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
    (void)par(std::views::iota(0, 2) | std::views::transform([](int i) { return cojob::delayed(role_pid_after)(i); }));
    std::printf("called\n");
    std::fflush(stdout);
    ::kill(::getpid(), SIGINT);  // no call watches now: it must end this program
    std::this_thread::sleep_for(std::chrono::seconds(10));
    return 0;
}

int forgetful_main() {
    try {
        cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
        (void)par(std::views::iota(0, 2) | std::views::transform([](int i) { return cojob::delayed(role_pid_after)(i); }));
        std::printf("ok\n");
        return 0;
    } catch (const cojob::worker_died& e) {
        std::printf("worker_died: %s\n", e.what());
        return 0;
    } catch (const cojob::error& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}

}  // namespace roles
