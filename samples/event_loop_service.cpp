// samples/event_loop_service.cpp - cojob inside an application that owns its event loop.
//
// One thread runs one boost::asio::io_context, which serves at the same time:
//   - a line-based TCP server on 127.0.0.1 (ephemeral port): it echoes each request line, and
//     for "sum N" it first computes N parallel tasks with `co_await par.async_run(...)`;
//   - a ticker firing every 10 ms that records how late each tick is;
//   - a client coroutine that connects, sends "hello" and then "sum 100000", and prints the replies;
//   - a watchdog that stops everything after 30 s (exit status 2), so the program never hangs.
// While the 100,000 tasks run on cojob's 2 worker threads, the loop keeps ticking on time:
// the ticks counted during the computation and the worst lateness show it.
//
// Exit status: 0 when the reply is right and the loop stayed responsive, 1 on a wrong result
// or an error, 2 when the watchdog fired.
#include <cojob/cojob.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <numbers>
#include <numeric>
#include <ranges>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// One task: the sum of 1/n^2 for n in (first, first + count]. All tasks together sum the series
/// up to N * count, whose value is known (pi^2/6 minus a tail), so the reply can be checked.
double inverse_squares(std::int64_t first, std::int64_t count) {
    double s = 0.0;
    for (std::int64_t n = first + count; n > first; --n) {  // small terms first: less rounding
        const auto x = static_cast<double>(n);
        s += 1.0 / (x * x);
    }
    return s;
}

namespace {

constexpr std::int64_t terms_per_task = 4000;
constexpr std::int64_t requested_tasks = 100'000;
constexpr auto tick_period = 10ms;
constexpr auto watchdog_limit = 30s;

double ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

/// Everything the coroutines share. They all run on the one io_context thread: no locking.
struct service {
    explicit service(asio::io_context& ctx) : acceptor(ctx), watchdog(ctx) {}

    tcp::acceptor acceptor;
    asio::steady_timer watchdog;
    bool stopping = false;
    bool failed = false;
    bool timed_out = false;

    // ticker
    long ticks = 0;
    clock_type::duration worst_lateness{};
    // the computation
    bool computing = false;
    long ticks_during = 0;
    clock_type::duration worst_lateness_during{};
    clock_type::duration compute_time{};
    double computed_sum = 0.0;
    std::int64_t computed_tasks = 0;

    void shutdown() {
        stopping = true;
        boost::system::error_code ignored;
        acceptor.close(ignored);  // ends the accept loop
        watchdog.cancel();
    }
};

/// A completion handler for co_spawn that reports an escaped exception and stops the service.
auto report_errors(service& svc, const char* who) {
    return [&svc, who](const std::exception_ptr& e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            std::cerr << "event_loop_service: " << who << " failed: " << x.what() << std::endl;
        }
        svc.failed = true;
        svc.shutdown();
    };
}

/// "sum N": N tasks on the workers, awaited without blocking the loop.
asio::awaitable<std::string> compute_sum(std::string_view arg, cojob::parallel& par, service& svc) {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
    if (ec != std::errc{} || end != arg.data() + arg.size() || n < 1 || n > 1'000'000)
        co_return "error: sum takes a task count from 1 to 1000000";

    auto tasks = std::views::iota(std::int64_t{0}, n) | std::views::transform([](std::int64_t i) {
                     return cojob::delayed(inverse_squares)(i * terms_per_task, terms_per_task);
                 });
    struct computing_scope {  // the ticker counts the ticks that fire while this lives
        service& svc;
        explicit computing_scope(service& s) : svc(s) { svc.computing = true; }
        ~computing_scope() { svc.computing = false; }
        computing_scope(const computing_scope&) = delete;
        computing_scope& operator=(const computing_scope&) = delete;
    };
    std::vector<double> parts;
    {
        const computing_scope scope(svc);
        const auto start = clock_type::now();
        parts = co_await par.async_run(std::move(tasks), asio::use_awaitable);
        svc.compute_time = clock_type::now() - start;
    }

    svc.computed_tasks = static_cast<std::int64_t>(parts.size());
    svc.computed_sum = std::accumulate(parts.begin(), parts.end(), 0.0);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15f", svc.computed_sum);
    co_return std::string(buf);
}

/// One connection: a reply line per request line, until the client closes.
asio::awaitable<void> session(tcp::socket socket, cojob::parallel& par, service& svc) {
    std::string buffer;
    for (;;) {
        auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer, 4096), '\n',
                                                       asio::as_tuple(asio::use_awaitable));
        if (ec) break;  // eof: the client is done
        const std::string line = buffer.substr(0, n - 1);
        buffer.erase(0, n);

        std::string reply = "echo: " + line;
        if (line.starts_with("sum ")) {
            try {
                reply += " -> " + co_await compute_sum(std::string_view(line).substr(4), par, svc);
            } catch (const std::exception& e) {
                reply += " -> error: " + std::string(e.what());
            }
        }
        reply += '\n';
        co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
    }
}

