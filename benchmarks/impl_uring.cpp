// benchmarks/impl_uring.cpp: asock's C++ API over the io_uring backend
// (asock/io_uring.hpp), the same program as impl_asock.cpp's `asock` where it
// can be: a server engine with one thread of its own, a client engine with
// none whose loop runs on the calling thread, co_await everywhere.
//
// What differs: the io_uring backend has no notify_io yet, so no TCP helpers.
// Connections are made with plain blocking calls (a helper thread accepts and
// hands each accepted descriptor to the server engine) before the measured
// part starts, and `churn`, whose unit is a connection made through the TCP
// helpers, is not supported yet (the run fails saying so).
#include "bench.h"

#include <asock/io_uring.hpp>
#include <asock/spawn.hpp>
#include <asock/sync_wait.hpp>
#include <asock/task.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using usocket = asock::uring::socket;

struct server {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asock::engine_ref<asock::uring::engine> engine;
    std::uint64_t received = 0; // sink: bytes so far (server thread only)
    std::atomic<int> live{0};
};

asock::task<void> echo_session(server& s, int fd)
{
    {
        usocket socket(*s.engine);
        if (socket.open(fd) != asock::open_result::ok) {
            ::close(fd);
            bench_fail(s.run, "uring server: open", 0);
        } else {
            std::unique_ptr<char[]> buf(new char[BENCH_ECHO_BUFFER]);
            for (;;) {
                const asock::receive_outcome r =
                    co_await socket.receive_async(asock::buffer(buf.get(), BENCH_ECHO_BUFFER));
                if (!r) {
                    break;
                }
                if (co_await socket.send_async(asock::buffer(buf.get(), r.bytes_received)) != asock::send_result::ok) {
                    break;
                }
            }
        }
    }
    s.live.fetch_sub(1, std::memory_order_release);
}

asock::task<void> sink_session(server& s, int fd)
{
    {
        usocket socket(*s.engine);
        if (socket.open(fd) != asock::open_result::ok) {
            ::close(fd);
            bench_fail(s.run, "uring server: open", 0);
        } else {
            std::unique_ptr<char[]> buf(new char[BENCH_SINK_BUFFER]);
            while (s.received < s.cfg->total) {
                const asock::receive_outcome r =
                    co_await socket.receive_async(asock::buffer(buf.get(), BENCH_SINK_BUFFER));
                if (!r) {
                    bench_fail(s.run, "uring server: receive ended early", 0);
                    break;
                }
                s.received += r.bytes_received;
                bench_progress(s.run, r.bytes_received);
            }
        }
    }
    s.live.fetch_sub(1, std::memory_order_release);
}

