// src/mpi/rank_worker.cpp - a worker rank: it says hello, then runs the requests rank 0 sends
// until rank 0 says stop, keeping the large arrays that came ahead of them (mpi_blocks.hpp), and
// never returns. A crash is reported by its fatal signal handler before the job ends.
#include "rank_worker.hpp"

#include "../sharing.hpp"
#include "../util.hpp"
#include "../wire.hpp"
#include "../worker.hpp"
#include "mpi_blocks.hpp"
#include "rank_listener.hpp"
#include "rank_memory.hpp"
#include "transport.hpp"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace cojob::detail::mpi {
namespace {

/// What a fatal signal handler may print: prepared before the tasks run.
char fatal_prefix[128];
std::atomic<std::uint64_t> running_index{0};

void write_text(const char* s) noexcept {
    const std::size_t n = std::strlen(s);
    (void)!::write(2, s, n);
}

void write_number(std::uint64_t v) noexcept {
    char digits[24];
    int i = 23;
    digits[i] = 0;
    do {
        digits[--i] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    write_text(digits + i);
}

/// A worker rank that crashes takes the job down (Open MPI ends every rank when one dies
/// without finalising); this says which rank, which signal and which task of its batch.
void on_fatal_signal(int sig) {
    write_text(fatal_prefix);
    write_text(" was killed by signal ");
    write_number(static_cast<std::uint64_t>(sig));
    if (const char* abbrev = ::sigabbrev_np(sig)) {
        write_text(" (SIG");
        write_text(abbrev);
        write_text(")");
    }
    write_text(" while running task ");
    write_number(running_index.load(std::memory_order_relaxed));
    write_text(" of its batch; mpirun now ends the whole job\n");
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void send_progress(void* /*arg*/, std::uint64_t index) {
    // Small, so MPI sends it eagerly: the send returns without waiting for rank 0.
    byte_buffer b;
    const auto at = begin_frame(b);
    {
        wire_out ar(b);
        ar(index);
    }
    seal_frame(b, at, mpi_frame_kind::progress);
    (void)MPI_Send(b.data(), static_cast<int>(b.size()), MPI_BYTE, 0, frame_tag, comm);
}

void fault_frame(byte_buffer& out, const std::string& message) {
    out.clear();
    const auto at = begin_frame(out);
    wire_out ar(out);
    ar(message);
    seal_frame(out, at, mpi_frame_kind::fault);
}

/// A worker rank's frames to rank 0, sent without waiting from two buffers in turn: the rank
/// starts its next batch while rank 0 is still taking the last response.
class outbox {
public:
    /// The buffer to write the next frame into (empty; its earlier send has completed).
    byte_buffer& next() {
        slot_ ^= 1;
        settle(slot_);
        bufs_[slot_].clear();
        return bufs_[slot_];
    }
    /// Sends what `next()` returned.
    void post() { isend_frame(0, bufs_[slot_], reqs_[slot_]); }
    void flush() {
        settle(0);
        settle(1);
    }

private:
    void settle(int k) {
        if (!reqs_[k].empty()) {
            check(MPI_Waitall(static_cast<int>(reqs_[k].size()), reqs_[k].data(), MPI_STATUSES_IGNORE), "waitall");
            reqs_[k].clear();
        }
        bufs_[k].shrink_if_above(64u << 20);
    }

    byte_buffer bufs_[2];
    std::vector<MPI_Request> reqs_[2];
    int slot_ = 1;
};

}  // namespace

[[noreturn]] void serve_rank() {
    enter_worker_mode();
    std::snprintf(fatal_prefix, sizeof fatal_prefix, "cojob: MPI rank %d (pid %d on %s)", my_rank,
                  static_cast<int>(::getpid()), host_name().c_str());
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, on_fatal_signal);

    byte_buffer in;
    outbox box;
    std::atomic<std::int64_t> since{0};
    worker_context ctx;
    ctx.running = &running_index;  // named by on_fatal_signal
    ctx.running_since = &since;
    ctx.task_started = &send_progress;
    rank_blocks blocks;
    int status = 0;
    const auto fault = [&](const std::string& why) {
        fault_frame(box.next(), "cojob: MPI rank " + std::to_string(my_rank) + " " + why);
        box.post();
    };
    // Requests are numbered as rank 0 numbers them; one held behind the running one may be
    // taken back for an idle rank (src/request_gate.hpp), when a second thread can answer.
    request_gate gate;
    std::uint64_t requests = 0;
    std::optional<take_back_listener> listener;
    try {
        if (threads_multiple) listener.emplace(gate);
        write_hello(box.next());
        box.post();
        backoff wait;
        for (;;) {
            int flag = 0;
            MPI_Message msg;
            MPI_Status st;
            check(MPI_Improbe(0, frame_tag, comm, &flag, &msg, &st), "improbe");
            if (!flag) {
                wait.pause();
                continue;
            }
            wait.reset();
            frame_header h;
            try {
                h = receive_frame(msg, st, in);
            } catch (const wire_error& e) {
                // Its kind unknown, the frame may or may not have been a request: this rank's
                // numbers may no longer match rank 0's, so it answers no more take-backs and
                // keeps every batch it is sent.
                listener.reset();
                fault(std::string("could not read a request: ") + e.what());
                continue;
            }
            const char* payload = in.data() + sizeof(frame_header);
            const auto kind = static_cast<mpi_frame_kind>(h.kind);
            if (kind == mpi_frame_kind::stop) break;
            if (kind == mpi_frame_kind::block) {
                blocks.store(in);
                continue;
            }
            if (kind == mpi_frame_kind::end_call) {
                wire_in ar(payload, static_cast<std::size_t>(h.length));
                std::string prefix;
                ar(prefix);
                blocks.drop(prefix);
                continue;
            }
            if (kind != mpi_frame_kind::request) {
                fault("got a frame that is not a request");
                continue;
            }
            if (!start_request(gate, ++requests)) continue;  // taken back: another rank runs it
            byte_buffer& out = box.next();
            try {
                const memory_cap cap(static_cast<std::size_t>(h.reserved));  // options::worker_memory_limit
                run_request(payload, static_cast<std::size_t>(h.length), out, ctx, blocks);
                seal_frame(out, 0, mpi_frame_kind::response);
            } catch (const std::exception& e) {
                fault_frame(out, "cojob: MPI rank " + std::to_string(my_rank) + " could not decode a request: " + e.what());
            }
            std::cout.flush();
            std::fflush(nullptr);  // what the tasks printed comes before their results
            box.post();
            in.shrink_if_above(64u << 20);
        }
        listener.reset();  // no answer may follow the bye
        append_frame(box.next(), mpi_frame_kind::bye);
        box.post();
        box.flush();
    } catch (const std::exception& e) {
        std::cerr << "cojob: MPI rank " << my_rank << " stops serving: " << e.what() << '\n';
        status = 1;
    }
    listener.reset();
    blocks.clear();
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    MPI_Comm_free(&comm);
    if (we_initialised) MPI_Finalize();
    std::_Exit(status);
}

}  // namespace cojob::detail::mpi
