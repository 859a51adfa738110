// tests/win32/unit_io.cpp: sends, receives and the IO completion callback of the
// Windows backend, over the fake Win32 layer: argument checks, the calls made,
// and every result mapping.
#include "unit_support.hpp"

using namespace asock_wtest;
using asock::receive_result;
using asock::send_result;
using asock::send_sync_result;
using asock::start_result;
using kind = outstanding_call::kind;

namespace {
void ignore_send(void*, send_result) {}
void ignore_receive(void*, receive_result, std::uint32_t) {}
} // namespace

// ---- send: arguments and state ---------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_024: send on an empty socket fails", "[win32][send]")
{
    fixture f;
    fake_socket_t s;
    send_probe p;
    CHECK(p.start(s) == send_sync_result::not_open);
    CHECK(asock::sync_wait(s.send_async(asock::buffer("x", 1))) == send_result::not_open);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_025, SRS_ASYNC_SOCKET_WIN32_01_085, SRS_ASYNC_SOCKET_WIN32_01_089, "
          "SRS_ASYNC_SOCKET_WIN32_01_090, SRS_ASYNC_SOCKET_WIN32_01_101, SRS_ASYNC_SOCKET_WIN32_01_026: send argument "
          "checks",
          "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    asock::send_operation op;
    char c = 'x';
    const auto mark = fake().mark();
    SECTION("01_025: no buffer array")
    {
        CHECK(s.send_async(op, std::span<const const_buffer>(static_cast<const const_buffer*>(nullptr), 1),
                           &ignore_send, nullptr) == send_sync_result::invalid_argument);
    }
    SECTION("01_085: zero buffers")
    {
        const_buffer b{&c, 1};
        CHECK(s.send_async(op, std::span<const const_buffer>(&b, 0), &ignore_send, nullptr) == send_sync_result::invalid_argument);
    }
    SECTION("01_089: a NULL buffer")
    {
        const const_buffer b[2] = {{&c, 1}, {nullptr, 1}};
        CHECK(s.send_async(op, b, &ignore_send, nullptr) == send_sync_result::invalid_argument);
    }
    SECTION("01_090: a zero length")
    {
        const const_buffer b[2] = {{&c, 1}, {&c, 0}};
        CHECK(s.send_async(op, b, &ignore_send, nullptr) == send_sync_result::invalid_argument);
    }
    SECTION("01_101: more than UINT32_MAX bytes in total")
    {
        const const_buffer b[2] = {{&c, 0x80000000u}, {&c, 0x80000000u}}; // never read: rejected first
        CHECK(s.send_async(op, b, &ignore_send, nullptr) == send_sync_result::invalid_argument);
        CHECK(asock::sync_wait(s.send_async(std::span<const const_buffer>(b))) == send_result::invalid_argument);
    }
    SECTION("01_026: no callback")
    {
        const const_buffer b{&c, 1};
        CHECK(s.send_async(op, std::span<const const_buffer>(&b, 1), nullptr, nullptr) == send_sync_result::invalid_argument);
    }
    CHECK(fake().calls_since(mark).empty()); // rejected before any call
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_027: the send callback context may be NULL", "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    asock::send_operation op;
    static int calls = 0;
    static void* seen = &calls;
    calls = 0;
    const const_buffer b{"abc", 3};
    REQUIRE(s.send_async(
                op, std::span<const const_buffer>(&b, 1),
                [](void* ctx, send_result r) {
                    seen = ctx;
                    CHECK(r == send_result::ok);
                    ++calls;
                },
                nullptr) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 1);
    CHECK(seen == nullptr);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_097: send on a socket that is not OPEN fails with NOT_OPEN", "[win32][send]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    send_probe p;
    CHECK(p.start(s) == send_sync_result::not_open); // created, not opened
    REQUIRE(s.open(sock_a) == asock::open_result::ok);
    s.close();
    CHECK(p.start(s) == send_sync_result::not_open); // closed
    CHECK(fake().count("WSASend") == 0);
    CHECK(p.calls == 0);
}

