// benchmarks/impl_asock.cpp: asock's C++ API, written with co_await as its
// documentation shows. The server runs on an engine with one thread of its
// own; the client runs on an engine with no threads, whose loop runs on the
// calling thread (sync_wait / run_one).
//
// Two implementations come from this file: `asock`, and `asock-timeout`, the
// same program with every receive (client and server, every workload) wrapped
// in asock::with_timeout(engine, 5 s, ...) (include/asock/timeout.hpp), to
// measure what a per-operation timeout costs. No timeout ever fires in a
// run; one that did would fail the run.
#include "bench.h"

#include <asock/asock.hpp>
#include <asock/timeout.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr const char* host = "127.0.0.1";

// The timeout of every receive in `asock-timeout`: long enough never to fire.
constexpr std::chrono::seconds receive_timeout{5};

// One receive, plain (Timed = false) or under with_timeout (Timed = true),
// awaited directly in the caller's frame (a helper coroutine would cost a
// frame allocation per receive). Always inlined, so that the code is what
// `co_await asock::with_timeout(engine, 5s, socket.receive_async(b))` written
// in the coroutine gives (g++ otherwise keeps it out of line, ~45 Ir per
// receive). outcome() turns either result into a receive_outcome; a timeout,
// which never happens here, reads as `cancelled` and so fails the run like
// any other failed receive.
template <bool Timed>
[[gnu::always_inline]] inline auto timed_receive(asock::engine& engine, asock::tcp_socket& socket, asock::mutable_buffer b)
{
    if constexpr (Timed) {
        return asock::with_timeout(engine, receive_timeout, socket.receive_async(b));
    } else {
        (void)engine;
        return socket.receive_async(b);
    }
}

asock::receive_outcome outcome(const asock::receive_outcome& r) noexcept { return r; }

asock::receive_outcome outcome(const asock::timeout_result<asock::receive_outcome>& t) noexcept
{
    return t.timed_out ? asock::receive_outcome{asock::receive_result::cancelled, 0} : t.result;
}

struct server {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asock::engine_ref<asock::engine> engine;
    asock::tcp_listener_t listener;
    std::uint64_t received = 0; // sink: bytes so far (server thread only)
    std::atomic<int> live{0};   // sessions whose socket is still open
    std::atomic<bool> serving{false};
    bool source = false; // BENCH_FAIRNESS: stream to each peer instead of echoing
};

template <bool Timed>
asock::task<void> echo_session(server& s, asock::tcp_socket accepted)
{
    {
        asock::tcp_socket socket = std::move(accepted);
        std::unique_ptr<char[]> buf(new char[BENCH_ECHO_BUFFER]);
        for (;;) {
            const asock::receive_outcome r =
                outcome(co_await timed_receive<Timed>(*s.engine, socket, asock::buffer(buf.get(), BENCH_ECHO_BUFFER)));
            if (!r) {
                break; // the client hung up
            }
            if (co_await socket.send_async(asock::buffer(buf.get(), r.bytes_received)) != asock::send_result::ok) {
                break;
            }
        }
    } // the socket is closed and destroyed here
    s.live.fetch_sub(1, std::memory_order_release);
}

template <bool Timed>
asock::task<void> sink_session(server& s, asock::tcp_socket accepted)
{
    {
        asock::tcp_socket socket = std::move(accepted);
        std::unique_ptr<char[]> buf(new char[BENCH_SINK_BUFFER]);
        while (s.received < s.cfg->total) {
            const asock::receive_outcome r =
                outcome(co_await timed_receive<Timed>(*s.engine, socket, asock::buffer(buf.get(), BENCH_SINK_BUFFER)));
            if (!r) {
                bench_fail(s.run, "asock server: receive ended early", 0);
                break;
            }
            s.received += r.bytes_received;
            bench_progress(s.run, r.bytes_received);
        }
    } // closing tells the client that everything arrived
    s.live.fetch_sub(1, std::memory_order_release);
}

// BENCH_FAIRNESS: sends chunk after chunk as fast as the connection takes
// them, until the client closes it.
asock::task<void> source_session(server& s, asock::tcp_socket accepted)
{
    {
        asock::tcp_socket socket = std::move(accepted);
        const std::uint32_t n = BENCH_FAIR_SOURCE_CHUNK;
        std::unique_ptr<char[]> chunk(new char[n]);
        std::memset(chunk.get(), 's', n);
        while (co_await socket.send_async(asock::buffer(chunk.get(), n)) == asock::send_result::ok) {
        }
    }
    s.live.fetch_sub(1, std::memory_order_release);
}