void no_delay(int fd)
{
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A connected pair over 127.0.0.1: the client end, and the server end
// accepted from `listener`.
bool connect_pair(int listener, const sockaddr_in& at, int& client_fd, int& server_fd)
{
    client_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client_fd < 0 || ::connect(client_fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) {
        return false;
    }
    server_fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (server_fd < 0) {
        return false;
    }
    no_delay(client_fd);
    no_delay(server_fd);
    return true;
}

struct client {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asock::engine_ref<asock::uring::engine> engine;
    char message[BENCH_MAX_MESSAGE];
    std::uint64_t issued = 0;
    std::uint32_t active = 0;
};

asock::task<void> pingpong_connection(client& c, usocket& socket)
{
    char reply[BENCH_MAX_MESSAGE];
    const std::uint32_t size = c.cfg->message_size;
    while (c.issued < c.cfg->total && !bench_failed(c.run)) {
        ++c.issued;
        if (co_await socket.send_async(asock::buffer(c.message, size)) != asock::send_result::ok) {
            bench_fail(c.run, "uring client: send", 0);
            break;
        }
        std::uint32_t have = 0;
        while (have < size) {
            const asock::receive_outcome r = co_await socket.receive_async(asock::buffer(reply + have, size - have));
            if (!r) {
                bench_fail(c.run, "uring client: receive", 0);
                break;
            }
            have += r.bytes_received;
        }
        if (have < size) {
            break;
        }
        bench_progress(c.run, 1);
    }
    --c.active;
}

asock::task<int> bulk(client& c, usocket& socket)
{
    std::unique_ptr<char[]> chunk(new char[c.cfg->chunk_size]);
    std::memset(chunk.get(), 'b', c.cfg->chunk_size);
    std::uint64_t left = c.cfg->total;
    while (left > 0) {
        const std::uint32_t n = left < c.cfg->chunk_size ? static_cast<std::uint32_t>(left) : c.cfg->chunk_size;
        if (co_await socket.send_async(asock::buffer(chunk.get(), n)) != asock::send_result::ok) {
            bench_fail(c.run, "uring client: send", 0);
            co_return -1;
        }
        left -= n;
    }
    char b[16];
    while (co_await socket.receive_async(asock::buffer(b))) {
        // until the server closes: it has everything
    }
    co_return 0;
}

int run_uring(const bench_config* cfg, bench_run* run)
{
    if (cfg->workload == BENCH_CHURN) {
        bench_fail(run, "uring: churn needs the TCP helpers, not there yet on io_uring", 0);
        return -1;
    }
    if (!asock::uring::available()) {
        bench_fail(run, asock::uring::unavailable_reason(), 0);
        return -1;
    }
    auto s = std::make_unique<server>();
    s->cfg = cfg;
    s->run = run;
    asock::uring::engine_options server_options;
    server_options.threads = 1;
    s->engine = asock::uring::make_engine(server_options);
    auto c = std::make_unique<client>();
    c->cfg = cfg;
    c->run = run;
    std::memset(c->message, 'a', sizeof c->message);
    asock::uring::engine_options client_options;
    client_options.threads = 0;
    c->engine = asock::uring::make_engine(client_options);
    if (!s->engine || !c->engine) {
        bench_fail(run, "uring: cannot create the engines", 0);
        return -1;
    }

    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof at;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 ||
        ::listen(listener, 1024) != 0 || ::getsockname(listener, reinterpret_cast<sockaddr*>(&at), &len) != 0) {
        bench_fail(run, "uring: listen", errno);
        return -1;
    }
    const std::uint32_t n = cfg->workload == BENCH_BULK ? 1u : cfg->connections;
    std::vector<usocket> sockets;
    sockets.reserve(n);
    int rc = 0;
    for (std::uint32_t i = 0; i < n && rc == 0; ++i) {
        int client_fd = -1;
        int server_fd = -1;
        if (!connect_pair(listener, at, client_fd, server_fd)) {
            bench_fail(run, "uring: connect / accept", errno);
            rc = -1;
            break;
        }
        s->live.fetch_add(1, std::memory_order_acq_rel);
        if (cfg->workload == BENCH_BULK) {
            asock::spawn(sink_session(*s, server_fd));
        } else {
            asock::spawn(echo_session(*s, server_fd));
        }
        sockets.emplace_back(*c->engine);
        if (sockets.back().open(client_fd) != asock::open_result::ok) {
            ::close(client_fd);
            bench_fail(run, "uring client: open", 0);
            rc = -1;
        }
    }
    ::close(listener);
    if (rc == 0) {
        if (cfg->workload == BENCH_BULK) {
            rc = asock::sync_wait(*c->engine, bulk(*c, sockets.front()));
        } else {
            c->active = n;
            for (auto& socket : sockets) {
                asock::spawn(pingpong_connection(*c, socket));
            }
            while (c->active > 0) {
                c->engine->run_one(-1);
            }
            rc = bench_failed(run) ? -1 : 0;
        }
    }
    sockets.clear(); // closes: the sessions see the end
    while (c->engine->poll() != 0) {
    }
    for (int i = 0; i < 5000 && s->live.load(std::memory_order_acquire) != 0 && !bench_failed(run); ++i) {
        bench_nap();
    }
    c->engine = {};
    s->engine = {}; // the last reference: stops and joins the engine's thread
    return rc;
}

} // namespace

// No fairness workload yet: it needs asock::connect / tcp_listener_t, which
// the io_uring backend does not have (no notify_io).
extern "C" const bench_impl bench_impl_uring = {"uring", "asock C++ over io_uring (co_await)", run_uring, nullptr};
