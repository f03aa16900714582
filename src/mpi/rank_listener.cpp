// src/mpi/rank_listener.cpp - a worker rank's answers to take-backs (see the header).
#include "rank_listener.hpp"

#include "transport.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>

namespace cojob::detail::mpi {

take_back_listener::take_back_listener(request_gate& gate) : gate_(&gate) {
    thread_ = std::thread([this] { loop(); });
}

take_back_listener::~take_back_listener() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
}

void take_back_listener::loop() noexcept {
    // Questions are rare and may wait a little (hub_take_back.cpp asks only about batches out
    // for longer than this sleep): waking less often leaves the rank's CPU to its tasks.
    backoff wait(std::chrono::milliseconds(4));
    try {
        while (!stop_.load(std::memory_order_relaxed)) {
            if (answer())
                wait.reset();
            else
                wait.pause();
        }
    } catch (const std::exception& e) {
        // Rank 0 then hears no answer and the held batch stays here: slower, never wrong.
        std::cerr << "cojob: MPI rank " << my_rank << " stops answering take-backs: " << e.what() << '\n';
    }
}

bool take_back_listener::answer() {
    int flag = 0;
    MPI_Message msg;
    MPI_Status st;
    check(MPI_Improbe(0, control_tag, comm, &flag, &msg, &st), "improbe");
    if (!flag) return false;
    byte_buffer in;
    const frame_header h = receive_frame(msg, st, in);
    if (h.kind != static_cast<std::uint16_t>(mpi_frame_kind::take_back))
        throw wire_error("cojob: rank 0 sent a control frame of kind " + std::to_string(h.kind));
    std::uint64_t n = 0;
    {
        wire_in ar(in.data() + sizeof(frame_header), static_cast<std::size_t>(h.length));
        ar(n);
    }
    const std::uint8_t given_back = n > 0 && take_back_request(*gate_, n) ? 1 : 0;
    byte_buffer out;
    const auto at = begin_frame(out);
    {
        wire_out ar(out);
        ar(n, given_back);
    }
    seal_frame(out, at, mpi_frame_kind::taken_back);
    check(MPI_Send(out.data(), static_cast<int>(out.size()), MPI_BYTE, 0, control_tag, comm), "send");
    return true;
}

}  // namespace cojob::detail::mpi
