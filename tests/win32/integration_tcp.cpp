// tests/win32/integration_tcp.cpp: the Windows TCP helpers (ConnectEx /
// AcceptEx through the socket's threadpool IO) and the real platform's
// Windows-specific answers, over 127.0.0.1. Runs under Wine in the cross build.
#include "win32_harness.hpp"

#include <asock/format.hpp>

#include <fmt/format.h>

#include <utility>

using asock_wtest::win32_harness;
namespace sc = asock_scenarios;
using outcome = asock::connect_outcome<asock::default_platform>;

namespace {
asock::engine_ref<asock::engine> engine_with(unsigned threads)
{
    auto e = asock::make_engine({.threads = threads});
    REQUIRE(e);
    return e;
}

asock::tcp_listener_t listen_any(asock::engine& e)
{
    auto listened = asock::tcp_listener_t::listen(e, "127.0.0.1", 0);
    REQUIRE_FALSE(listened.error);
    REQUIRE(listened.listener.valid());
    REQUIRE(listened.listener.port() != 0);
    return std::move(listened.listener);
}
} // namespace

TEST_CASE("tcp: connect and accept give OPEN sockets whose peers are known", "[win32][tcp]")
{
    auto e = engine_with(2);
    auto [client, server] = sc::connected_pair(*e);
    CHECK(client.state() == asock::socket_state::open);
    CHECK(server.state() == asock::socket_state::open);
    sockaddr_storage a{}, b{};
    int la = sizeof a, lb = sizeof b;
    // SO_UPDATE_CONNECT_CONTEXT / SO_UPDATE_ACCEPT_CONTEXT were applied.
    CHECK(::getpeername(client.native_handle(), reinterpret_cast<sockaddr*>(&a), &la) == 0);
    CHECK(::getpeername(server.native_handle(), reinterpret_cast<sockaddr*>(&b), &lb) == 0);
}

TEST_CASE("tcp: several accepts outstanding at once", "[win32][tcp]")
{
    auto e = engine_with(4);
    auto l = listen_any(*e);
    sc::tracker tr;
    std::vector<std::optional<outcome>> accepted(3), connected(3);
    for (auto& a : accepted) {
        sc::start(tr, l.accept(), a);
    }
    for (auto& c : connected) {
        sc::start(tr, asock::connect(*e, "127.0.0.1", l.port()), c);
    }
    tr.wait(*e, "3 accepts");
    for (std::size_t i = 0; i < 3; ++i) {
        INFO(accepted[i]->error.message() << " / " << connected[i]->error.message());
        CHECK(static_cast<bool>(*accepted[i]));
        CHECK(static_cast<bool>(*connected[i]));
    }
}

TEST_CASE("tcp: connecting to a port nobody listens on is refused", "[win32][tcp]")
{
    auto e = engine_with(2);
    std::uint16_t port = 0;
    {
        auto l = listen_any(*e);
        port = l.port();
    } // closed
    const outcome r = sc::run(*e, asock::connect(*e, "127.0.0.1", port), "refused connect");
    CHECK_FALSE(static_cast<bool>(r));
    CHECK(r.error == std::errc::connection_refused);
    CHECK_FALSE(r.socket.valid());
}

TEST_CASE("tcp: a stop request cancels connect and accept", "[win32][tcp][cancel]")
{
    auto e = engine_with(2);
    auto l = listen_any(*e);
    std::stop_source before;
    before.request_stop();
    const outcome c = sc::run(*e, asock::connect(*e, "127.0.0.1", l.port(), before.get_token()), "connect");
    CHECK(c.error == std::errc::operation_canceled);

    std::stop_source stop;
    sc::tracker tr;
    std::optional<outcome> a;
    sc::start(tr, l.accept(stop.get_token()), a);
    stop.request_stop();
    tr.wait(*e, "cancelled accept");
    CHECK(a->error == std::errc::operation_canceled);
    CHECK(l.valid()); // the listener still works
    auto [client, server] = [&] {
        sc::tracker t2;
        std::optional<outcome> acc, con;
        sc::start(t2, l.accept(), acc);
        sc::start(t2, asock::connect(*e, "127.0.0.1", l.port()), con);
        t2.wait(*e, "accept after cancel");
        REQUIRE(static_cast<bool>(*acc));
        REQUIRE(static_cast<bool>(*con));
        return std::pair{std::move(con->socket), std::move(acc->socket)};
    }();
    CHECK(client.valid());
}

TEST_CASE("tcp: closing the listener ends a pending accept with bad_file_descriptor", "[win32][tcp]")
{
    auto e = engine_with(1);
    auto l = listen_any(*e);
    sc::tracker tr;
    std::optional<outcome> a;
    sc::start(tr, l.accept(), a);
    l.close();
    tr.wait(*e, "accept after close");
    CHECK(a->error == std::errc::bad_file_descriptor);
    CHECK_FALSE(l.valid());
    const outcome again = sc::run(*e, l.accept(), "accept on closed");
    CHECK(again.error == std::errc::bad_file_descriptor);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_04_001, SRS_ASYNC_SOCKET_WIN32_04_002: custom transports and notify_io_async are "
          "not available on Windows",
          "[win32][tcp]")
{
    auto e = engine_with(1);
    asock::custom_transport t;
    t.on_send = [](void*, const void*, std::size_t) { return 0; };
    t.on_recv = [](void*, void*, std::size_t) { return 0; };
    asock::tcp_socket s(*e, t);
    CHECK_FALSE(s.valid());
    auto [client, server] = sc::connected_pair(*e);
    CHECK(asock::sync_wait(client.notify_io_async(asock::notify_io_type::in)) == asock::notify_io_result::not_open);
    CHECK(fmt::format("{}", asock::send_result::abandoned) == "abandoned"); // fmt, header-only in the cross build
}