template <bool Timed>
asock::task<void> serve(server& s)
{
    for (;;) {
        auto accepted = co_await s.listener.accept();
        if (!accepted) {
            break; // the listener was closed
        }
        s.live.fetch_add(1, std::memory_order_acq_rel);
        if (s.cfg->workload == BENCH_BULK) {
            asock::spawn(sink_session<Timed>(s, std::move(accepted.socket)));
        } else if (s.source) {
            asock::spawn(source_session(s, std::move(accepted.socket)));
        } else {
            asock::spawn(echo_session<Timed>(s, std::move(accepted.socket)));
        }
    }
    s.serving.store(false, std::memory_order_release);
}

// ---- client ------------------------------------------------------------------

struct client {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asock::engine_ref<asock::engine> engine;
    std::uint16_t port = 0;
    char message[BENCH_MAX_MESSAGE];
    std::uint64_t issued = 0;
    std::uint32_t active = 0;
};

// One connection's ping-pong; all connections share c.issued so that exactly
// cfg->total round trips are made in all.
template <bool Timed>
asock::task<void> pingpong_connection(client& c, asock::tcp_socket& socket)
{
    char reply[BENCH_MAX_MESSAGE];
    const std::uint32_t size = c.cfg->message_size;
    while (c.issued < c.cfg->total && !bench_failed(c.run)) {
        ++c.issued;
        if (co_await socket.send_async(asock::buffer(c.message, size)) != asock::send_result::ok) {
            bench_fail(c.run, "asock client: send", 0);
            break;
        }
        std::uint32_t have = 0;
        while (have < size) {
            const asock::receive_outcome r =
                outcome(co_await timed_receive<Timed>(*c.engine, socket, asock::buffer(reply + have, size - have)));
            if (!r) {
                bench_fail(c.run, "asock client: receive", 0);
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

template <bool Timed>
int client_pingpong(client& c)
{
    std::vector<asock::tcp_socket> sockets;
    sockets.reserve(c.cfg->connections);
    for (std::uint32_t i = 0; i < c.cfg->connections; ++i) {
        auto connected = asock::sync_wait(*c.engine, asock::connect(*c.engine, host, c.port));
        if (!connected) {
            bench_fail(c.run, ("asock client: connect: " + connected.error.message()).c_str(), 0);
            return -1;
        }
        sockets.push_back(std::move(connected.socket));
    }
    c.active = c.cfg->connections;
    for (auto& socket : sockets) {
        asock::spawn(pingpong_connection<Timed>(c, socket));
    }
    while (c.active > 0) {
        c.engine->run_one(-1);
    }
    return bench_failed(c.run) ? -1 : 0;
}

template <bool Timed>
asock::task<int> client_bulk(client& c)
{
    auto connected = co_await asock::connect(*c.engine, host, c.port);
    if (!connected) {
        bench_fail(c.run, ("asock client: connect: " + connected.error.message()).c_str(), 0);
        co_return -1;
    }
    asock::tcp_socket& socket = connected.socket;
    std::unique_ptr<char[]> chunk(new char[c.cfg->chunk_size]);
    std::memset(chunk.get(), 'b', c.cfg->chunk_size);
    std::uint64_t left = c.cfg->total;
    while (left > 0) {
        const std::uint32_t n = left < c.cfg->chunk_size ? static_cast<std::uint32_t>(left) : c.cfg->chunk_size;
        if (co_await socket.send_async(asock::buffer(chunk.get(), n)) != asock::send_result::ok) {
            bench_fail(c.run, "asock client: send", 0);
            co_return -1;
        }
        left -= n;
    }
    char b[16];
    while (outcome(co_await timed_receive<Timed>(*c.engine, socket, asock::buffer(b)))) {
        // until the server closes: it has everything
    }
    co_return 0;
}

template <bool Timed>
asock::task<int> client_churn(client& c)
{
    char reply[BENCH_MAX_MESSAGE];
    for (std::uint64_t i = 0; i < c.cfg->total; ++i) {
        auto connected = co_await asock::connect(*c.engine, host, c.port);
        if (!connected) {
            bench_fail(c.run, ("asock client: connect: " + connected.error.message()).c_str(), 0);
            co_return -1;
        }
        asock::tcp_socket& socket = connected.socket;
        const std::uint32_t size = c.cfg->message_size;
        if (co_await socket.send_async(asock::buffer(c.message, size)) != asock::send_result::ok) {
            bench_fail(c.run, "asock client: send", 0);
            co_return -1;
        }
        std::uint32_t have = 0;
        while (have < size) {
            const asock::receive_outcome r =
                outcome(co_await timed_receive<Timed>(*c.engine, socket, asock::buffer(reply + have, size - have)));
            if (!r) {
                bench_fail(c.run, "asock client: receive", 0);
                co_return -1;
            }
            have += r.bytes_received;
        }
        socket.close();
        bench_progress(c.run, 1);
    }
    co_return 0;
}

// A server on an engine with one thread of its own, listening and serving.
template <bool Timed>
std::unique_ptr<server> start_server(const bench_config* cfg, bench_run* run, bool source = false)
{
    auto s = std::make_unique<server>();
    s->cfg = cfg;
    s->run = run;
    s->source = source;
    s->engine = asock::make_engine({.threads = 1});
    if (!s->engine) {
        bench_fail(run, "asock: cannot create the server engine", 0);
        return nullptr;
    }
    auto listened = asock::tcp_listener_t::listen(*s->engine, host, 0);
    const std::error_code ec = listened.error;
    s->listener = std::move(listened.listener);
    if (ec) {
        bench_fail(run, ("asock: listen: " + ec.message()).c_str(), 0);
        return nullptr;
    }
    s->serving.store(true);
    asock::spawn(serve<Timed>(*s));
    return s;
}

// The client closed everything: wait for the sessions to end, then stop serving.
void stop_server(server& s)
{
    for (int i = 0; i < 5000 && s.live.load(std::memory_order_acquire) != 0 && !bench_failed(s.run); ++i) {
        bench_nap();
    }
    s.listener.close();
    for (int i = 0; i < 5000 && s.serving.load(std::memory_order_acquire); ++i) {
        bench_nap();
    }
    s.listener = {};
    s.engine = {}; // the last reference: stops and joins the engine's thread
}

template <bool Timed>
int run_asock(const bench_config* cfg, bench_run* run)
{
    auto s = start_server<Timed>(cfg, run);
    if (!s) {
        return -1;
    }

    int rc = -1;
    {
        auto c = std::make_unique<client>();
        c->cfg = cfg;
        c->run = run;
        c->port = s->listener.port();
        std::memset(c->message, 'a', sizeof c->message);
        c->engine = asock::make_engine({.threads = 0});
        if (!c->engine) {
            bench_fail(run, "asock: cannot create the client engine", 0);
        } else {
            switch (cfg->workload) {
            case BENCH_PINGPONG: rc = client_pingpong<Timed>(*c); break;
            case BENCH_BULK: rc = asock::sync_wait(*c->engine, client_bulk<Timed>(*c)); break;
            case BENCH_CHURN: rc = asock::sync_wait(*c->engine, client_churn<Timed>(*c)); break;
            case BENCH_FAIRNESS: break; // run_fairness instead
            }
            while (c->engine->poll() != 0) {
                // let the closes finish
            }
        }
    }
    stop_server(*s);
    return rc;
}

// ---- fairness (BENCH_FAIRNESS) ---------------------------------------------------
//
// The client's engine has no threads: its loop runs on the calling thread,
// and both client connections live on it. The echo server and the stream's
// source each have an engine with one thread of their own, so that what is
// measured is how the client's one loop shares itself between its sockets.
//
// The three phases (ping-pong alone, stream alone, both) take turns in
// BENCH_FAIR_CYCLES cycles, so that a change in the machine's load (it is
// shared) weighs on all three alike. While the sink does not receive, the
// source fills the connection's buffers and waits: the next stream phase
// starts with data ready.

struct fair_client {
    const bench_config* cfg = nullptr;
    bench_run* run = nullptr;
    asock::engine_ref<asock::engine> engine;
    asock::tcp_socket pingpong;
    asock::tcp_socket stream;
    char message[BENCH_MAX_MESSAGE];
    std::unique_ptr<char[]> sink_buffer;
    bool stream_running = false; // the sink is receiving the stream
    bool pingpong_done = false;  // the loaded phase's round trips are done
    bool sink_done = false;
};

// `rounds` round trips; the first `skip` are not recorded; the others are
// reported as `loaded` (only while the stream runs, for the loaded phase).
asock::task<void> fair_pingpong(fair_client& c, std::uint64_t rounds, std::uint64_t skip, int loaded)
{
    char reply[BENCH_MAX_MESSAGE];
    const std::uint32_t size = c.cfg->message_size;
    for (std::uint64_t i = 0; i < rounds && !bench_failed(c.run); ++i) {
        const std::uint64_t t0 = bench_now_ns();
        if (co_await c.pingpong.send_async(asock::buffer(c.message, size)) != asock::send_result::ok) {
            bench_fail(c.run, "asock client: send", 0);
            break;
        }
        std::uint32_t have = 0;
        while (have < size) {
            const asock::receive_outcome r = co_await c.pingpong.receive_async(asock::buffer(reply + have, size - have));
            if (!r) {
                bench_fail(c.run, "asock client: receive", 0);
                break;
            }
            have += r.bytes_received;
        }
        if (have < size) {
            break;
        }
        const std::uint64_t t1 = bench_now_ns();
        if (i >= skip && (loaded == 0 || c.stream_running)) {
            bench_fair_round_trip(c.run, loaded, t1 - t0);
        }
    }
    c.pingpong_done = true;
}

// Receives the stream as fast as it comes. Alone: for `alone_ns`. Loaded:
// starts `pingpong_rounds` round trips and goes on until they are done, or
// until BENCH_FAIR_LIMIT_MS passed (a starved ping-pong then finishes without
// load, its missing round trips counted as starved).
asock::task<void> fair_sink(fair_client& c, bool loaded, std::uint64_t alone_ns, std::uint64_t pingpong_rounds)
{
    co_await asock::schedule(*c.engine); // run inside the loop, as a socket's coroutine does
    const std::uint32_t n = c.cfg->chunk_size;
    const std::uint64_t t_start = bench_now_ns();
    const std::uint64_t limit = loaded ? BENCH_FAIR_LIMIT_MS * 1000000ull : alone_ns;
    std::uint64_t bytes = 0;
    c.stream_running = true;
    if (loaded) {
        // The ping-pong starts now: its send goes out, its receive waits.
        c.pingpong_done = false;
        asock::spawn(fair_pingpong(c, pingpong_rounds, 0, 1));
    }
    for (;;) {
        const asock::receive_outcome r = co_await c.stream.receive_async(asock::buffer(c.sink_buffer.get(), n));
        if (!r) {
            bench_fail(c.run, "asock client: the stream ended", 0);
            break;
        }
        bytes += r.bytes_received;
        const std::uint64_t now = bench_now_ns();
        if ((loaded && c.pingpong_done) || now - t_start >= limit) {
            bench_fair_stream(c.run, loaded ? 1 : 0, bytes, now - t_start);
            break;
        }
    }
    c.stream_running = false;
    c.sink_done = true;
}

int run_fairness(const bench_config* cfg, bench_run* run)
{
    auto echo = start_server<false>(cfg, run);
    auto source = echo ? start_server<false>(cfg, run, true) : nullptr;
    if (!source) {
        if (echo) {
            stop_server(*echo);
        }
        return -1;
    }
    auto c = std::make_unique<fair_client>();
    c->cfg = cfg;
    c->run = run;
    std::memset(c->message, 'a', sizeof c->message);
    c->sink_buffer.reset(new char[cfg->chunk_size]);
    c->engine = asock::make_engine({.threads = 0});
    if (!c->engine) {
        bench_fail(run, "asock: cannot create the client engine", 0);
    } else {
        auto pp = asock::sync_wait(*c->engine, asock::connect(*c->engine, host, echo->listener.port()));
        auto st = asock::sync_wait(*c->engine, asock::connect(*c->engine, host, source->listener.port()));
        if (!pp || !st) {
            bench_fail(run, ("asock client: connect: " + (pp ? st.error : pp.error).message()).c_str(), 0);
        } else {
            c->pingpong = std::move(pp.socket);
            c->stream = std::move(st.socket);
            const std::uint64_t measured = cfg->total - cfg->warmup;
            const std::uint64_t per_cycle = (measured + BENCH_FAIR_CYCLES - 1) / BENCH_FAIR_CYCLES;
            const std::uint64_t alone_ns = BENCH_FAIR_STREAM_MS * 1000000ull / BENCH_FAIR_CYCLES;
            asock::sync_wait(*c->engine, fair_pingpong(*c, cfg->warmup, cfg->warmup, 0));
            for (unsigned cycle = 0; cycle < BENCH_FAIR_CYCLES && !bench_failed(run); ++cycle) {
                // Ping-pong alone.
                asock::sync_wait(*c->engine, fair_pingpong(*c, per_cycle, 0, 0));
                // The stream alone.
                c->sink_done = false;
                asock::spawn(fair_sink(*c, false, alone_ns, 0));
                while (!c->sink_done && !bench_failed(run)) {
                    c->engine->run_one(-1);
                }
                // Both: the sink starts the ping-pong once it runs in the loop.
                c->sink_done = false;
                c->pingpong_done = false;
                asock::spawn(fair_sink(*c, true, 0, per_cycle));
                while (!(c->sink_done && c->pingpong_done) && !bench_failed(run)) {
                    c->engine->run_one(-1);
                }
            }
        }
        c->pingpong.close();
        c->stream.close(); // the source's next send fails: its session ends
        while (c->engine->poll() != 0) {
            // let the closes finish
        }
    }
    const int rc = bench_failed(run) ? -1 : 0;
    c.reset();
    stop_server(*source);
    stop_server(*echo);
    return rc;
}

} // namespace

extern "C" const bench_impl bench_impl_asock = {"asock", "asock C++ (co_await)", run_asock<false>, run_fairness};
extern "C" const bench_impl bench_impl_asock_timeout = {"asock-timeout", "asock C++, 5 s timeout on every receive",
                                                        run_asock<true>, nullptr};
