// benchmarks/impl_asio.cpp: the same workloads with standalone Asio and C++20
// coroutines (asio::awaitable, asio::use_awaitable), written the way Asio's
// own examples write them. Each side has an io_context with concurrency hint
// 1; the server's runs on a thread of its own, the client's on the calling
// thread. Errors come back through asio::redirect_error, so nothing throws.
#include "bench.h"

// Asio 1.22 enables its coroutine support for clang only with the pre-standard
// <experimental/coroutine>; clang 14 with libstdc++ has the standard one, which
// Asio also knows how to use (ASIO_HAS_STD_COROUTINE is detected for it).
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <coroutine>

#include <asio.hpp>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace {

using asio::ip::tcp;

auto with(asio::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

struct server {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asio::io_context ctx{1};
    tcp::acceptor acceptor{ctx};
    std::uint64_t received = 0; // sink: bytes so far (server thread only)
    std::atomic<int> live{0};
};

asio::awaitable<void> echo_session(server& s, tcp::socket socket)
{
    std::unique_ptr<char[]> buf(new char[BENCH_ECHO_BUFFER]);
    asio::error_code ec;
    for (;;) {
        const std::size_t n = co_await socket.async_read_some(asio::buffer(buf.get(), BENCH_ECHO_BUFFER), with(ec));
        if (ec) {
            break; // the client hung up
        }
        co_await asio::async_write(socket, asio::buffer(buf.get(), n), with(ec));
        if (ec) {
            break;
        }
    }
    socket.close(ec);
    s.live.fetch_sub(1, std::memory_order_release);
}

asio::awaitable<void> sink_session(server& s, tcp::socket socket)
{
    std::unique_ptr<char[]> buf(new char[BENCH_SINK_BUFFER]);
    asio::error_code ec;
    while (s.received < s.cfg->total) {
        const std::size_t n = co_await socket.async_read_some(asio::buffer(buf.get(), BENCH_SINK_BUFFER), with(ec));
        if (ec) {
            bench_fail(s.run, "asio server: receive ended early", 0);
            break;
        }
        s.received += n;
        bench_progress(s.run, n);
    }
    socket.close(ec); // tells the client that everything arrived
    s.live.fetch_sub(1, std::memory_order_release);
}

asio::awaitable<void> serve(server& s)
{
    for (;;) {
        asio::error_code ec;
        tcp::socket socket = co_await s.acceptor.async_accept(with(ec));
        if (ec) {
            co_return; // the acceptor was closed
        }
        socket.set_option(tcp::no_delay(true), ec);
        s.live.fetch_add(1, std::memory_order_acq_rel);
        if (s.cfg->workload == BENCH_BULK) {
            asio::co_spawn(s.ctx, sink_session(s, std::move(socket)), asio::detached);
        } else {
            asio::co_spawn(s.ctx, echo_session(s, std::move(socket)), asio::detached);
        }
    }
}

// ---- client ------------------------------------------------------------------

struct client {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asio::io_context ctx{1};
    tcp::endpoint server;
    char message[BENCH_MAX_MESSAGE];
    std::vector<tcp::socket> sockets;
    std::uint64_t issued = 0;
    int rc = 0;
};

void fail(client& c, const char* what, const asio::error_code& ec)
{
    bench_fail(c.run, what, ec.category() == asio::system_category() ? ec.value() : 0);
    c.rc = -1;
}

asio::awaitable<void> pingpong_connection(client& c, tcp::socket& socket)
{
    char reply[BENCH_MAX_MESSAGE];
    const std::size_t size = c.cfg->message_size;
    asio::error_code ec;
    while (c.issued < c.cfg->total && c.rc == 0) {
        ++c.issued;
        co_await asio::async_write(socket, asio::buffer(c.message, size), with(ec));
        if (ec) {
            fail(c, "asio client: send", ec);
            co_return;
        }
        co_await asio::async_read(socket, asio::buffer(reply, size), with(ec));
        if (ec) {
            fail(c, "asio client: receive", ec);
            co_return;
        }
        bench_progress(c.run, 1);
    }
}

asio::awaitable<void> client_pingpong(client& c)
{
    for (std::uint32_t i = 0; i < c.cfg->connections; ++i) {
        asio::error_code ec;
        tcp::socket socket(c.ctx);
        co_await socket.async_connect(c.server, with(ec));
        if (ec) {
            fail(c, "asio client: connect", ec);
            co_return;
        }
        socket.set_option(tcp::no_delay(true), ec);
        c.sockets.push_back(std::move(socket));
    }
    for (auto& socket : c.sockets) {
        asio::co_spawn(c.ctx, pingpong_connection(c, socket), asio::detached);
    }
}

asio::awaitable<void> client_bulk(client& c)
{
    asio::error_code ec;
    tcp::socket socket(c.ctx);
    co_await socket.async_connect(c.server, with(ec));
    if (ec) {
        fail(c, "asio client: connect", ec);
        co_return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::unique_ptr<char[]> chunk(new char[c.cfg->chunk_size]);
    std::memset(chunk.get(), 'b', c.cfg->chunk_size);
    std::uint64_t left = c.cfg->total;
    while (left > 0) {
        const std::size_t n = left < c.cfg->chunk_size ? static_cast<std::size_t>(left) : c.cfg->chunk_size;
        co_await asio::async_write(socket, asio::buffer(chunk.get(), n), with(ec));
        if (ec) {
            fail(c, "asio client: send", ec);
            co_return;
        }
        left -= n;
    }
    char b[16];
    while (!ec) { // until the server closes: it has everything
        co_await socket.async_read_some(asio::buffer(b), with(ec));
    }
}

asio::awaitable<void> client_churn(client& c)
{
    char reply[BENCH_MAX_MESSAGE];
    const std::size_t size = c.cfg->message_size;
    for (std::uint64_t i = 0; i < c.cfg->total; ++i) {
        asio::error_code ec;
        tcp::socket socket(c.ctx);
        co_await socket.async_connect(c.server, with(ec));
        if (ec) {
            fail(c, "asio client: connect", ec);
            co_return;
        }
        socket.set_option(tcp::no_delay(true), ec);
        co_await asio::async_write(socket, asio::buffer(c.message, size), with(ec));
        if (ec) {
            fail(c, "asio client: send", ec);
            co_return;
        }
        co_await asio::async_read(socket, asio::buffer(reply, size), with(ec));
        if (ec) {
            fail(c, "asio client: receive", ec);
            co_return;
        }
        socket.close(ec);
        bench_progress(c.run, 1);
    }
}

int run_asio(const bench_config* cfg, bench_run* run)
{
    auto s = std::make_unique<server>();
    s->cfg = cfg;
    s->run = run;
    asio::error_code ec;
    const tcp::endpoint any_port(asio::ip::address_v4::loopback(), 0);
    s->acceptor.open(any_port.protocol(), ec);
    if (!ec) {
        s->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        s->acceptor.bind(any_port, ec);
    }
    if (!ec) {
        s->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        bench_fail(run, "asio: listen", ec.value());
        return -1;
    }
    asio::co_spawn(s->ctx, serve(*s), asio::detached);
    std::thread server_thread([&s] { s->ctx.run(); });

    int rc = -1;
    {
        auto c = std::make_unique<client>();
        c->cfg = cfg;
        c->run = run;
        c->server = tcp::endpoint(asio::ip::address_v4::loopback(), s->acceptor.local_endpoint().port());
        std::memset(c->message, 'a', sizeof c->message);
        switch (cfg->workload) {
        case BENCH_PINGPONG: asio::co_spawn(c->ctx, client_pingpong(*c), asio::detached); break;
        case BENCH_BULK: asio::co_spawn(c->ctx, client_bulk(*c), asio::detached); break;
        case BENCH_CHURN: asio::co_spawn(c->ctx, client_churn(*c), asio::detached); break;
        case BENCH_FAIRNESS: break; // not offered: the driver never asks
        }
        c->ctx.run(); // until the client has nothing left to do
        rc = c->rc;
    } // closes the client's sockets
    for (int i = 0; i < 5000 && s->live.load(std::memory_order_acquire) != 0 && !bench_failed(run); ++i) {
        bench_nap();
    }
    asio::post(s->ctx, [&s] {
        asio::error_code ignored;
        s->acceptor.close(ignored); // ends serve(); the io_context then runs out of work
    });
    server_thread.join();
    return rc;
}

} // namespace

extern "C" const bench_impl bench_impl_asio = {"asio", "Asio 1.22 (C++20 coroutines)", run_asio, nullptr};
