// tests/win32/scenarios.hpp: platform-neutral integration scenarios over real
// loopback sockets.
//
// Written against asock's public API only (asock/asock.hpp) and a small
// harness `H` that supplies what differs per OS, so that the Linux integration
// tests can instantiate the same scenarios later (see docs/windows.md):
//
//   H::native_pair()          -> std::pair<native, native>: a connected TCP pair
//                                over 127.0.0.1, both ends plain (blocking) sockets
//   H::peer                   a class owning one native end, driven with plain
//                                calls, every wait bounded: write_all(p, n),
//                                read_exact(p, n), read_some(p, n) (-1 error/hang,
//                                0 end of stream), read_eof(), shutdown_write(),
//                                reset() (close with SO_LINGER {1, 0}), close(),
//                                small_buffers(bytes)
//   H::small_buffers(native, bytes)  shrinks an async end's kernel buffers
//
// Readable Catch2 names for asock's result values are the includer's business
// (tests/win32/win32_harness.hpp and tests/integration/integration_support.hpp
// each define them).
//
// Rules: Catch2 assertions only on the test's thread; coroutines and callbacks
// record what they see; every wait is bounded by `hang_limit` (a hang guard
// that aborts, never a timing assertion); loops are bounded.
#pragma once

#include <asock/asock.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asock_scenarios {

using asock::receive_result;
using asock::send_result;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

inline constexpr std::chrono::seconds hang_limit{60};

[[noreturn]] inline void hang(const char* what)
{
    std::fprintf(stderr, "\nscenario hang guard: \"%s\" did not finish within %lld s; aborting\n", what,
                 static_cast<long long>(hang_limit.count()));
    std::fflush(stderr);
    std::abort();
}

template <class Pred>
void wait_until(const char* what, Pred pred)
{
    const auto deadline = clock::now() + hang_limit;
    while (!pred()) {
        if (clock::now() > deadline) {
            hang(what);
        }
        std::this_thread::sleep_for(1ms);
    }
}

// ---- running coroutines ------------------------------------------------------

/// Counts coroutines still running; wait() blocks, bounded, until none is
/// (running the engine's loop meanwhile on an engine without threads).
class tracker {
public:
    void add()
    {
        std::lock_guard lk(mu_);
        ++pending_;
    }
    void done()
    {
        std::lock_guard lk(mu_);
        --pending_;
        cv_.notify_all();
    }
    void wait(asock::engine& e, const char* what)
    {
        const auto deadline = clock::now() + hang_limit;
        std::unique_lock lk(mu_);
        while (pending_ != 0) {
            if (clock::now() > deadline) {
                hang(what);
            }
            if (e.thread_count() == 0) {
                lk.unlock();
                e.run_one(10);
                lk.lock();
            } else {
                cv_.wait_for(lk, 10ms);
            }
        }
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    int pending_ = 0;
};

namespace detail {
struct fire_and_forget {
    struct promise_type {
        fire_and_forget get_return_object() const noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
    };
};
template <class T>
fire_and_forget run_tracked(asock::task<T> t, std::optional<T>* out, tracker* tr)
{
    {
        asock::task<T> local = std::move(t); // gone before done() is signalled
        out->emplace(co_await std::move(local));
    }
    tr->done();
}
inline fire_and_forget run_tracked_void(asock::task<void> t, tracker* tr)
{
    {
        asock::task<void> local = std::move(t);
        co_await std::move(local);
    }
    tr->done();
}
} // namespace detail

template <class T>
void start(tracker& tr, asock::task<T> t, std::optional<T>& out)
{
    tr.add();
    detail::run_tracked(std::move(t), &out, &tr);
}
inline void start(tracker& tr, asock::task<void> t)
{
    tr.add();
    detail::run_tracked_void(std::move(t), &tr);
}

template <class T>
T run(asock::engine& e, asock::task<T> t, const char* what)
{
    tracker tr;
    std::optional<T> out;
    start(tr, std::move(t), out);
    tr.wait(e, what);
    return std::move(*out);
}

// ---- data ------------------------------------------------------------------------

inline std::uint8_t pattern_byte(std::uint64_t index, std::uint32_t seed)
{
    std::uint64_t x = (index + 1) * 0x9E3779B97F4A7C15ull ^ (seed + 1) * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 31;
    return static_cast<std::uint8_t>(x ^ (x >> 17));
}

inline std::string pattern(std::size_t n, std::uint32_t seed = 0, std::uint64_t first = 0)
{
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>(pattern_byte(first + i, seed));
    }
    return s;
}

