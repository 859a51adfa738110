// tests/win32/integration_tcp.cpp: the Windows TCP helpers (ConnectEx /
// AcceptEx through the socket's threadpool IO) and the real platform's
// Windows-specific answers, over 127.0.0.1. Runs under Wine in the cross build.
#include "win32_harness.hpp"

#include <asock/format.hpp>
#include <asock/resolve.hpp>
#include <asock/socket_options.hpp>

#include "support/gated_resolver.hpp"

#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

using asock_wtest::win32_harness;
namespace sc = asock_scenarios;
using outcome = asock::connect_outcome<asock::default_platform>;
using gated = asock_tests::gated_resolver_os<asock::win32::resolver_os>;
using namespace std::chrono_literals;

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
    // The code the OS gave, in a category whose text is the system's (mingw's
    // generic_category() has none for ECONNREFUSED: "Unknown error").
    const std::string message = r.error.message();
    INFO(r.error.category().name() << ":" << r.error.value() << " " << message);
    CHECK(r.error.category() == asock::win32::system_error_category());
    CHECK_FALSE(message.empty());
    CHECK(message != "Unknown error");
    CHECK_FALSE(r.socket.valid());
}

TEST_CASE("tcp: an unresolvable name is a resolution error with the system's text", "[win32][tcp][resolve]")
{
    auto e = engine_with(1);
    auto listened = asock::tcp_listener_t::listen(*e, "not a valid address at all", 0);
    CHECK_FALSE(static_cast<bool>(listened));
    CHECK_FALSE(listened.listener.valid());
    const std::error_code ec = listened.error;
    const std::string message = ec.message();
    INFO(ec.category().name() << ":" << ec.value() << " " << message);
    CHECK(ec.category() == asock::resolve_category());
    CHECK(std::string(ec.category().name()) == "asock.resolve");
    CHECK(ec.value() != 0); // a WSA code: WSAHOST_NOT_FOUND, or WSATRY_AGAIN without a name server
    CHECK_FALSE(message.empty());
    CHECK(message != "Unknown error");
    const outcome c = sc::run(*e, asock::connect(*e, "not a valid address at all", 80), "connect to no name");
    CHECK(c.error == ec); // connect reports it the same way
    CHECK_FALSE(c.socket.valid());
}

TEST_CASE("asock::win32::system_error_category: the system's text, and the portable conditions",
          "[win32][tcp]")
{
    const std::error_category& cat = asock::win32::system_error_category();
    CHECK(std::string(cat.name()) == "asock.win32");
    // A completion's code and Winsock's code for one failure compare alike.
    for (const int code : {static_cast<int>(ERROR_CONNECTION_REFUSED), static_cast<int>(WSAECONNREFUSED)}) {
        const std::error_code ec(code, cat);
        INFO(code << " " << ec.message());
        CHECK(ec == std::errc::connection_refused);
        CHECK_FALSE(ec.message().empty());
        CHECK(ec.message() != "Unknown error");
        CHECK(ec.message().back() != '\n'); // FormatMessage's line break is trimmed
    }
    CHECK(std::error_code(ERROR_OPERATION_ABORTED, cat) == std::errc::operation_canceled);
    CHECK(std::error_code(WSAETIMEDOUT, cat) == std::errc::timed_out);
    CHECK(std::error_code(ERROR_SEM_TIMEOUT, cat) == std::errc::timed_out);
    CHECK(std::error_code(WSAENETUNREACH, cat) == std::errc::network_unreachable);
    CHECK(std::error_code(ERROR_HOST_UNREACHABLE, cat) == std::errc::host_unreachable);
    CHECK(std::error_code(WSAECONNRESET, cat) == std::errc::connection_reset);
    CHECK(std::error_code(WSAEADDRINUSE, cat) == std::errc::address_in_use);
    CHECK(std::error_code(WSAECONNREFUSED, cat) != std::errc::timed_out);
    // A code without a portable condition is itself.
    CHECK(std::error_code(WSAHOST_NOT_FOUND, cat).default_error_condition() ==
          std::error_condition(WSAHOST_NOT_FOUND, cat));
    // A code the system has no text for still says something.
    CHECK_FALSE(std::error_code(0x2FFFFFFF, cat).message().empty());
}