// ---- send: the calls ---------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_056, SRS_ASYNC_SOCKET_WIN32_01_060, SRS_ASYNC_SOCKET_WIN32_01_061, "
          "SRS_ASYNC_SOCKET_WIN32_01_053, SRS_ASYNC_SOCKET_WIN32_01_045, SRS_ASYNC_SOCKET_WIN32_01_062: send starts the "
          "IO and calls WSASend with the caller's buffers",
          "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    std::string one = "hello ";
    std::string two = "world";
    const const_buffer b[2] = {{one.data(), 6}, {two.data(), 5}};
    asock::send_operation op;
    static int calls = 0;
    calls = 0;
    const auto mark = fake().mark();
    CHECK(s.send_async(op, b, [](void*, send_result) { ++calls; }, nullptr) == send_sync_result::ok); // 01_045
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"StartThreadpoolIo", "WSASend", "WSAGetLastError"}); // 01_060, 01_062, 01_053
    const auto sends = fake().sends();
    REQUIRE(sends.size() == 1);
    REQUIRE(sends[0].buffers.size() == 2); // 01_056: pointing at the payload, nothing copied
    CHECK(sends[0].buffers[0].buf == one.data());
    CHECK(sends[0].buffers[0].len == 6);
    CHECK(sends[0].buffers[1].buf == two.data());
    CHECK(sends[0].buffers[1].len == 5);
    CHECK(sends[0].overlapped_given); // 01_061: OVERLAPPED, flags 0, no byte count
    CHECK(sends[0].flags == 0);
    CHECK(sends[0].count_ptr_null);
    CHECK(calls == 0); // pending: completes through the callback
    CHECK(fake().io_of(sock_a).starts == 1);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 1);
    CHECK(fake().wire(sock_a) == "hello world");
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_061: a WSASend done at once still completes through the callback",
          "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    fake().script_send(sock_a, fake_world::done_now());
    send_probe p;
    const auto mark = fake().mark();
    CHECK(p.start(s) == send_sync_result::ok);
    CHECK(fake().calls_since(mark) == std::vector<std::string>{"StartThreadpoolIo", "WSASend"});
    CHECK(p.calls == 0);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::ok);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_100, SRS_ASYNC_SOCKET_WIN32_42_002: WSAECONNRESET cancels the IO and the send "
          "fails with NOT_OPEN",
          "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    fake().script_send(sock_a, fake_world::fail(WSAECONNRESET));
    send_probe p;
    const auto mark = fake().mark();
    CHECK(p.start(s) == send_sync_result::not_open);
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"StartThreadpoolIo", "WSASend", "WSAGetLastError", "CancelThreadpoolIo"});
    CHECK(p.calls == 0);
    CHECK(fake().outstanding_total() == 0);
    send_probe later; // nothing was left queued: a later send is issued at once
    CHECK(later.start(s) == send_sync_result::ok);
    CHECK(fake().outstanding_count(sock_a, kind::send) == 1);
    s.close(); // while `later` lives
    CHECK(later.result == send_result::abandoned);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_106, SRS_ASYNC_SOCKET_WIN32_01_029: any other WSASend error cancels the IO and "
          "the send fails with ERROR",
          "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    const int err = GENERATE(WSAENOBUFS, WSAENOTCONN, WSAESHUTDOWN, WSAEFAULT);
    fake().script_send(sock_a, fake_world::fail(err));
    send_probe p;
    const auto mark = fake().mark();
    CHECK(p.start(s) == send_sync_result::error);
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"StartThreadpoolIo", "WSASend", "WSAGetLastError", "CancelThreadpoolIo"});
    CHECK(p.calls == 0);
    CHECK(fake().outstanding_total() == 0);
}