// ---- coroutine building blocks ---------------------------------------------------

/// Receives exactly n bytes (appending to `out`); the result that stopped it.
inline asock::task<receive_result> receive_exact(asock::tcp_socket& s, std::string& out, std::size_t n)
{
    std::vector<char> buf(64 * 1024);
    while (n > 0) {
        const std::size_t want = std::min(n, buf.size());
        const asock::receive_outcome r = co_await s.receive_async(asock::buffer(buf.data(), want));
        if (!r) {
            co_return r.result;
        }
        out.append(buf.data(), r.bytes_received);
        n -= r.bytes_received;
    }
    co_return receive_result::ok;
}

/// Receives until the stream ends; returns the final (non-ok) result.
inline asock::task<receive_result> receive_all(asock::tcp_socket& s, std::string& out)
{
    std::vector<char> buf(16 * 1024);
    for (;;) {
        const asock::receive_outcome r = co_await s.receive_async(asock::buffer(buf.data(), buf.size()));
        if (!r) {
            co_return r.result;
        }
        out.append(buf.data(), r.bytes_received);
    }
}

inline asock::task<send_result> send_string(asock::tcp_socket& s, const std::string& data,
                                            std::stop_token token = {})
{
    co_return co_await s.send_async(asock::buffer(std::string_view(data)), std::move(token));
}

inline asock::task<asock::receive_outcome> receive_into(asock::tcp_socket& s, char* data, std::size_t n,
                                                        std::stop_token token = {})
{
    co_return co_await s.receive_async(asock::buffer(data, n), std::move(token));
}

// ---- connections ----------------------------------------------------------------------

/// An OPEN async socket on `e` owning `handle`.
template <class Handle>
asock::tcp_socket open_async(asock::engine& e, Handle handle)
{
    asock::tcp_socket s(e);
    REQUIRE(s.valid());
    REQUIRE(s.open(handle) == asock::open_result::ok);
    return s;
}

/// An async socket and the raw peer at the other end of its connection.
template <class H>
struct async_and_peer {
    asock::tcp_socket socket;
    typename H::peer peer;
};

template <class H>
async_and_peer<H> make_async_and_peer(asock::engine& e)
{
    auto [a, b] = H::native_pair();
    return {open_async(e, a), typename H::peer(b)};
}

