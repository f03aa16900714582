// src/backend_processes.cpp - a pool of worker processes owned by one `parallel` object.
//
// Workers are this program started again (/proc/self/exe, posix_spawn: no fork of a
// multithreaded parent) with two pipes and a shared status page on fixed descriptors; the
// guard in `cojob::init` turns them into task servers. The parent drives the pipes through
// Asio on the call's executor: it waits for readiness with async_wait and does the reads and
// writes itself, through the pipe seam, so that partial transfers are handled in one place.
// Every worker holds at most two batches, the one it runs and the next, so that it never waits
// for the parent between batches; the rest wait here until a worker has room.
//
// A worker that dies, sends garbage or is killed by an interrupt (error, timeout,
// cancellation) is reaped at once and its batch comes back with the reason; the pool starts a
// replacement when work is waiting or at the next call.
#include "arena.hpp"
#include "../backend.hpp"
#include "../call_state.hpp"
#include "../sharing.hpp"
#include "../util.hpp"
#include "../wire.hpp"
#include "../worker.hpp"

#include <cojob/init.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace cojob::detail {

namespace asio = boost::asio;

namespace {

constexpr int pipe_bytes = 1 << 20;  // F_SETPIPE_SZ: 16 MiB move ~8x faster than through 64 KiB
constexpr std::size_t read_chunk = 256 * 1024;
constexpr std::size_t depth = 2;  // batches a worker holds: the running one and the next
// Batches this long make a round trip of idling (~0.1 ms) cheap next to a badly placed batch.
constexpr std::int64_t long_batch_ns = 2'000'000;

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

std::string describe_status(int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* abbrev = ::sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    }
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    return "stopped (status " + std::to_string(status) + ")";
}

/// SIGPIPE would kill the parent when it writes to a worker that just died; like CPython, cojob
/// ignores it when nobody has claimed it, and sees EPIPE instead.
void ignore_sigpipe_once() {
    static const bool done = [] {
        struct sigaction old {};
        if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
        return true;
    }();
    (void)done;
}

/// A stream's response left in its worker's arena (see deferred_payload), with the results it
/// lent. Destroying it hands the arena back: the pages leave this process, and the worker may
/// write again and drop what it lent.
class arena_payload final : public deferred_payload {
public:
    arena_payload(std::shared_ptr<shared_arena> arena, std::shared_ptr<worker_status> status,
                  std::shared_ptr<worker_memory> memory, std::size_t bytes)
        : arena_(std::move(arena)), status_(std::move(status)), memory_(std::move(memory)), bytes_(bytes) {}
    ~arena_payload() override {
        arena_->forget_pages();
        arena_flag::release(status_->arena_held);
    }
    arena_payload(const arena_payload&) = delete;
    arena_payload& operator=(const arena_payload&) = delete;

    const char* data() override { return arena_->view(sizeof(frame_header) + bytes_) + sizeof(frame_header); }
    std::size_t size() const noexcept override { return bytes_; }
    void copy_out(std::size_t offset, std::size_t n, piece_sink sink, void* ctx) override {
        if (offset > bytes_ || n > bytes_ - offset) throw wire_error("cojob: a read past the end of a worker's arena");
        arena_->copy_out(sizeof(frame_header) + offset, n, sink, ctx);
    }
    void copy_lent(std::uint64_t address, std::size_t n, piece_sink sink, void* ctx) override {
        memory_->copy(address, n, sink, ctx);
    }

private:
    std::shared_ptr<shared_arena> arena_;
    std::shared_ptr<worker_status> status_;
    std::shared_ptr<worker_memory> memory_;
    std::size_t bytes_;
};

struct job {
    std::unique_ptr<batch_base> batch;
    std::shared_ptr<call_state> call;
};

