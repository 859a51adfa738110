// tests/consumer/app/main.cpp: the program of the consumer project. It uses
// only asock's public headers: creates an engine, opens two async_sockets over
// a socketpair, echoes a message from one to the other with co_await, and
// checks the bytes that come back. Exit status 0 means the round trip worked.
#include <asock/asock.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

using socket_type = asock::async_socket<asock::default_platform>;

constexpr std::string_view message = "asock consumer: a round trip over a socketpair";

// The echoing side: receives exactly message.size() bytes and sends them back.
asock::task<void> echo_back(socket_type& socket, bool& echoed)
{
    char data[message.size()];
    std::uint32_t got = 0;
    while (got < sizeof data) {
        const asock::receive_outcome r = co_await socket.receive_async(asock::buffer(data + got, sizeof data - got));
        if (!r) {
            co_return;
        }
        got += r.bytes_received;
    }
    echoed = co_await socket.send_async(asock::buffer(data, got)) == asock::send_result::ok;
}

// The calling side: sends the message and returns what came back (or an error text).
asock::task<std::string> round_trip(socket_type& socket)
{
    if (const asock::send_result s = co_await socket.send_async(asock::buffer(message)); s != asock::send_result::ok) {
        co_return "send: " + std::string(asock::to_string(s));
    }
    std::string reply(message.size(), '\0');
    std::uint32_t got = 0;
    while (got < reply.size()) {
        const asock::receive_outcome r = co_await socket.receive_async(asock::buffer(reply.data() + got, reply.size() - got));
        if (!r) {
            co_return "receive: " + std::string(asock::to_string(r.result));
        }
        got += r.bytes_received;
    }
    co_return reply;
}

} // namespace

int main()
{
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        std::perror("consumer: socketpair");
        return 1;
    }
    // threads = 0: the engine's loop runs on this thread, inside sync_wait.
    auto engine = asock::make_engine({.threads = 0});
    if (!engine) {
        std::fprintf(stderr, "consumer: cannot create an engine\n");
        return 1;
    }
    socket_type caller(*engine);
    socket_type echoer(*engine);
    if (caller.open(fds[0]) != asock::open_result::ok || echoer.open(fds[1]) != asock::open_result::ok) {
        std::fprintf(stderr, "consumer: cannot open the sockets\n");
        return 1;
    }

    bool echoed = false;
    asock::spawn(echo_back(echoer, echoed));
    const std::string reply = asock::sync_wait(*engine, round_trip(caller));
    while (!echoed && engine->run_one(50) != 0) {
        // let the echoing side finish
    }

    if (reply != message || !echoed) {
        std::fprintf(stderr, "consumer: round trip failed: sent \"%.*s\", got \"%s\"%s\n",
                     static_cast<int>(message.size()), message.data(), reply.c_str(),
                     echoed ? "" : " (the echoing side did not finish)");
        return 1;
    }
    std::printf("consumer: round trip of %zu bytes ok\n", message.size());
    return 0;
}