/// A connected pair of OPEN async sockets, made with asock's own TCP helpers
/// (tcp_listener_t::listen / accept and asock::connect).
inline std::pair<asock::tcp_socket, asock::tcp_socket> connected_pair(asock::engine& e)
{
    using outcome = asock::connect_outcome<asock::default_platform>;
    std::error_code ec;
    auto listener = asock::tcp_listener_t::listen(e, "127.0.0.1", 0, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(listener.valid());
    tracker tr;
    std::optional<outcome> accepted;
    std::optional<outcome> connected;
    start(tr, listener.accept(), accepted);
    start(tr, asock::connect(e, "127.0.0.1", listener.port()), connected);
    tr.wait(e, "connected pair");
    INFO("accept: " << accepted->error.message() << ", connect: " << connected->error.message());
    REQUIRE(static_cast<bool>(*accepted));
    REQUIRE(static_cast<bool>(*connected));
    return {std::move(connected->socket), std::move(accepted->socket)};
}

// ---- the scenarios ----------------------------------------------------------------------

/// Echo: one side echoes what it receives; the other sends messages of
/// varying sizes and checks each echo.
inline void echo(asock::engine& e, int rounds = 200)
{
    auto [client, server] = connected_pair(e);
    auto echo_server = [](asock::tcp_socket& s) -> asock::task<receive_result> {
        char buf[4096];
        for (;;) {
            const asock::receive_outcome r = co_await s.receive_async(asock::buffer(buf));
            if (!r) {
                co_return r.result;
            }
            if (co_await s.send_async(asock::buffer(static_cast<const void*>(buf), r.bytes_received)) !=
                send_result::ok) {
                co_return receive_result::error;
            }
        }
    };
    auto echo_client = [](asock::tcp_socket& s, int n) -> asock::task<int> {
        for (int i = 0; i < n; ++i) {
            const std::string msg = pattern(1 + (i * 97) % 3000, static_cast<std::uint32_t>(i));
            if (co_await s.send_async(asock::buffer(std::string_view(msg))) != send_result::ok) {
                co_return i;
            }
            std::string got;
            if (co_await receive_exact(s, got, msg.size()) != receive_result::ok || got != msg) {
                co_return i;
            }
        }
        co_return n;
    };
    tracker tr;
    std::optional<receive_result> server_end;
    std::optional<int> done_rounds;
    start(tr, echo_server(server), server_end);
    start(tr, echo_client(client, rounds), done_rounds);
    wait_until("echo client", [&] { return done_rounds.has_value(); });
    client.close(); // the server sees the end of the stream
    tr.wait(e, "echo");
    CHECK(*done_rounds == rounds);
    CHECK(*server_end == receive_result::abandoned);
}

/// Gather send and scatter receive: buffers are sent and filled in order.
template <class H>
void multi_buffer(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    const std::string a = pattern(10, 1), b = pattern(1000, 2), d = pattern(5, 3);
    const asock::const_buffer out[3] = {asock::buffer(std::string_view(a)), asock::buffer(std::string_view(b)),
                                        asock::buffer(std::string_view(d))};
    auto sender = [](asock::tcp_socket& s, const asock::const_buffer* bufs) -> asock::task<send_result> {
        co_return co_await s.send_async(std::span<const asock::const_buffer>(bufs, 3));
    };
    CHECK(run(e, sender(c.socket, out), "gather send") == send_result::ok);
    std::string got(a.size() + b.size() + d.size(), '\0');
    REQUIRE(c.peer.read_exact(got.data(), got.size()));
    CHECK(got == a + b + d);

    // Scatter: the first buffer is filled before the second is touched.
    const std::string in = pattern(48, 4);
    REQUIRE(c.peer.write_all(in.data(), in.size()));
    char x[16], y[16], z[16];
    const asock::mutable_buffer bufs[3] = {{x, 16}, {y, 16}, {z, 16}};
    auto receiver = [](asock::tcp_socket& s, const asock::mutable_buffer* b) -> asock::task<asock::receive_outcome> {
        co_return co_await s.receive_async(std::span<const asock::mutable_buffer>(b, 3));
    };
    std::string collected;
    for (int i = 0; i < 48 && collected.size() < 48; ++i) {
        const asock::receive_outcome r = run(e, receiver(c.socket, bufs), "scatter receive");
        REQUIRE(r.result == receive_result::ok);
        std::string joined = std::string(x, 16) + std::string(y, 16) + std::string(z, 16);
        collected += joined.substr(0, r.bytes_received);
    }
    CHECK(collected == in);
}

/// The peer sends, then closes: every byte arrives, then ABANDONED.
template <class H>
void peer_close(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    const std::string data = pattern(100000, 5);
    std::thread writer([&] {
        c.peer.write_all(data.data(), data.size());
        c.peer.close();
    });
    std::string got;
    const receive_result end = run(e, receive_all(c.socket, got), "receive until peer close");
    writer.join();
    CHECK(end == receive_result::abandoned);
    CHECK(got.size() == data.size());
    CHECK(got == data);
    // A receive after the end of the stream is ABANDONED again.
    char b[4];
    CHECK(run(e, receive_into(c.socket, b, 4), "receive after end").result == receive_result::abandoned);
}

/// The peer resets the connection: a pending receive is ABANDONED, a later
/// send is refused (not_open) or abandoned.
template <class H>
void peer_reset(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    char b[16];
    tracker tr;
    std::optional<asock::receive_outcome> r;
    start(tr, receive_into(c.socket, b, sizeof b), r);
    c.peer.reset();
    tr.wait(e, "receive after reset");
    CHECK(r->result == receive_result::abandoned);
    CHECK(r->bytes_received == 0);
    const std::string more = "after reset";
    send_result s = send_result::ok;
    for (int i = 0; i < 100 && s == send_result::ok; ++i) { // bounded: a send may still be buffered once
        s = run(e, send_string(c.socket, more), "send after reset");
    }
    CHECK((s == send_result::not_open || s == send_result::abandoned || s == send_result::error));
}

/// Many connections at once, each echoing its own stream.
inline void many_sockets(asock::engine& e, int count = 64)
{
    std::vector<std::pair<asock::tcp_socket, asock::tcp_socket>> pairs;
    for (int i = 0; i < count; ++i) {
        pairs.push_back(connected_pair(e));
    }
    auto exchange = [](asock::tcp_socket& a, asock::tcp_socket& b, std::uint32_t seed) -> asock::task<bool> {
        const std::string msg = pattern(2000 + seed, seed);
        if (co_await a.send_async(asock::buffer(std::string_view(msg))) != send_result::ok) {
            co_return false;
        }
        std::string got;
        if (co_await receive_exact(b, got, msg.size()) != receive_result::ok || got != msg) {
            co_return false;
        }
        if (co_await b.send_async(asock::buffer(std::string_view(got))) != send_result::ok) {
            co_return false;
        }
        std::string back;
        co_return co_await receive_exact(a, back, msg.size()) == receive_result::ok && back == msg;
    };
    tracker tr;
    std::vector<std::optional<bool>> ok(pairs.size());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        start(tr, exchange(pairs[i].first, pairs[i].second, static_cast<std::uint32_t>(i)), ok[i]);
    }
    tr.wait(e, "many sockets");
    for (const auto& o : ok) {
        CHECK(*o);
    }
}

