// tests/common/trace_reader.hpp - reads a trace file (`options::trace`) back with Boost.JSON and
// checks what every trace must hold: it parses, every slice ends after it starts, and slices on
// one track are disjoint or nested (never half-overlapping).
#pragma once

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace kit {

struct trace_slice {
    std::string name, category;
    double begin = 0, end = 0;  ///< microseconds
    long track = 0;
    boost::json::object args;
};

struct trace_view {
    boost::json::array events;
    std::map<long, std::string> track_names;  ///< tid -> name
    std::vector<trace_slice> slices;          ///< every "X" event
    std::size_t transfers = 0;                ///< async ("b") events
    std::size_t counters = 0;                 ///< "C" events

    /// The task slices, by (call, input index).
    [[nodiscard]] std::map<std::pair<long, long>, std::vector<const trace_slice*>> tasks() const {
        std::map<std::pair<long, long>, std::vector<const trace_slice*>> by_task;
        for (const auto& s : slices)
            if (s.category == "task") by_task[{s.args.at("call").to_number<long>(), s.args.at("index").to_number<long>()}].push_back(&s);
        return by_task;
    }
    [[nodiscard]] std::size_t count(const std::string& category) const {
        return static_cast<std::size_t>(
            std::count_if(slices.begin(), slices.end(), [&](const trace_slice& s) { return s.category == category; }));
    }
    [[nodiscard]] const std::string& track_of(const trace_slice& s) const { return track_names.at(s.track); }
};

/// Parses the file (failing the test when it is not JSON) and checks the slices' times.
inline trace_view read_trace(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    boost::json::error_code ec;
    boost::json::value doc = boost::json::parse(text.str(), ec);
    INFO("trace: " << text.str().substr(0, 2000));
    REQUIRE(!ec);
    REQUIRE(doc.is_array());
    trace_view view;
    view.events = doc.as_array();
    for (const auto& v : view.events) {
        const auto& e = v.as_object();
        const std::string ph(e.at("ph").as_string());
        if (ph == "M" && e.at("name").as_string() == "thread_name")
            view.track_names[e.at("tid").to_number<long>()] = std::string(e.at("args").at("name").as_string());
        if (ph == "b") ++view.transfers;
        if (ph == "C") ++view.counters;
        if (ph != "X") continue;
        trace_slice s;
        s.name = std::string(e.at("name").as_string());
        s.category = std::string(e.at("cat").as_string());
        s.begin = e.at("ts").to_number<double>();
        s.end = s.begin + e.at("dur").to_number<double>();
        s.track = e.at("tid").to_number<long>();
        if (const auto* a = e.if_contains("args")) s.args = a->as_object();
        view.slices.push_back(std::move(s));
    }
    // Per track, sorted by start: each slice starts after the previous ends, or ends inside
    // the innermost open one (nesting: a task run inline by its scheduler's dispatch).
    constexpr double eps = 1e-3;  // a nanosecond: times are whole nanoseconds, printed in microseconds
    std::map<long, std::vector<const trace_slice*>> by_track;
    for (const auto& s : view.slices) {
        CHECK(s.begin <= s.end);
        CHECK(view.track_names.count(s.track) == 1);
        by_track[s.track].push_back(&s);
    }
    for (auto& [track, list] : by_track) {
        std::stable_sort(list.begin(), list.end(), [](auto* a, auto* b) {
            return a->begin < b->begin || (a->begin == b->begin && a->end > b->end);
        });
        std::vector<const trace_slice*> open;
        for (const auto* s : list) {
            while (!open.empty() && open.back()->end <= s->begin + eps) open.pop_back();
            INFO("track " << view.track_names[track] << ": " << s->name << " [" << s->begin << ", " << s->end << "]");
            if (!open.empty()) CHECK(s->end <= open.back()->end + eps);  // nested, not overlapping
            open.push_back(s);
        }
    }
    return view;
}

}  // namespace kit