// ---- send: completions ------------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_065, SRS_ASYNC_SOCKET_WIN32_01_066: a send completing with NO_ERROR and every "
          "byte is OK",
          "[win32][send][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    send_probe p("0123456789");
    REQUIRE(p.start(s) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a, NO_ERROR, 10));
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::ok);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_067: a send completing with an error is ERROR", "[win32][send][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    // The errors that mean the connection is gone complete ABANDONED instead
    // (next test; docs/windows.md, deviation 11).
    const ULONG err = GENERATE(ULONG(ERROR_INVALID_PARAMETER), ULONG(ERROR_NOT_ENOUGH_MEMORY), ULONG(WSAENOBUFS),
                               ULONG(ERROR_OPERATION_ABORTED));
    send_probe p;
    REQUIRE(p.start(s) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a, err, 0));
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::error);
    send_probe next; // the socket is still OPEN; the next send is issued
    CHECK(next.start(s) == send_sync_result::ok);
    s.close(); // while `next` lives
    CHECK(next.result == send_result::abandoned);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_067: a send completing with an error that means the connection is gone is "
          "ABANDONED, as on Linux",
          "[win32][send][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    const ULONG err = GENERATE(ULONG(ERROR_NETNAME_DELETED), ULONG(ERROR_CONNECTION_ABORTED), ULONG(WSAECONNRESET),
                               ULONG(WSAECONNABORTED), ULONG(WSAENETRESET));
    CAPTURE(err);
    send_probe p, queued("queued");
    REQUIRE(p.start(s) == send_sync_result::ok);
    REQUIRE(queued.start(s) == send_sync_result::ok);
    fake().script_send(sock_a, fake_world::fail(WSAECONNRESET)); // the queued send meets the reset too,
    fake().script_send(sock_a, fake_world::fail(WSAECONNRESET)); // and so does a later one
    REQUIRE(fake().complete_send(sock_a, err, 0));
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::abandoned); // Linux: ECONNRESET / EPIPE
    CHECK(queued.calls == 1);
    CHECK(queued.result == send_result::abandoned);
    send_probe later;
    CHECK(later.start(s) == send_sync_result::not_open); // 42_002
    CHECK(later.calls == 0);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_102: a send completing with fewer bytes than asked is ERROR",
          "[win32][send][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    send_probe p("0123456789");
    REQUIRE(p.start(s) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a, NO_ERROR, 9));
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::error);
}

TEST_CASE("sends: one WSASend outstanding at a time; the rest queued and issued in order from completions",
          "[win32][send][order]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    std::vector<std::unique_ptr<send_probe>> probes;
    static std::vector<int> order;
    order.clear();
    for (int i = 0; i < 5; ++i) {
        // Appended, not `"m" + std::to_string(i)`: g++ 12 at -O2 warns a false
        // -Wrestrict inside libstdc++ for "literal" + std::string&&.
        std::string message = "m";
        message += std::to_string(i);
        message += ';';
        probes.push_back(std::make_unique<send_probe>(std::move(message)));
        probes.back()->user = reinterpret_cast<void*>(static_cast<std::intptr_t>(i));
        probes.back()->then = [](send_probe& p) { order.push_back(static_cast<int>(reinterpret_cast<std::intptr_t>(p.user))); };
        REQUIRE(probes.back()->start(s) == send_sync_result::ok);
    }
    CHECK(fake().count("WSASend") == 1);
    CHECK(fake().outstanding_count(sock_a, kind::send) == 1);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(fake().complete_send(sock_a));
    }
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
    CHECK(fake().wire(sock_a) == "m0;m1;m2;m3;m4;");
    CHECK(fake().sock(sock_a).max_sends_outstanding == 1);
    CHECK(fake().io_of(sock_a).starts == 5);
}

TEST_CASE("sends: a queued send whose WSASend fails when issued completes ABANDONED (reset) or ERROR",
          "[win32][send][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    send_probe first("a");
    send_probe second("b");
    send_probe third("c");
    REQUIRE(first.start(s) == send_sync_result::ok);
    REQUIRE(second.start(s) == send_sync_result::ok);
    REQUIRE(third.start(s) == send_sync_result::ok);
    fake().script_send(sock_a, fake_world::fail(WSAECONNRESET)); // second
    fake().script_send(sock_a, fake_world::fail(WSAENOBUFS));    // third
    REQUIRE(fake().complete_send(sock_a));
    CHECK(first.result == send_result::ok);
    CHECK(second.calls == 1);
    CHECK(second.result == send_result::abandoned);
    CHECK(third.calls == 1);
    CHECK(third.result == send_result::error);
    CHECK(fake().count("CancelThreadpoolIo") == 2);
    CHECK(fake().outstanding_total() == 0);
}