/// A send far larger than the kernel buffers, to a peer that starts reading
/// only later: it stays pending meanwhile, then completes with every byte.
template <class H>
void large_send_late_reader(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    H::small_buffers(c.socket.native_handle(), 8192);
    c.peer.small_buffers(8192);
    const std::string data = pattern(512 * 1024, 6);
    tracker tr;
    std::optional<send_result> sent;
    start(tr, send_string(c.socket, data), sent);
    std::string got(data.size(), '\0');
    REQUIRE(c.peer.read_exact(got.data(), got.size())); // the late reader
    tr.wait(e, "large send");
    CHECK(*sent == send_result::ok);
    CHECK(got == data);
}

/// A receive and a send pending at the same time on one socket (full duplex).
template <class H>
void send_and_receive_pending(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    H::small_buffers(c.socket.native_handle(), 8192);
    c.peer.small_buffers(8192);
    const std::string big = pattern(512 * 1024, 7);
    char reply[8];
    tracker tr;
    std::optional<asock::receive_outcome> received;
    std::optional<send_result> sent;
    start(tr, receive_into(c.socket, reply, sizeof reply), received); // pending: the peer says nothing yet
    start(tr, send_string(c.socket, big), sent);                      // pending: the peer reads nothing yet
    std::string got(big.size(), '\0');
    REQUIRE(c.peer.read_exact(got.data(), got.size()));
    REQUIRE(c.peer.write_all("reply!", 6));
    tr.wait(e, "full duplex");
    CHECK(*sent == send_result::ok);
    CHECK(got == big);
    REQUIRE(received->result == receive_result::ok);
    CHECK(std::string(reply, received->bytes_received) == std::string("reply!").substr(0, received->bytes_received));
}

