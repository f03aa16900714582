// samples/http_service.cpp - an HTTP service on Boost.Beast whose request handlers all share one
// cojob runner backed by worker processes.
//
//   GET /ping             answers at once: "pong (K maps running)"
//   GET /sum?n=N[&ms=M]   runs N tasks on the workers (task i sleeps M ms, default 0, and
//                         returns i*i) and answers their sum
//   GET /stats            counters: maps running, finished and cancelled, tasks finished
//
// One thread runs one io_context for everything: the acceptor, every connection, and the
// scheduling of every map (`co_await par.async_run(...)`); the tasks run in the worker processes,
// so /ping is answered while maps run. Concurrent maps share the workers batch by batch. A client
// that disconnects while its map runs cancels the map (its tasks stop at once: the workers running
// them are replaced). Each connection serves one request.
//
// Usage: http_service [--port P] [--n-jobs K]. Prints "listening on 127.0.0.1:PORT" once it
// accepts connections, and serves until SIGINT or SIGTERM; it then closes every connection,
// lets the maps end, stops its workers and exits 0.
#include <cojob/cojob.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

/// One task of a map: i*i, after `ms` milliseconds of sleep (work that takes time).
long slow_square(long i, long ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return i * i;
}

namespace {

/// What the handlers share: the runner, the open connections and the counters. Touched only on
/// the io_context's one thread.
struct service {
    explicit service(int n_jobs)
        : par({.n_jobs = n_jobs,
               .backend = cojob::backend::processes,
               .on_task = [this](const cojob::task_event& e) {
                   if (e.what == cojob::task_status::finished) ++tasks_finished;
               }}) {}

    cojob::parallel par;
    std::set<tcp::socket*> connections;
    long maps_running = 0;
    long maps_finished = 0;
    long maps_cancelled = 0;
    long tasks_finished = 0;
};

/// The value of `key` in the query of `target` ("/sum?n=10&ms=2"), if it is a whole number >= 0.
std::optional<long> query_number(std::string_view target, std::string_view key) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos || pair.substr(0, eq) != key) continue;
        const std::string_view digits = pair.substr(eq + 1);
        long value = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (ec != std::errc{} || end != digits.data() + digits.size() || value < 0) return std::nullopt;
        return value;
    }
    return std::nullopt;
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

http::response<http::string_body> reply(http::status status, std::string body) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::content_type, "text/plain");
    res.keep_alive(false);
    res.body() = std::move(body) + "\n";
    res.prepare_payload();
    return res;
}

/// Completes when the client closes its end (or resets it): after its request, a client that
/// waits for the answer sends nothing more, so the socket turning readable means it left.
asio::awaitable<void> client_gone(tcp::socket& socket) {
    (void)co_await socket.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
}

/// GET /sum: the map, raced against the client's departure. Empty when the client left.
asio::awaitable<std::optional<http::response<http::string_body>>> sum(service& s, tcp::socket& socket,
                                                                      std::string_view target) {
    const auto n = query_number(target, "n");
    const long ms = query_number(target, "ms").value_or(0);
    if (!n || *n > 100'000'000 || ms > 60'000)
        co_return reply(http::status::bad_request, "expected /sum?n=N[&ms=M] with 0 <= N <= 1e8, 0 <= M <= 60000");
    auto tasks = std::views::iota(0L, *n) | std::views::transform([ms](long i) { return cojob::delayed(slow_square)(i, ms); });
    ++s.maps_running;
    // Whichever ends first cancels the other: the client leaving cancels the map.
    auto outcome = co_await (s.par.async_run(tasks, asio::as_tuple(asio::use_awaitable)) || client_gone(socket));
    --s.maps_running;
    if (outcome.index() == 1) {
        ++s.maps_cancelled;
        co_return std::nullopt;
    }
    auto [error, squares] = std::get<0>(std::move(outcome));
    ++s.maps_finished;
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            co_return reply(http::status::internal_server_error, e.what());
        }
    }
    co_return reply(http::status::ok, std::to_string(std::accumulate(squares.begin(), squares.end(), 0L)));
}

asio::awaitable<std::optional<http::response<http::string_body>>> answer(service& s, tcp::socket& socket,
                                                                         const http::request<http::string_body>& req) {
    const std::string_view target(req.target().data(), req.target().size());
    if (req.method() != http::verb::get) co_return reply(http::status::method_not_allowed, "only GET is served");
    const auto path = path_of(target);
    if (path == "/ping") co_return reply(http::status::ok, "pong (" + std::to_string(s.maps_running) + " maps running)");
    if (path == "/stats")
        co_return reply(http::status::ok, "maps_running " + std::to_string(s.maps_running) + "\nmaps_finished " +
                                              std::to_string(s.maps_finished) + "\nmaps_cancelled " +
                                              std::to_string(s.maps_cancelled) + "\ntasks_finished " +
                                              std::to_string(s.tasks_finished));
    if (path == "/sum") co_return co_await sum(s, socket, target);
    co_return reply(http::status::not_found, "not found: try /ping, /sum?n=N[&ms=M] or /stats");
}

asio::awaitable<void> serve(service& s, tcp::socket socket) {
    s.connections.insert(&socket);
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    auto [read_error, read] = co_await http::async_read(socket, buffer, req, asio::as_tuple(asio::use_awaitable));
    if (!read_error) {
        if (auto res = co_await answer(s, socket, req))
            (void)co_await http::async_write(socket, *res, asio::as_tuple(asio::use_awaitable));
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    s.connections.erase(&socket);
}

asio::awaitable<void> accept_all(service& s, tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        if (!ec) asio::co_spawn(acceptor.get_executor(), serve(s, std::move(socket)), asio::detached);
    }
}

int parse_int(const char* text, const char* what) {
    int value = 0;
    const std::string_view t(text);
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    if (ec != std::errc{} || end != t.data() + t.size() || value < 0) {
        std::cerr << "http_service: " << what << " expects a whole number >= 0, not \"" << text << "\"\n";
        std::exit(2);
    }
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    cojob::init(argc, argv);  // worker processes serve tasks from here and never return
    int port = 0;
    int n_jobs = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag(argv[i]);
        if (flag == "--port") port = parse_int(argv[i + 1], "--port");
        else if (flag == "--n-jobs") n_jobs = parse_int(argv[i + 1], "--n-jobs");
        else {
            std::cerr << "usage: http_service [--port P] [--n-jobs K]\n";
            return 2;
        }
    }
    try {
        service s(n_jobs);
        asio::io_context ctx(1);
        tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), static_cast<unsigned short>(port)});
        std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
        asio::co_spawn(ctx, accept_all(s, acceptor), asio::detached);
        // A stop request closes the acceptor and every connection: the maps of those still
        // running are cancelled with them, and run() returns once everything has ended.
        asio::signal_set stop(ctx, SIGINT, SIGTERM);
        stop.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            boost::system::error_code ignored;
            acceptor.close(ignored);
            for (tcp::socket* c : s.connections) c->close(ignored);
        });
        ctx.run();
        std::cout << "stopped: " << s.maps_finished << " maps finished, " << s.maps_cancelled << " cancelled" << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "http_service: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
