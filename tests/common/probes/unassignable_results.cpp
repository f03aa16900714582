// Compile probe (tests/meson.build): parallel returns results whose type can be constructed
// but not assigned (a const member, std::pair<const K, V>). Only compiled, never linked or run.
#include <cojob/parallel.hpp>

#include <ranges>
#include <string>
#include <utility>

struct frozen {
    const int value;
};

int probe() {
    cojob::parallel par;
    auto a = par(std::views::iota(0, 3) | std::views::transform([](int i) {
                     return cojob::delayed([](int k) { return frozen{k}; })(i);
                 }));
    auto b = par(std::views::iota(0, 3) | std::views::transform([](int i) {
                     return cojob::delayed([](int k) { return std::pair<const std::string, int>(std::to_string(k), k); })(i);
                 }));
    return static_cast<int>(a.size() + b.size());
}
