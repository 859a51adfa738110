// tests/integration/sync_wait_misuse.cpp: sync_wait(awaitable) on an
// operation of an engine that has no threads, with no thread running that
// engine's loop, can never complete. It must stop the program with a message
// that names the mistake (ctest checks the message), not hang in silence.
// Run as a plain program: the expected outcome is an abort.
#include <asock/asock.hpp>

#include <array>
#include <cstdio>

#include <sys/socket.h>
#include <unistd.h>

int main()
{
    auto engine = asock::make_engine({.threads = 0});
    if (!engine) {
        std::puts("no engine");
        return 1;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        std::puts("no socketpair");
        return 1;
    }
    asock::tcp_socket s(*engine);
    if (s.open(sv[0]) != asock::open_result::ok) {
        std::puts("open failed");
        return 1;
    }
    std::array<char, 8> buf{};
    // The peer stays silent and nobody runs the loop: the misuse.
    const auto out = asock::sync_wait(s.receive_async(asock::buffer(buf.data(), buf.size())));
    std::printf("sync_wait returned %d: the misuse was not detected\n", static_cast<int>(out.result));
    ::close(sv[1]);
    return 1;
}
