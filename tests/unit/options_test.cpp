// options: n_jobs, pre_dispatch, batch_size, timeout and backend validation, and the
// thread-local parallel_config scopes.
#include "kit.hpp"

#include <cojob/errors.hpp>
#include <cojob/options.hpp>
#include <cojob/parallel.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <ranges>
#include <string>

using namespace std::chrono_literals;

namespace {

// Builds a parallel object from `o` (so that a throwing constructor can sit in an expression).
void build(cojob::options o) { cojob::parallel par{std::move(o)}; }

std::string option_error(cojob::options o) {
    return kit::message_of<cojob::error>([&] { build(std::move(o)); });
}

}  // namespace

// --- n_jobs ------------------------------------------------------------------------------------

TEST_CASE("cpu_count is at least one and stable", "[options][n_jobs]") {
    CHECK(cojob::cpu_count() >= 1);
    CHECK(cojob::cpu_count() == cojob::cpu_count());
}

TEST_CASE("a positive n_jobs means that many workers, even above the CPU count", "[options][n_jobs]") {
    CHECK(cojob::effective_n_jobs(1) == 1);
    CHECK(cojob::effective_n_jobs(3) == 3);
    CHECK(cojob::effective_n_jobs(cojob::cpu_count() + 5) == cojob::cpu_count() + 5);
}

TEST_CASE("n_jobs=-1 means every CPU and -2 every CPU but one, floored at one", "[options][n_jobs]") {
    const int cpus = cojob::cpu_count();
    CHECK(cojob::effective_n_jobs(-1) == cpus);
    CHECK(cojob::effective_n_jobs(-2) == std::max(cpus - 1, 1));
    CHECK(cojob::effective_n_jobs(-(cpus + 10)) == 1);
}

TEST_CASE("n_jobs=0 throws cojob::error naming n_jobs", "[options][n_jobs][error]") {
    CHECK_THAT(kit::message_of<cojob::error>([] { (void)cojob::effective_n_jobs(0); }), Catch::Contains("n_jobs"));
    CHECK_THAT(option_error({.n_jobs = 0}), Catch::Contains("n_jobs"));
}

TEST_CASE("a parallel object reports its effective n_jobs and backend", "[options][n_jobs]") {
    const int cpus = cojob::cpu_count();
    {
        cojob::parallel par;
        CHECK(par.n_jobs() == 1);
        CHECK(par.backend() == cojob::backend::sequential);
    }
    {
        cojob::parallel par{{.n_jobs = 2}};
        CHECK(par.n_jobs() == 2);
        CHECK(par.backend() == cojob::backend::threads);
    }
    {
        cojob::parallel par{{.n_jobs = -1}};
        CHECK(par.n_jobs() == cpus);
        CHECK(par.backend() == (cpus == 1 ? cojob::backend::sequential : cojob::backend::threads));
    }
    {
        cojob::parallel par{{.n_jobs = 4, .backend = cojob::backend::sequential}};
        CHECK(par.backend() == cojob::backend::sequential);
        CHECK(par.n_jobs() == 1);
    }
    {
        cojob::parallel par{{.n_jobs = 1, .backend = cojob::backend::threads}};
        CHECK(par.backend() == cojob::backend::sequential);  // n_jobs=1 is joblib's sequential path
    }
}

TEST_CASE("backend names are the ones joblib users know", "[options][backend]") {
    CHECK(std::string(cojob::backend_name(cojob::backend::sequential)) == "SequentialBackend");
    CHECK(std::string(cojob::backend_name(cojob::backend::threads)) == "ThreadingBackend");
}

TEST_CASE("backend=processes resolves (its workers start at the first call)", "[options][backend]") {
    cojob::parallel par{{.n_jobs = 2, .backend = cojob::backend::processes}};
    CHECK(par.backend() == cojob::backend::processes);
    CHECK(par.n_jobs() == 2);
    CHECK(std::string(cojob::backend_name(cojob::backend::processes)) == "ProcessBackend");
}

TEST_CASE("an unknown backend value is refused, naming the accepted ones", "[options][backend][error]") {
    CHECK_THAT(option_error({.n_jobs = 2, .backend = static_cast<cojob::backend>(42)}),
               Catch::Contains("sequential, threads, processes or mpi"));
}

TEST_CASE("backend=mpi in a program without cojob-mpi says what to link", "[options][backend][error]") {
    CHECK(std::string(cojob::backend_name(cojob::backend::mpi)) == "MPIBackend");
    for (int n : {-1, 1, 4}) {
        const std::string text = option_error({.n_jobs = n, .backend = cojob::backend::mpi});
        CHECK_THAT(text, Catch::Contains("backend=mpi needs the cojob-mpi library"));
        CHECK_THAT(text, Catch::Contains("<cojob/mpi.hpp>"));
    }
}

// --- pre_dispatch ------------------------------------------------------------------------------