TEST_CASE("sends: more buffers than one WSASend takes go in several calls, in order", "[win32][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    std::string data;
    for (int i = 0; i < 150; ++i) {
        data.push_back(static_cast<char>('A' + i % 26));
    }
    std::vector<const_buffer> bufs;
    for (int i = 0; i < 150; ++i) {
        bufs.push_back({data.data() + i, 1});
    }
    asock::send_operation op;
    static int calls = 0;
    static send_result seen = send_result::invalid_argument;
    calls = 0;
    REQUIRE(s.send_async(op, bufs, [](void*, send_result r) { seen = r; ++calls; }, nullptr) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 0);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 0);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(calls == 1);
    CHECK(seen == send_result::ok);
    const auto sends = fake().sends();
    REQUIRE(sends.size() == 3);
    CHECK(sends[0].buffers.size() == 64);
    CHECK(sends[1].buffers.size() == 64);
    CHECK(sends[2].buffers.size() == 22);
    CHECK(fake().wire(sock_a) == data);
}

TEST_CASE("sends: a long send whose next WSASend finds the connection gone completes ABANDONED and so do later sends",
          "[win32][send][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    const int err = GENERATE(WSAECONNRESET, WSAECONNABORTED, WSAENETRESET);
    CAPTURE(err);
    std::string data(150, 'a');
    std::vector<const_buffer> bufs;
    for (std::size_t i = 0; i < data.size(); ++i) {
        bufs.push_back({data.data() + i, 1}); // more buffers than one WSASend takes
    }
    asock::send_operation op;
    static int calls = 0;
    static send_result seen = send_result::ok;
    calls = 0;
    REQUIRE(s.send_async(op, bufs, [](void*, send_result r) { seen = r; ++calls; }, nullptr) ==
            send_sync_result::ok);
    send_probe queued("after");
    REQUIRE(queued.start(s) == send_sync_result::ok);
    fake().script_send(sock_a, fake_world::fail(err)); // the second part
    REQUIRE(fake().complete_send(sock_a));             // the first 64 bytes are on the wire
    CHECK(calls == 1);
    CHECK(seen == send_result::abandoned);
    CHECK(queued.calls == 1);
    CHECK(queued.result == send_result::abandoned); // torn: never issued, the direction failed (abandoned)
    CHECK(fake().count("WSASend") == 2);
    send_probe later;
    CHECK(later.start(s) == send_sync_result::not_open);
    CHECK(fake().count("WSASend") == 2);
}

// ---- receive: arguments and state ---------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_073: receive on an empty socket fails", "[win32][receive]")
{
    fixture f;
    fake_socket_t s;
    receive_probe r;
    CHECK(r.start(s) != start_result::started);
    char b[4];
    CHECK(asock::sync_wait(s.receive_async(asock::buffer(b))).result == receive_result::not_open);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_074, SRS_ASYNC_SOCKET_WIN32_01_086, SRS_ASYNC_SOCKET_WIN32_01_091, "
          "SRS_ASYNC_SOCKET_WIN32_01_092, SRS_ASYNC_SOCKET_WIN32_01_096, SRS_ASYNC_SOCKET_WIN32_01_075: receive "
          "argument checks",
          "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    asock::receive_operation op;
    char c[4];
    const auto mark = fake().mark();
    SECTION("01_074: no buffer array")
    {
        CHECK(s.receive_async(op, std::span<const mutable_buffer>(static_cast<const mutable_buffer*>(nullptr), 1),
                              &ignore_receive, nullptr) == start_result::invalid_argument);
    }
    SECTION("01_086: zero buffers")
    {
        mutable_buffer b{c, 1};
        CHECK(s.receive_async(op, std::span<const mutable_buffer>(&b, 0), &ignore_receive, nullptr) ==
              start_result::invalid_argument);
    }
    SECTION("01_091: a NULL buffer")
    {
        const mutable_buffer b[2] = {{c, 1}, {nullptr, 1}};
        CHECK(s.receive_async(op, b, &ignore_receive, nullptr) == start_result::invalid_argument);
    }
    SECTION("01_092: a zero length")
    {
        const mutable_buffer b[2] = {{c, 1}, {c, 0}};
        CHECK(s.receive_async(op, b, &ignore_receive, nullptr) == start_result::invalid_argument);
    }
    SECTION("01_096: more than UINT32_MAX bytes in total")
    {
        const mutable_buffer b[2] = {{c, 0x80000000u}, {c, 0x80000000u}};
        CHECK(s.receive_async(op, b, &ignore_receive, nullptr) == start_result::invalid_argument);
    }
    SECTION("01_075: no callback")
    {
        const mutable_buffer b{c, 4};
        CHECK(s.receive_async(op, std::span<const mutable_buffer>(&b, 1), nullptr, nullptr) ==
              start_result::invalid_argument);
    }
    CHECK(fake().calls_since(mark).empty());
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_076: the receive callback context may be NULL", "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    asock::receive_operation op;
    char c[8];
    static int calls = 0;
    static void* seen = &calls;
    calls = 0;
    const mutable_buffer b{c, 8};
    REQUIRE(s.receive_async(
                op, std::span<const mutable_buffer>(&b, 1),
                [](void* ctx, receive_result r, std::uint32_t n) {
                    seen = ctx;
                    CHECK(r == receive_result::ok);
                    CHECK(n == 2);
                    ++calls;
                },
                nullptr) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, "hi"));
    CHECK(calls == 1);
    CHECK(seen == nullptr);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_098: receive on a socket that is not OPEN fails", "[win32][receive]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    receive_probe r;
    CHECK(r.start(s) == start_result::not_open);
    REQUIRE(s.open(sock_a) == asock::open_result::ok);
    s.close();
    CHECK(r.start(s) == start_result::not_open);
    CHECK(fake().count("WSARecv") == 0);
}

