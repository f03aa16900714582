// Compile probe (tests/meson.build): async_run accepts a range of void tasks, completing with
// void(std::exception_ptr). Only compiled, never linked or run.
#include <cojob/parallel.hpp>

#include <exception>
#include <ranges>

void probe_callback(std::exception_ptr);

void probe() {
    cojob::parallel par;
    auto tasks = std::views::iota(0, 3) | std::views::transform([](int i) { return cojob::delayed([](int) {})(i); });
    par.async_run(tasks, probe_callback);
}
