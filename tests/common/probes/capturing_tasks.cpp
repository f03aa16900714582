// Compile probe (tests/meson.build): parallel runs tasks whose callable is a lambda with
// captures, i.e. not copy- or move-assignable. Only compiled, never linked or run.
#include <cojob/parallel.hpp>

#include <ranges>
#include <vector>

int probe() {
    int offset = 1;
    auto add = [offset](int i) { return i + offset; };
    cojob::parallel par;
    std::vector<decltype(cojob::delayed(add)(0))> tasks;
    tasks.push_back(cojob::delayed(add)(1));
    auto a = par(tasks);
    auto b = par(std::views::iota(0, 3) | std::views::transform([&](int i) { return cojob::delayed(add)(i); }));
    return static_cast<int>(a.size() + b.size());
}