/// Several receives started before any data complete in the order started,
/// and together hold the stream in order.
template <class H>
void queued_receives_in_order(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    struct rec {
        asock::receive_operation op;
        char buf[8];
        asock::mutable_buffer b{buf, 8}; // the buffer array lives as long as the operation
        std::uint32_t n = 0;
        receive_result r = receive_result::invalid_argument;
        int index = 0;
        std::mutex* mu = nullptr;
        std::vector<int>* order = nullptr;
        std::atomic<int>* done = nullptr;
    };
    std::mutex mu;
    std::vector<int> order;
    std::atomic<int> done{0};
    constexpr int count = 6;
    std::vector<std::unique_ptr<rec>> recs;
    for (int i = 0; i < count; ++i) {
        recs.push_back(std::make_unique<rec>());
        rec& r = *recs.back();
        r.index = i;
        r.mu = &mu;
        r.order = &order;
        r.done = &done;
        REQUIRE(c.socket.receive_async(
                    r.op, std::span<const asock::mutable_buffer>(&r.b, 1),
                    [](void* ctx, receive_result res, std::uint32_t n) {
                        auto* self = static_cast<rec*>(ctx);
                        self->r = res;
                        self->n = n;
                        {
                            std::lock_guard lk(*self->mu);
                            self->order->push_back(self->index);
                        }
                        self->done->fetch_add(1);
                    },
                    &r) == asock::start_result::started);
    }
    const std::string data = pattern(count * 8, 8);
    REQUIRE(c.peer.write_all(data.data(), data.size()));
    wait_until("queued receives", [&] { return done.load() == count; });
    std::vector<int> expected(count);
    for (int i = 0; i < count; ++i) {
        expected[i] = i;
    }
    CHECK(order == expected);
    std::string joined;
    for (const auto& r : recs) {
        REQUIRE(r->r == receive_result::ok);
        joined.append(r->buf, r->n);
    }
    // Receives complete with what is there: some may get less than 8 bytes,
    // and then the rest of the stream is still to come.
    std::string rest;
    if (joined.size() < data.size()) {
        rest.resize(data.size() - joined.size());
        std::string more;
        REQUIRE(run(e, receive_exact(c.socket, more, rest.size()), "rest of stream") == receive_result::ok);
        joined += more;
    }
    CHECK(joined == data);
}

/// A receive callback closes its socket while a send is pending: no deadlock
/// (also on a one-thread pool), and the send completes exactly once.
template <class H>
void close_inside_callback(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    H::small_buffers(c.socket.native_handle(), 8192);
    c.peer.small_buffers(8192);
    struct state {
        asock::tcp_socket* socket = nullptr;
        asock::receive_operation rop;
        asock::send_operation sop;
        char buf[4];
        std::atomic<int> receive_calls{0};
        std::atomic<int> send_calls{0};
        std::atomic<int> send_result_value{0};
        std::atomic<int> state_after_close{-1};
    } st;
    st.socket = &c.socket;
    const std::string big = pattern(8 * 1024 * 1024, 9);
    const asock::const_buffer out{big.data(), static_cast<std::uint32_t>(big.size())};
    REQUIRE(c.socket.send_async(
                st.sop, std::span<const asock::const_buffer>(&out, 1),
                [](void* ctx, send_result r) {
                    auto* s = static_cast<state*>(ctx);
                    s->send_result_value = static_cast<int>(r);
                    s->send_calls.fetch_add(1);
                },
                &st) == asock::send_sync_result::ok);
    const asock::mutable_buffer in{st.buf, 4};
    REQUIRE(c.socket.receive_async(
                st.rop, std::span<const asock::mutable_buffer>(&in, 1),
                [](void* ctx, receive_result, std::uint32_t) {
                    auto* s = static_cast<state*>(ctx);
                    s->socket->close(); // from inside the socket's own callback
                    s->state_after_close = static_cast<int>(s->socket->state());
                    s->receive_calls.fetch_add(1);
                },
                &st) == asock::start_result::started);
    REQUIRE(c.peer.write_all("x", 1));
    wait_until("receive callback", [&] { return st.receive_calls.load() == 1; });
    wait_until("send completion", [&] { return st.send_calls.load() == 1; });
    wait_until("closed", [&] { return c.socket.state() == asock::socket_state::closed; });
    CHECK(st.receive_calls == 1);
    CHECK(st.send_calls == 1);
    const auto r = static_cast<send_result>(st.send_result_value.load());
    CHECK((r == send_result::abandoned || r == send_result::ok));
    const auto after = static_cast<asock::socket_state>(st.state_after_close.load());
    CHECK((after == asock::socket_state::closing || after == asock::socket_state::closed));
}