TEST_CASE("the default backend here is the threadpool IO, and its policy states every trait", "[win32][traits]")
{
    STATIC_REQUIRE(std::is_same_v<asock::default_platform, asock::win32::win32_platform>);
    CHECK(std::string(asock::default_backend_name) == "win32");
    using traits = asock::platform_traits<asock::default_platform>;
    STATIC_REQUIRE_FALSE(traits::supports_notify_io);
    STATIC_REQUIRE_FALSE(traits::supports_custom_transport);
    STATIC_REQUIRE_FALSE(traits::accepts_null_engine);
    STATIC_REQUIRE(traits::wants_blocking_handles);
    REQUIRE(traits::start_socket_library()); // WSAStartup, counted
    traits::stop_socket_library();
    const auto options = traits::engine_options_for(2, 6);
    CHECK(options.threads == asock::win32::engine_options::unset); // a pool between min and max, not a caller-run loop
    CHECK(options.min_threads == 2);
    CHECK(options.max_threads == 6);
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

// ==== name resolution of connect ==============================================================

TEST_CASE("tcp: numeric hosts resolve inline, names on a lookup thread; both connect", "[win32][tcp][resolve]")
{
    auto e = engine_with(2);
    auto l = listen_any(*e);
    const auto me = std::this_thread::get_id();
    for (const char* host : {"127.0.0.1", "localhost"}) {
        const outcome r = sc::run(*e, asock::connect(*e, host, l.port()), "connect");
        INFO(host << ": " << r.error.message());
        CHECK(static_cast<bool>(r));
    }
    gated::reset();
    const outcome numeric =
        sc::run(*e, asock::tcp_connect<asock::default_platform, gated>(*e, "127.0.0.1", l.port()), "numeric");
    CHECK(static_cast<bool>(numeric));
    auto calls = gated::calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].numeric_only);
    CHECK(calls[0].thread == me);

    gated::reset();
    const outcome named =
        sc::run(*e, asock::tcp_connect<asock::default_platform, gated>(*e, "localhost", l.port()), "named");
    INFO(named.error.message());
    CHECK(static_cast<bool>(named));
    calls = gated::calls();
    REQUIRE(calls.size() == 2);
    CHECK(calls[0].numeric_only);
    CHECK_FALSE(calls[1].numeric_only);
    CHECK(calls[1].thread != me);
}

TEST_CASE("tcp: a lookup that blocks leaves the caller-run loop running; a stop request ends the connect at once",
          "[win32][tcp][resolve][cancel]")
{
    auto e = engine_with(0);
    auto l = listen_any(*e);
    auto [a, b] = sc::connected_pair(*e);
    gated::reset();
    std::stop_source stop;
    sc::tracker tr;
    std::optional<outcome> r;
    const auto started = sc::clock::now();
    sc::start(tr, asock::tcp_connect<asock::default_platform, gated>(*e, "blocked.test", l.port(), stop.get_token()),
              r);
    CHECK(sc::clock::now() - started < 10s);
    sc::wait_until("lookup entered", [] { return gated::entered() == 1; });
    for (int round = 0; round < 3; ++round) {
        const std::string msg = "ping " + std::to_string(round);
        sc::tracker t2;
        std::optional<asock::send_result> sent;
        std::optional<std::string> got;
        sc::start(t2, sc::send_string(a, msg), sent);
        sc::start(t2,
                  [](asock::tcp_socket& s, std::size_t n) -> asock::task<std::string> {
                      std::string out;
                      co_await sc::receive_exact(s, out, n);
                      co_return out;
                  }(b, msg.size()),
                  got);
        t2.wait(*e, "ping-pong during the lookup");
        CHECK(*got == msg);
    }
    CHECK_FALSE(r.has_value());
    stop.request_stop();
    tr.wait(*e, "cancelled connect");
    REQUIRE(r.has_value());
    CHECK(r->error == std::errc::operation_canceled);
    CHECK(gated::returned() == 0);
    gated::open_gate();
    sc::wait_until("lookup returned", [] { return gated::returned() == 1; });
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(gated::st().timed_out);
}

TEST_CASE("tcp: the engine may be destroyed while a cancelled lookup still runs", "[win32][tcp][resolve][lifetime]")
{
    gated::reset();
    {
        auto e = engine_with(1);
        std::stop_source stop;
        sc::tracker tr;
        std::optional<outcome> r;
        sc::start(tr, asock::tcp_connect<asock::default_platform, gated>(*e, "blocked.test", 9, stop.get_token()), r);
        sc::wait_until("lookup entered", [] { return gated::entered() == 1; });
        stop.request_stop();
        tr.wait(*e, "cancelled connect");
        CHECK(r->error == std::errc::operation_canceled);
    } // the engine goes (WSACleanup): the lookup thread keeps Winsock started for itself
    gated::open_gate();
    sc::wait_until("lookup returned", [] { return gated::returned() == 1; });
    std::this_thread::sleep_for(50ms);
}

// ==== socket options ==========================================================================

