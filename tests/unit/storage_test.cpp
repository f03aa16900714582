// Storage a call fills: fresh pages made present before they are written (populate_absent,
// present_ahead), which changes no byte, and results of every shape reaching their vector,
// std::vector<bool> included.
#include "kit.hpp"

#include <cojob/cojob.hpp>
#include <cojob/detail/elements.hpp>

#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <ranges>
#include <stdexcept>
#include <vector>

namespace {

constexpr std::size_t page = 4096;

bool is_odd(int i) {
    if (i == 7000) throw std::invalid_argument("seven thousand");
    return i % 2 != 0;
}

auto odd_tasks(int n) {
    return kit::iota(n) | std::views::transform([](int i) { return cojob::delayed(is_odd)(i); });
}

/// An anonymous mapping of 4 KiB pages (whatever the system's THP mode), unmapped at the end.
struct mapping {
    explicit mapping(std::size_t bytes) : bytes(bytes) {
        p = static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        REQUIRE(p != MAP_FAILED);
        (void)::madvise(p, bytes, MADV_NOHUGEPAGE);
    }
    ~mapping() { ::munmap(p, bytes); }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;

    /// Pages of [from, to) that are in memory.
    std::size_t present(std::size_t from, std::size_t to) const {
        std::vector<unsigned char> in((to - from) / page);
        REQUIRE(::mincore(p + from, to - from, in.data()) == 0);
        std::size_t n = 0;
        for (const unsigned char c : in) n += c & 1;
        return n;
    }

    char* p = nullptr;
    std::size_t bytes = 0;
};

// The kernel takes MADV_POPULATE_WRITE from 5.14 on; before, populate_absent does nothing.
bool kernel_populates() {
    const mapping probe(page);
    return ::madvise(probe.p, page, MADV_POPULATE_WRITE) == 0;
}

}  // namespace

TEST_CASE("tasks returning bool fill a vector<bool> in input order, also when kept going", "[parallel][order]") {
    for (int n_jobs : {1, 2}) {
        INFO("n_jobs " << n_jobs);
        cojob::parallel par{{.n_jobs = n_jobs}};
        const std::vector<bool> odd = par(odd_tasks(5000));
        REQUIRE(odd.size() == 5000);
        for (std::size_t i = 0; i < odd.size(); ++i) CHECK(odd[i] == (i % 2 != 0));
        const auto outcomes = par(cojob::keep_going, odd_tasks(8000));
        REQUIRE(outcomes.size() == 8000);
        CHECK(!outcomes[7000].has_value());
        CHECK(outcomes[7001].value());
        CHECK(!outcomes[6998].value());
    }
}

TEST_CASE("populate_absent makes the absent pages of a range present and changes no byte", "[storage]") {
    using cojob::detail::populate_absent;
    const std::size_t bytes = 64 * page;
    const mapping m(bytes);
    std::memset(m.p + 3 * page, 'a', page);  // present already, and holding something
    std::memset(m.p + 40 * page + 17, 'b', 5);
    REQUIRE(m.present(0, bytes) == 2);

    populate_absent(m.p, cojob::detail::populate_bytes - 1);  // too small to be worth it
    CHECK(m.present(0, bytes) == 2);

    const bool populates = kernel_populates();
    // From the middle of page 1 to the middle of page 62: only the pages wholly inside.
    populate_absent(m.p + page + 100, 61 * page);
    if (populates) {
        CHECK(m.present(0, page) == 0);
        CHECK(m.present(2 * page, 62 * page) == 60);
        CHECK(m.present(62 * page, bytes) == 0);
    }
    for (std::size_t i = 0; i < bytes; ++i) {
        const char want = (i / page == 3) ? 'a' : (i >= 40 * page + 17 && i < 40 * page + 22) ? 'b' : '\0';
        if (m.p[i] != want) FAIL("byte " << i << " changed");
    }
}

TEST_CASE("present_ahead keeps the next elements of a reserved vector present, an eighth at a time", "[storage]") {
    if (!kernel_populates()) return;  // nothing to see without the kernel's help
    const mapping m(256 * page);
    // A stand-in for a vector over the mapping: room() reads only data, size and capacity.
    struct span_vector {
        char* d;
        std::size_t n, cap;
        char* data() const { return d; }
        std::size_t size() const { return n; }
        std::size_t capacity() const { return cap; }
    } v{m.p, 0, 256 * page};
    cojob::detail::present_ahead ahead;
    ahead.room(v, 100);  // an eighth of the capacity at least
    CHECK(m.present(0, 32 * page) == 32);
    CHECK(m.present(32 * page, 256 * page) == 0);
    v.n = 30 * page;
    ahead.room(v, 40 * page);  // past what is present: from there, as far as asked
    CHECK(m.present(0, 70 * page) == 70);
    CHECK(m.present(70 * page, 256 * page) == 0);
    v.n = 200 * page;
    ahead.room(v, 100 * page);  // no further than the capacity
    CHECK(m.present(0, 256 * page) == 70 + 56);
}
