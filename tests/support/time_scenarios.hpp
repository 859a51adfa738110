// tests/support/time_scenarios.hpp: integration scenarios of timers,
// with_timeout, when_any / when_all and task_scope over real sockets,
// written once for both backends (the default platform's asock::engine and
// asock::tcp_socket) and run by tests/integration/time_test.cpp (Linux) and
// tests/win32/integration_time.cpp (Windows, under Wine).
//
// Times are lower bounds only ("at least 20 ms passed"); upper bounds are
// hang guards of many seconds: this machine is shared and noisy.
#pragma once

#include "support/gated_resolver.hpp"
#include "support/scenarios.hpp"

#include <asock/scope.hpp>
#include <asock/time.hpp>
#include <asock/timeout.hpp>
#include <asock/when_all.hpp>
#include <asock/when_any.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asock_scenarios::timing {

using asock::timer_result;

/// What coroutines on engine threads expected and did not see: Catch2's
/// assertions are not thread-safe, so a coroutine records here
/// (ASOCK_EXPECT) and the test thread checks (verify) after its wait.
class expectations {
public:
    void record(bool ok, const char* what, int line)
    {
        if (!ok) {
            std::lock_guard lk(mu_);
            failed_.push_back(std::string(what) + " (line " + std::to_string(line) + ")");
        }
    }
    void verify()
    {
        std::lock_guard lk(mu_);
        for (const auto& f : failed_) {
            FAIL_CHECK("expected in a coroutine: " << f);
        }
        CHECK(failed_.empty());
    }

private:
    std::mutex mu_;
    std::vector<std::string> failed_;
};
#define ASOCK_EXPECT(obs, ...) (obs).record(static_cast<bool>(__VA_ARGS__), #__VA_ARGS__, __LINE__)

/// sleep_for on `e` completes expired, not before its duration.
inline void sleep_expires(asock::engine& e)
{
    auto body = [](asock::engine& eng) -> asock::task<std::pair<timer_result, clock::duration>> {
        const auto t0 = clock::now();
        const timer_result r = co_await asock::sleep_for(eng, 20ms);
        co_return std::pair{r, clock::now() - t0};
    };
    const auto [r, took] = run(e, body(e), "sleep_for 20 ms");
    CHECK(r == timer_result::expired);
    CHECK(took >= 20ms);
}

/// A stop request ends a 1 h sleep at once with cancelled.
inline void sleep_cancelled(asock::engine& e)
{
    std::stop_source src;
    tracker tr;
    std::optional<timer_result> out;
    auto body = [](asock::engine& eng, std::stop_token t) -> asock::task<timer_result> {
        co_return co_await asock::sleep_for(eng, 1h, std::move(t));
    };
    start(tr, body(e, src.get_token()), out);
    std::this_thread::sleep_for(5ms);
    src.request_stop();
    tr.wait(e, "cancelled sleep");
    CHECK(out == timer_result::cancelled);
}

/// with_timeout around a receive from a peer that sends nothing.
inline void timeout_on_silent_peer(asock::engine& e)
{
    auto [a, b] = connected_pair(e);
    expectations obs;
    auto body = [](asock::engine& eng, asock::tcp_socket& s, expectations& ob) -> asock::task<void> {
        char buf[16];
        const auto t0 = clock::now();
        const auto r = co_await asock::with_timeout(eng, 30ms, s.receive_async(asock::mutable_buffer{buf, sizeof buf}));
        ASOCK_EXPECT(ob, r.timed_out);
        ASOCK_EXPECT(ob, r.result.result == asock::receive_result::cancelled);
        ASOCK_EXPECT(ob, r.result.bytes_received == 0);
        ASOCK_EXPECT(ob, clock::now() - t0 >= 30ms);
    };
    run(e, body(e, a, obs), "timeout on a silent peer");
    // The connection still works both ways afterwards.
    auto echo = [](asock::tcp_socket& x, asock::tcp_socket& y, expectations& ob) -> asock::task<void> {
        // (Never co_await inside CHECK: the macro repeats its expression, and
        // g++ 12 evaluates a co_await in its unevaluated copies too.)
        const auto sent = co_await send_string(y, "still here");
        ASOCK_EXPECT(ob, sent == asock::send_result::ok);
        std::string got;
        const auto received = co_await receive_exact(x, got, 10);
        ASOCK_EXPECT(ob, received == asock::receive_result::ok);
        ASOCK_EXPECT(ob, got == "still here");
    };
    run(e, echo(a, b, obs), "after the timeout");
    obs.verify();
}