// ---- receive: the calls -------------------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_079, SRS_ASYNC_SOCKET_WIN32_01_081, SRS_ASYNC_SOCKET_WIN32_01_082, "
          "SRS_ASYNC_SOCKET_WIN32_01_054, SRS_ASYNC_SOCKET_WIN32_01_055, SRS_ASYNC_SOCKET_WIN32_01_083: receive starts "
          "the IO and calls WSARecv with the caller's buffers",
          "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(12, 3);
    const auto mark = fake().mark();
    CHECK(r.start(s) == start_result::started); // 01_083
    CHECK(fake().calls_since(mark) == std::vector<std::string>{"StartThreadpoolIo", "WSARecv", "WSAGetLastError"});
    const auto recvs = fake().recvs();
    REQUIRE(recvs.size() == 1);
    REQUIRE(recvs[0].buffers.size() == 3); // 01_079
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(recvs[0].buffers[i].buf == r.storage.data() + 4 * i);
        CHECK(recvs[0].buffers[i].len == 4);
    }
    CHECK(recvs[0].overlapped_given); // 01_082
    CHECK(recvs[0].flags == 0);
    CHECK(recvs[0].count_ptr_null);
    CHECK(r.calls == 0);
    // The buffers are filled in order.
    REQUIRE(fake().complete_recv(sock_a, "abcdefghij"));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.got() == "abcdefghij");
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_099, SRS_ASYNC_SOCKET_WIN32_01_105, SRS_ASYNC_SOCKET_WIN32_01_084: a WSARecv "
          "failing at once cancels the IO and the receive fails",
          "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    const int err = GENERATE(WSAECONNRESET, WSAENOTCONN, WSAESHUTDOWN, WSAENOBUFS);
    fake().script_recv(sock_a, fake_world::fail(err));
    receive_probe r;
    const auto mark = fake().mark();
    CHECK(r.start(s) == start_result::not_open);
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"StartThreadpoolIo", "WSARecv", "WSAGetLastError", "CancelThreadpoolIo"});
    CHECK(r.calls == 0);
    char b[4];
    fake().script_recv(sock_a, fake_world::fail(err));
    CHECK(asock::sync_wait(s.receive_async(asock::buffer(b))).result == receive_result::not_open);
}

TEST_CASE("receives: a WSARecv done at once still completes through the callback", "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    fake().script_recv(sock_a, fake_world::done_now());
    receive_probe r;
    CHECK(r.start(s) == start_result::started);
    CHECK(r.calls == 0);
    REQUIRE(fake().complete_recv(sock_a, "x"));
    CHECK(r.calls == 1);
}

