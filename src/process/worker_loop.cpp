// src/process/worker_loop.cpp - a worker process serving its parent: it says hello, then reads
// a request (from the status page's request slot when it fits there, else from the request
// pipe), runs its batch and answers, in a loop, until the parent closes the request pipe or
// dies. Responses are written into the result arena. With a doorbell none crosses the pipe: a
// large one stays in the arena, a smaller one is copied into the status page's answer slot, and
// the header goes into the status page; without one a large one stays in the arena with only
// its header crossing the pipe (arena.hpp). A request it cannot read ends it with a fault frame.
#include "worker_loop.hpp"

#include "../sharing.hpp"
#include "../util.hpp"
#include "../wire.hpp"
#include "../worker.hpp"
#include "arena.hpp"
#include "frame_reader.hpp"
#include "futex_word.hpp"
#include "spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace cojob::detail::process {

namespace {

void flush_output() {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
}

/// Whether the parent gave this worker a doorbell (worker_status::doorbell); its answers then
/// go out non-blocking.
bool has_bell = false;

/// Whether its answers cross no pipe (headers and small payloads in the status page, large
/// payloads in the arena): with a doorbell and an arena, as the parent expects of a worker it
/// gave both.
bool arena_answers = false;

/// Rings the parent's doorbell, when this worker has one.
void ring() noexcept {
    if (!has_bell) return;
    const std::uint64_t one = 1;
    (void)!::write(worker_bell_fd, &one, sizeof one);
}

/// Writes a frame to the parent, ringing before it waits for room in a full pipe (the parent
/// may be reading nothing until it is told).
/// @throws std::system_error when the parent is gone.
void send_frame(const void* data, std::size_t n) { write_all(worker_response_fd, data, n, &ring); }

/// Sends an answer and counts it (worker_status::answers), then rings when the parent asks.
/// With arena answers the frame `h` heads, whose payload follows the header's place in the
/// arena at `frame`, crosses no pipe: its header goes into the status page, and its payload
/// stays in the arena (an arena_response) or, smaller, is copied into the answer slot. Without
/// them, the `n` bytes at `frame` are written to the pipe.
/// @throws std::system_error when the parent is gone.
void answer(worker_status& status, const frame_header& h, const char* frame, std::size_t n) {
    if (arena_answers) {
        // The parent has decoded the last answer long ago, as a rule: the header and the slot
        // must not change under it.
        arena_flag::wait_released(status.answer_held);
        if (h.kind == static_cast<std::uint16_t>(frame_kind::arena_response)) {
            status.arena_held.store(1, std::memory_order_release);
        } else {
            std::memcpy(status.answer_slot, frame + sizeof h, static_cast<std::size_t>(h.length));
            status.answer_held.store(1, std::memory_order_release);
        }
        status.answer = h;
    } else {
        send_frame(frame, n);
    }
    status.answers.fetch_add(1, std::memory_order_seq_cst);
    if (status.doorbell.load(std::memory_order_seq_cst) != 0) ring();
}

/// Sends a fault frame (the parent reports it and replaces this worker) and exits.
[[noreturn]] void fault(const std::string& message) {
    try {
        byte_buffer b;
        const auto at = begin_frame(b);
        wire_out ar(b);
        ar(message);
        end_frame(b, at, frame_kind::fault);
        send_frame(b.data(), b.size());
    } catch (...) {
    }
    flush_output();
    std::_Exit(3);
}

/// Spins briefly before sleeping: the next request often follows the last response closely,
/// and waking a sleeping process costs tens of microseconds. It watches how many requests the
/// parent has sent (worker_status::sent) against the `taken` this worker has read: a load per
/// turn, no system call. Asleep, it waits on the status page's `wake` word, which the parent
/// bumps when it sees `asleep` after sending; the parent's end reaches it by the hang-up watch.
void wait_for_request(worker_status& status, std::uint64_t taken) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (std::chrono::steady_clock::now() < until) {
        if (status.sent.load(std::memory_order_acquire) > taken) return;
        // On a busy machine the parent may need this CPU to read the answer just written.
        ::sched_yield();
    }
    for (;;) {
        status.asleep.store(1, std::memory_order_seq_cst);
        const std::uint32_t seen = status.wake.load(std::memory_order_seq_cst);
        if (status.sent.load(std::memory_order_seq_cst) > taken) break;
        futex_wait(status.wake, seen, timespec{1, 0});  // a second: re-checked whatever happens to wakes
    }
    status.asleep.store(0, std::memory_order_relaxed);
}

