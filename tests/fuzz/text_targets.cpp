// tests/fuzz/text_targets.cpp - the pre_dispatch expression parser.
#include "targets.hpp"

#include <cojob/errors.hpp>
#include <cojob/options.hpp>

#include <string>

namespace cojob_fuzz {

bool pre_dispatch(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return false;
    // The first byte is n_jobs (1..256), the rest the expression.
    const int n_jobs = 1 + data[0];
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        (void)cojob::pre_dispatch_spec(text).evaluate(n_jobs);
        return true;
    } catch (const cojob::error&) {
        return false;
    }
}

void pre_dispatch_seeds(std::vector<std::string>& seeds) {
    for (const char* text : {"2*n_jobs", "all", "n_jobs", "3", "(n_jobs + 1) // 2", "n_jobs ** 2 % 7", "-(-4) * 2.5",
                             "10 / n_jobs"})
        seeds.push_back(with_flags(3, text));  // n_jobs = 4
}

}  // namespace cojob_fuzz