/// Many rounds of a receive with a short timeout racing the peer's bytes:
/// every byte sent is received exactly once, in order.
inline void timeout_races_data(asock::engine& e, int rounds)
{
    auto pair = connected_pair(e); // (not a structured binding: lambdas below capture them)
    asock::tcp_socket& rx = pair.first;
    asock::tcp_socket& tx = pair.second;
    std::atomic<std::uint64_t> sent_total{0};
    std::atomic<bool> sender_done{false};
    // The sender: chunks of 1..64 pattern bytes at irregular moments.
    auto sender = [&](asock::engine& eng) -> asock::task<void> {
        rng r(77);
        std::uint64_t index = 0;
        std::vector<char> chunk(64);
        for (int i = 0; i < rounds; ++i) {
            const std::size_t n = r.between(1, 64);
            fill_pattern(chunk.data(), n, index, 5);
            if (co_await tx.send_async(asock::const_buffer{chunk.data(), static_cast<std::uint32_t>(n)}) !=
                asock::send_result::ok) {
                break;
            }
            index += n;
            sent_total.store(index);
            if (r.between(0, 3) == 0) {
                co_await asock::sleep_for(eng, std::chrono::microseconds(r.between(0, 299)));
            }
        }
        sender_done.store(true);
    };
    struct counts {
        std::uint64_t received = 0;
        std::uint64_t bad = 0;
        int timeouts = 0;
        int timed_out_with_bytes = 0;
    };
    auto receiver = [&](asock::engine& eng, counts& c) -> asock::task<void> {
        char buf[48];
        for (;;) {
            if (sender_done.load() && c.received == sent_total.load()) {
                co_return;
            }
            const auto r = co_await asock::with_timeout(eng, std::chrono::microseconds(150),
                                                        rx.receive_async(asock::mutable_buffer{buf, sizeof buf}));
            if (r.timed_out) {
                ++c.timeouts;
            }
            if (r.result.result == asock::receive_result::ok) {
                if (r.timed_out) {
                    ++c.timed_out_with_bytes;
                }
                c.bad += r.result.bytes_received - check_pattern(buf, r.result.bytes_received, c.received, 5);
                c.received += r.result.bytes_received;
            } else if (r.result.result != asock::receive_result::cancelled) {
                c.bad += 1000000;
                co_return;
            }
        }
    };
    counts c;
    tracker tr;
    start(tr, sender(e));
    start(tr, receiver(e, c));
    tr.wait(e, "timeouts racing data");
    CHECK(sender_done.load());
    CHECK(c.received == sent_total.load());
    CHECK(c.bad == 0);
    INFO("timeouts " << c.timeouts << ", of which with bytes " << c.timed_out_with_bytes);
    CHECK(c.timeouts > 0); // the race was exercised
}

/// when_any of a receive and a sleep: the sleep wins; then data wins.
inline void when_any_receive_or_sleep(asock::engine& e)
{
    auto [a, b] = connected_pair(e);
    expectations obs;
    auto body = [](asock::engine& eng, asock::tcp_socket& x, asock::tcp_socket& y,
                   expectations& ob) -> asock::task<void> {
        char buf[16];
        auto r1 = co_await asock::when_any(x.receive_async(asock::mutable_buffer{buf, sizeof buf}),
                                           asock::sleep_for(eng, 20ms));
        ASOCK_EXPECT(ob, r1.index == 1);
        ASOCK_EXPECT(ob, std::get<0>(r1.results).result == asock::receive_result::cancelled);
        const auto sent = co_await send_string(y, "abc");
        ASOCK_EXPECT(ob, sent == asock::send_result::ok);
        auto r2 = co_await asock::when_any(x.receive_async(asock::mutable_buffer{buf, sizeof buf}),
                                           asock::sleep_for(eng, 1h));
        ASOCK_EXPECT(ob, r2.index == 0);
        ASOCK_EXPECT(ob, std::get<0>(r2.results).result == asock::receive_result::ok);
        ASOCK_EXPECT(ob, std::get<1>(r2.results) == timer_result::cancelled);
        ASOCK_EXPECT(ob, std::string(buf, std::get<0>(r2.results).bytes_received) == "abc");
    };
    run(e, body(e, a, b, obs), "when_any receive or sleep");
    obs.verify();
}

