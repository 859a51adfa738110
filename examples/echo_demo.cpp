// examples/echo_demo.cpp: an echo server and a client over TCP loopback, both
// written with co_await, on one engine whose loop runs on the main thread.
// The client sends 64-byte messages, waits for each echo, and reports how many
// round trips per second it did.
//
//   echo_demo [seconds]      (default 2)
#include <asock/asock.hpp>
#include <asock/format.hpp>

#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stop_token>

namespace {

asock::task<void> echo_session(asock::tcp_socket socket)
{
    char data[4096];
    for (;;) {
        const asock::receive_outcome r = co_await socket.receive_async(asock::buffer(data));
        if (!r) {
            co_return; // abandoned: the client hung up
        }
        if (co_await socket.send_async(asock::buffer(data, r.bytes_received)) != asock::send_result::ok) {
            co_return;
        }
    }
}

asock::task<void> serve(asock::tcp_listener_t& listener)
{
    for (;;) {
        auto accepted = co_await listener.accept();
        if (!accepted) {
            co_return; // the listener was closed
        }
        asock::spawn(echo_session(std::move(accepted.socket)));
    }
}

struct client_report {
    std::uint64_t round_trips = 0;
    double seconds = 0;
    std::string error;
};

asock::task<client_report> run_client(asock::engine& engine, std::uint16_t port, std::chrono::duration<double> length)
{
    client_report report;
    auto connected = co_await asock::connect(engine, "127.0.0.1", port);
    if (!connected) {
        report.error = connected.error.message();
        co_return report;
    }
    asock::tcp_socket& socket = connected.socket;
    char message[64];
    std::memset(message, 'a', sizeof message);
    char reply[64];
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + length;
    while (std::chrono::steady_clock::now() < deadline) {
        if (const auto s = co_await socket.send_async(asock::buffer(message)); s != asock::send_result::ok) {
            report.error = fmt::format("send: {}", s);
            break;
        }
        std::uint32_t got = 0;
        while (got < sizeof reply) {
            const auto r = co_await socket.receive_async(asock::buffer(reply + got, sizeof reply - got));
            if (!r) {
                report.error = fmt::format("receive: {}", r);
                co_return report;
            }
            got += r.bytes_received;
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

} // namespace

int main(int argc, char** argv)
{
    const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    // threads = 0: the engine's loop runs on this thread (inside sync_wait).
    auto engine = asock::make_engine({.threads = 0});
    if (!engine) {
        fmt::print(stderr, "echo_demo: cannot create an engine\n");
        return 1;
    }
    auto listened = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
    const std::error_code ec = listened.error;
    auto& listener = listened.listener;
    if (ec) {
        fmt::print(stderr, "echo_demo: listen: {}\n", ec.message());
        return 1;
    }
    fmt::print("echo server listening on 127.0.0.1:{}\n", listener.port());
    asock::spawn(serve(listener));

    const client_report report =
        asock::sync_wait(*engine, run_client(*engine, listener.port(), std::chrono::duration<double>(seconds)));

    listener.close();
    while (engine->run_one(50) != 0) {
        // let the server and its sessions see the hang-ups and finish
    }
    if (!report.error.empty()) {
        fmt::print(stderr, "echo_demo: client failed: {}\n", report.error);
        return 1;
    }
    fmt::print("{} round trips of 64 bytes in {:.2f} s: {:.0f} round trips/s\n", report.round_trips, report.seconds,
               static_cast<double>(report.round_trips) / report.seconds);
    return 0;
}