// ---- receive: completions ------------------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_071, SRS_ASYNC_SOCKET_WIN32_01_069: a receive completing with bytes is OK with "
          "that count",
          "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(16);
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, "twelve bytes"));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.bytes == 12);
    CHECK(r.got() == "twelve bytes");
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_42_003: a receive completing with 0 bytes is ABANDONED", "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r;
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, ""));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::abandoned);
    CHECK(r.bytes == 0);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_42_001: ERROR_NETNAME_DELETED and ERROR_CONNECTION_ABORTED are ABANDONED",
          "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    const ULONG err = GENERATE(ULONG(ERROR_NETNAME_DELETED), ULONG(ERROR_CONNECTION_ABORTED));
    receive_probe r;
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(fake().complete_recv_error(sock_a, err));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::abandoned);
    CHECK(r.bytes == 0);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_070: any other receive error is ERROR with 0 bytes", "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    const ULONG err = GENERATE(ULONG(ERROR_INVALID_PARAMETER), ULONG(WSAECONNRESET), ULONG(ERROR_OPERATION_ABORTED),
                               ULONG(ERROR_NOT_ENOUGH_MEMORY));
    receive_probe r;
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(fake().complete_recv_error(sock_a, err));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::error);
    CHECK(r.bytes == 0);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_095: a receive completing with more bytes than the buffers hold is ERROR",
          "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(4);
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, "123456"));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::error);
    CHECK(r.bytes == 0); // callback form: bytes only with OK (see docs/windows.md)

    // The co_await form reports the byte count the completion claimed.
    char b[4];
    asock::task<asock::receive_outcome> t = [](fake_socket_t& sock, char* buf) -> asock::task<asock::receive_outcome> {
        co_return co_await sock.receive_async(asock::buffer(buf, 4));
    }(s, b);
    detached_result<asock::receive_outcome> out;
    start_detached(std::move(t), out);
    REQUIRE(fake().complete_recv(sock_a, "1234567"));
    REQUIRE(out.done);
    CHECK(out.value->result == receive_result::error);
    CHECK(out.value->bytes_received == 7);
}

TEST_CASE("receives: queued receives are issued one at a time and complete in order", "[win32][receive][order]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    static std::vector<std::string> got;
    got.clear();
    std::vector<std::unique_ptr<receive_probe>> probes;
    for (int i = 0; i < 4; ++i) {
        probes.push_back(std::make_unique<receive_probe>(8));
        probes.back()->then = [](receive_probe& p) { got.push_back(p.got()); };
        REQUIRE(probes.back()->start(s) == start_result::started);
    }
    CHECK(fake().count("WSARecv") == 1);
    for (const char* chunk : {"one", "two", "three", "four"}) {
        REQUIRE(fake().complete_recv(sock_a, chunk));
    }
    CHECK(got == std::vector<std::string>{"one", "two", "three", "four"});
    CHECK(fake().sock(sock_a).max_recvs_outstanding == 1);
}

TEST_CASE("receives: a queued receive whose WSARecv fails when issued completes ABANDONED (reset) or ERROR",
          "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe a, b, c;
    REQUIRE(a.start(s) == start_result::started);
    REQUIRE(b.start(s) == start_result::started);
    REQUIRE(c.start(s) == start_result::started);
    fake().script_recv(sock_a, fake_world::fail(WSAECONNRESET));
    fake().script_recv(sock_a, fake_world::fail(WSAENOBUFS));
    REQUIRE(fake().complete_recv(sock_a, "x"));
    CHECK(a.result == receive_result::ok);
    CHECK(b.calls == 1);
    CHECK(b.result == receive_result::abandoned);
    CHECK(c.calls == 1);
    CHECK(c.result == receive_result::error);
}

TEST_CASE("receives: a WSARecv is given at most 64 buffers; with nothing more waiting the receive completes with them",
          "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(100, 100);
    REQUIRE(r.start(s) == start_result::started);
    const auto recvs = fake().recvs();
    REQUIRE(recvs.size() == 1);
    CHECK(recvs[0].buffers.size() == 64);
    const auto mark = fake().mark();
    REQUIRE(fake().complete_recv(sock_a, std::string(64, 'z'))); // FIONREAD: 0 bytes wait
    CHECK(fake().calls_since(mark, {"ioctlsocket(FIONREAD)", "WSARecv"}) ==
          std::vector<std::string>{"ioctlsocket(FIONREAD)"}); // no WSARecv that could stay pending
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.bytes == 64);
}

namespace {
std::string letters(std::size_t n, std::size_t from = 0)
{
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(static_cast<char>('a' + (from + i) % 26));
    }
    return out;
}
} // namespace