/// when_all of a send and a receive on one socket (the peer echoes).
inline void when_all_send_and_receive(asock::engine& e)
{
    auto [a, b] = connected_pair(e);
    auto echo_back = [](asock::tcp_socket& s) -> asock::task<void> {
        std::string got;
        if (co_await receive_exact(s, got, 1 << 16) == asock::receive_result::ok) {
            (void)co_await send_string(s, got);
        }
    };
    expectations obs;
    auto body = [](asock::tcp_socket& s, expectations& ob) -> asock::task<void> {
        const std::string out = pattern_string(1 << 16, 0, 9);
        std::string in;
        auto recv_all = [&]() -> asock::task<asock::receive_result> { co_return co_await receive_exact(s, in, out.size()); };
        auto [sent, received] = co_await asock::when_all(
            s.send_async(asock::const_buffer{out.data(), static_cast<std::uint32_t>(out.size())}), recv_all());
        ASOCK_EXPECT(ob, sent == asock::send_result::ok);
        ASOCK_EXPECT(ob, received == asock::receive_result::ok);
        ASOCK_EXPECT(ob, in == out);
    };
    tracker tr;
    start(tr, echo_back(b));
    start(tr, body(a, obs));
    tr.wait(e, "when_all send and receive");
    obs.verify();
}

/// A scope with `n` connection handlers: each echoes one message with an idle
/// timeout per receive; the scope is joined once every client got its echo.
inline void scope_joins_handlers(asock::engine& e, int n)
{
    auto listened = asock::tcp_listener_t::listen(e, "127.0.0.1", 0, 4096);
    REQUIRE_FALSE(listened.error);
    auto& listener = listened.listener;
    asock::task_scope scope;
    std::atomic<int> served{0};
    auto handler = [&served](asock::engine& eng, asock::tcp_socket s, std::stop_token t) -> asock::task<void> {
        char buf[64];
        for (;;) {
            const auto r = co_await asock::with_timeout(eng, 10s, s.receive_async(asock::mutable_buffer{buf, sizeof buf}, t));
            if (r.timed_out || r.result.result != asock::receive_result::ok) {
                co_return;
            }
            if (co_await s.send_async(asock::const_buffer{buf, r.result.bytes_received}) != asock::send_result::ok) {
                co_return;
            }
            served.fetch_add(1);
        }
    };
    auto acceptor = [&](asock::engine& eng) -> asock::task<void> {
        for (int i = 0; i < n; ++i) {
            auto a = co_await listener.accept(scope.get_token());
            if (!a) {
                co_return;
            }
            scope.spawn(handler(eng, std::move(a.socket), scope.get_token()));
        }
    };
    scope.spawn(acceptor(e));
    tracker clients;
    std::atomic<int> echoed{0};
    std::vector<std::unique_ptr<asock::tcp_socket>> keep(static_cast<std::size_t>(n));
    // Captureless: a coroutine lambda's captures live in its closure, which
    // would be gone before the coroutine ends; parameters live in the frame.
    auto client = [](asock::engine& eng, std::uint16_t port, int i, std::unique_ptr<asock::tcp_socket>& slot,
                     std::atomic<int>& count) -> asock::task<void> {
        auto c = co_await asock::connect(eng, "127.0.0.1", port);
        if (!c) {
            co_return;
        }
        slot = std::make_unique<asock::tcp_socket>(std::move(c.socket));
        const std::string msg = "hello " + std::to_string(i);
        const auto sent = co_await send_string(*slot, msg);
        if (sent != asock::send_result::ok) {
            co_return;
        }
        std::string got;
        const auto received = co_await receive_exact(*slot, got, msg.size());
        if (received == asock::receive_result::ok && got == msg) {
            count.fetch_add(1);
        }
    };
    for (int i = 0; i < n; ++i) {
        start(clients, client(e, listener.port(), i, keep[static_cast<std::size_t>(i)], echoed));
    }
    clients.wait(e, "clients");
    CHECK(echoed.load() == n);
    // Shut down: stop the scope (handlers blocked in receive end), join.
    listener.close();
    scope.request_stop();
    tracker joined;
    start(joined, [](asock::task_scope& sc) -> asock::task<void> { co_await sc.join(); }(scope));
    joined.wait(e, "scope join");
    CHECK(scope.size() == 0);
    // Counted once the handlers have ended, not when the clients got their
    // echoes: a handler goes on after its send through the engine's queue
    // when its thread's inline budget is spent (docs/design.md, "Fairness"),
    // so it may count after its client has the echo.
    CHECK(served.load() == n);
    keep.clear();
}

