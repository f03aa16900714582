// src/call_trace.cpp - one call's events in Chrome's trace-event format (the JSON that the
// Perfetto UI and chrome://tracing read): "X" slices, "b"/"e" async slices, "C" counters.
#include "call_trace.hpp"

#include "task_events.hpp"
#include "util.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace cojob::detail {

namespace json = boost::json;

namespace {

constexpr std::size_t flush_bytes = 1u << 20;

// Track order in viewers: the scheduler, then the backend's own threads, then the workers.
enum track_order { scheduler_tracks = 1, io_tracks = 2, worker_tracks = 3 };

void add(std::string& out, const json::object& event) {
    out += ",\n";
    out += json::serialize(event);
}

// A complete slice on `track`, from `begin_ns` to `end_ns`.
json::object slice(const trace_file& f, long track, std::string_view name, std::string_view category,
                   std::int64_t begin_ns, std::int64_t end_ns) {
    return {{"name", name},
            {"cat", category},
            {"ph", "X"},
            {"ts", f.micros(begin_ns)},
            {"dur", static_cast<double>(end_ns - begin_ns) / 1000.0},
            {"pid", f.pid()},
            {"tid", track}};
}

// The worker's track: its thread here, its process, or its rank.
long worker_track(trace_file& f, const batch_base& b, cojob::backend kind) {
    const std::string index = std::to_string(b.worker);
    switch (kind) {
        case cojob::backend::processes: return f.track("pid " + index, "worker process " + index, worker_tracks);
        case cojob::backend::mpi: return f.track("rank " + index, "MPI rank " + index, worker_tracks);
        default: break;
    }
    const std::string tid = std::to_string(b.thread);
    const std::string name =
        (kind == cojob::backend::threads && b.worker >= 0 ? "worker thread " + index : "calling thread") + " (tid " + tid + ")";
    return f.track("tid " + tid, name, worker_tracks);
}

// A step a backend took on one of this program's threads (encoding, decoding).
void step_slice(std::string& out, trace_file& f, const batch_base::step_time& step, std::string_view name,
                const json::object& args) {
    if (step.end == 0) return;
    const std::string tid = std::to_string(step.thread);
    auto e = slice(f, f.track("tid " + tid, "cojob I/O (tid " + tid + ")", io_tracks), name, "backend", step.begin,
                   step.end);
    e["args"] = args;
    add(out, e);
}

// The time between two steps in different processes, as an async slice: such slices may
// overlap (a request travels while the previous batch runs), and viewers give them lanes.
void transfer(std::string& out, const trace_file& f, long track, std::string_view name, const std::string& id,
              std::int64_t begin_ns, std::int64_t end_ns, const json::object& args) {
    if (begin_ns == 0 || end_ns < begin_ns) return;
    json::object e{{"name", name}, {"cat", "transfer"}, {"ph", "b"}, {"id", id},
                   {"ts", f.micros(begin_ns)}, {"pid", f.pid()}, {"tid", track}};
    e["args"] = args;
    add(out, e);
    add(out, {{"name", name}, {"cat", "transfer"}, {"ph", "e"}, {"id", id},
              {"ts", f.micros(end_ns)}, {"pid", f.pid()}, {"tid", track}});
}

}  // namespace

call_trace::call_trace(std::shared_ptr<trace_file> file, cojob::backend kind)
    : file_(std::move(file)), kind_(kind), call_(file_->next_call()) {}

call_trace::~call_trace() {
    try {
        flush();
    } catch (...) {
    }
}

void call_trace::flush() {
    file_->append(buffer_);
    buffer_.clear();
}

long call_trace::scheduler_track() const {
    const std::string tid = std::to_string(this_thread_id());
    return file_->track("tid " + tid, "scheduler (tid " + tid + ")", scheduler_tracks);
}

void call_trace::dispatched(std::size_t number, std::size_t first, std::size_t size, std::int64_t begin_ns,
                            std::int64_t end_ns) {
    auto e = slice(*file_, scheduler_track(), "dispatch", "scheduler", begin_ns, end_ns);
    e["args"] = {{"call", call_}, {"batch", number}, {"first", first}, {"tasks", size}};
    add(buffer_, e);
}

