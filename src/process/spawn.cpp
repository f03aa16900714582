// src/process/spawn.cpp - starting a worker process: its pipes (1 MiB, when the system allows),
// its status page (a memfd), its result arena, the descriptors placed on 3 to 6 in the child,
// pipes for its standard output and error (relayed by worker_output.hpp),
// a clean signal state, and an environment that marks it as a worker and caps the native
// thread pools inside it; posix_spawn itself runs on one thread that lasts as long as the
// process (spawn_thread). Also the only calls that signal or reap a worker.
#include "spawn.hpp"

#include "../worker.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace cojob::detail::process {

namespace {

constexpr int pipe_bytes = 1 << 20;  // F_SETPIPE_SZ: 16 MiB move ~8x faster than through 64 KiB

struct fd_guard {
    int fd = -1;
    fd_guard() = default;
    explicit fd_guard(int f) : fd(f) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
    int release() noexcept { return std::exchange(fd, -1); }
};

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

/// A descriptor number >= 10, so that placing it on 3, 4 or 5 in the child cannot clobber
/// another one being placed.
int lift(int fd) {
    fd_guard old(fd);
    const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (high < 0) throw_errno("cojob: fcntl(F_DUPFD_CLOEXEC)");
    return high;
}

/// The thread every worker is spawned from. A worker asks to be killed when its parent dies
/// (PR_SET_PDEATHSIG, worker_loop.cpp), and to the kernel its parent is the *thread* that
/// spawned it: spawned from the thread that happened to make a call (an io_context's thread, a
/// nested call's worker thread), the workers of a pool would die with that thread while the
/// pool lives on. This thread is started at the first spawn and never ends before the process
/// does, so that the signal means what it should: the parent process died. It only runs
/// posix_spawn; everything else a spawn needs is made on the caller's thread.
class spawn_thread {
public:
    /// This process's spawn thread, started at the first call.
    /// @throws std::system_error when the thread cannot start.
    static spawn_thread& get() {
        static std::mutex m;
        static spawn_thread* current = nullptr;
        const std::lock_guard lock(m);
        // A child this process forked without exec has no such thread: it starts its own, and
        // leaves its parent's alone (the fork may have copied its lock while it was held).
        if (!current || current->owner_ != ::getpid()) {
            // Never deleted: the thread waits on it until the process ends, after static
            // destructors run.
            auto* t = new spawn_thread;
            try {
                t->start();
            } catch (...) {
                delete t;
                throw;
            }
            current = t;
        }
        return *current;
    }

    /// Runs `spawn` on the thread and waits for it; returns what it returned.
    int run(std::function<int()> spawn) {
        std::packaged_task<int()> task(std::move(spawn));
        std::future<int> done = task.get_future();
        {
            const std::lock_guard lock(m_);
            requests_.push_back(std::move(task));
        }
        wake_.notify_one();
        return done.get();
    }

private:
    spawn_thread() = default;

    void start() {
        // The thread takes no signals (a program that waits for them with sigwait, or handles
        // them on a thread of its own, sees no difference); workers get their own mask.
        sigset_t all, old;
        sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &old);
        try {
            std::thread([this] { serve(); }).detach();
        } catch (...) {
            ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
            throw;
        }
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }

    [[noreturn]] void serve() {
        std::unique_lock lock(m_);
        for (;;) {
            wake_.wait(lock, [this] { return !requests_.empty(); });
            std::packaged_task<int()> task = std::move(requests_.front());
            requests_.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }

    const pid_t owner_ = ::getpid();
    std::mutex m_;
    std::condition_variable wake_;
    std::deque<std::packaged_task<int()>> requests_;
};

}  // namespace

namespace {
// glibc's declaration of pidfd_open (sys/pidfd.h) lacks C linkage for C++ in this release.
int open_pidfd(pid_t pid, unsigned flags) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags)); }
}  // namespace

process_calls& process_seam() noexcept {
    static process_calls calls{&::kill, &::wait4, &open_pidfd};
    return calls;
}

bool kill_worker(pid_t pid) noexcept { return pid > 0 && process_seam().kill(pid, SIGKILL) == 0; }

pid_t wait_worker(pid_t pid, int& status, int options, struct rusage* usage) noexcept {
    return pid > 0 ? process_seam().wait4(pid, &status, options, usage) : -1;
}