TEST_CASE("receives: a receive of more than 64 buffers goes on into its next buffers while bytes are waiting, as on "
          "Linux",
          "[win32][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(150, 150); // 150 buffers of one byte
    REQUIRE(r.start(s) == start_result::started);
    fake().script_readable(sock_a, 86);
    REQUIRE(fake().complete_recv(sock_a, letters(64)));
    CHECK(r.calls == 0); // still receiving, into buffers 64..127
    fake().script_readable(sock_a, 22);
    REQUIRE(fake().complete_recv(sock_a, letters(64, 64)));
    CHECK(r.calls == 0); // buffers 128..149
    REQUIRE(fake().complete_recv(sock_a, letters(22, 128)));
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.bytes == 150);
    CHECK(r.got() == letters(150));
    const auto recvs = fake().recvs();
    REQUIRE(recvs.size() == 3);
    const std::size_t first[3] = {0, 64, 128};
    const std::size_t count[3] = {64, 64, 22};
    for (std::size_t i = 0; i < 3; ++i) {
        CAPTURE(i);
        REQUIRE(recvs[i].buffers.size() == count[i]);
        CHECK(recvs[i].buffers[0].buf == r.storage.data() + first[i]); // the caller's own buffers, in order
        CHECK(recvs[i].overlapped_given);
    }
    CHECK(fake().sock(sock_a).max_recvs_outstanding == 1);
    CHECK(fake().io_of(sock_a).starts == 3);
    CHECK(fake().outstanding_total() == 0);
}

TEST_CASE("receives: a later batch of a long receive ends it with the sum of the bytes, however it ends",
          "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(150, 150);
    receive_probe next(8);
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(next.start(s) == start_result::started); // queued behind it
    fake().script_readable(sock_a, 5);
    REQUIRE(fake().complete_recv(sock_a, letters(64)));
    REQUIRE(r.calls == 0);
    SECTION("fewer bytes than its buffers hold")
    {
        REQUIRE(fake().complete_recv(sock_a, letters(5, 64)));
        CHECK(r.result == receive_result::ok);
        CHECK(r.bytes == 69);
        CHECK(r.got() == letters(69));
        REQUIRE(fake().complete_recv(sock_a, "later")); // the next receive follows in order
        CHECK(next.got() == "later");
    }
    SECTION("0 bytes: the peer closed; the next receive sees the end")
    {
        REQUIRE(fake().complete_recv(sock_a, ""));
        CHECK(r.result == receive_result::ok);
        CHECK(r.bytes == 64);
        REQUIRE(fake().complete_recv(sock_a, ""));
        CHECK(next.result == receive_result::abandoned);
    }
    SECTION("an error: the bytes already received are reported, the next receive meets the error")
    {
        const ULONG err = GENERATE(ULONG(ERROR_NETNAME_DELETED), ULONG(ERROR_INVALID_PARAMETER));
        REQUIRE(fake().complete_recv_error(sock_a, err));
        CHECK(r.result == receive_result::ok);
        CHECK(r.bytes == 64);
        CHECK(r.got() == letters(64));
        REQUIRE(fake().complete_recv_error(sock_a, err));
        CHECK(next.result != receive_result::ok);
    }
    SECTION("more bytes than this call was given: error (01_095)")
    {
        REQUIRE(fake().complete_recv(sock_a, letters(70, 64)));
        CHECK(r.result == receive_result::error);
    }
    CHECK(r.calls == 1);
    CHECK(fake().count("WSARecv") == 3);
}

TEST_CASE("receives: a long receive whose next WSARecv fails at once, or whose FIONREAD fails, completes with what it "
          "has",
          "[win32][receive][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r(150, 150);
    REQUIRE(r.start(s) == start_result::started);
    SECTION("WSARecv fails")
    {
        fake().script_readable(sock_a, 10);
        fake().script_recv(sock_a, fake_world::fail(WSAECONNRESET));
        const auto mark = fake().mark();
        REQUIRE(fake().complete_recv(sock_a, letters(64)));
        CHECK(fake().calls_since(mark, {"StartThreadpoolIo", "WSARecv", "CancelThreadpoolIo"}) ==
              std::vector<std::string>{"StartThreadpoolIo", "WSARecv", "CancelThreadpoolIo"});
    }
    SECTION("FIONREAD fails")
    {
        fake().sock(sock_a).fionread_error = WSAENOTSOCK;
        REQUIRE(fake().complete_recv(sock_a, letters(64)));
        CHECK(fake().count("WSARecv") == 1);
    }
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.bytes == 64);
    CHECK(fake().outstanding_total() == 0);
}

