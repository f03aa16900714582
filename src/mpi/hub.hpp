// src/mpi/hub.hpp - private: rank 0's side of the job. Rank 0 talks to MPI from one thread of
// its own (the hub), which polls with a short backoff while work is out and sleeps on a
// condition variable otherwise; batches wait in a queue shared round robin between the calls
// (of every runner on the ranks), and come back to their call through call_state::finished, as
// from the thread pool. Every rank holds at most two batches, the one it runs and the next;
// when a rank is idle, the hub takes a held one back for it.
#pragma once

#include "../call_state.hpp"
#include "../fair_queue.hpp"
#include "../wire.hpp"
#include "mpi_blocks.hpp"
#include "rank_clock.hpp"
#include "transport.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace cojob::detail::mpi {

inline constexpr std::size_t depth = 2;  ///< batches a rank holds: the running one and the next

struct mpi_job {
    std::unique_ptr<batch_base> batch;
    std::shared_ptr<call_state> call;
    const void* owner = nullptr;
    int ranks = 1;  ///< may use ranks 1..ranks
    std::optional<std::size_t> max_nbytes;  ///< arrays this large go ahead as blocks
    std::uint64_t request = 0;  ///< its number among the requests sent to its rank, once sent
    bool taking_back = false;   ///< rank 0 asked its rank to give it back, and awaits the answer
};

struct outgoing {
    byte_buffer bytes;
    std::vector<MPI_Request> requests;
};

/// Rank 0's side of the job: one thread that owns all MPI traffic.
class hub {
public:
    hub();

    /// Hands a batch to the hub (any thread).
    void submit(mpi_job j);
    /// Batches of `call` not sent yet come back, cancelled.
    void withdraw(const call_state& call);
    /// The ranks that received arrays of `call` drop them.
    void end_call(const call_state& call);
    /// Waits until every batch of `owner` came back (a backend going away).
    void wait_idle(const void* owner);
    /// At exit: tells every rank to stop, takes in what they still send, and ends the thread.
    void stop();

private:
    struct rank_state {
        std::deque<mpi_job> jobs;  ///< sent, in order; the front one runs
        bool gone = false;  ///< said bye, or spoke another build
        std::map<const call_state*, block_sender::sent_set> blocks;  ///< arrays it holds, by call
        std::uint64_t requests = 0;  ///< requests sent to it, taken back or not
        rank_clock clock;            ///< its task times onto this rank's clock
    };

    void returned(const void* owner);
    void loop();
    [[nodiscard]] bool in_flight() const;
    [[nodiscard]] bool all_gone() const;
    /// Sends queued batches to the least loaded rank with room among those each may use.
    bool dispatch();
    void send_request(int to, mpi_job j);
    void start_send(int to, std::unique_ptr<outgoing> o, int tag = frame_tag);
    void post(int to, mpi_frame_kind kind);
    bool drop_ended_calls();
    bool progress_sends();
    bool receive();
    /// When a rank is idle and nothing waits: asks a busy rank for the batch it holds behind
    /// its running one (src/request_gate.hpp; hub_take_back.cpp).
    bool take_back();
    /// Takes in the ranks' answers to take_back: a batch given back waits for the idle rank.
    bool receive_answers();
    /// A rank that broke the protocol gets no more work; its batches come back with `why`.
    void give_up_rank(int r, std::exception_ptr why);
    /// MPI itself failed: every batch, sent or not, comes back with the error, and so will
    /// every later one.
    void fail_everything(std::exception_ptr why) noexcept;

    std::mutex m_;
    std::condition_variable cv_, idle_cv_;
    fair_queue<mpi_job> queue_;                    // guarded by m_; round robin between calls
    std::vector<const call_state*> ended_calls_;   // guarded by m_
    std::map<const void*, std::size_t> outstanding_;  // guarded by m_
    bool stopping_ = false;                        // guarded by m_
    std::exception_ptr broken_;                    // guarded by m_
    // The hub thread's own:
    std::vector<rank_state> ranks_;
    std::deque<std::unique_ptr<outgoing>> sends_;
    std::size_t asked_ = 0;  ///< take-backs sent and not answered
    buffer_pool pool_;  ///< block frames, for the next call's arrays
    byte_buffer in_;
    std::thread thread_;
};

/// Rank 0's hub while MPI runs (started and stopped in mpi_runtime.cpp), else null.
extern hub* the_hub;

}  // namespace cojob::detail::mpi
