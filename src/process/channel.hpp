// src/process/channel.hpp - private: the parent's end of one worker process. Requests go out as
// frames (src/wire.hpp), through the status page's request slot when one fits and the slot is
// free, else through the worker's request pipe; responses come back in its result arena,
// their headers in its status page (channel_answer.cpp), or, for a worker without a doorbell, as
// frames on its response pipe. The parent drives the pipes through Asio on the pool's own I/O
// thread: it waits for readiness with async_wait and does the reads and writes itself, through
// the pipe seam, so that partial transfers are handled in one place (a call's thread writes a
// request itself when the pipe has room). A blocking call's
// thread reads its workers' answers itself while it waits for them; the I/O thread reads them
// when the worker rings its doorbell, which it does unless such a thread reads every answer it
// owes (channel_wait.cpp). A worker holds at most `depth` batches, the one it runs and the next,
// so that it never waits for the parent between two; the next may be another call's, so that a
// call arriving while every worker is busy waits one batch, not until a worker idles. Each
// batch goes back to its call when its response arrives or when the worker is lost; a batch of
// another call that the worker had not started when it was lost or stopped goes back to the
// pool's queue instead (a call loses nothing to another call's failure).
#pragma once

#include "../call_state.hpp"
#include "arena.hpp"
#include "pool_guard.hpp"
#include "spawn.hpp"
#include "worker_output.hpp"

#include <cojob/detail/batch.hpp>
#include <cojob/detail/wire.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>

namespace cojob::detail {
class array_placer;
}

namespace cojob::detail::process {

/// Batches a worker holds: the running one and the next.
inline constexpr std::size_t depth = 2;

/// What a channel asks of the pool that owns it. Called only from handlers of a channel not
/// dropped yet, under the pool's lock: the pool drops its channels before it goes.
class channel_owner {
public:
    /// A batch came back or a worker was lost: hand out the batches that wait.
    virtual void refill() = 0;
    /// The batch that came back spent `ns` nanoseconds from its dispatch to its answer.
    virtual void batch_took(std::int64_t ns) noexcept = 0;
    /// A batch its worker never started, taken back when the worker was lost or stopped for
    /// another call: to be sent again, first of its call's.
    virtual void requeue(job j) noexcept = 0;

protected:
    channel_owner() = default;
    ~channel_owner() = default;
};

/// One worker process as its parent sees it. All members are used under the pool's lock, which
/// its handlers take too.
class channel final : public std::enable_shared_from_this<channel> {
public:
    /// Takes over a worker just started. `lend_readers`: the number of workers this process
    /// reads lent results from, which the worker learns once its hello proved that it can.
    /// Its pipes are driven on `io` (the pool's I/O thread).
    channel(spawned_worker w, channel_owner& owner, std::shared_ptr<pool_guard> guard,
            const boost::asio::any_io_executor& io, std::uint32_t lend_readers);
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;

    /// Starts waiting for its answers and its end, from then on, idle or not: a worker that
    /// dies while idle (the OOM killer, a signal) is reaped at once and found dead by the next
    /// call, which costs no system call.
    void watch();
    /// Reaped, or being replaced.
    [[nodiscard]] bool dead() const noexcept { return dead_; }
    /// Killed on purpose for its call: it takes nothing more, its end of file is on its way.
    [[nodiscard]] bool interrupted() const noexcept { return interrupted_; }
    [[nodiscard]] bool idle() const noexcept { return !dead_ && jobs_.empty(); }
    /// Whether it can take `j` now (null: a batch of any call): it is idle, or holds one batch,
    /// of j's call and before j in input order, or of another call that does not stream (a
    /// stream's results may wait in the arena for its consumer, and j's answer behind them);
    /// and no result that a stream's consumer takes after j's waits in its arena (its worker
    /// waits for that consumer).
    [[nodiscard]] bool has_room_for(const job* j) const noexcept;
    /// Idle, but its last results wait in its arena for a stream's consumer, who takes them
    /// before `j`'s (null: a batch of any call): a worker given `j` would wait for results that
    /// wait for j's. A batch of that stream that comes after them may queue behind them.
    [[nodiscard]] bool held_from(const job* j) const noexcept;
    /// It holds `depth` batches of one call, and the one behind the running one could make way
    /// for a batch of another call (take_back, then has_room_for): that call does not stream.
    /// The call that makes way keeps its running batch.
    [[nodiscard]] bool could_make_way() const noexcept {
        return !dead_ && !interrupted_ && status_ && jobs_.size() == depth && jobs_.front().call == jobs_.back().call &&
               !jobs_.front().call->streams_results();
    }
    /// It can take no batch of any call now: it holds `depth`, or is dead or on its way out.
    [[nodiscard]] bool full() const noexcept { return dead_ || interrupted_ || jobs_.size() >= depth; }
    /// Batches sent and not answered yet.
    [[nodiscard]] std::size_t load() const noexcept { return jobs_.size(); }
    /// Whether `b` is the batch it runs (or will run next, when it runs none).
    [[nodiscard]] bool runs(const batch_base& b) const noexcept;
    [[nodiscard]] bool serves(const call_state& c) const noexcept;