TEST_CASE("an integer pre_dispatch is a task count", "[options][pre_dispatch]") {
    CHECK(cojob::pre_dispatch_spec(1).evaluate(2) == 1u);
    CHECK(cojob::pre_dispatch_spec(17).evaluate(4) == 17u);
    CHECK(cojob::pre_dispatch_spec(5).text() == "5");
}

TEST_CASE("pre_dispatch=\"all\" means no window", "[options][pre_dispatch]") {
    CHECK_FALSE(cojob::pre_dispatch_spec("all").evaluate(2).has_value());
    CHECK(cojob::pre_dispatch_spec("all").text() == "all");
}

TEST_CASE("pre_dispatch expressions in n_jobs evaluate with Python's rules", "[options][pre_dispatch]") {
    CHECK(cojob::pre_dispatch_spec("2*n_jobs").evaluate(3) == 6u);
    CHECK(cojob::pre_dispatch_spec("2 * n_jobs").evaluate(2) == 4u);
    CHECK(cojob::pre_dispatch_spec("1.5*n_jobs").evaluate(3) == 4u);  // int(4.5)
    CHECK(cojob::pre_dispatch_spec("1.5*n_jobs").evaluate(2) == 3u);
    CHECK(cojob::pre_dispatch_spec("n_jobs//2+1").evaluate(4) == 3u);
    CHECK(cojob::pre_dispatch_spec("n_jobs//2+1").evaluate(5) == 3u);
    CHECK(cojob::pre_dispatch_spec("(n_jobs+1)**2").evaluate(2) == 9u);
    CHECK(cojob::pre_dispatch_spec("n_jobs").evaluate(7) == 7u);
    CHECK(cojob::pre_dispatch_spec("n_jobs%3+n_jobs").evaluate(5) == 7u);
    CHECK(cojob::pre_dispatch_spec("10-n_jobs*2").evaluate(2) == 6u);
    CHECK(cojob::pre_dispatch_spec(std::string("3*n_jobs")).text() == "3*n_jobs");
}

TEST_CASE("malformed pre_dispatch expressions throw cojob::error naming pre_dispatch",
          "[options][pre_dispatch][error]") {
    const std::string too_long = "n_jobs+n_jobs+n_jobs+n_jobs+n_jobs";  // valid, but 34 characters
    REQUIRE(too_long.size() > 30);
    for (const std::string& text : {std::string("2*m_jobs"), std::string("2*"), std::string(""), too_long,
                                   std::string("0"), std::string("-n_jobs"), std::string("n_jobs/0"),
                                   std::string("(n_jobs"), std::string("n_jobs)"), std::string("2**n_jobs**n_jobs**9")}) {
        INFO("pre_dispatch=\"" << text << "\"");
        CHECK_THAT(kit::message_of<cojob::error>([&] { (void)cojob::pre_dispatch_spec(text).evaluate(2); }),
                   Catch::Contains("pre_dispatch"));
        CHECK_THAT(option_error({.n_jobs = 2, .pre_dispatch = text}), Catch::Contains("pre_dispatch"));
    }
}

TEST_CASE("a pre_dispatch count below one throws cojob::error naming pre_dispatch", "[options][pre_dispatch][error]") {
    CHECK_THAT(option_error({.n_jobs = 2, .pre_dispatch = 0}), Catch::Contains("pre_dispatch"));
    CHECK_THAT(option_error({.n_jobs = 2, .pre_dispatch = -3}), Catch::Contains("pre_dispatch"));
}

TEST_CASE("pre_dispatch is validated for the sequential backend too", "[options][pre_dispatch][error]") {
    CHECK_THAT(option_error({.n_jobs = 1, .pre_dispatch = "2*"}), Catch::Contains("pre_dispatch"));
}

// --- batch_size and timeout --------------------------------------------------------------------

TEST_CASE("batch_size accepts \"auto\" and counts above zero", "[options][batch_size]") {
    CHECK(cojob::batch_size_spec("auto").evaluate() == 0u);
    CHECK(cojob::batch_size_spec(1).evaluate() == 1u);
    CHECK(cojob::batch_size_spec(64).evaluate() == 64u);
    CHECK_NOTHROW(build({.n_jobs = 2, .batch_size = 7}));
    CHECK_NOTHROW(build({.n_jobs = 2, .batch_size = "auto"}));
}

TEST_CASE("batch_size 0, negative or an unknown word throws cojob::error naming batch_size",
          "[options][batch_size][error]") {
    CHECK_THAT(option_error({.n_jobs = 2, .batch_size = 0}), Catch::Contains("batch_size"));
    CHECK_THAT(option_error({.n_jobs = 2, .batch_size = -1}), Catch::Contains("batch_size"));
    CHECK_THAT(option_error({.n_jobs = 2, .batch_size = "fast"}), Catch::Contains("batch_size"));
    CHECK_THAT(option_error({.n_jobs = 1, .batch_size = ""}), Catch::Contains("batch_size"));
}