/// Copies request `number` out of the status page's request slot into `in`, its header into
/// `h`; false when the slot does not hold it (it is in the pipe then).
/// @throws wire_error when it makes no sense.
bool take_from_slot(worker_status& status, std::uint64_t number, frame_header& h, byte_buffer& in) {
    if (status.slot_request.load(std::memory_order_acquire) != number) return false;
    h = parse_header(status.request_slot);
    if (h.length > request_slot_bytes - sizeof h) throw wire_error("cojob: a request overruns the request slot");
    in.clear();
    in.resize(static_cast<std::size_t>(h.length));
    std::memcpy(in.data(), status.request_slot + sizeof h, in.size());
    status.slot_taken.store(number, std::memory_order_release);  // the parent may write it again
    return true;
}

[[noreturn]] void serve_parent(int parent) {
    enter_worker_mode();
    // Standard output is a pipe to the parent (worker_output.hpp): a line a task prints goes at
    // once, not when a block fills.
    std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
    keep_worker_mappings();  // this loop releases them after every request (src/sharing.hpp)
    // Ctrl-C in a terminal reaches the whole process group: the parent decides what it means.
    ::signal(SIGINT, SIG_IGN);
    // The parent's death ends the worker, whatever the worker is doing: by the request pipe's
    // hang-up (watched below), and by a signal for when no hang-up comes (a process the parent
    // forked without exec holds the pipe's other end). The signal comes when the thread that
    // spawned this worker ends, and that thread lasts as long as the parent process (spawn.cpp).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) std::_Exit(0);
    // Programs a task starts must not hold the pipes open after this worker is gone.
    for (int fd : {worker_request_fd, worker_response_fd, worker_status_fd, worker_arena_fd})
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    std::thread([] {
        pollfd p{worker_request_fd, 0, 0};
        for (;;) {
            if (::poll(&p, 1, -1) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
                flush_output();
                std::_Exit(0);
            }
        }
    }).detach();

    auto* status = static_cast<worker_status*>(
        ::mmap(nullptr, sizeof(worker_status), PROT_READ | PROT_WRITE, MAP_SHARED, worker_status_fd, 0));
    // Without it the parent could not tell which task runs, nor take back a held request.
    if (status == MAP_FAILED) fault(std::string("cojob: worker could not map its status page: ") + std::strerror(errno));
    worker_context ctx;
    ctx.running = &status->running;
    ctx.running_since = &status->running_since;

    // Responses are written into the result arena; large ones stay there (arena.hpp).
    const bool has_arena = ::fcntl(worker_arena_fd, F_GETFD) >= 0;
    arena_answers = has_bell && has_arena;
    shared_arena arena(has_arena ? worker_arena_fd : -1, true);
    byte_buffer out = has_arena ? byte_buffer(arena) : byte_buffer();
    // Large vector results lent to the parent (worker_context::lent): kept until the parent has
    // read the response that lent them, which it says by releasing the arena.
    std::vector<std::shared_ptr<void>> lent;
    struct hand_over {
        std::atomic<std::uint32_t>* held;
        std::vector<std::shared_ptr<void>>* lent;
    } hand{has_arena ? &status->arena_held : nullptr, &lent};
    if (has_arena) {
        ctx.acquire_output = [](void* arg) {
            auto& h = *static_cast<hand_over*>(arg);
            arena_flag::wait_released(*h.held);
            h.lent->clear();
        };
        ctx.acquire_arg = &hand;
        ctx.lent = &lent;
        // Set by the parent once its probe of our hello worked, which may be after the first
        // request: read at each large result.
        ctx.lend_readers = &status->lend;
    }
    // Its doorbell, when the parent gave it one; then its answers go out non-blocking (answer).
    if (has_bell) {
        ::fcntl(worker_bell_fd, F_SETFD, FD_CLOEXEC);
        ::fcntl(worker_response_fd, F_SETFL, ::fcntl(worker_response_fd, F_GETFL) | O_NONBLOCK);
    }
    worker_arrays arrays;  // the shared arguments its requests name (src/sharing.hpp)
    byte_buffer in;
    std::uint64_t requests = 0;  // numbered as the parent numbers them (src/request_gate.hpp)
    try {
        write_hello(out);
        send_frame(out.data(), out.size());
    } catch (...) {
        std::_Exit(3);
    }

    frame_reader requests_in(worker_request_fd);
    for (;;) {
        if (!requests_in.header_ready()) wait_for_request(*status, requests);
        frame_header h;
        try {
            if (!take_from_slot(*status, requests + 1, h, in)) {
                char head[frame_reader::header_bytes];
                if (!requests_in.read_header(head)) break;  // the parent closed: done
                h = parse_header(head);
                requests_in.read_payload(h.length, in);
            }
            if (h.kind != static_cast<std::uint16_t>(frame_kind::request))
                throw wire_error("cojob: worker got a frame that is not a request");
            check_payload(h, in.data());
        } catch (const std::exception& e) {
            fault(std::string("cojob: worker could not read a request: ") + e.what());
        }
        // Taken back while it waited behind the previous one: an idle worker runs it.
        if (!start_request(status->gate, ++requests)) continue;
        // The parent may still be reading the previous response out of the arena: the batch
        // waits for it only when it has a first result to write (ctx.acquire_output), so that
        // the parent's decoding overlaps the first task. Only the frame header's 32 bytes are
        // written before that, and the parent never reads those from the arena.
        if (has_arena && status->arena_held.load(std::memory_order_acquire) == 0) {
            out.clear();
            out.shrink_if_above(arena_keep_bytes);
            lent.clear();
        }
        bool stays = false;  // the response stays in the arena, handed over by its flag
        try {
            ctx.lend_mark_ns = steady_now_ns();
            run_request(in.data(), in.size(), out, ctx, arrays);
            // Every batch passes ctx.acquire(), which empties `lent`: what it holds now this
            // response lent, and the response must be handed over even when it is small.
            // (`stays`: an arena_response, which a stream's consumer may keep there.)
            stays = has_arena && (out.size() >= arena_min_response || !lent.empty());
            // A response that stays in the arena gets its header below, without a checksum.
            if (!stays) end_frame(out, 0, frame_kind::response);
        } catch (const std::exception& e) {
            fault(std::string("cojob: worker could not decode a request: ") + e.what());
        }
        release_request_mappings();  // shared arguments of this request (src/sharing.hpp)
        flush_output();  // what the tasks printed comes before their results
        try {
            if (stays) {
                // The payload stays in the arena until the parent has decoded it.
                const frame_header h = arena_header(out, ctx.failed);
                std::memcpy(out.data(), &h, sizeof h);  // through the pipe, without a doorbell
                if (!arena_answers) status->arena_held.store(1, std::memory_order_release);
                answer(*status, h, out.data(), sizeof h);
                // A small response that lent its results needs no more than the arena's first
                // step: pages an earlier response grew it by would sit beside the lent
                // vectors. Given back now (the parent reads only the first bytes).
                if (out.size() < arena_min_response) out.shrink_if_above(arena_min_response);
            } else {
                frame_header h;
                std::memcpy(&h, out.data(), sizeof h);
                answer(*status, h, out.data(), out.size());
            }
        } catch (...) {
            break;  // the parent is gone
        }
        if (!has_arena) out.shrink_if_above(arena_keep_bytes);
        in.shrink_if_above(64u << 20);
    }
    flush_output();
    std::_Exit(0);
}