    /// Encodes `j`'s batch as a request, its large arrays placed by `placer` (may be null), and
    /// sends it. A batch that cannot be encoded goes back to its call at once with the error.
    void send(job j, array_placer* placer);
    /// When it holds two batches: takes back the first it has not started (src/request_gate.hpp;
    /// it skips that request), for another worker to run. Null when it started both.
    [[nodiscard]] std::optional<job> take_back() noexcept;
    /// Stops `call`'s batches on it (an error, a timeout, a cancellation): kills the worker when
    /// it runs one of them, and its end of file brings them back. A batch of another call held
    /// behind goes back to the queue; one of `call` held behind another call's batch is taken
    /// back (it comes back not sent) or, when the worker has started it, stopped once the
    /// answer before it is read.
    void interrupt_for(const call_state& call) noexcept;
    /// Reads the responses that have come, without waiting: the thread of a blocking call that
    /// waits for `call` does the I/O thread's work itself, which spares a hand-over between
    /// threads; while it does, the worker rings no doorbell, unless it holds another call's
    /// batch too or the call is a stream, whose consumer may be away. Returns whether a batch
    /// went back (answered, or lost with the worker).
    bool poll_responses(const call_state& call);
    /// The thread of blocking call `call` is about to sleep: the worker rings its doorbell
    /// again, and what came meanwhile is read now. Returns whether a batch went back.
    bool before_sleep(const call_state& call);
    /// The call `call` has ended: answers to batches it gave up are read on the I/O thread.
    void call_ended(const call_state& call);
    /// Copies the task it runs, and since when, into its running batch if that is `call`'s.
    void publish_progress(const call_state& call) noexcept;
    /// Kills and reaps a worker that is not needed any more.
    void retire() noexcept;
    /// Shutting down, first step: closes the request pipe, which tells the worker to exit.
    void close_requests() noexcept;
    /// Shutting down, second step: waits until `deadline` for the worker to exit (a task may
    /// still run), kills it after that, and reaps it.
    void finish(std::chrono::steady_clock::time_point deadline) noexcept;

private:
    /// Whether the worker has started `j`, a batch it holds (src/request_gate.hpp).
    [[nodiscard]] bool started(const job& j) const noexcept;
    /// Lets go of the pipes' registration with the I/O thread's io_context.
    void unbind() noexcept;
    /// Moves the request frame that starts at `at` in out_ into the status page's request slot
    /// when it fits and the slot is free: no pipe then. Returns whether it did.
    bool to_slot(std::size_t at) noexcept;
    /// Counts the request just sent in the status page, and wakes the worker if it sleeps.
    void tell_sent() noexcept;
    void write_more();
    void wait_readable();
    void wait_exit();
    /// Asks the worker to ring after each frame (or not).
    void ring_for_answers(bool ring) noexcept;
    /// Reads the pipe when a frame came since it was last read dry (or one is half read).
    bool read_if_answered();
    /// Reads the response pipe until it is dry. At its end of file the worker is lost, unless
    /// `end_is_loss` is false: then the end is left for the next read, after the answers
    /// counted before it are taken.
    void read_more(bool end_is_loss = true);
    /// Handles the complete frames read; true when reading must stop (the worker's batches are
    /// all answered, or it was dropped).
    bool take_frames();
    /// With arena answers: takes those counted in the status page since the last one taken;
    /// true when reading must stop, as take_frames.
    bool take_answers();
    /// Takes the response headed `h`, its payload at `payload`, of which `pipe_bytes` came
    /// through the pipe (0: an answer counted in the status page, its payload in the answer
    /// slot or, an arena_response, in the arena), and gives its batch back; true when reading
    /// must stop. @throws wire_error (or lent_result_lost) when it makes no sense.
    bool take_response(const frame_header& h, const char* payload, std::size_t pipe_bytes);
    /// Reading broke with `e`: the worker is lost, and how is told. Returns true.
    bool failed_reading(std::exception_ptr e);
    /// How a worker was lost.
    enum class loss {
        closed,        ///< it closed its response pipe (it ended) between two frames
        cut,           ///< it closed its response pipe inside a frame: a truncated frame
        broke,         ///< it broke the protocol, or its pipe failed
        lent_results,  ///< it ended after it answered its first batch, before this process
                       ///< read the results that answer lent
    };
    /// Kills and reaps the worker, and gives its batches back with the reason (`why`: how it
    /// broke the protocol).
    void lost(loss how_lost, std::exception_ptr why = nullptr);
    /// At its loss (the worker reaped): hands the owner the batches of other calls than the
    /// one it ran or was stopped for that it never started. Returns whether there were any.
    bool requeue_unstarted(bool was_interrupted) noexcept;
    /// Forgets a worker whose process is gone (or about to be): closes its ends and page.
    void drop() noexcept;