/// close() with a receive and a large send pending: both complete ABANDONED
/// before close returns.
template <class H>
void close_with_pending(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    H::small_buffers(c.socket.native_handle(), 8192);
    c.peer.small_buffers(8192);
    struct counts {
        std::atomic<int> receive_calls{0};
        std::atomic<int> send_calls{0};
        std::atomic<int> rr{0};
        std::atomic<int> sr{0};
    } k;
    asock::receive_operation rop;
    asock::send_operation sop;
    char buf[16];
    const std::string big = pattern(8 * 1024 * 1024, 10);
    const asock::const_buffer out{big.data(), static_cast<std::uint32_t>(big.size())};
    const asock::mutable_buffer in{buf, 16};
    REQUIRE(c.socket.receive_async(
                rop, std::span<const asock::mutable_buffer>(&in, 1),
                [](void* ctx, receive_result r, std::uint32_t) {
                    auto* p = static_cast<counts*>(ctx);
                    p->rr = static_cast<int>(r);
                    p->receive_calls.fetch_add(1);
                },
                &k) == asock::start_result::started);
    REQUIRE(c.socket.send_async(
                sop, std::span<const asock::const_buffer>(&out, 1),
                [](void* ctx, send_result r) {
                    auto* p = static_cast<counts*>(ctx);
                    p->sr = static_cast<int>(r);
                    p->send_calls.fetch_add(1);
                },
                &k) == asock::send_sync_result::ok);
    c.socket.close();
    CHECK(k.receive_calls == 1); // before close returned
    CHECK(k.send_calls == 1);
    CHECK(static_cast<receive_result>(k.rr.load()) == receive_result::abandoned);
    const auto sr = static_cast<send_result>(k.sr.load());
    CHECK((sr == send_result::abandoned || sr == send_result::ok)); // ok if the kernel took it all first
    CHECK(c.socket.state() == asock::socket_state::closed);
}