TEST_CASE("a timeout of zero or less throws cojob::error naming timeout", "[options][timeout][error]") {
    CHECK_THAT(option_error({.n_jobs = 2, .timeout = 0s}), Catch::Contains("timeout"));
    CHECK_THAT(option_error({.n_jobs = 2, .timeout = -1s}), Catch::Contains("timeout"));
    CHECK_NOTHROW(build({.n_jobs = 2, .timeout = 50ms}));
}

TEST_CASE("option errors are cojob::error and therefore std::runtime_error", "[options][exceptions][error]") {
    CHECK_THROWS_AS(build({.n_jobs = 0}), cojob::error);
    CHECK_THROWS_AS(build({.n_jobs = 0}), std::runtime_error);
}

// --- parallel_config ---------------------------------------------------------------------------

TEST_CASE("without a scope, current() sets nothing and parallel uses the defaults", "[options][config]") {
    const cojob::options now = cojob::parallel_config::current();
    CHECK_FALSE(now.n_jobs.has_value());
    CHECK_FALSE(now.backend.has_value());
    CHECK_FALSE(now.verbose.has_value());
    cojob::parallel par;
    CHECK(par.n_jobs() == 1);
}

TEST_CASE("explicit options beat the innermost scope, which beats outer scopes, which beat defaults",
          "[options][config]") {
    {
        cojob::parallel_config outer({.n_jobs = 3, .verbose = 0, .batch_size = 4});
        {
            cojob::parallel par;
            CHECK(par.n_jobs() == 3);
        }
        {
            cojob::parallel_config inner({.n_jobs = 2});
            const cojob::options merged = cojob::parallel_config::current();
            CHECK(merged.n_jobs == 2);
            CHECK(merged.verbose == 0);     // from the outer scope: inner sets only what it names
            CHECK(merged.batch_size.has_value());
            CHECK(cojob::parallel{}.n_jobs() == 2);
            CHECK(cojob::parallel{{.n_jobs = 4}}.n_jobs() == 4);
        }
        CHECK(cojob::parallel_config::current().n_jobs == 3);  // inner scope gone
        CHECK(cojob::parallel{}.n_jobs() == 3);
    }
    CHECK_FALSE(cojob::parallel_config::current().n_jobs.has_value());
    CHECK(cojob::parallel{}.n_jobs() == 1);
}

TEST_CASE("a scope can choose the backend for parallel objects that do not", "[options][config]") {
    cojob::parallel_config scope({.backend = cojob::backend::sequential});
    cojob::parallel par{{.n_jobs = 2}};
    CHECK(par.backend() == cojob::backend::sequential);
    cojob::parallel mine{{.n_jobs = 2, .backend = cojob::backend::threads}};
    CHECK(mine.backend() == cojob::backend::threads);
}

TEST_CASE("an invalid value in a scope is reported when a parallel object is built", "[options][config][error]") {
    cojob::parallel_config scope({.n_jobs = 0});
    CHECK_THAT(option_error({}), Catch::Contains("n_jobs"));
    CHECK_NOTHROW(build({.n_jobs = 2}));  // an explicit value hides the scope's
}

TEST_CASE("a scope's progress callback is used by parallel objects built inside it", "[options][config]") {
    int events = 0;
    cojob::parallel_config scope({.progress = [&events](const cojob::progress_event&) { ++events; }});
    cojob::parallel par;
    par(std::views::iota(0, 3) | std::views::transform([](int i) { return cojob::delayed([](int x) { return x; })(i); }));
    CHECK(events > 0);
}

TEST_CASE("scopes are thread-local: another thread sees none of this thread's scopes", "[options][config]") {
    cojob::parallel_config scope({.n_jobs = 3, .verbose = 2});
    auto seen = std::async(std::launch::async, [] {
        const cojob::options there = cojob::parallel_config::current();
        cojob::parallel par;
        return std::pair<bool, int>(there.n_jobs.has_value() || there.verbose.has_value(), par.n_jobs());
    });
    REQUIRE(seen.wait_for(10s) == std::future_status::ready);
    const auto [any_set, n_jobs] = seen.get();
    CHECK_FALSE(any_set);
    CHECK(n_jobs == 1);
    CHECK(cojob::parallel_config::current().n_jobs == 3);  // and this thread's scope is untouched
}

TEST_CASE("a scope opened on another thread does not leak into this one", "[options][config]") {
    std::promise<void> opened;
    std::promise<void> checked;
    auto other = std::async(std::launch::async, [&] {
        cojob::parallel_config scope({.n_jobs = 5});
        opened.set_value();
        checked.get_future().wait_for(10s);
        return cojob::parallel_config::current().n_jobs.value_or(0);
    });
    REQUIRE(opened.get_future().wait_for(10s) == std::future_status::ready);
    CHECK_FALSE(cojob::parallel_config::current().n_jobs.has_value());
    checked.set_value();
    REQUIRE(other.wait_for(10s) == std::future_status::ready);
    CHECK(other.get() == 5);
}
