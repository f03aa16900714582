// delayed(f)(args...): what a task captures, how it runs, and how it describes itself.
#include "kit.hpp"

#include <cojob/delayed.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// A free function with external linkage: its name is found from its address (the test
// executable exports its symbols, see tests/meson.build).
namespace cojob_tests {
int add(int a, int b) { return a + b; }
}  // namespace cojob_tests

namespace {

struct scale_by {
    int factor;
    int operator()(int x) const { return factor * x; }
};

struct opaque {
    int a;
    double b;
};

std::pair<double, double> split(double x) {
    double whole = 0;
    const double fraction = std::modf(x, &whole);
    return {fraction, whole};
}

}  // namespace

TEST_CASE("delayed copies an lvalue argument into the task and leaves the original intact", "[delayed][capture]") {
    kit::counts n;
    kit::counted original(n, 7);
    auto t = cojob::delayed(kit::read_value)(original);
    CHECK(n.copies == 1);
    CHECK(original.value() == 7);
    CHECK(std::get<0>(t.arguments()).value() == 7);
    CHECK(t() == 7);
}

TEST_CASE("delayed moves an rvalue argument into the task without copying it", "[delayed][capture]") {
    kit::counts n;
    auto t = cojob::delayed(kit::read_value)(kit::counted(n, 3));
    CHECK(n.copies == 0);
    CHECK(n.moves >= 1);
    CHECK(t() == 3);
    CHECK(n.copies == 0);
}

TEST_CASE("a task owns its arguments: changing the original afterwards does not change the result",
          "[delayed][capture]") {
    std::vector<int> values{1, 2, 3};
    auto t = cojob::delayed([](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); })(values);
    values.push_back(100);
    values[0] = -50;
    CHECK(t() == 6);
}

TEST_CASE("running a task passes its stored arguments as lvalues, without copying them", "[delayed][capture]") {
    kit::counts n;
    auto t = cojob::delayed(kit::read_value)(kit::counted(n, 11));
    const int copies_before = n.copies;
    CHECK(t() == 11);
    CHECK(n.copies == copies_before);
    CHECK(std::get<0>(t.arguments()).value() == 11);  // still there for error reports
}

TEST_CASE("destroying a task destroys every copy of its arguments", "[delayed][capture]") {
    kit::counts n;
    {
        kit::counted original(n, 1);
        auto t = cojob::delayed(kit::read_value)(original);
        auto u = t;  // tasks are values
        CHECK(u() == 1);
    }
    CHECK(n.alive() == 0);
}

TEST_CASE("delayed works with a free function, a lambda, a function object and a std::function", "[delayed][callable]") {
    CHECK(cojob::delayed(cojob_tests::add)(2, 3)() == 5);
    CHECK(cojob::delayed(&cojob_tests::add)(2, 3)() == 5);
    CHECK(cojob::delayed([](int a, int b) { return a * b; })(4, 5)() == 20);
    CHECK(cojob::delayed(scale_by{3})(7)() == 21);
    const std::function<std::string(std::string, int)> repeat = [](std::string s, int k) {
        std::string out;
        for (int i = 0; i < k; ++i) out += s;
        return out;
    };
    CHECK(cojob::delayed(repeat)(std::string("ab"), 3)() == "ababab");
}

TEST_CASE("one delayed callable makes many independent tasks", "[delayed][callable]") {
    const auto d = cojob::delayed(scale_by{10});
    std::vector<decltype(d(0))> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(d(i));
    for (int i = 0; i < 5; ++i) CHECK(tasks[static_cast<std::size_t>(i)]() == 10 * i);
}

TEST_CASE("a task of a void callable runs it and has result type void", "[delayed][callable]") {
    int calls = 0;
    auto t = cojob::delayed([&calls](int k) { calls += k; })(4);
    static_assert(std::is_void_v<decltype(t)::result_type>);
    t();
    CHECK(calls == 4);
}

TEST_CASE("a task may return a pair or a tuple", "[delayed][callable]") {
    auto p = cojob::delayed(split)(2.25);
    static_assert(std::is_same_v<decltype(p)::result_type, std::pair<double, double>>);
    const auto [fraction, whole] = p();
    CHECK(fraction == 0.25);
    CHECK(whole == 2.0);

    auto t = cojob::delayed([](int i) { return std::tuple<int, std::string, double>(i, std::to_string(i), i / 2.0); })(3);
    CHECK(t() == std::tuple<int, std::string, double>(3, "3", 1.5));
}

TEST_CASE("a callable returning a reference gives a task returning a value", "[delayed][callable]") {
    auto t = cojob::delayed([](const std::string& s) -> const std::string& { return s; })(std::string("kept"));
    static_assert(std::is_same_v<decltype(t)::result_type, std::string>);
    CHECK(t() == "kept");
}