/// options::worker_memory_limit: the address space is capped, and an allocation past it ends the
/// worker with memory_limit_exit (the parent reports a death with oom_suspected, and replaces
/// it), as the kernel's OOM killer would, rather than a std::bad_alloc a task may swallow.
void apply_memory_limit() {
    const char* text = std::getenv(worker_memory_env);
    if (!text) return;
    const unsigned long long limit = std::strtoull(text, nullptr, 10);
    ::unsetenv(worker_memory_env);  // programs a task starts get none
    if (limit == 0) return;
    const struct rlimit r{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    (void)::setrlimit(RLIMIT_AS, &r);
    std::set_new_handler([] {
        static const char line[] = "cojob worker: out of memory under options::worker_memory_limit\n";
        (void)!::write(STDERR_FILENO, line, sizeof line - 1);
        std::_Exit(memory_limit_exit);
    });
}

}  // namespace

void serve(const char* spec) {
    int in = -1, out = -1, status = -1, arena = -1, parent = -1;
    int bell = -1;
    if (std::sscanf(spec, "%d,%d,%d,%d,%d,%d", &in, &out, &status, &arena, &parent, &bell) != 6 ||
        in != worker_request_fd || (bell != -1 && bell != worker_bell_fd) ||
        out != worker_response_fd || status != worker_status_fd || arena != worker_arena_fd ||
        ::fcntl(in, F_GETFD) < 0 || ::fcntl(out, F_GETFD) < 0) {
        // Inherited from a worker's environment by a program it started, or set by hand: this
        // process is not one cojob started. Forget the marker and run main.
        ::unsetenv(worker_env);
        return;
    }
    ::unsetenv(worker_env);  // programs a task starts are not workers
    apply_memory_limit();
    has_bell = bell == worker_bell_fd && ::fcntl(bell, F_GETFD) >= 0;
    serve_parent(parent);
}

}  // namespace cojob::detail::process
