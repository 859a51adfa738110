// examples/echo_demo.cpp: an echo server and a client over TCP loopback, both
// written with co_await, on one engine whose loop runs on the main thread.
// The client sends 64-byte messages, waits for each echo, and reports how many
// round trips per second it did.
//
//   echo_demo [seconds] [--idle-timeout SECONDS]     (defaults: 2, and 10)
//
// The server keeps its accept loop and every connection in one
// asock::task_scope (include/asock/scope.hpp), so it can be shut down without
// leaking a coroutine: close the listener, request_stop(), join the scope,
// and only then let the engine go. A connection that sends nothing for the
// idle timeout is closed (asock::with_timeout around each receive,
// include/asock/timeout.hpp; 0 turns it off). SIGINT or SIGTERM ends the run
// early, the same way, and the demo still reports what it measured.
//
// Timers are used only where the engine has them (an engine with now(): the
// epoll engine today); elsewhere (the Windows threadpool engine) the demo
// runs without the idle timeout and the client notices a signal by itself.
#include <asock/asock.hpp>
#include <asock/format.hpp>
#include <asock/scope.hpp>
#include <asock/time.hpp>
#include <asock/timeout.hpp>

#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stop_token>
#include <string>
#include <string_view>

namespace {

// Set by the signal handler, read by the watcher and the client; the handler
// does nothing else.
std::atomic<bool> stop_signalled{false};
static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler may only touch a lock-free atomic");

extern "C" void on_stop_signal(int)
{
    stop_signalled.store(true, std::memory_order_relaxed);
}

/// An engine with timers (sleep_for, with_timeout need engine.now() and its timer queue).
template <class Engine>
concept engine_with_timers = requires(Engine& e) {
    { e.now() } -> std::convertible_to<std::chrono::steady_clock::time_point>;
};

template <class Engine>
asock::task<void> echo_session(Engine& engine, asock::tcp_socket socket, std::chrono::milliseconds idle,
                               std::stop_token stop)
{
    char data[4096];
    for (;;) {
        asock::receive_outcome r;
        if constexpr (engine_with_timers<Engine>) {
            if (idle > idle.zero()) {
                const auto t = co_await asock::with_timeout(engine, idle, socket.receive_async(asock::buffer(data), stop));
                if (t.timed_out && !t.result) {
                    fmt::print(stderr, "echo_demo: closing a connection idle for {} ms\n", idle.count());
                    co_return; // the socket closes with this frame
                }
                r = t.result; // a timeout that came with bytes is not idleness: echo them
            } else {
                r = co_await socket.receive_async(asock::buffer(data), stop);
            }
        } else {
            r = co_await socket.receive_async(asock::buffer(data), stop);
        }
        if (!r) {
            co_return; // abandoned: the client hung up; cancelled: the server is stopping
        }
        if (co_await socket.send_async(asock::buffer(data, r.bytes_received), stop) != asock::send_result::ok) {
            co_return;
        }
    }
}

template <class Engine>
asock::task<void> serve(Engine& engine, asock::tcp_listener_t& listener, asock::task_scope& scope,
                        std::chrono::milliseconds idle)
{
    for (;;) {
        auto accepted = co_await listener.accept(scope.get_token());
        if (!accepted) {
            co_return; // the listener was closed, or the scope stopped
        }
        scope.spawn(echo_session(engine, std::move(accepted.socket), idle, scope.get_token()));
    }
}

// Turns a signal into scope.request_stop(): the flag is polled every 50 ms
// on the engine, so the stop runs on the engine's thread, like everything
// else. Ends when the scope is stopped for any reason.
template <class Engine>
asock::task<void> watch_signals(Engine& engine, asock::task_scope& scope)
{
    using namespace std::chrono_literals;
    while (!scope.stop_requested()) {
        if (stop_signalled.load(std::memory_order_relaxed)) {
            scope.request_stop();
            break;
        }
        co_await asock::sleep_for(engine, 50ms, scope.get_token());
    }
}

struct client_report {
    std::uint64_t round_trips = 0;
    double seconds = 0;
    bool interrupted = false;
    std::string error;
};

// `stop`: the server's stop token, so that a signal also ends the client.
asock::task<client_report> run_client(asock::engine& engine, std::uint16_t port, std::chrono::duration<double> length,
                                      std::stop_token stop)
{
    client_report report;
    auto connected = co_await asock::connect(engine, "127.0.0.1", port, stop);
    if (!connected) {
        report.interrupted = stop.stop_requested();
        if (!report.interrupted) {
            report.error = connected.error.message();
        }
        co_return report;
    }
    asock::tcp_socket& socket = connected.socket;
    char message[64];
    std::memset(message, 'a', sizeof message);
    char reply[64];
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + length;
    while (std::chrono::steady_clock::now() < deadline) {
        // The flag too: an engine without timers has no watcher to stop the scope.
        if (stop.stop_requested() || stop_signalled.load(std::memory_order_relaxed)) {
            report.interrupted = true;
            break;
        }
        if (const auto s = co_await socket.send_async(asock::buffer(message), stop); s != asock::send_result::ok) {
            report.interrupted = stop.stop_requested(); // only a stop request cancels it
            if (!report.interrupted) {
                report.error = fmt::format("send: {}", s);
            }
            break;
        }
        std::uint32_t got = 0;
        while (got < sizeof reply) {
            const auto r = co_await socket.receive_async(asock::buffer(reply + got, sizeof reply - got), stop);
            if (!r) {
                report.interrupted = stop.stop_requested();
                if (!report.interrupted) {
                    report.error = fmt::format("receive: {}", r);
                }
                break;
            }
            got += r.bytes_received;
        }
        if (got < sizeof reply) {
            break;
        }
        if (std::memcmp(reply, message, sizeof reply) != 0) {
            report.error = "echo mismatch";
            break;
        }
        ++report.round_trips;
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    co_return report;
}

[[noreturn]] void usage(const char* why)
{
    fmt::print(stderr, "echo_demo: {}\nusage: echo_demo [seconds] [--idle-timeout SECONDS]   (defaults: 2, and 10; 0: none)\n",
               why);
    std::exit(2);
}

double parse_seconds(const char* text)
{
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= 0) || v > 1e6) {
        usage("expected a number of seconds between 0 and 1000000");
    }
    return v;
}

} // namespace