void call_trace::delivered(std::size_t number, std::int64_t begin_ns, std::int64_t end_ns) {
    auto e = slice(*file_, scheduler_track(), "deliver", "scheduler", begin_ns, end_ns);
    e["args"] = {{"call", call_}, {"batch", number}};
    add(buffer_, e);
}

void call_trace::load(std::size_t in_flight, std::optional<std::size_t> waiting) {
    const double ts = file_->micros(batch_base::now_ns());
    const std::string call = " (call " + std::to_string(call_) + ")";
    add(buffer_, {{"name", "tasks in flight" + call}, {"ph", "C"}, {"ts", ts}, {"pid", file_->pid()},
                  {"args", {{"tasks", in_flight}}}});
    if (waiting)
        add(buffer_, {{"name", "results waiting" + call}, {"ph", "C"}, {"ts", ts}, {"pid", file_->pid()},
                      {"args", {{"results", *waiting}}}});
    if (buffer_.size() > flush_bytes) flush();
}

void call_trace::ran(const batch_base& b, std::int64_t now_ns) { batch_events(buffer_, b, now_ns, &track_ends_); }

void call_trace::late(const batch_base& b, std::int64_t now_ns) const noexcept {
    try {
        std::string out;
        // Untimed tasks start after their worker's last task, whenever that one came back.
        const std::lock_guard lock(late_mutex_);
        batch_events(out, b, now_ns, &track_ends_);
        file_->append(out);
    } catch (...) {  // a trace that cannot be written (memory) must not take a worker down
    }
}

void call_trace::batch_events(std::string& out, const batch_base& b, std::int64_t now_ns,
                              std::map<long, std::int64_t>* track_ends) const {
    trace_file& f = *file_;
    const json::object batch_args{{"call", call_}, {"batch", b.number}, {"tasks", b.size}};
    step_slice(out, f, b.encoded, "encode request", batch_args);
    step_slice(out, f, b.decoded, "decode response", batch_args);
    const auto [ran, timed] = tasks_ran(b);
    if (ran == 0) return;
    const long track = worker_track(f, b, kind_);
    // Untimed tasks (results a stream left in the worker, a worker that died) share their
    // batch's time evenly, from its dispatch or the end of the worker's previous task.
    std::int64_t from = b.dispatched_ns;
    if (track_ends)
        if (auto it = track_ends->find(track); it != track_ends->end()) from = std::clamp(it->second, from, now_ns);
    const std::int64_t span = now_ns - from;
    const auto start = [&](std::size_t i) {
        return timed ? b.times[2 * i] : from + span * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(ran);
    };
    const auto end = [&](std::size_t i) { return timed ? b.times[2 * i + 1] : start(i + 1); };
    for (std::size_t i = 0; i < ran; ++i) {
        std::string name, arguments;
        try {
            name = b.function_name(i);
            arguments = b.arguments(i);
        } catch (...) {
            name = "task";
        }
        auto e = slice(f, track, name, "task", start(i), end(i));
        json::object args{{"index", b.first + i}, {"attempt", b.attempt}, {"call", call_}, {"batch", b.number},
                          {"arguments", arguments},
                          {"status", b.error && i + 1 == ran ? "failed" : "finished"}};
        if (!timed) args["estimated"] = true;
        e["args"] = std::move(args);
        add(out, e);
    }
    if (track_ends) (*track_ends)[track] = std::max((*track_ends)[track], end(ran - 1));
    // Worker processes and ranks: the request's way to the worker (written, then read and
    // queued there until its first task starts) and the response's way back.
    if (timed && (kind_ == cojob::backend::processes || kind_ == cojob::backend::mpi)) {
        const std::string id = std::to_string(call_) + "." + std::to_string(b.number);
        transfer(out, f, track, "request", id + ".request", b.encoded.end ? b.encoded.end : b.dispatched_ns,
                 b.times.front(), batch_args);
        transfer(out, f, track, "response", id + ".response", b.times.back(), b.decoded.begin, batch_args);
    }
}

}  // namespace cojob::detail