struct worker_proc {
    pid_t pid = -1;
    int to = -1;    ///< request pipe, parent's end (non-blocking)
    int from = -1;  ///< response pipe, parent's end (non-blocking)
    /// The shared status page and the result arena (mapped read-only): shared with the
    /// deferred payloads of a stream, which may outlive the worker.
    std::shared_ptr<worker_status> status;
    std::shared_ptr<shared_arena> arena;
    /// Its memory, for lent results; every reaping goes through it (worker_memory::reap).
    std::shared_ptr<worker_memory> memory;
    bool greeted = false;      ///< its hello frame arrived and matched
    bool dead = false;         ///< reaped or being replaced
    bool interrupted = false;  ///< killed on purpose for its call
    std::uint64_t epoch = 0;   ///< bumps when the worker is dropped or unbound: stale handlers see it

    std::unique_ptr<asio::posix::stream_descriptor> rd, wr;  ///< bound to `bound_to`
    asio::any_io_executor bound_to;

    std::deque<job> jobs;  ///< sent, in order; the front one runs
    byte_buffer out;       ///< frames not yet written from out_pos on
    std::size_t out_pos = 0;
    byte_buffer in;

    [[nodiscard]] bool idle() const noexcept { return !dead && jobs.empty(); }
    /// A worker killed on purpose takes nothing more: its end of file is on its way.
    [[nodiscard]] bool has_room() const noexcept { return !dead && !interrupted && jobs.size() < depth; }
    [[nodiscard]] bool serves(const call_state& c) const noexcept {
        for (const auto& j : jobs)
            if (j.call.get() == &c) return true;
        return false;
    }
};

using worker_ptr = std::shared_ptr<worker_proc>;

class process_backend final : public backend_base {
public:
    explicit process_backend(const resolved_options& o)
        : profile_{.name = backend_name(cojob::backend::processes), .workers = static_cast<std::size_t>(o.n_jobs),
                   .runs_in_submit = false, .min_ideal_batch_seconds = 0.002},
          workers_(o.n_jobs),
          inner_threads_(std::max(cpu_count() / std::max(o.n_jobs, 1), 1)),
          sharing_settings_{o.temp_folder, o.max_nbytes, o.mmap_mode} {}

    ~process_backend() override { shutdown(); }

    const dispatch_profile& profile() const noexcept override { return profile_; }

    void begin_call(call_state& call) override {
        if (!cojob::initialized()) {
            if (std::getenv(worker_env))
                throw error("cojob: this process was started as a cojob worker, but its main() reached a "
                            "parallel call without calling cojob::init(argc, argv) first; call it at the top of "
                            "main so that workers serve tasks instead of running the program");
            throw error("cojob: backend=processes needs cojob::init(argc, argv) at the top of main(): workers are "
                        "this program started again, and init is where they serve tasks instead of running main");
        }
        if (std::string why = call.remote_refusal(); !why.empty())
            throw error("cojob: backend=processes cannot run these tasks: " + why +
                        " (backend=threads runs any callable)");
        ignore_sigpipe_once();
        reap_idle_dead();
        while (live() < workers_) pool_.push_back(spawn());
        // Large array arguments: placed once per call, released in end_call (src/sharing.hpp).
        sharing_[&call] = std::make_unique<call_sharing>(sharing_settings_, segments_);
    }

    void submit(std::unique_ptr<batch_base> batch, std::shared_ptr<call_state> call) noexcept override {
        queue_.push_back(job{std::move(batch), std::move(call)});
        pump();
    }

