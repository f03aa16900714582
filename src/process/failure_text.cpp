// src/process/failure_text.cpp - the messages of failure_text.hpp.
#include "failure_text.hpp"

#include "../wire.hpp"

#include <cojob/errors.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstring>

namespace cojob::detail::process {

std::string describe_status(int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* abbrev = ::sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    }
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    return "stopped (status " + std::to_string(status) + ")";
}

std::exception_ptr worker_ended(pid_t pid, const std::string& how, bool greeted, const batch_base& b,
                                std::size_t running) {
    if (!greeted)
        return std::make_exception_ptr(worker_died(
            "cojob: worker process " + std::to_string(pid) + " " + how +
            " before its handshake; does main() call cojob::init(argc, argv) before anything else?"));
    const std::size_t i = std::min(running, b.size ? b.size - 1 : 0);
    std::string task;
    try {
        task = b.function_name(i) + "(" + b.arguments(i) + ")";
    } catch (...) {
        task = "?";
    }
    return std::make_exception_ptr(worker_died(
        "cojob: worker process " + std::to_string(pid) + " " + how + " while running task #" +
        std::to_string(b.first + i) + ": " + task +
        "; a segmentation fault, an abort or the OOM killer are the usual causes; the pool "
        "replaces the worker"));
}

std::exception_ptr frame_cut(pid_t pid, const std::string& how, const batch_base& b, std::size_t got,
                             std::size_t announced) {
    const std::string of = announced ? "of its " + std::to_string(announced) + " bytes"
                                     : "of its header's " + std::to_string(sizeof(frame_header)) + " bytes";
    return std::make_exception_ptr(worker_died(
        "cojob: worker process " + std::to_string(pid) + " " + how + " while running tasks #" +
        std::to_string(b.first) + " to #" + std::to_string(b.first + b.size - 1) +
        ": its response pipe closed inside a frame, after " + std::to_string(got) + " " + of +
        " (a truncated frame); the pool replaces the worker"));
}

std::exception_ptr protocol_broken(pid_t pid, const std::exception_ptr& why) {
    try {
        std::rethrow_exception(why);
    } catch (const std::exception& e) {
        return std::make_exception_ptr(wire_error(std::string(e.what()) + "; worker process " + std::to_string(pid) +
                                                  " was killed and will be replaced"));
    } catch (...) {
    }
    return why;
}

std::exception_ptr lent_results_lost(pid_t pid, const std::string& how, const batch_base& b) {
    return std::make_exception_ptr(worker_died(
        "cojob: worker process " + std::to_string(pid) + " " + how + " before its results for tasks #" +
        std::to_string(b.first) + " to #" + std::to_string(b.first + b.size - 1) +
        " were read (a vector result of " + std::to_string(large_vector_bytes >> 20) +
        " MiB or more stays in its worker until the parent reads it)"));
}

std::exception_ptr batch_stopped() {
    return std::make_exception_ptr(cancelled("cojob: the worker running this batch was stopped"));
}

std::exception_ptr batch_not_started() {
    return std::make_exception_ptr(cancelled("cojob: the worker holding this batch was lost"));
}

std::exception_ptr batch_not_sent() {
    return std::make_exception_ptr(cancelled("cojob: the call stopped before this batch ran"));
}

}  // namespace cojob::detail::process