asio::awaitable<void> server(cojob::parallel& par, service& svc) {
    const auto ex = co_await asio::this_coro::executor;
    for (;;) {
        auto [ec, socket] = co_await svc.acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;  // the acceptor was closed: shutting down
        asio::co_spawn(ex, session(std::move(socket), par, svc), report_errors(svc, "session"));
    }
}

/// Fires every 10 ms against absolute deadlines and records how late each wake-up is.
asio::awaitable<void> ticker(service& svc) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto deadline = clock_type::now();
    while (!svc.stopping) {
        deadline += tick_period;
        timer.expires_at(deadline);
        co_await timer.async_wait(asio::use_awaitable);
        const auto now = clock_type::now();
        const auto late = now - deadline;
        ++svc.ticks;
        svc.worst_lateness = std::max(svc.worst_lateness, late);
        if (svc.computing) {
            ++svc.ticks_during;
            svc.worst_lateness_during = std::max(svc.worst_lateness_during, late);
        }
        if (late > tick_period) deadline = now;  // missed ticks are not made up in a burst
    }
}

asio::awaitable<void> client(tcp::endpoint server_at, service& svc) {
    tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect(server_at, asio::use_awaitable);
    std::string buffer;
    for (const std::string& request : {std::string("hello"), "sum " + std::to_string(requested_tasks)}) {
        std::cout << "client -> " << request << std::endl;
        const std::string line = request + '\n';
        co_await asio::async_write(socket, asio::buffer(line), asio::use_awaitable);
        const std::size_t n =
            co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer, 4096), '\n', asio::use_awaitable);
        std::cout << "client <- " << buffer.substr(0, n - 1) << std::endl;
        buffer.erase(0, n);
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    svc.shutdown();
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);

    asio::io_context ctx{1};
    cojob::parallel par{{.n_jobs = 2}};  // destroyed before the io_context
    service svc(ctx);

    const tcp::endpoint loopback(asio::ip::make_address_v4("127.0.0.1"), 0);
    svc.acceptor.open(loopback.protocol());
    svc.acceptor.set_option(tcp::acceptor::reuse_address(true));
    svc.acceptor.bind(loopback);
    svc.acceptor.listen();
    const tcp::endpoint server_at = svc.acceptor.local_endpoint();
    std::cout << "listening on " << server_at << ", " << par.n_jobs() << " workers ("
              << cojob::backend_name(par.backend()) << ")" << std::endl;

    svc.watchdog.expires_after(watchdog_limit);
    svc.watchdog.async_wait([&](boost::system::error_code ec) {
        if (ec) return;  // cancelled by a clean shutdown
        svc.timed_out = true;
        ctx.stop();
    });
    asio::co_spawn(ctx, server(par, svc), report_errors(svc, "server"));
    asio::co_spawn(ctx, ticker(svc), report_errors(svc, "ticker"));
    asio::co_spawn(ctx, client(server_at, svc), report_errors(svc, "client"));

    const auto start = clock_type::now();
    ctx.run();
    const auto ran = clock_type::now() - start;

    if (svc.timed_out) {
        std::cerr << "event_loop_service: watchdog: still running after "
                  << std::chrono::duration<double>(watchdog_limit).count() << " s, giving up" << std::endl;
        std::_Exit(2);  // do not wait for anything that may be stuck
    }

    // The series up to M = N * terms: pi^2/6 - (1/M - 1/(2 M^2) + 1/(6 M^3) - ...).
    const double m = static_cast<double>(requested_tasks * terms_per_task);
    const double expected = std::numbers::pi * std::numbers::pi / 6.0 - (1.0 / m - 0.5 / (m * m));
    const bool sum_ok = svc.computed_tasks == requested_tasks && std::abs(svc.computed_sum - expected) < 1e-10;
    const long expected_ticks = static_cast<long>(svc.compute_time / tick_period);
    // A loop blocked by the computation would tick once at most, when the result arrived.
    const bool responsive = svc.compute_time < 5 * tick_period || svc.ticks_during >= std::max(2L, expected_ticks / 2);

    std::printf("computation:   %lld tasks of %lld terms on %d workers in %.1f ms\n",
                static_cast<long long>(svc.computed_tasks), static_cast<long long>(terms_per_task), par.n_jobs(),
                ms(svc.compute_time));
    std::printf("result:        %.15f (expected %.15f) %s\n", svc.computed_sum, expected, sum_ok ? "ok" : "WRONG");
    std::printf("ticks (10 ms): %ld during the computation (about %ld expected), %ld in all\n", svc.ticks_during,
                expected_ticks, svc.ticks);
    std::printf("tick lateness: worst %.2f ms during the computation, %.2f ms overall\n",
                ms(svc.worst_lateness_during), ms(svc.worst_lateness));
    std::printf("service ran %.1f ms and shut down cleanly\n", ms(ran));
    if (!responsive) std::printf("the event loop did NOT keep ticking during the computation\n");
    std::fflush(stdout);
    return svc.failed || !sum_ok || !responsive ? 1 : 0;
}