spawned_worker spawn_worker(int inner_threads, std::size_t memory_limit) {
    spawn_thread& spawner = spawn_thread::get();
    int req[2], resp[2];
    if (::pipe2(req, O_CLOEXEC) != 0) throw_errno("cojob: pipe2");
    fd_guard req_r(req[0]), req_w(req[1]);
    if (::pipe2(resp, O_CLOEXEC) != 0) throw_errno("cojob: pipe2");
    fd_guard resp_r(resp[0]), resp_w(resp[1]);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("cojob: pipe2");
    fd_guard out_r(out[0]), out_w(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) throw_errno("cojob: pipe2");
    fd_guard err_r(err[0]), err_w(err[1]);
    (void)::fcntl(req_w.fd, F_SETPIPE_SZ, pipe_bytes);  // best effort: pipe-max-size may forbid it
    (void)::fcntl(resp_w.fd, F_SETPIPE_SZ, pipe_bytes);
    // The doorbell and the pidfd go together: without a pidfd (a kernel before 5.3, a seccomp
    // filter) the parent learns of a worker's end from its response pipe, which it then
    // waits on for every answer, and the worker gets no doorbell.
    fd_guard probe(process_seam().pidfd_open(::getpid(), 0));
    fd_guard bell(probe.fd >= 0 ? ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1);
    fd_guard mem(::memfd_create("cojob-worker-status", MFD_CLOEXEC));
    if (mem.fd < 0) throw_errno("cojob: memfd_create");
    if (::ftruncate(mem.fd, static_cast<off_t>(sizeof(worker_status))) != 0) throw_errno("cojob: ftruncate");
    void* page = ::mmap(nullptr, sizeof(worker_status), PROT_READ | PROT_WRITE, MAP_SHARED, mem.fd, 0);
    if (page == MAP_FAILED) throw_errno("cojob: mmap");
    // Default-initialized: the slots stay untouched (the memfd's pages are zero until used).
    auto* status = new (page) worker_status;
    struct unmap {
        void* p;
        ~unmap() {
            if (p) ::munmap(p, sizeof(worker_status));
        }
    } page_guard{page};

    auto arena = std::make_shared<shared_arena>(shared_arena::make_fd(), false);
    const int arena_dup = ::fcntl(arena->fd(), F_DUPFD_CLOEXEC, 10);
    if (arena_dup < 0) throw_errno("cojob: fcntl(F_DUPFD_CLOEXEC)");
    fd_guard child_arena(arena_dup);
    fd_guard child_in(lift(req_r.release())), child_out(lift(resp_w.release())), child_mem(lift(mem.release()));
    fd_guard child_stdout(lift(out_w.release())), child_stderr(lift(err_w.release()));
    fd_guard child_bell(bell.fd >= 0 ? ::fcntl(bell.fd, F_DUPFD_CLOEXEC, 10) : -1);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_in.fd, worker_request_fd);
    posix_spawn_file_actions_adddup2(&actions, child_out.fd, worker_response_fd);
    posix_spawn_file_actions_adddup2(&actions, child_mem.fd, worker_status_fd);
    posix_spawn_file_actions_adddup2(&actions, child_arena.fd, worker_arena_fd);
    if (child_bell.fd >= 0) posix_spawn_file_actions_adddup2(&actions, child_bell.fd, worker_bell_fd);
    posix_spawn_file_actions_adddup2(&actions, child_stdout.fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, child_stderr.fd, STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> env_strings;
    for (char** e = environ; e && *e; ++e)
        if (std::strncmp(*e, worker_env, std::strlen(worker_env)) != 0 || (*e)[std::strlen(worker_env)] != '=')
            env_strings.emplace_back(*e);
    env_strings.push_back(std::string(worker_env) + "=" + std::to_string(worker_request_fd) + "," +
                          std::to_string(worker_response_fd) + "," + std::to_string(worker_status_fd) + "," +
                          std::to_string(worker_arena_fd) + "," + std::to_string(::getpid()) + "," +
                          std::to_string(child_bell.fd >= 0 ? worker_bell_fd : -1));
    // Native thread pools inside the workers share the CPUs with the other workers (joblib's
    // oversubscription guard), unless the user chose a value.
    for (const char* var : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                            "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS"})
        if (!std::getenv(var)) env_strings.push_back(std::string(var) + "=" + std::to_string(inner_threads));
    std::erase_if(env_strings, [](const std::string& e) { return e.rfind(std::string(worker_memory_env) + "=", 0) == 0; });
    if (memory_limit) env_strings.push_back(std::string(worker_memory_env) + "=" + std::to_string(memory_limit));
    std::vector<char*> envp;
    envp.reserve(env_strings.size() + 1);
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string arg0 = program_name().empty() ? std::string("cojob-worker") : program_name();
    char* argv[] = {arg0.data(), nullptr};

    pid_t pid = -1;
    int rc = 0;
    try {
        rc = spawner.run([&] { return ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr, argv, envp.data()); });
    } catch (...) {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        throw;
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "cojob: posix_spawn of a worker process");

    spawned_worker w;
    w.pid = pid;
    w.memory = std::make_shared<worker_memory>(pid);
    ::fcntl(req_w.fd, F_SETFL, ::fcntl(req_w.fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(resp_r.fd, F_SETFL, ::fcntl(resp_r.fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(out_r.fd, F_SETFL, ::fcntl(out_r.fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(err_r.fd, F_SETFL, ::fcntl(err_r.fd, F_GETFL) | O_NONBLOCK);
    w.to = req_w.release();
    w.from = resp_r.release();
    w.out = out_r.release();
    w.err = err_r.release();
    if (bell.fd >= 0) {
        w.exit = process_seam().pidfd_open(pid, 0);
        if (w.exit >= 0) w.bell = bell.release();  // a pidfd is close-on-exec
    }
    w.status = std::shared_ptr<worker_status>(status, [](worker_status* p) { ::munmap(p, sizeof(worker_status)); });
    page_guard.p = nullptr;
    w.arena = std::move(arena);
    return w;
}

}  // namespace cojob::detail::process
