// tests/unit/invoker_test.cpp - the invoker table that lets a worker run a task type it is
// sent: two types under one key must be refused, never run by the wrong invoker.
#include <catch2/catch.hpp>

#include <cojob/cojob.hpp>

#include "wire.hpp"

#include <vector>

namespace {

// Used by this test only: the test makes its task type's key ambiguous for the whole process.
long shadowed(long x) { return x + 1; }

}  // namespace

TEST_CASE("wire: a task type whose key another type shares is refused before it is sent, naming both",
          "[wire][error]") {
    using task = decltype(cojob::delayed(shadowed)(0L));
    using remote = cojob::detail::remote<task>;
    // The seam: another type registered under this task type's key, as a hash collision would.
    cojob::detail::register_invoker(remote::key(), nullptr, "an_impostor_type");
    std::vector<task> tasks{cojob::delayed(shadowed)(1L)};
    cojob::detail::byte_buffer bytes;
    cojob::detail::wire_out out(bytes);
    CHECK_THROWS_WITH(remote::encode(out, tasks, false),
                      Catch::Contains("shares its wire key") && Catch::Contains("an_impostor_type"));
    // A worker that was sent the key anyway finds no invoker, rather than one of the two.
    CHECK(cojob::detail::find_invoker(remote::key()) == nullptr);
}

TEST_CASE("wire: one type registered twice (two shared objects of a program) keeps its invoker", "[wire]") {
    using task = decltype(cojob::delayed(shadowed)(0));  // int argument: another type than above
    using remote = cojob::detail::remote<task>;
    (void)remote::registered;
    cojob::detail::register_invoker(remote::key(), nullptr, typeid(task).name());
    CHECK(cojob::detail::find_invoker(remote::key()) != nullptr);
    std::vector<task> tasks{cojob::delayed(shadowed)(1)};
    cojob::detail::byte_buffer bytes;
    cojob::detail::wire_out out(bytes);
    CHECK_NOTHROW(remote::encode(out, tasks, false));
}