    /// Ctrl-C during a blocking call stops its workers, when the program has not claimed
    /// SIGINT for itself (Asio restores the default disposition when the watch goes).
    std::unique_ptr<call_watch> watch_interrupts(asio::io_context& ctx, std::function<void()> interrupted) override {
        struct sigaction current {};
        if (::sigaction(SIGINT, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) return nullptr;
        struct sigint_watch final : call_watch {
            explicit sigint_watch(asio::io_context& c) : signals(c, SIGINT) {}
            ~sigint_watch() override {
                boost::system::error_code ignored;
                signals.cancel(ignored);  // its handler runs later on the io_context, and returns
            }
            asio::signal_set signals;
        };
        auto watch = std::make_unique<sigint_watch>(ctx);
        watch->signals.async_wait([on = std::move(interrupted)](boost::system::error_code ec, int) {
            if (!ec) on();
        });
        return watch;
    }

    stop_effect interrupt(call_state& call) noexcept override {
        for (auto& w : pool_) {
            if (!w->dead && w->serves(call) && !w->interrupted) {
                w->interrupted = true;
                ::kill(w->pid, SIGKILL);  // its pipe reports end of file, and the batch comes back
            }
        }
        // Batches not sent yet come back at once.
        for (auto it = queue_.begin(); it != queue_.end();) {
            if (it->call.get() == &call) {
                it->batch->error = std::make_exception_ptr(cancelled("cojob: the call stopped before this batch ran"));
                call_state::finished(std::move(it->call), std::move(it->batch));
                it = queue_.erase(it);
            } else {
                ++it;
            }
        }
        return {true, " (its worker process was killed and will be replaced)"};
    }

    void refresh_progress(call_state& call) noexcept override {
        for (auto& w : pool_) {
            if (w->dead || w->jobs.empty() || w->jobs.front().call.get() != &call || !w->status) continue;
            batch_base& b = *w->jobs.front().batch;
            b.running.store(static_cast<std::size_t>(w->status->running.load(std::memory_order_relaxed)),
                            std::memory_order_relaxed);
            b.running_since.store(w->status->running_since.load(std::memory_order_acquire), std::memory_order_release);
        }
    }

    void end_call(call_state& call) noexcept override {
        // Descriptors bound to the user's executor must not outlive the call (its io_context may
        // go away); a blocking call's io_context lives as long as we do.
        if (!call.blocking())
            for (auto& w : pool_)
                if (w->rd && w->bound_to == call.executor()) unbind(*w);
        std::erase_if(pool_, [](const worker_ptr& w) { return w->dead; });
        sharing_.erase(&call);
    }

private:
    [[nodiscard]] int live() const noexcept {
        int n = 0;
        for (const auto& w : pool_) n += !w->dead && !w->interrupted;  // an interrupted one is on its way out
        return n;
    }

    worker_ptr spawn() {
        int req[2], resp[2];
        if (::pipe2(req, O_CLOEXEC) != 0) throw_errno("cojob: pipe2");
        fd_guard req_r(req[0]), req_w(req[1]);
        if (::pipe2(resp, O_CLOEXEC) != 0) throw_errno("cojob: pipe2");
        fd_guard resp_r(resp[0]), resp_w(resp[1]);
        (void)::fcntl(req_w.fd, F_SETPIPE_SZ, pipe_bytes);  // best effort: pipe-max-size may forbid it
        (void)::fcntl(resp_w.fd, F_SETPIPE_SZ, pipe_bytes);
        fd_guard mem(::memfd_create("cojob-worker-status", MFD_CLOEXEC));
        if (mem.fd < 0) throw_errno("cojob: memfd_create");
        if (::ftruncate(mem.fd, static_cast<off_t>(sizeof(worker_status))) != 0) throw_errno("cojob: ftruncate");
        void* page = ::mmap(nullptr, sizeof(worker_status), PROT_READ | PROT_WRITE, MAP_SHARED, mem.fd, 0);
        if (page == MAP_FAILED) throw_errno("cojob: mmap");
        auto* status = new (page) worker_status();
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

        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, child_in.fd, worker_request_fd);
        posix_spawn_file_actions_adddup2(&actions, child_out.fd, worker_response_fd);
        posix_spawn_file_actions_adddup2(&actions, child_mem.fd, worker_status_fd);
        posix_spawn_file_actions_adddup2(&actions, child_arena.fd, worker_arena_fd);
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
                              std::to_string(worker_arena_fd) + "," + std::to_string(::getpid()));
        // Native thread pools inside the workers share the CPUs with the other workers (joblib's
        // oversubscription guard), unless the user chose a value.
        for (const char* var : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                                "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS"})
            if (!std::getenv(var)) env_strings.push_back(std::string(var) + "=" + std::to_string(inner_threads_));
        std::vector<char*> envp;
        envp.reserve(env_strings.size() + 1);
        for (auto& s : env_strings) envp.push_back(s.data());
        envp.push_back(nullptr);
        std::string arg0 = program_name().empty() ? std::string("cojob-worker") : program_name();
        char* argv[] = {arg0.data(), nullptr};

        pid_t pid = -1;
        const int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr, argv, envp.data());
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        if (rc != 0) throw std::system_error(rc, std::generic_category(), "cojob: posix_spawn of a worker process");

        auto w = std::make_shared<worker_proc>();
        w->pid = pid;
        w->memory = std::make_shared<worker_memory>(pid);
        ::fcntl(req_w.fd, F_SETFL, ::fcntl(req_w.fd, F_GETFL) | O_NONBLOCK);
        ::fcntl(resp_r.fd, F_SETFL, ::fcntl(resp_r.fd, F_GETFL) | O_NONBLOCK);
        w->to = req_w.release();
        w->from = resp_r.release();
        w->status = std::shared_ptr<worker_status>(status, [](worker_status* p) { ::munmap(p, sizeof(worker_status)); });
        page_guard.p = nullptr;
        w->arena = std::move(arena);
        return w;
    }

    /// Drops idle workers that died while nobody was looking (OOM killer, a signal).
    void reap_idle_dead() {
        for (auto& w : pool_) {
            if (!w->idle()) continue;
            int st = 0;
            if (w->interrupted) {
                retire(*w);
            } else if (w->memory->reap(st, WNOHANG) == w->pid) {
                w->pid = -1;
                drop(*w);
            }
        }
        std::erase_if(pool_, [](const worker_ptr& x) { return x->dead; });
    }

    void bind(worker_proc& w, const asio::any_io_executor& ex) {
        if (w.rd && w.bound_to == ex) return;
        if (w.rd) unbind(w);
        w.rd = std::make_unique<asio::posix::stream_descriptor>(ex, w.from);
        w.wr = std::make_unique<asio::posix::stream_descriptor>(ex, w.to);
        w.bound_to = ex;
    }

    static void unbind(worker_proc& w) noexcept {
        // A wait that completed before release() still runs its handler (already queued on the
        // old executor): the new epoch makes it a no-op instead of a read through a null rd.
        ++w.epoch;
        if (w.rd) (void)w.rd->release();
        if (w.wr) (void)w.wr->release();
        w.rd.reset();
        w.wr.reset();
        w.bound_to = {};
    }

    void pump() {
        while (!queue_.empty()) {
            // The least loaded worker with room; an idle one first.
            worker_ptr free;
            for (auto& w : pool_)
                if (w->has_room() && (!free || w->jobs.size() < free->jobs.size())) free = w;
            if (!free || (!free->jobs.empty() && live() < workers_)) {
                if (live() >= workers_) return;
                try {
                    free = spawn();
                } catch (...) {
                    job j = std::move(queue_.front());
                    queue_.pop_front();
                    j.batch->error = std::current_exception();
                    call_state::finished(std::move(j.call), std::move(j.batch));
                    continue;
                }
                pool_.push_back(free);
            }
            // At the end of a call's input, a batch of long tasks waits for an idle worker
            // instead of queueing behind a running batch: the other worker may free up first,
            // and a task queued on the wrong worker costs the call a whole task at its end.
            if (!free->jobs.empty() && long_batches_ && queue_.front().call->input_exhausted()) return;
            job j = std::move(queue_.front());
            queue_.pop_front();
            send(free, std::move(j));
        }
    }

    void send(const worker_ptr& w, job j) {
        batch_base& b = *j.batch;
        if (w->out_pos == w->out.size()) {
            w->out.clear();
            w->out_pos = 0;
        }
        const std::size_t before = w->out.size();
        try {
            bind(*w, j.call->executor());
            const auto at = begin_frame(w->out);
            wire_out ar(w->out);
            const auto shared = sharing_.find(j.call.get());
            sharing_scope scope(shared == sharing_.end() ? nullptr : shared->second.get());
            b.encode(ar, j.call->tracks_tasks());
            end_frame(w->out, at, frame_kind::request);
        } catch (...) {
            w->out.resize(before);
            b.error = std::current_exception();
            b.completed = 0;
            call_state::finished(std::move(j.call), std::move(j.batch));
            return;
        }
        const bool was_idle = w->jobs.empty();
        const bool was_writing = w->out_pos < before;
        w->jobs.push_back(std::move(j));
        if (!was_writing) write_more(w);
        if (was_idle) wait_readable(w);
    }

    void write_more(const worker_ptr& w) {
        while (w->out_pos < w->out.size()) {
            const ssize_t r = pipe_seam().write(w->to, w->out.data() + w->out_pos, w->out.size() - w->out_pos);
            if (r > 0) {
                w->out_pos += static_cast<std::size_t>(r);
            } else if (r < 0 && errno == EINTR) {
                continue;
            } else if (r < 0 && errno == EAGAIN) {
                w->wr->async_wait(asio::posix::stream_descriptor::wait_write,
                                  [this, w, epoch = w->epoch](boost::system::error_code ec) {
                                      if (!ec && w->epoch == epoch && !w->dead) write_more(w);
                                  });
                return;
            } else {
                // EPIPE: the worker is gone; the read side reports how it ended.
                w->out_pos = w->out.size();
                return;
            }
        }
        w->out.shrink_if_above(64u << 20);
    }

    void wait_readable(const worker_ptr& w) {
        w->rd->async_wait(asio::posix::stream_descriptor::wait_read,
                          [this, w, epoch = w->epoch](boost::system::error_code ec) {
                              if (!ec && w->epoch == epoch && !w->dead) read_more(w);
                          });
    }

    void read_more(const worker_ptr& w) {
        for (;;) {
            // Read straight into place: as much as the frame in progress still needs.
            std::size_t want = read_chunk;
            if (w->in.size() >= sizeof(frame_header)) {
                frame_header h;
                try {
                    h = parse_header(w->in.data());
                } catch (...) {
                    lost(w, std::current_exception());
                    return;
                }
                const std::size_t total = sizeof(frame_header) + static_cast<std::size_t>(bytes_on_pipe(h.kind, h.length));
                if (total > w->in.size()) want = std::max(want, total - w->in.size());
            }
            const std::size_t at = w->in.size();
            w->in.reserve(at + want);
            const ssize_t r = pipe_seam().read(w->from, w->in.data() + at, want);
            if (r > 0) {
                w->in.resize(at + static_cast<std::size_t>(r));
                if (take_frames(w)) return;
            } else if (r == 0) {
                lost(w, nullptr);
                return;
            } else if (errno == EINTR) {
                continue;
            } else if (errno == EAGAIN) {
                wait_readable(w);
                return;
            } else {
                lost(w, std::make_exception_ptr(std::system_error(errno, std::generic_category(),
                                                                  "cojob: reading a worker pipe")));
                return;
            }
        }
    }

    /// Handles the complete frames in the buffer; true when the worker's batch is done (or the
    /// worker was dropped) and reading must stop.
    bool take_frames(const worker_ptr& w) {
        while (w->in.size() >= sizeof(frame_header)) {
            try {
                const frame_header h = parse_header(w->in.data());
                const std::size_t total = sizeof(frame_header) + static_cast<std::size_t>(bytes_on_pipe(h.kind, h.length));
                if (w->in.size() < total) return false;
                const bool in_arena = h.kind == static_cast<std::uint16_t>(frame_kind::arena_response);
                if (in_arena && !w->arena) throw wire_error("cojob: a worker without an arena sent an arena response");
                const char* payload = in_arena ? w->arena->view(sizeof(frame_header) + h.length) + sizeof(frame_header)
                                               : w->in.data() + sizeof(frame_header);
                // The checksum guards bytes that crossed the pipe. An arena payload did not: it is
                // memory the worker wrote before it sent the header, and hashing 16 MiB twice
                // would cost more than the rest of the hand-over.
                if (!in_arena) check_payload(h, payload);
                wire_in ar(payload, static_cast<std::size_t>(h.length));
                switch (static_cast<frame_kind>(h.kind)) {
                    case frame_kind::hello: {
                        std::string identity;
                        std::int32_t pid = 0;
                        ar(identity, pid);
                        if (identity != build_identity())
                            throw wire_error("cojob: worker process " + std::to_string(pid) + " is another build (" +
                                             identity + ", expected " + build_identity() + ")");
                        std::uint64_t probe = 0;
                        ar(probe);
                        // Large vector results are lent when this process can read the worker's memory.
                        if (w->memory->probe(probe))
                            w->status->lend.store(static_cast<std::uint32_t>(std::max(workers_, 1)), std::memory_order_release);
                        w->greeted = true;
                        break;
                    }
                    case frame_kind::response:
                    case frame_kind::arena_response: {
                        if (!w->greeted) throw wire_error("cojob: a worker answered before its handshake");
                        if (w->jobs.empty()) throw wire_error("cojob: a worker answered a request it was not sent");
                        batch_base& b = *w->jobs.front().batch;
                        if (in_arena && h.reserved != arena_response_failed && w->jobs.front().call->streams_results()) {
                            // A stream reads the results when its consumer takes them; until then
                            // they stay in the arena, and the worker waits before writing the next.
                            std::uint64_t completed = 0;
                            ar(completed);
                            if (completed > b.size) throw wire_error("cojob: a worker answered more tasks than it was sent");
                            b.completed = static_cast<std::size_t>(completed);
                            b.deferred = std::make_unique<arena_payload>(w->arena, w->status, w->memory,
                                                                         static_cast<std::size_t>(h.length));
                        } else {
                            const lend_scope lending(w->memory.get());
                            b.decode(ar);
                            // The arena stays mapped here: unmapping it to keep its pages out of
                            // this process's RSS made the next response fault them all in again,
                            // a fifth of the parent's time on 16 MB results. They are the
                            // worker's pages, shared, not a second copy (PSS counts them once).
                            if (in_arena) arena_flag::release(w->status->arena_held);  // the worker may write it again
                        }
                        w->in.consume(total);
                        job j = std::move(w->jobs.front());
                        w->jobs.pop_front();
                        long_batches_ = batch_base::now_ns() - j.batch->dispatched_ns > long_batch_ns;
                        // Killed just after it answered: the answer stands, the process goes.
                        if (w->interrupted && w->jobs.empty()) retire(*w);
                        call_state::finished(std::move(j.call), std::move(j.batch));
                        pump();  // refill it before reading on: it works while we decode
                        if (w->dead || w->jobs.empty()) {
                            w->in.shrink_if_above(64u << 20);
                            return true;
                        }
                        continue;
                    }
                    case frame_kind::fault: {
                        std::string message;
                        ar(message);
                        throw wire_error(message);
                    }
                    default: throw wire_error("cojob: a worker sent a request frame");
                }
                w->in.consume(total);
            } catch (const lent_result_lost&) {
                lost(w, nullptr, true);  // it died before we read what it lent: tell how
                return true;
            } catch (...) {
                lost(w, std::current_exception());
                return true;
            }
        }
        return false;
    }

    /// The worker ended its pipe (`why` null) or broke the protocol (`why`): kill and reap it,
    /// and give its batch back with the reason. `answered`: it died after it answered its first
    /// batch but before this process read the results that answer lent.
    void lost(const worker_ptr& w, std::exception_ptr why, bool answered = false) {
        const bool was_interrupted = w->interrupted;
        const pid_t pid = w->pid;
        ::kill(pid, SIGKILL);
        int st = 0;
        const bool reaped = w->memory->reap(st, 0) == pid;
        w->pid = -1;
        const bool greeted = w->greeted;
        const std::size_t index =
            w->status ? static_cast<std::size_t>(w->status->running.load(std::memory_order_relaxed)) : 0;
        drop(*w);
        std::deque<job> jobs = std::move(w->jobs);
        w->jobs.clear();
        const std::string how = reaped ? describe_status(st) : std::string("ended");
        if (answered && !jobs.empty()) {
            job a = std::move(jobs.front());
            jobs.pop_front();
            a.batch->error = std::make_exception_ptr(worker_died(
                "cojob: worker process " + std::to_string(pid) + " " + how + " before its results for tasks #" +
                std::to_string(a.batch->first) + " to #" + std::to_string(a.batch->first + a.batch->size - 1) +
                " were read (a vector result of " + std::to_string(large_vector_bytes >> 20) +
                " MiB or more stays in its worker until the parent reads it)"));
            a.batch->completed = 0;
            call_state::finished(std::move(a.call), std::move(a.batch));
        }
        if (jobs.empty()) {
            if (answered) pump();
            return;
        }
        // Batches behind the one that ran never started.
        for (std::size_t k = 1; k < jobs.size(); ++k) {
            jobs[k].batch->error = std::make_exception_ptr(cancelled("cojob: the worker holding this batch was lost"));
            jobs[k].batch->completed = 0;
        }
        job j = std::move(jobs.front());
        jobs.pop_front();
        batch_base& b = *j.batch;
        if (was_interrupted) {
            b.error = std::make_exception_ptr(cancelled("cojob: the worker running this batch was stopped"));
        } else if (why) {
            b.error = why;
            try {
                std::rethrow_exception(why);
            } catch (const std::exception& e) {
                b.error = std::make_exception_ptr(
                    wire_error(std::string(e.what()) + "; worker process " + std::to_string(pid) +
                               " was killed and will be replaced"));
            } catch (...) {
            }
        } else {
            if (!greeted) {
                b.error = std::make_exception_ptr(worker_died(
                    "cojob: worker process " + std::to_string(pid) + " " + how +
                    " before its handshake; does main() call cojob::init(argc, argv) before anything else?"));
            } else {
                const std::size_t i = std::min(index, b.size ? b.size - 1 : 0);
                std::string task;
                try {
                    task = b.function_name(i) + "(" + b.arguments(i) + ")";
                } catch (...) {
                    task = "?";
                }
                b.error = std::make_exception_ptr(worker_died(
                    "cojob: worker process " + std::to_string(pid) + " " + how + " while running task #" +
                    std::to_string(b.first + i) + ": " + task +
                    "; a segmentation fault, an abort or the OOM killer are the usual causes; the pool "
                    "replaces the worker"));
            }
        }
        b.completed = 0;
        call_state::finished(std::move(j.call), std::move(j.batch));
        for (auto& rest : jobs) call_state::finished(std::move(rest.call), std::move(rest.batch));
        pump();
    }

    /// Kills and reaps a worker that is not needed any more.
    void retire(worker_proc& w) noexcept {
        if (w.pid > 0) {
            ::kill(w.pid, SIGKILL);
            int st = 0;
            (void)w.memory->reap(st, 0);
            w.pid = -1;
        }
        drop(w);
    }

    /// Forgets a worker whose process is gone (or about to be): closes its ends and page.
    void drop(worker_proc& w) noexcept {
        if (w.dead) return;
        w.dead = true;
        ++w.epoch;
        unbind(w);
        if (w.to >= 0) ::close(w.to);
        if (w.from >= 0) ::close(w.from);
        w.to = w.from = -1;
        w.status.reset();
        w.arena.reset();
    }

    /// Closing a worker's request pipe tells it to exit; those that do not within a second
    /// (a task still running) are killed.
    void shutdown() noexcept {
        for (auto& w : pool_) {
            if (w->dead) continue;
            unbind(*w);
            if (w->to >= 0) ::close(w->to);
            w->to = -1;
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        for (auto& w : pool_) {
            if (w->dead || w->pid < 0) continue;
            int st = 0;
            while (w->memory->reap(st, WNOHANG) == 0) {
                if (std::chrono::steady_clock::now() > deadline) {
                    ::kill(w->pid, SIGKILL);
                    (void)w->memory->reap(st, 0);
                    break;
                }
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
            w->pid = -1;
            drop(*w);
        }
        pool_.clear();
    }

    dispatch_profile profile_;
    int workers_;
    int inner_threads_;
    std::vector<worker_ptr> pool_;
    std::deque<job> queue_;
    bool long_batches_ = false;  ///< the last batch answered took longer than long_batch_ns
    sharing_settings sharing_settings_;
    segment_store segments_;  ///< before sharing_: the calls give their segments back to it
    std::map<const call_state*, std::unique_ptr<call_sharing>> sharing_;
};

}  // namespace

std::unique_ptr<backend_base> make_processes_backend(const resolved_options& opts) {
    return std::make_unique<process_backend>(opts);
}

}  // namespace cojob::detail
