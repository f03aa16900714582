// tests/fuzz/frame_targets.cpp - frames on the worker pipes: a worker reading a request (header,
// payload, the tasks and their arguments) and a parent reading what a worker sends (hello,
// response, arena response, fault).
#include "targets.hpp"

#include "wire.hpp"
#include "worker.hpp"

#include <cojob/delayed.hpp>
#include <cojob/detail/batch.hpp>
#include <cojob/errors.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cojob_fuzz {

namespace {

using namespace cojob::detail;

/// The task the frames carry: its arguments and result are a vector and a string.
std::vector<double> scale(std::vector<double> xs, std::string label) {
    if (label == "boom") throw std::invalid_argument("scale: refused label");
    for (double& x : xs) x *= static_cast<double>(label.size());
    return xs;
}
using scale_task = decltype(cojob::delayed(&scale)(std::vector<double>{}, std::string{}));

/// A decoder finds no shared memory and no lent results here: both are refused.
class no_outside_bytes final : public outside_bytes {
public:
    const char* map_shared(const shared_ref&) override { throw wire_error("fuzz: no shared arrays here"); }
    void copy_lent(std::uint64_t, std::size_t, piece_sink, void*) override { throw wire_error("fuzz: no lent results here"); }
};

/// A frame from the input: its header, checked (with its checksum and length fixed first when
/// the flags ask), and the payload bytes after it; nullopt when too short for a header.
/// @throws wire_error from parse_header.
struct incoming {
    frame_header header;
    const char* payload;
    std::size_t available;
};
std::optional<incoming> read_frame(const std::uint8_t* data, std::size_t size) {
    if (size < 1 + sizeof(frame_header)) return std::nullopt;
    char head[sizeof(frame_header)];
    std::memcpy(head, data + 1, sizeof head);
    const char* payload = reinterpret_cast<const char*>(data + 1 + sizeof head);
    const std::size_t available = size - 1 - sizeof head;
    if (data[0] & (fix_checksums | fix_sizes)) {
        frame_header h;
        std::memcpy(&h, head, sizeof h);
        if (data[0] & fix_sizes) h.length = available;
        if (data[0] & fix_checksums) h.checksum = xxh64(payload, std::min<std::size_t>(available, h.length));
        std::memcpy(head, &h, sizeof h);
    }
    return incoming{parse_header(head), payload, available};
}

std::string frame_bytes(const byte_buffer& b) { return std::string(b.data(), b.size()); }

/// Real requests: batches of one to three tasks, small and large arguments, a failing task.
std::vector<std::string> requests() {
    const std::vector<std::vector<scale_task>> batches = {
        {cojob::delayed(&scale)(std::vector<double>{1, 2, 3}, std::string("ab"))},
        {cojob::delayed(&scale)(std::vector<double>{}, std::string()),
         cojob::delayed(&scale)(std::vector<double>(40, 0.5), std::string(70, 'x')),
         cojob::delayed(&scale)(std::vector<double>{7}, std::string("boom"))},
    };
    std::vector<std::string> frames;
    for (const auto& tasks : batches) {
        typed_batch<scale_task> b;
        b.tasks.assign(tasks.begin(), tasks.end());
        b.size = tasks.size();
        byte_buffer buf;
        const std::size_t at = begin_frame(buf);
        wire_out out(buf);
        b.encode(out, false);
        end_frame(buf, at, frame_kind::request);
        frames.push_back(frame_bytes(buf));
    }
    return frames;
}

/// The batch size a parent expects in its responses.
constexpr std::size_t sent_tasks = 8;

}  // namespace

bool frame_worker(const std::uint8_t* data, std::size_t size) {
    try {
        const std::optional<incoming> f = read_frame(data, size);
        if (!f || f->header.kind != static_cast<std::uint16_t>(frame_kind::request)) return false;  // refused
        if (f->header.length > f->available) return false;  // the worker would wait for the rest
        check_payload(f->header, f->payload);
        byte_buffer out;
        const worker_context ctx;
        no_outside_bytes arrays;
        run_request(f->payload, static_cast<std::size_t>(f->header.length), out, ctx, arrays);
        return true;
    } catch (const cojob::error&) {
        return false;
    }
}

bool frame_parent(const std::uint8_t* data, std::size_t size) {
    try {
        const std::optional<incoming> f = read_frame(data, size);
        if (!f || f->header.length > f->available) return false;  // the parent would wait for the rest
        const auto kind = static_cast<frame_kind>(f->header.kind);
        if (kind != frame_kind::arena_response) check_payload(f->header, f->payload);
        no_outside_bytes lent;
        wire_in ar(f->payload, static_cast<std::size_t>(f->header.length), &lent);
        switch (kind) {
            case frame_kind::hello: return read_hello(ar).identity == build_identity();
            case frame_kind::response:
            case frame_kind::arena_response: {
                typed_batch<scale_task> b;
                b.size = sent_tasks;
                b.decode(ar);
                return ar.remaining() == 0;
            }
            case frame_kind::fault: {
                std::string message;
                ar(message);
                return true;
            }
            default: return false;  // a request: the parent refuses it
        }
    } catch (const cojob::error&) {
        return false;
    }
}

void frame_worker_seeds(std::vector<std::string>& seeds) {
    for (const std::string& frame : requests()) {
        seeds.push_back(with_flags(0, frame));
        seeds.push_back(with_flags(fix_checksums | fix_sizes, frame));
    }
}

void frame_parent_seeds(std::vector<std::string>& seeds) {
    std::vector<std::string> frames;
    byte_buffer hello;
    write_hello(hello);
    frames.push_back(frame_bytes(hello));
    for (const std::string& request : requests()) {
        byte_buffer out;
        const worker_context ctx;
        no_outside_bytes arrays;
        const char* payload = request.data() + sizeof(frame_header);
        run_request(payload, request.size() - sizeof(frame_header), out, ctx, arrays);
        end_frame(out, 0, frame_kind::response);
        frames.push_back(frame_bytes(out));
        const frame_header arena = arena_header(out, ctx.failed);
        std::memcpy(out.data(), &arena, sizeof arena);
        frames.push_back(frame_bytes(out));
    }
    byte_buffer fault;
    const std::size_t at = begin_frame(fault);
    {
        wire_out ar(fault);
        ar(std::string("cojob: worker could not read a request: truncated"));
    }
    end_frame(fault, at, frame_kind::fault);
    frames.push_back(frame_bytes(fault));
    for (const std::string& frame : frames) {
        seeds.push_back(with_flags(0, frame));
        seeds.push_back(with_flags(fix_checksums | fix_sizes, frame));
    }
}

}  // namespace cojob_fuzz