/// Four coroutines send framed messages on one socket concurrently; the reader
/// sees every frame whole and each sender's frames in order.
inline void concurrent_framed_senders(asock::engine& e, int senders = 4, int frames = 200)
{
    auto [writer, reader] = connected_pair(e);
    // Frame: 4-byte little-endian payload length, 1 byte sender, 4 bytes sequence, payload.
    auto sender = [](asock::tcp_socket& s, int id, int n) -> asock::task<bool> {
        for (int i = 0; i < n; ++i) {
            const std::uint32_t len = 1 + static_cast<std::uint32_t>((i * 131 + id * 17) % 5000);
            const std::string payload = pattern(len, static_cast<std::uint32_t>(id * 100000 + i));
            unsigned char head[9];
            for (int b = 0; b < 4; ++b) {
                head[b] = static_cast<unsigned char>(len >> (8 * b));
                head[5 + b] = static_cast<unsigned char>(static_cast<std::uint32_t>(i) >> (8 * b));
            }
            head[4] = static_cast<unsigned char>(id);
            const asock::const_buffer bufs[2] = {{head, 9}, asock::buffer(std::string_view(payload))};
            if (co_await s.send_async(std::span<const asock::const_buffer>(bufs, 2)) != send_result::ok) {
                co_return false;
            }
        }
        co_return true;
    };
    tracker tr;
    std::vector<std::optional<bool>> ok(static_cast<std::size_t>(senders));
    // Each sender starts from its own thread, so sends really race.
    std::vector<std::thread> threads;
    for (int id = 0; id < senders; ++id) {
        threads.emplace_back([&, id] { start(tr, sender(writer, id, frames), ok[static_cast<std::size_t>(id)]); });
    }
    std::string stream;
    std::size_t expected = 0;
    for (int id = 0; id < senders; ++id) {
        for (int i = 0; i < frames; ++i) {
            expected += 9 + 1 + static_cast<std::size_t>((i * 131 + id * 17) % 5000);
        }
    }
    const receive_result r = run(e, receive_exact(reader, stream, expected), "framed stream");
    for (auto& t : threads) {
        t.join();
    }
    tr.wait(e, "framed senders");
    REQUIRE(r == receive_result::ok);
    for (const auto& o : ok) {
        CHECK(*o);
    }
    std::vector<int> next(static_cast<std::size_t>(senders), 0);
    std::size_t at = 0;
    int bad = 0;
    while (at + 9 <= stream.size() && bad == 0) {
        const auto* p = reinterpret_cast<const unsigned char*>(stream.data() + at);
        std::uint32_t len = 0, seq = 0;
        for (int b = 0; b < 4; ++b) {
            len |= static_cast<std::uint32_t>(p[b]) << (8 * b);
            seq |= static_cast<std::uint32_t>(p[5 + b]) << (8 * b);
        }
        const int id = p[4];
        if (id >= senders || static_cast<int>(seq) != next[static_cast<std::size_t>(id)] ||
            at + 9 + len > stream.size() ||
            stream.compare(at + 9, len, pattern(len, static_cast<std::uint32_t>(id * 100000 + static_cast<int>(seq)))) !=
                0) {
            ++bad;
            break;
        }
        ++next[static_cast<std::size_t>(id)];
        at += 9 + len;
    }
    CHECK(bad == 0);
    CHECK(at == stream.size());
    for (int n : next) {
        CHECK(n == frames);
    }
}

/// Cancellation: a pending receive cancelled completes CANCELLED without
/// losing a byte (or OK when data won the race); the data goes to the next
/// receive. A pending send cancelled completes CANCELLED (or OK).
template <class H>
void cancellation(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    char b[64];
    std::stop_source stop;
    tracker tr;
    std::optional<asock::receive_outcome> first;
    start(tr, receive_into(c.socket, b, sizeof b, stop.get_token()), first);
    stop.request_stop();
    tr.wait(e, "cancelled receive");
    std::string got;
    if (first->result == receive_result::ok) {
        got.assign(b, first->bytes_received);
    } else {
        CHECK(first->result == receive_result::cancelled);
        CHECK(first->bytes_received == 0);
    }
    REQUIRE(c.peer.write_all("after cancel", 12));
    REQUIRE(run(e, receive_exact(c.socket, got, 12 - got.size()), "receive after cancel") == receive_result::ok);
    CHECK(got == "after cancel");

    // A send that cannot finish (the peer reads nothing) cancelled.
    H::small_buffers(c.socket.native_handle(), 8192);
    c.peer.small_buffers(8192);
    const std::string big = pattern(16 * 1024 * 1024, 11);
    std::stop_source stop_send;
    std::optional<send_result> sent;
    start(tr, send_string(c.socket, big, stop_send.get_token()), sent);
    stop_send.request_stop();
    tr.wait(e, "cancelled send");
    CHECK((*sent == send_result::cancelled || *sent == send_result::ok));
}

} // namespace asock_scenarios