TEST_CASE("a move-only argument is moved into the task and on into a callable taking it by value",
          "[delayed][capture]") {
    auto t = cojob::delayed([](std::unique_ptr<int> p) { return *p * 2; })(std::make_unique<int>(21));
    static_assert(!std::is_copy_constructible_v<decltype(t)>);
    CHECK(t() == 42);
}

TEST_CASE("a move-only argument taken by const reference stays in the task", "[delayed][capture]") {
    auto t = cojob::delayed([](const std::unique_ptr<int>& p) { return *p + 1; })(std::make_unique<int>(9));
    CHECK(t() == 10);
    REQUIRE(std::get<0>(t.arguments()) != nullptr);
    CHECK(*std::get<0>(t.arguments()) == 9);
}

TEST_CASE("task_value recognises tasks and nothing else", "[delayed][callable]") {
    using task_type = decltype(cojob::delayed(cojob_tests::add)(1, 2));
    static_assert(cojob::task_value<task_type>);
    static_assert(cojob::task_value<const task_type&>);
    static_assert(!cojob::task_value<int>);
    static_assert(!cojob::task_value<decltype(cojob::delayed(cojob_tests::add))>);
    SUCCEED();
}

TEST_CASE("describe prints the arguments: strings quoted, numbers and booleans as written", "[delayed][describe]") {
    auto t = cojob::delayed([](const std::string&, int, double, const char*, bool, char) { return 0; })(
        std::string("text"), 42, 2.5, "literal", true, 'c');
    CHECK(t.describe_arguments() == "'text', 42, 2.5, 'literal', true, 'c'");
}

TEST_CASE("describe prints a null string pointer and nullptr as nullptr", "[delayed][describe]") {
    const char* none = nullptr;
    auto t = cojob::delayed([](const char*, std::nullptr_t) { return 0; })(none, nullptr);
    CHECK(t.describe_arguments() == "nullptr, nullptr");
}

TEST_CASE("describe escapes quotes, backslashes and control characters in strings", "[delayed][describe]") {
    auto t = cojob::delayed([](const std::string&) { return 0; })(std::string("it's a\\b\nc"));
    CHECK(t.describe_arguments() == R"('it\'s a\\b\nc')");
}

TEST_CASE("describe lists a vector and cuts it after eight elements", "[delayed][describe]") {
    auto t = cojob::delayed([](const std::vector<int>&) { return 0; })(std::vector<int>{1, 2, 3});
    CHECK(t.describe_arguments() == "[1, 2, 3]");

    std::vector<int> many(20);
    std::iota(many.begin(), many.end(), 0);
    auto u = cojob::delayed([](const std::vector<int>&) { return 0; })(many);
    CHECK(u.describe_arguments() == "[0, 1, 2, 3, 4, 5, 6, 7, ...]");

    auto w = cojob::delayed([](const std::vector<std::string>&) { return 0; })(std::vector<std::string>{"a", "b"});
    CHECK(w.describe_arguments() == "['a', 'b']");
}

TEST_CASE("describe shows an unprintable argument as its type and size", "[delayed][describe]") {
    auto t = cojob::delayed([](const opaque& o) { return o.a; })(opaque{1, 2.0});
    const std::string text = t.describe_arguments();
    CHECK(text.front() == '<');
    CHECK_THAT(text, Catch::EndsWith("opaque, " + std::to_string(sizeof(opaque)) + " bytes>"));
}

TEST_CASE("describe uses a printable type's own operator<<", "[delayed][describe]") {
    kit::counts n;
    auto t = cojob::delayed(kit::read_value)(kit::counted(n, 5));
    CHECK(t.describe_arguments() == "counted{5}");
}

TEST_CASE("describe cuts a very long printed argument", "[delayed][describe]") {
    auto t = cojob::delayed([](const std::string& s) { return s.size(); })(std::string(5000, 'x'));
    const std::string text = t.describe_arguments();
    CHECK(text.size() < 300);
    CHECK_THAT(text, Catch::Contains("..."));
}

TEST_CASE("describe names a free function by its symbol and a function object by its type", "[delayed][describe]") {
    CHECK(cojob::delayed(cojob_tests::add)(1, 2).describe() == "cojob_tests::add(1, 2)");
    auto f = cojob::delayed(scale_by{2})(3);
    CHECK_THAT(f.function_name(), Catch::Contains("scale_by"));
    CHECK_THAT(f.describe(), Catch::EndsWith("scale_by(3)"));
}

TEST_CASE("a task with no arguments describes itself with empty parentheses", "[delayed][describe]") {
    auto t = cojob::delayed([] { return 1; })();
    CHECK(t.describe_arguments().empty());
    CHECK_THAT(t.describe(), Catch::EndsWith("()"));
    CHECK(t() == 1);
}