namespace {
/// An option's value. Zero-filled first: Winsock (and Wine) may write a
/// boolean option as a single byte.
int get_int(SOCKET s, int level, int name)
{
    int v = 0;
    int len = sizeof v;
    REQUIRE(::getsockopt(s, level, name, reinterpret_cast<char*>(&v), &len) == 0);
    return v;
}
} // namespace

TEST_CASE("socket options: each one set, and read back from the OS", "[win32][tcp][options]")
{
    auto e = engine_with(2);
    auto [client, server] = sc::connected_pair(*e);
    const SOCKET s = client.native_handle();
    CHECK_FALSE(asock::set_no_delay(client, false));
    CHECK(get_int(s, IPPROTO_TCP, TCP_NODELAY) == 0);
    CHECK_FALSE(asock::set_no_delay(client, true));
    CHECK(get_int(s, IPPROTO_TCP, TCP_NODELAY) != 0);

    CHECK_FALSE(asock::set_keep_alive(client, {.enabled = true}));
    CHECK(get_int(s, SOL_SOCKET, SO_KEEPALIVE) != 0);
    CHECK_FALSE(asock::set_keep_alive(client, {.enabled = false}));
    CHECK(get_int(s, SOL_SOCKET, SO_KEEPALIVE) == 0);
    const std::error_code timed = asock::set_keep_alive(client, {.enabled = true, .idle = 30s, .interval = 5s});
    INFO(timed.message());
    CHECK_FALSE(timed);
    CHECK(get_int(s, SOL_SOCKET, SO_KEEPALIVE) != 0);
    // The probe count cannot be set on Windows: refused, nothing changed.
    CHECK_FALSE(asock::set_keep_alive(client, {.enabled = false}));
    CHECK(asock::set_keep_alive(client, {.enabled = true, .count = 3}) == std::errc::not_supported);
    CHECK(get_int(s, SOL_SOCKET, SO_KEEPALIVE) == 0);
    CHECK(asock::set_keep_alive(client, {.enabled = true, .interval = -1s}) == std::errc::invalid_argument);

    CHECK_FALSE(asock::set_send_buffer_size(client, 32 * 1024));
    CHECK(get_int(s, SOL_SOCKET, SO_SNDBUF) >= 32 * 1024);
    CHECK_FALSE(asock::set_receive_buffer_size(client, 48 * 1024));
    CHECK(get_int(s, SOL_SOCKET, SO_RCVBUF) >= 48 * 1024);
    CHECK(asock::set_send_buffer_size(client, 0) == std::errc::invalid_argument);

    asock::tcp_socket empty;
    asock::tcp_socket never_opened(*e);
    for (asock::tcp_socket* bad : {&empty, &never_opened}) {
        CHECK(asock::set_no_delay(*bad, true) == std::errc::bad_file_descriptor);
        CHECK(asock::set_keep_alive(*bad, {}) == std::errc::bad_file_descriptor);
        CHECK(asock::set_send_buffer_size(*bad, 4096) == std::errc::bad_file_descriptor);
        CHECK(asock::set_receive_buffer_size(*bad, 4096) == std::errc::bad_file_descriptor);
        CHECK(asock::close_abortive(*bad) == std::errc::bad_file_descriptor);
    }
    // A custom transport makes no socket on Windows: bad_file_descriptor too.
    asock::custom_transport t;
    t.on_send = [](void*, const void*, std::size_t) { return 0; };
    t.on_recv = [](void*, void*, std::size_t) { return 0; };
    asock::tcp_socket custom(*e, t);
    CHECK(asock::set_no_delay(custom, true) == std::errc::bad_file_descriptor);
}

TEST_CASE("close_abortive: the socket is closed, pending receives complete abandoned, the peer's too",
          "[win32][tcp][options]")
{
    auto e = engine_with(2);
    auto [client, server] = sc::connected_pair(*e);
    sc::tracker tr;
    std::optional<asock::receive_outcome> peer, own;
    static char pb[16], ob[16];
    sc::start(tr, sc::receive_into(server, pb, sizeof pb), peer);
    sc::start(tr, sc::receive_into(client, ob, sizeof ob), own);
    REQUIRE_FALSE(asock::close_abortive(client));
    CHECK(client.state() == asock::socket_state::closed);
    CHECK(asock::close_abortive(client) == std::errc::bad_file_descriptor);
    client = asock::tcp_socket{}; // the handle is closed: the reset goes out
    tr.wait(*e, "receives after close_abortive");
    CHECK(own->result == asock::receive_result::abandoned);
    CHECK(peer->result == asock::receive_result::abandoned);
}