/// Handlers blocked in receive when the engine is shut down: stop, join,
/// destroy the engine; nothing is leaked (ASan / LSan check that).
inline void shutdown_with_blocked_handlers(asock::engine_ref<asock::engine> e, int n)
{
    std::vector<std::pair<asock::tcp_socket, asock::tcp_socket>> pairs;
    for (int i = 0; i < n; ++i) {
        pairs.push_back(connected_pair(*e));
    }
    std::atomic<int> ended{0};
    std::atomic<int> not_cancelled{0};
    {
        asock::task_scope scope;
        for (auto& p : pairs) {
            scope.spawn([&ended, &not_cancelled, &p](std::stop_token t) -> asock::task<void> {
                std::vector<char> buf(256);
                const auto r = co_await p.first.receive_async(asock::mutable_buffer{buf.data(), 256}, t);
                if (r.result != asock::receive_result::cancelled) {
                    not_cancelled.fetch_add(1);
                }
                ended.fetch_add(1);
            });
        }
        std::this_thread::sleep_for(5ms);
        scope.request_stop();
        tracker joined;
        start(joined, [](asock::task_scope& sc) -> asock::task<void> { co_await sc.join(); }(scope));
        joined.wait(*e, "join at shutdown");
    }
    CHECK(ended.load() == n);
    CHECK(not_cancelled.load() == 0);
    pairs.clear();
    e = {}; // the engine goes last, with nothing left in flight
}

/// Destroying an engine completes its pending sleeps `cancelled` first.
inline void engine_destroy_completes_sleeps(asock::engine_ref<asock::engine> e)
{
    std::atomic<int> cancelled{0};
    std::atomic<int> done{0};
    for (int i = 0; i < 10; ++i) {
        asock::spawn([](asock::engine& eng, std::atomic<int>& c, std::atomic<int>& d) -> asock::task<void> {
            if (co_await asock::sleep_for(eng, 1h) == timer_result::cancelled) {
                c.fetch_add(1);
            }
            d.fetch_add(1);
        }(*e, cancelled, done));
    }
    e = {};
    CHECK(done.load() == 10);
    CHECK(cancelled.load() == 10);
}

/// connect with a deadline (include/asock/tcp_deadline.hpp): in time; a
/// lookup that hangs ends timed_out at the deadline without waiting for the
/// lookup; a stop request ends it operation_canceled. `Gated` is
/// tests/support/gated_resolver.hpp over the platform's resolver.
template <class Gated>
void connect_with_deadline(asock::engine& e)
{
    using outcome = asock::connect_outcome<asock::default_platform>;
    auto listened = asock::tcp_listener_t::listen(e, "127.0.0.1", 0);
    REQUIRE_FALSE(listened.error);
    auto& l = listened.listener;
    Gated::reset();
    {
        tracker tr;
        std::optional<outcome> acc;
        std::optional<outcome> con;
        start(tr, l.accept(), acc);
        start(tr, asock::tcp_connect<asock::default_platform, Gated>(e, "127.0.0.1", l.port(), 5s), con);
        tr.wait(e, "connect in time");
        CHECK_FALSE(con->error);
        CHECK(con->socket.valid());
    }
    {
        tracker tr;
        std::optional<outcome> con;
        const auto t0 = clock::now();
        start(tr, asock::tcp_connect<asock::default_platform, Gated>(e, "blocked.test", l.port(), 50ms), con);
        tr.wait(e, "connect past its deadline");
        CHECK(con->error == std::errc::timed_out);
        CHECK_FALSE(con->socket.valid());
        CHECK(clock::now() - t0 >= 50ms);
        CHECK(Gated::returned() == 0); // it did not wait for the lookup
        Gated::open_gate();
        wait_until("lookup returned", [] { return Gated::returned() == 1; });
    }
    {
        Gated::reset();
        std::stop_source stop;
        tracker tr;
        std::optional<outcome> con;
        start(tr, asock::tcp_connect<asock::default_platform, Gated>(e, "blocked.test", l.port(), 1h, stop.get_token()),
              con);
        wait_until("lookup entered", [] { return Gated::entered() == 1; });
        stop.request_stop();
        tr.wait(e, "stopped connect");
        CHECK(con->error == std::errc::operation_canceled);
        Gated::open_gate();
        wait_until("lookup returned", [] { return Gated::returned() == 1; });
    }
    std::this_thread::sleep_for(20ms);
    drain(e);
}

} // namespace asock_scenarios::timing