int main(int argc, char** argv)
{
    double seconds = 2.0;
    double idle_seconds = 10.0;
    bool have_seconds = false;
    bool idle_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--idle-timeout") {
            if (i + 1 >= argc) {
                usage("--idle-timeout needs a value");
            }
            idle_seconds = parse_seconds(argv[++i]);
            idle_given = true;
        } else if (!have_seconds && !a.starts_with("-")) {
            seconds = parse_seconds(argv[i]);
            have_seconds = true;
        } else {
            usage("unexpected argument");
        }
    }
    const auto idle = std::chrono::milliseconds(static_cast<std::int64_t>(idle_seconds * 1000.0));

    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);

    // threads = 0: the engine's loop runs on this thread (inside sync_wait).
    auto engine = asock::make_engine({.threads = 0});
    if (!engine) {
        fmt::print(stderr, "echo_demo: cannot create an engine\n");
        return 1;
    }
    client_report report;
    {
        auto listened = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
        const std::error_code ec = listened.error;
        auto& listener = listened.listener;
        if (ec) {
            fmt::print(stderr, "echo_demo: listen: {}\n", ec.message());
            return 1;
        }
        fmt::print("echo server listening on 127.0.0.1:{}\n", listener.port());
        if constexpr (!engine_with_timers<asock::engine>) {
            if (idle_given && idle > idle.zero()) {
                fmt::print(stderr, "echo_demo: this engine has no timers: --idle-timeout is ignored\n");
            }
        }

        asock::task_scope scope;
        scope.spawn(serve(*engine, listener, scope, idle));
        if constexpr (engine_with_timers<asock::engine>) {
            scope.spawn(watch_signals(*engine, scope));
        }

        report = asock::sync_wait(*engine, run_client(*engine, listener.port(), std::chrono::duration<double>(seconds),
                                                      scope.get_token()));
        // The client's socket is closed by now. Stop the server: no new
        // connections, every session's operations cancelled, then wait until
        // every child of the scope has ended and run its destructors.
        listener.close();
        scope.request_stop();
        asock::sync_wait(*engine, scope.join());
    } // the scope and the listener go before the engine
    while (engine->poll() != 0) {
        // let the closes finish
    }
    engine = {};

    if (!report.error.empty()) {
        fmt::print(stderr, "echo_demo: client failed: {}\n", report.error);
        return 1;
    }
    if (report.interrupted) {
        fmt::print("echo_demo: stopped by a signal; the server shut down cleanly\n");
    }
    fmt::print("{} round trips of 64 bytes in {:.2f} s: {:.0f} round trips/s\n", report.round_trips, report.seconds,
               report.seconds > 0 ? static_cast<double>(report.round_trips) / report.seconds : 0.0);
    return 0;
}
