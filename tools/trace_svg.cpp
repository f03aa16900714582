// tools/trace_svg.cpp - cojob-trace-svg: draws a trace written by `options::trace` (Chrome
// trace-event JSON) as an SVG timeline: a row per track in the trace's order (the scheduler,
// the I/O threads, then one per worker), a box per slice coloured by its function, a thin mark
// for the scheduler's and the backend's own steps, and a time axis.
//
// Usage: cojob-trace-svg TRACE.json OUT.svg [--width PIXELS] [--title TEXT]
// Exits nonzero, saying why, when the trace is not one (not JSON, no slices).
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;

struct slice {
    std::string name, category;
    double begin = 0, end = 0;  // microseconds
    long track = 0;
    long index = -1;  // a task's input index
};

struct track_info {
    std::string name;
    long order = 0;
};

struct timeline {
    std::vector<slice> slices;
    std::map<long, track_info> tracks;
    double begin = 0, end = 0;
};

std::string escape(const std::string& text) {  // for SVG text and attributes
    std::string out;
    for (const char c : text) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string number(double v, int decimals = 1) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

timeline read(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    json::error_code ec;
    const json::value doc = json::parse(text.str(), ec);
    if (ec) throw std::runtime_error(path + " is not JSON: " + ec.message());
    const json::array* events = doc.if_array();
    if (!events && doc.is_object() && doc.as_object().contains("traceEvents"))
        events = doc.as_object().at("traceEvents").if_array();
    if (!events) throw std::runtime_error(path + " is not a trace: expected an array of events");
    timeline t;
    for (const auto& v : *events) {
        const json::object* e = v.if_object();
        if (!e || !e->contains("ph")) continue;
        const std::string ph(e->at("ph").as_string());
        const long tid = e->contains("tid") ? e->at("tid").to_number<long>() : 0;
        if (ph == "M" && e->at("name").as_string() == "thread_name")
            t.tracks[tid].name = std::string(e->at("args").at("name").as_string());
        else if (ph == "M" && e->at("name").as_string() == "thread_sort_index")
            t.tracks[tid].order = e->at("args").at("sort_index").to_number<long>();
        if (ph != "X") continue;
        slice s;
        s.name = std::string(e->at("name").as_string());
        s.category = e->contains("cat") ? std::string(e->at("cat").as_string()) : "";
        s.begin = e->at("ts").to_number<double>();
        s.end = s.begin + e->at("dur").to_number<double>();
        s.track = tid;
        if (const auto* args = e->if_contains("args"); args && args->is_object() && args->as_object().contains("index"))
            s.index = args->as_object().at("index").to_number<long>();
        if (!t.tracks.count(tid)) t.tracks[tid].name = "track " + std::to_string(tid);
        t.slices.push_back(std::move(s));
    }
    if (t.slices.empty()) throw std::runtime_error(path + " holds no slices");
    t.begin = t.slices.front().begin;
    t.end = t.slices.front().end;
    for (const auto& s : t.slices) {
        t.begin = std::min(t.begin, s.begin);
        t.end = std::max(t.end, s.end);
    }
    return t;
}

// A steady colour per function name, from a short palette.
const std::string& colour_of(const std::string& name, std::map<std::string, std::string>& chosen) {
    static const std::vector<std::string> palette{"#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22"};
    auto it = chosen.find(name);
    if (it == chosen.end()) it = chosen.emplace(name, palette[chosen.size() % palette.size()]).first;
    return it->second;
}

void write(const timeline& t, const std::string& path, double width, const std::string& title) {
    std::vector<std::pair<long, track_info>> rows(t.tracks.begin(), t.tracks.end());
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
    std::map<long, std::size_t> row_of;
    for (std::size_t i = 0; i < rows.size(); ++i) row_of[rows[i].first] = i;
    const double left = 210, right = 20, top = 50, row_h = 26, axis_h = 40;
    const double plot_w = width - left - right;
    const double height = top + row_h * static_cast<double>(rows.size()) + axis_h + 30;
    const double span = std::max(t.end - t.begin, 1.0);
    const auto x_of = [&](double us) { return left + plot_w * (us - t.begin) / span; };

    std::ostringstream svg;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
        << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        << "<text x=\"10\" y=\"24\" font-size=\"14\" font-weight=\"bold\">" << escape(title) << "</text>\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const double y = top + row_h * static_cast<double>(i);
        svg << "<rect x=\"" << left << "\" y=\"" << y << "\" width=\"" << plot_w << "\" height=\"" << row_h
            << "\" fill=\"" << (i % 2 ? "#ffffff" : "#f4f4f4") << "\"/>\n<text x=\"" << left - 8 << "\" y=\""
            << y + row_h / 2 + 4 << "\" text-anchor=\"end\">" << escape(rows[i].second.name) << "</text>\n";
    }
    std::map<std::string, std::string> colours;
    for (const auto& s : t.slices) {
        const double y = top + row_h * static_cast<double>(row_of.at(s.track));
        const bool task = s.category == "task";
        // Tasks fill their row; the scheduler's and the backend's steps are thinner and grey.
        const double inset = task ? 3 : 8;
        const double w = std::max(x_of(s.end) - x_of(s.begin), 0.6);
        svg << "<rect x=\"" << number(x_of(s.begin), 2) << "\" y=\"" << y + inset << "\" width=\"" << number(w, 2)
            << "\" height=\"" << row_h - 2 * inset << "\" fill=\"" << (task ? colour_of(s.name, colours) : "#888888")
            << "\"" << (task ? " stroke=\"white\" stroke-width=\"0.5\"" : "") << "><title>" << escape(s.name) << " "
            << number((s.end - s.begin) / 1000.0, 3) << " ms</title></rect>\n";
        if (task && s.index >= 0 && w >= 28)  // the task's input index, where it fits
            svg << "<text x=\"" << number(x_of(s.begin) + w / 2, 2) << "\" y=\"" << y + row_h / 2 + 4
                << "\" text-anchor=\"middle\" fill=\"white\" font-size=\"11\">#" << s.index << "</text>\n";
    }
    // The time axis, in milliseconds or seconds, about eight ticks.
    const double axis_y = top + row_h * static_cast<double>(rows.size());
    const double raw = span / 8, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / magnitude < 2 ? magnitude * 2 : raw / magnitude < 5 ? magnitude * 5 : magnitude * 10;
    const bool seconds = span >= 2e6;
    svg << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << axis_y << "\" y2=\"" << axis_y
        << "\" stroke=\"#444\"/>\n";
    for (double at = 0; at <= span + 1e-9; at += step) {
        const double x = x_of(t.begin + at);
        svg << "<line x1=\"" << number(x) << "\" x2=\"" << number(x) << "\" y1=\"" << axis_y << "\" y2=\"" << axis_y + 5
            << "\" stroke=\"#444\"/>\n<text x=\"" << number(x) << "\" y=\"" << axis_y + 18 << "\" text-anchor=\"middle\">"
            << (seconds ? number(at / 1e6, step >= 1e6 ? 0 : 1) : number(at / 1e3, step >= 1e3 ? 0 : 2)) << "</text>\n";
    }
    svg << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << axis_y + 36 << "\" text-anchor=\"middle\">time ("
        << (seconds ? "s" : "ms") << ")</text>\n";
    double legend_x = left;
    for (const auto& [name, colour] : colours) {
        svg << "<rect x=\"" << legend_x << "\" y=\"" << height - 18 << "\" width=\"12\" height=\"12\" fill=\"" << colour
            << "\"/>\n<text x=\"" << legend_x + 16 << "\" y=\"" << height - 8 << "\">" << escape(name) << "</text>\n";
        legend_x += 30 + 7 * static_cast<double>(name.size());
    }
    svg << "</svg>\n";
    std::ofstream out(path);
    out << svg.str();
    if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> files;
    double width = 1000;
    std::string title;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--width" && i + 1 < argc)
            width = std::max(300.0, std::atof(argv[++i]));
        else if (a == "--title" && i + 1 < argc)
            title = argv[++i];
        else
            files.push_back(a);
    }
    if (files.size() != 2) {
        std::fprintf(stderr, "usage: cojob-trace-svg TRACE.json OUT.svg [--width PIXELS] [--title TEXT]\n");
        return 2;
    }
    try {
        const timeline t = read(files[0]);
        if (title.empty()) title = files[0];
        write(t, files[1], width, title);
        std::printf("%s: %zu slices on %zu tracks, %.3f s\n", files[1].c_str(), t.slices.size(), t.tracks.size(),
                    (t.end - t.begin) / 1e6);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cojob-trace-svg: %s\n", e.what());
        return 1;
    }
    return 0;
}
