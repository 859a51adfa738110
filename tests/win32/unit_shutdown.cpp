// tests/win32/unit_shutdown.cpp: async_socket::shutdown_send (half-close) on
// the Windows backend, over the fake Win32 layer: when shutdown(SD_SEND) is
// called, what sends and receives do afterwards, and when it is not called.
// (A custom transport cannot be opened on Windows at all, 04_001: such a
// socket is not valid, and shutdown_send answers not_open there.)
#include "unit_support.hpp"

#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

using namespace asock_wtest;
using asock::receive_result;
using asock::send_result;
using asock::send_sync_result;
using asock::shutdown_result;
using asock::start_result;
using kind = outstanding_call::kind;

namespace {

asock::task<send_result> send_until_stopped(fake_socket_t& s, std::string_view bytes, std::stop_token token)
{
    co_return co_await s.send_async(asock::buffer(bytes.data(), bytes.size()), std::move(token));
}

const std::string fin = "shutdown(SD_SEND)";

int fins() { return fake().count(fin); }

} // namespace

TEST_CASE("shutdown_send on an idle socket calls shutdown(SD_SEND) at once", "[win32][shutdown]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    CHECK(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins() == 1);
    CHECK(fake().sock(sock_a).send_shutdowns == 1);
    CHECK(fake().sock(sock_a).shutdowns == 0); // not the owner's SD_BOTH
    CHECK(s.state() == asock::socket_state::open);
}

TEST_CASE("shutdown_send with sends in flight calls shutdown(SD_SEND) after the last one completed",
          "[win32][shutdown]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    send_probe p1("first-");
    send_probe p2("second");
    REQUIRE(p1.start(s) == send_sync_result::ok); // outstanding
    REQUIRE(p2.start(s) == send_sync_result::ok); // queued behind it
    const auto mark = fake().mark();
    CHECK(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins() == 0);

    REQUIRE(fake().complete_send(sock_a));
    CHECK(p1.calls == 1);
    CHECK(p1.result == send_result::ok);
    CHECK(fins() == 0); // p2 is in flight now
    REQUIRE(fake().outstanding_count(sock_a, kind::send) == 1);

    REQUIRE(fake().complete_send(sock_a));
    CHECK(p2.calls == 1);
    CHECK(p2.result == send_result::ok);
    CHECK(fins() == 1);
    CHECK(fake().wire(sock_a) == "first-second");
    const auto seq = fake().calls_since(mark, {"WSASend", fin});
    CHECK(seq == std::vector<std::string>{"WSASend", fin}); // p2's WSASend, then the FIN
}

TEST_CASE("shutdown_send behind a send of several calls waits for its last call", "[win32][shutdown]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    // More buffers than one WSASend takes: the send needs two calls.
    std::vector<std::string> pieces(asock::win32::detail::max_wsabuf + 3, "ab");
    std::vector<const_buffer> bufs;
    for (auto& p : pieces) {
        bufs.push_back({p.data(), 2});
    }
    asock::send_operation op;
    static send_result result;
    static int calls;
    calls = 0;
    const auto on_done = [](void*, send_result r) {
        result = r;
        ++calls;
    };
    REQUIRE(s.send_async(op, bufs, on_done, nullptr) == send_sync_result::ok);
    CHECK(s.shutdown_send() == shutdown_result::ok);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 0);
    CHECK(fins() == 0);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 1);
    CHECK(result == send_result::ok);
    CHECK(fins() == 1);
}

TEST_CASE("sends after shutdown_send are rejected not_open, in both forms", "[win32][shutdown]")
{
    fixture f;
    send_probe inflight("in flight");
    fake_socket_t s = f.open_socket();
    SECTION("after an immediate FIN") {}
    SECTION("while the FIN waits for a send in flight")
    {
        REQUIRE(inflight.start(s) == send_sync_result::ok);
    }
    const int sends_before = fake().count("WSASend");
    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    send_probe p("late");
    CHECK(p.start(s) == send_sync_result::not_open);
    CHECK(asock::sync_wait(s.send_async(asock::buffer("x", 1))) == send_result::not_open);
    CHECK(p.calls == 0);
    CHECK(fake().count("WSASend") == sends_before);
    if (inflight.calls == 0 && fake().outstanding_count(sock_a, kind::send) == 1) {
        REQUIRE(fake().complete_send(sock_a));
        CHECK(inflight.result == send_result::ok);
    }
    CHECK(fins() == 1);
}