    channel_owner* owner_;
    std::uint32_t lend_readers_;
    pid_t pid_;
    int to_;    ///< request pipe, parent's end (non-blocking)
    int from_;  ///< response pipe, parent's end (non-blocking)
    /// The shared status page and the result arena (mapped read-only): shared with the
    /// deferred payloads of a stream, which may outlive the worker.
    std::shared_ptr<worker_status> status_;
    std::shared_ptr<shared_arena> arena_;
    /// Its memory, for lent results; every reaping goes through it (worker_memory::reap).
    std::shared_ptr<worker_memory> memory_;
    long oom_kills_at_start_;   ///< the memory cgroup's OOM kills when it started (-1: unknown)
    bool greeted_ = false;      ///< its hello frame arrived and matched
    bool dead_ = false;         ///< reaped or being replaced
    bool interrupted_ = false;  ///< killed on purpose for its call (or about to be: kill_pending_)
    bool kill_pending_ = false;  ///< to be killed once the answer it owes another call is read
    const call_state* stopped_for_ = nullptr;  ///< the call it was interrupted for
    std::uint64_t epoch_ = 0;   ///< bumps when the worker is dropped or unbound: stale handlers see it
    bool read_armed_ = false;   ///< a wait for its doorbell is pending (one at most)
    int bell_fd_ = -1;          ///< its doorbell (an eventfd), -1: none (its pipe is waited on)
    int exit_fd_ = -1;          ///< a pidfd, with the doorbell
    /// Its answers stay in its arena, their headers in the status page, and cross no pipe: it
    /// has a doorbell (spawn.hpp; worker_status::answer).
    bool arena_answers_ = false;
    std::uint64_t answers_taken_ = 0;  ///< of worker_status::answers, with arena answers

    /// On the I/O thread's io_context: what says an answer came (the doorbell, else the response
    /// pipe), the worker's end (its pidfd; null without a doorbell), the request pipe.
    std::unique_ptr<boost::asio::posix::stream_descriptor> bell_, exit_, wr_;
    std::shared_ptr<worker_output> output_;  ///< its standard output and error, relayed

    std::shared_ptr<pool_guard> guard_;
    std::deque<job> jobs_;  ///< sent, in order; the front one runs
    /// The call whose stream keeps the last response in the arena (while status_->arena_held).
    std::weak_ptr<call_state> arena_kept_for_;
    std::size_t arena_kept_first_ = 0;  ///< the input position of the first result kept there
    std::uint64_t requests_ = 0;  ///< requests sent (withdrawn ones too)
    byte_buffer out_;       ///< frames not yet written from out_pos_ on
    std::size_t out_pos_ = 0;
    byte_buffer in_;
};

}  // namespace cojob::detail::process
