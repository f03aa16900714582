// samples/tour.cpp - every example of joblib's `Parallel` reference page and of its
// "Embarrassingly parallel for loops" guide, in order, rebuilt with cojob.
//
// Each example prints a heading, the Python line it twins, and what joblib prints (timings
// aside). The program also checks its own results and exits nonzero on any mismatch, so
// `meson test --suite samples` proves the outputs. `tour <id>...` runs only the examples named
// (`tour --list` shows the ids).
//
// The functions given to `cojob::delayed` are free functions with external linkage: error
// reports name them through the dynamic symbol table (the samples link with export_dynamic).
#include <cojob/cojob.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <functional>
#include <iostream>
#include <iterator>
#include <numeric>
#include <ostream>
#include <ranges>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

// ---------------------------------------------------------------------------------------------
// What the examples call (math.sqrt, math.modf, time.sleep, heapq.nlargest).

/// math.sqrt. `std::sqrt` is an overload set, so it cannot be handed to `delayed` as is.
double square_root(double x) { return std::sqrt(x); }

/// math.modf: (fractional part, integral part).
std::pair<double, double> split_fraction(double x) {
    double integral = 0.0;
    const double fractional = std::modf(x, &integral);
    return {fractional, integral};
}

/// time.sleep.
void sleep_seconds(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

/// The few Python values the traceback example passes around: a range (held as its items),
/// a str, or an int. Printed as Python's repr.
struct py_object {
    std::variant<std::vector<int>, std::string, int> value;

    friend bool operator==(const py_object&, const py_object&) = default;
};

std::ostream& operator<<(std::ostream& os, const py_object& o) {
    if (const auto* items = std::get_if<std::vector<int>>(&o.value)) {
        // range(a, b) when the items count up by one from a, else a list.
        bool counting = true;
        for (std::size_t i = 1; i < items->size(); ++i) counting = counting && (*items)[i] == (*items)[i - 1] + 1;
        if (counting) {
            const int start = items->empty() ? 0 : items->front();
            return os << "range(" << start << ", " << start + static_cast<int>(items->size()) << ")";
        }
        os << '[';
        for (std::size_t i = 0; i < items->size(); ++i) os << (i ? ", " : "") << (*items)[i];
        return os << ']';
    }
    if (const auto* text = std::get_if<std::string>(&o.value)) return os << '\'' << *text << '\'';
    return os << std::get<int>(o.value);
}

/// heapq.nlargest(n, iterable): the n largest items, largest first. An int cannot be
/// iterated, which is Python's TypeError; here std::invalid_argument.
std::vector<py_object> nlargest(int n, const py_object& iterable) {
    std::vector<py_object> items;
    if (const auto* ints = std::get_if<std::vector<int>>(&iterable.value)) {
        for (int v : *ints) items.emplace_back().value.emplace<int>(v);
    } else if (const auto* text = std::get_if<std::string>(&iterable.value)) {
        for (char c : *text) items.emplace_back().value.emplace<std::string>(1, c);
    } else {
        throw std::invalid_argument("nlargest: argument #2 must support iteration ('int' object is not iterable)");
    }
    auto greater = [](const py_object& a, const py_object& b) { return b.value < a.value; };
    std::ranges::stable_sort(items, greater);
    if (items.size() > static_cast<std::size_t>(std::max(n, 0))) items.resize(static_cast<std::size_t>(std::max(n, 0)));
    return items;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Printing like Python, and checking.

int failures = 0;

void check(bool ok, const std::string& what) {
    if (ok) return;
    ++failures;
    std::cout << std::flush;
    std::cerr << "tour: CHECK FAILED: " << what << std::endl;
}

/// repr(float): the shortest text that reads back as the same double, with ".0" on integers.
std::string py_float(double v) {
    std::array<char, 64> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    std::string s(buf.data(), ec == std::errc{} ? end : buf.data());
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // 'n': inf, nan
    return s;
}

/// A Python list or tuple of floats.
std::string py_floats(const std::vector<double>& values, bool as_tuple = false) {
    std::string s = as_tuple ? "(" : "[";
    for (std::size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + py_float(values[i]);
    if (as_tuple && values.size() == 1) s += ',';
    return s + (as_tuple ? ")" : "]");
}

template <class T>
std::ostream& operator<<(std::ostream& os, const std::vector<T>& values) {
    os << '[';
    for (std::size_t i = 0; i < values.size(); ++i) os << (i ? ", " : "") << values[i];
    return os << ']';
}

/// A Python list of printable values (nested lists too).
template <class T>
std::string py_list(const std::vector<T>& values) {
    std::ostringstream os;
    os << values;
    return os.str();
}

void heading(const std::string& name, const std::string& python) {
    std::cout << "\n== " << name << '\n' << ">>> " << python << std::endl;
}

std::vector<double> expected_roots() {
    std::vector<double> v(10);
    std::iota(v.begin(), v.end(), 0.0);
    return v;
}

/// `delayed(sqrt)(i ** 2) for i in range(10)`.
auto squares_of_range10() {
    return std::views::iota(0, 10) | std::views::transform([](int i) { return cojob::delayed(square_root)(i * i); });
}

// ---------------------------------------------------------------------------------------------
// The producer of the pre_dispatch example: a co_yield generator. Each value is made (and
// announced) only when the call steps to it, as a Python generator's body runs up to its next
// `yield` when next() is called.

cojob::generator<int> producer(int count, std::function<void(int)> on_produce) {
    for (int i = 0; i < count; ++i) {
        std::cout << "Produced " << i << std::endl;
        if (on_produce) on_produce(i);
        co_yield i;
    }
}

// ---------------------------------------------------------------------------------------------
// The examples of the `Parallel` reference page.

void sqrt_n_jobs_1() {
    heading("sqrt over range(10), n_jobs=1", "Parallel(n_jobs=1)(delayed(sqrt)(i**2) for i in range(10))");
    std::vector<double> r = cojob::parallel{{.n_jobs = 1}}(squares_of_range10());
    std::cout << py_floats(r) << std::endl;
    check(r == expected_roots(), "sqrt, n_jobs=1");
}

void modf_reshaping() {
    heading("modf over i/2. for range(10), n_jobs=1, results unzipped",
            "r = Parallel(n_jobs=1)(delayed(modf)(i/2.) for i in range(10)); res, i = zip(*r)");
    std::vector<std::pair<double, double>> r = cojob::parallel{{.n_jobs = 1}}(
        std::views::iota(0, 10) | std::views::transform([](int i) { return cojob::delayed(split_fraction)(i / 2.); }));
    // zip(*r): the first and the second members, each as a tuple.
    std::vector<double> res;
    std::vector<double> i;
    for (const auto& [fractional, integral] : r) {
        res.push_back(fractional);
        i.push_back(integral);
    }
    std::cout << ">>> res\n" << py_floats(res, true) << '\n' << ">>> i\n" << py_floats(i, true) << std::endl;
    check(py_floats(res, true) == "(0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5)", "modf fractional parts");
    check(py_floats(i, true) == "(0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0)", "modf integral parts");
}

void progress_meter() {
    heading("progress meter: n_jobs=2, verbose=5, 10 x sleep(.1) (lines on stderr)",
            "r = Parallel(n_jobs=2, verbose=5)(delayed(sleep)(.1) for _ in range(10))");
    std::size_t finished_reports = 0;
    std::size_t completed = 0;
    cojob::parallel par{{.n_jobs = 2, .verbose = 5, .progress = [&](const cojob::progress_event& e) {
                             completed = e.completed;
                             finished_reports += e.finished ? 1 : 0;
                         }}};
    const auto start = std::chrono::steady_clock::now();
    par(std::views::iota(0, 10) | std::views::transform([](int) { return cojob::delayed(sleep_seconds)(.1); }));
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::cerr << std::flush;
    std::cout << "(10 sleeps of 0.1 s on 2 workers took about " << std::lround(took.count() * 10) / 10.0 << " s)"
              << std::endl;
    check(completed == 10 && finished_reports == 1, "progress meter: 10 completed, one finished report");
    check(took.count() < 0.95, "progress meter: the sleeps overlapped on 2 workers");
}

void traceback() {
    heading("traceback: nlargest(2, n) for n in (range(4), 'abcde', 3), n_jobs=2",
            "Parallel(n_jobs=2)(delayed(nlargest)(2, n) for n in (range(4), 'abcde', 3))");
    const std::array<py_object, 3> inputs{py_object{std::vector<int>{0, 1, 2, 3}}, py_object{std::string("abcde")},
                                          py_object{3}};
    auto tasks = [](std::span<const py_object> ns) {
        return ns | std::views::transform([](const py_object& n) { return cojob::delayed(nlargest)(2, n); });
    };
    cojob::parallel par{{.n_jobs = 2}};

    // The first two inputs can be iterated; alone they work.
    const auto good = par(tasks(std::span(inputs).first(2)));
    std::cout << "(the first two alone: " << good << ")" << std::endl;
    check(py_list(good) == "[[3, 2], ['e', 'd']]", "nlargest on range(4) and 'abcde'");

    bool thrown = false;
    try {
        (void)par(tasks(inputs));
    } catch (const std::invalid_argument& e) {
        thrown = true;
        const auto& failure = par.last_failure();
        std::cout << "caught " << (failure ? failure->exception : std::string("std::invalid_argument")) << ": "
                  << e.what() << '\n';
        if (failure) {
            std::cout << failure->report() << std::endl;
            check(failure->function == "nlargest", "the report names nlargest (got '" + failure->function + "')");
            check(failure->arguments == "2, 3", "the report shows the arguments (got '" + failure->arguments + "')");
            check(failure->index == 2, "the third task failed");
            check(failure->exception == "std::invalid_argument", "the report names the exception type");
        }
        check(failure.has_value(), "last_failure() is set after a task threw");
    }
    check(thrown, "nlargest(2, 3) threw std::invalid_argument out of the call");
}

void producer_consumer() {
    heading("producer/consumer: pre_dispatch='1.5*n_jobs', n_jobs=2, verbose=100 (lines on stdout)",
            "out = Parallel(n_jobs=2, verbose=100, pre_dispatch='1.5*n_jobs')(delayed(sqrt)(i) for i in producer())");
    // batch_size=1: one task per batch, as joblib dispatched when this page was written (and
    // as its threading backend still does), so each result lets exactly one more value be
    // produced. With the default "auto", the threads backend soon finds batches of one sqrt
    // too fast and doubles them, so values 3 and 4 are then produced together.
    std::size_t completed = 0;
    std::vector<std::size_t> completed_when_produced;
    cojob::parallel par{{.n_jobs = 2,
                         .verbose = 100,
                         .pre_dispatch = "1.5*n_jobs",
                         .batch_size = 1,
                         .progress = [&](const cojob::progress_event& e) { completed = e.completed; }}};
    auto tasks = producer(6, [&](int) { completed_when_produced.push_back(completed); }) |
                 std::views::transform([](int i) { return cojob::delayed(square_root)(i); });
    std::vector<double> out = par(std::move(tasks));
    std::cout << ">>> out\n" << py_floats(out) << std::endl;

    std::vector<double> roots;
    for (int i = 0; i < 6; ++i) roots.push_back(std::sqrt(i));
    check(out == roots, "producer: sqrt of 0..5 in input order");
    check(completed_when_produced.size() == 6, "producer: 6 values produced");
    for (std::size_t i = 0; i < completed_when_produced.size(); ++i) {
        if (i < 3)
            check(completed_when_produced[i] == 0, "producer: value " + std::to_string(i) + " made before any result");
        else
            check(completed_when_produced[i] >= 1,
                  "producer: value " + std::to_string(i) + " made only after a result came back (pre_dispatch)");
    }
}

// ---------------------------------------------------------------------------------------------
// The examples of the "Embarrassingly parallel for loops" guide.

void sqrt_plain_loop() {
    heading("sqrt over range(10), plain list comprehension (no cojob)", "[sqrt(i ** 2) for i in range(10)]");
    std::vector<double> r;
    for (int i = 0; i < 10; ++i) r.push_back(square_root(i * i));
    std::cout << py_floats(r) << std::endl;
    check(r == expected_roots(), "sqrt, plain loop");
}

void sqrt_n_jobs_2() {
    heading("sqrt over range(10), n_jobs=2", "Parallel(n_jobs=2)(delayed(sqrt)(i ** 2) for i in range(10))");
    std::vector<double> r = cojob::parallel{{.n_jobs = 2}}(squares_of_range10());
    std::cout << py_floats(r) << std::endl;
    check(r == expected_roots(), "sqrt, n_jobs=2");
}

void main_guard() {
    heading("the main guard: if __name__ == '__main__'", "if __name__ == '__main__': ...");
    // joblib's warning: worker processes re-import the main module, so code must run only under
    // `if __name__ == '__main__':`. cojob's process workers re-execute this program instead, and
    // `cojob::init(argc, argv)` as the first line of main is the guard: in a worker it serves
    // tasks and exits, so nothing after it runs there; in the user's process it returns at once.
    std::cout << "cojob::init(argc, argv) ran first in main: cojob::initialized() == "
              << (cojob::initialized() ? "true" : "false") << std::endl;
    check(cojob::initialized(), "cojob::init ran");
}

void sqrt_threading() {
    heading("sqrt over range(10), n_jobs=2, backend=\"threading\"",
            "Parallel(n_jobs=2, backend=\"threading\")(delayed(sqrt)(i ** 2) for i in range(10))");
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::threads}};
    std::vector<double> r = par(squares_of_range10());
    std::cout << py_floats(r) << std::endl;
    check(r == expected_roots(), "sqrt, threads backend");
    check(par.backend() == cojob::backend::threads && par.n_jobs() == 2, "the threads backend with 2 workers");
}

void reused_pool() {
    heading("reusing a pool of workers: accumulator loop, n_jobs=2",
            "with Parallel(n_jobs=2) as parallel: ... while accumulator < 1000: ...");
    // `with Parallel(n_jobs=2) as parallel:` is a `parallel` object kept across calls: its
    // worker threads start on the first call and stay until it is destroyed.
    double accumulator = 0.;
    int n_iter = 0;
    {
        cojob::parallel par{{.n_jobs = 2}};
        while (accumulator < 1000) {
            std::vector<double> results = par(std::views::iota(0, 5) | std::views::transform([&](int i) {
                                                  return cojob::delayed(square_root)(accumulator + i * i);
                                              }));
            accumulator += std::accumulate(results.begin(), results.end(), 0.0);  // synchronization barrier
            n_iter += 1;
        }
    }
    std::cout << ">>> (accumulator, n_iter)\n(" << py_float(accumulator) << ", " << n_iter << ")" << std::endl;
    // Python 3 prints (1136.5969161564717, 14); the doctest shows (1136.596..., 14).
    check(n_iter == 14, "accumulator loop: 14 iterations");
    check(py_float(accumulator).starts_with("1136.596"), "accumulator loop: 1136.596...");
    check(std::abs(accumulator - 1136.5969161564717) < 1e-9, "accumulator loop: Python's exact value");
}

struct example {
    const char* id;
    void (*run)();
};

// In the order of the pages: joblib.Parallel's reference, then "Embarrassingly parallel for loops".
constexpr std::array<example, 10> examples{{
    {"sqrt-n1", sqrt_n_jobs_1},
    {"modf", modf_reshaping},
    {"progress", progress_meter},
    {"traceback", traceback},
    {"producer", producer_consumer},
    {"sqrt-list", sqrt_plain_loop},
    {"sqrt-n2", sqrt_n_jobs_2},
    {"main-guard", main_guard},
    {"threading", sqrt_threading},
    {"reuse", reused_pool},
}};

}  // namespace

/// `tour` runs every example; `tour producer traceback` runs those; `tour --list` names them.
int main(int argc, char** argv) {
    cojob::init(argc, argv);  // the worker guard: first thing in main (see main_guard)

    const std::vector<std::string_view> wanted(argv + 1, argv + argc);
    if (wanted.size() == 1 && wanted[0] == "--list") {
        for (const auto& e : examples) std::cout << e.id << '\n';
        return 0;
    }
    for (const auto w : wanted) {
        if (std::ranges::none_of(examples, [w](const example& e) { return w == e.id; })) {
            std::cerr << "tour: no example named '" << w << "' (tour --list names them)" << std::endl;
            return 2;
        }
    }

    std::cout << "cojob tour: the examples of joblib's Parallel reference page, then of its\n"
                 "\"Embarrassingly parallel for loops\" guide\n";
    for (const auto& e : examples) {
        if (wanted.empty() || std::ranges::find(wanted, std::string_view(e.id)) != wanted.end()) e.run();
    }

    std::cout << "\ntour: " << (failures ? std::to_string(failures) + " check(s) failed" : "all checks passed")
              << std::endl;
    return failures ? 1 : 0;
}