TEST_CASE("receives go on after shutdown_send until the peer closes", "[win32][shutdown]")
{
    fixture f;
    receive_probe r1(16);
    receive_probe r2(16);
    fake_socket_t s = f.open_socket();
    REQUIRE(r1.start(s) == start_result::started);
    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins() == 1);
    REQUIRE(fake().complete_recv(sock_a, "reply"));
    CHECK(r1.calls == 1);
    CHECK(r1.result == receive_result::ok);
    CHECK(r1.got() == "reply");
    REQUIRE(r2.start(s) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, "")); // 0 bytes, no error: the peer's FIN
    CHECK(r2.calls == 1);
    CHECK(r2.result == receive_result::abandoned);
}

TEST_CASE("a second shutdown_send returns ok and calls nothing more", "[win32][shutdown]")
{
    fixture f;
    send_probe p;
    fake_socket_t s = f.open_socket();
    SECTION("after an immediate FIN")
    {
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(fins() == 1);
    }
    SECTION("while the FIN waits")
    {
        REQUIRE(p.start(s) == send_sync_result::ok);
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(fins() == 0);
        REQUIRE(fake().complete_send(sock_a));
        CHECK(p.result == send_result::ok);
        CHECK(fins() == 1);
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(fins() == 1);
    }
}

TEST_CASE("shutdown_send on a socket that is not OPEN is not_open", "[win32][shutdown]")
{
    fixture f;
    SECTION("no socket")
    {
        fake_socket_t empty;
        CHECK(empty.shutdown_send() == shutdown_result::not_open);
    }
    SECTION("created, never opened")
    {
        fake_socket_t s(*f.engine);
        REQUIRE(s.valid());
        CHECK(s.shutdown_send() == shutdown_result::not_open);
    }
    SECTION("closed")
    {
        fake_socket_t s = f.open_socket();
        s.close();
        CHECK(s.shutdown_send() == shutdown_result::not_open);
    }
    SECTION("a custom transport (never valid on Windows)")
    {
        asock::custom_transport t{[](void*, const void*, std::size_t) { return 0; }, nullptr,
                                  [](void*, void*, std::size_t) { return 0; }, nullptr};
        fake_socket_t s(*f.engine, t);
        CHECK_FALSE(s.valid());
        CHECK(s.shutdown_send() == shutdown_result::not_open);
    }
    CHECK(fins() == 0);
}

TEST_CASE("shutdown_send whose shutdown(SD_SEND) fails is error, and sending stays closed", "[win32][shutdown]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    fake().fail_shutdown_send = WSAENOTCONN;
    CHECK(s.shutdown_send() == shutdown_result::error);
    CHECK(fins() == 1);
    send_probe p;
    CHECK(p.start(s) == send_sync_result::not_open);
    CHECK(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins() == 1);
}

