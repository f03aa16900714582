// src/worker.cpp - what every worker does whatever carries its frames: the hello it starts
// with, and the running of one request through the invoker its task type registered.
#include "worker.hpp"

#include "util.hpp"
#include "wire.hpp"

#include <cstdint>

namespace cojob::detail {

std::uint64_t lend_probe_address() noexcept {
    static const volatile std::uint64_t probe = lend_probe_value;
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&probe));
}

void write_hello(byte_buffer& out) {
    const auto at = begin_frame(out);
    wire_out ar(out);
    ar(build_identity(), static_cast<std::int32_t>(current_pid()), lend_probe_address());
    end_frame(out, at, frame_kind::hello);
}

hello_facts read_hello(wire_in& in) {
    hello_facts h;
    in(h.identity, h.pid, h.probe);
    return h;
}

void run_request(const char* payload, std::size_t n, byte_buffer& out, const worker_context& ctx,
                 outside_bytes& arrays) {
    wire_in req(payload, n, &arrays);
    std::uint64_t key = 0;
    req(key);
    invoker_fn invoke = find_invoker(key);
    if (!invoke) throw wire_error("cojob: the worker does not know this task type (is the worker another build?)");
    out.clear();
    (void)begin_frame(out);
    wire_out res(out);
    ctx.failed = false;
    invoke(req, res, ctx);
}

}  // namespace cojob::detail