// ---- the IO callback ----------------------------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_063: a callback with a NULL OVERLAPPED does nothing", "[win32][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    receive_probe r;
    send_probe p;
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(p.start(s) == send_sync_result::ok);
    fake().deliver_null_overlapped(sock_a);
    CHECK(r.calls == 0);
    CHECK(p.calls == 0);
    CHECK(fake().outstanding_total() == 2);
    s.close(); // while the probes live
    CHECK(r.calls == 1);
    CHECK(p.calls == 1);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_064: the OVERLAPPED leads to its operation (full duplex, several sockets)",
          "[win32][callback]")
{
    fixture f;
    fake_socket_t s1 = f.open_socket(sock_a);
    fake_socket_t s2 = f.open_socket(sock_b);
    receive_probe r1, r2;
    send_probe p1("to a"), p2("to b");
    REQUIRE(r1.start(s1) == start_result::started);
    REQUIRE(p1.start(s1) == send_sync_result::ok); // a receive and a send outstanding together
    REQUIRE(r2.start(s2) == start_result::started);
    REQUIRE(p2.start(s2) == send_sync_result::ok);
    CHECK(fake().outstanding_count(sock_a, kind::recv) == 1);
    CHECK(fake().outstanding_count(sock_a, kind::send) == 1);
    REQUIRE(fake().complete_send(sock_b));
    CHECK(p2.calls == 1);
    CHECK(p1.calls == 0);
    REQUIRE(fake().complete_recv(sock_a, "for s1"));
    CHECK(r1.got() == "for s1");
    CHECK(r2.calls == 0);
    REQUIRE(fake().complete_recv(sock_b, "for s2"));
    CHECK(r2.got() == "for s2");
    REQUIRE(fake().complete_send(sock_a));
    CHECK(p1.result == send_result::ok);
    CHECK(fake().wire(sock_a) == "to a");
    CHECK(fake().wire(sock_b) == "to b");
}

TEST_CASE("the callback form may reuse its operation record from inside its callback", "[win32][callback]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    struct chain {
        fake_socket_t* sock;
        asock::receive_operation op;
        char buf[8];
        mutable_buffer b{buf, 8}; // the buffer array lives as long as the operation
        std::string got;
        int rounds = 0;
        static void on(void* ctx, receive_result r, std::uint32_t n)
        {
            auto* c = static_cast<chain*>(ctx);
            if (r != receive_result::ok) {
                return;
            }
            c->got.append(c->buf, n);
            if (++c->rounds < 3) {
                CHECK(c->sock->receive_async(c->op, std::span<const mutable_buffer>(&c->b, 1), &on, c) ==
                      start_result::started);
            }
        }
    } c;
    c.sock = &s;
    REQUIRE(s.receive_async(c.op, std::span<const mutable_buffer>(&c.b, 1), &chain::on, &c) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, "ab"));
    REQUIRE(fake().complete_recv(sock_a, "cd"));
    REQUIRE(fake().complete_recv(sock_a, "ef"));
    CHECK(c.got == "abcdef");
    CHECK(fake().outstanding_total() == 0);
}

TEST_CASE("awaitables: a co_await receive and send resume on the completing thread", "[win32][awaitable]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    char buf[8];
    auto echo = [](fake_socket_t& sock, char* b) -> asock::task<send_result> {
        const asock::receive_outcome r = co_await sock.receive_async(asock::buffer(b, 8));
        if (!r) {
            co_return send_result::error;
        }
        co_return co_await sock.send_async(asock::buffer(static_cast<const void*>(b), r.bytes_received));
    };
    detached_result<send_result> out;
    start_detached(echo(s, buf), out);
    CHECK_FALSE(out.done);
    REQUIRE(fake().complete_recv(sock_a, "ping"));
    CHECK_FALSE(out.done);
    REQUIRE(fake().complete_send(sock_a));
    REQUIRE(out.done);
    CHECK(*out.value == send_result::ok);
    CHECK(fake().wire(sock_a) == "ping");
}