TEST_CASE("a send in flight that does not complete ok means no shutdown(SD_SEND)", "[win32][shutdown]")
{
    fixture f(false); // the test delivers the cancelled calls itself
    send_probe p1("abcdef");
    send_probe p2("behind");
    fake_socket_t s = f.open_socket();
    REQUIRE(p1.start(s) == send_sync_result::ok);
    REQUIRE(p2.start(s) == send_sync_result::ok);
    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    SECTION("reset, nothing sent")
    {
        REQUIRE(fake().complete_send(sock_a, WSAECONNRESET, 0));
        CHECK(p1.result == send_result::abandoned);
        REQUIRE(fake().complete_send(sock_a)); // p2 went on: the stream was whole
        CHECK(p2.result == send_result::ok);
    }
    SECTION("torn: part sent, then an error")
    {
        REQUIRE(fake().complete_send(sock_a, NO_ERROR, 3)); // a short count: error, the direction fails
        CHECK(p1.result == send_result::error);
        CHECK(p2.calls == 1);
        CHECK(p2.result == send_result::error);
    }
    CHECK(fins() == 0);
    while (fake().outstanding_count(sock_a, kind::send) != 0) {
        REQUIRE(fake().complete_send(sock_a));
    }
    CHECK(fins() == 0);
    fake().abort_cancelled();
}

TEST_CASE("a send cancelled before it completed means no shutdown(SD_SEND)", "[win32][shutdown]")
{
    fixture f(false); // the test delivers the cancelled calls itself
    send_probe probe("plain");
    std::stop_source stop;
    detached_result<send_result> r;
    fake_socket_t s = f.open_socket();
    SECTION("in flight")
    {
        start_detached(send_until_stopped(s, "stoppable", stop.get_token()), r);
        REQUIRE(probe.start(s) == send_sync_result::ok); // queued behind it
        REQUIRE(s.shutdown_send() == shutdown_result::ok);
        stop.request_stop(); // CancelIoEx
        CHECK(fake().abort_cancelled() == 1);
        wait_until("the cancelled send", [&] {
            fake().run_work();
            return r.done.load();
        });
        CHECK(r.value == send_result::cancelled);
        CHECK(probe.calls == 1);
        CHECK(probe.result == send_result::error); // how much of the cancelled one went out is unknown
    }
    SECTION("queued behind another")
    {
        REQUIRE(probe.start(s) == send_sync_result::ok); // in flight
        start_detached(send_until_stopped(s, "stoppable", stop.get_token()), r);
        REQUIRE_FALSE(r.done.load());
        REQUIRE(s.shutdown_send() == shutdown_result::ok);
        stop.request_stop(); // withdrawn at once
        wait_until("the withdrawn send", [&] {
            fake().run_work(); // its resumption is posted (a stop request is not an engine thread)
            return r.done.load();
        });
        CHECK(r.value == send_result::cancelled);
        REQUIRE(fake().complete_send(sock_a));
        CHECK(probe.result == send_result::ok);
        CHECK(fake().wire(sock_a) == "plain");
    }
    CHECK(fins() == 0);
}

TEST_CASE("close after shutdown_send completes pending operations abandoned and calls no shutdown(SD_SEND)",
          "[win32][shutdown]")
{
    fixture f; // a helper thread finishes the calls close() cancels
    send_probe sp("pending");
    receive_probe rp(8);
    fake_socket_t s = f.open_socket();
    REQUIRE(sp.start(s) == send_sync_result::ok);
    REQUIRE(rp.start(s) == start_result::started);
    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    s.close();
    CHECK(sp.calls == 1);
    CHECK(sp.result == send_result::abandoned);
    CHECK(rp.calls == 1);
    CHECK(rp.result == receive_result::abandoned);
    CHECK(s.state() == asock::socket_state::closed);
    CHECK(fins() == 0);
    CHECK(fake().sock(sock_a).shutdowns == 1); // the default owner's disconnect, as always
    CHECK(s.shutdown_send() == shutdown_result::not_open);
}

TEST_CASE("shutdown_send from inside a send's callback calls shutdown(SD_SEND) at once", "[win32][shutdown]")
{
    fixture f;
    send_probe p("last words");
    fake_socket_t s = f.open_socket();
    static shutdown_result seen;
    seen = shutdown_result::not_open;
    p.user = &s;
    p.then = [](send_probe& self) { seen = static_cast<fake_socket_t*>(self.user)->shutdown_send(); };
    REQUIRE(p.start(s) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(p.result == send_result::ok);
    CHECK(seen == shutdown_result::ok);
    CHECK(fins() == 1);
}
