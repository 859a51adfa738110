// tests/integration/tcp_test.cpp: the TCP helpers' name resolution (numeric
// hosts inline, names on a lookup thread of their own, cancellation while a
// lookup runs, the engine going while it runs) and the socket options of
// asock/socket_options.hpp, over real sockets on 127.0.0.1.
#include "integration_support.hpp"

#include "support/gated_resolver.hpp"

#include <asock/resolve.hpp>
#include <asock/socket_options.hpp>

#include <sys/eventfd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

namespace {

using platform = asock::default_platform;
using outcome = asock::connect_outcome<platform>;
using gated = asock_tests::gated_resolver_os<asock::posix::resolver_os>;
using namespace std::chrono_literals;

asock::tcp_listener_t listen_loopback(asock::engine& e)
{
    auto listened = asock::tcp_listener_t::listen(e, "127.0.0.1", 0);
    REQUIRE_FALSE(listened.error);
    return std::move(listened.listener);
}

asock::task<outcome> connect_gated(asock::engine& e, std::string host, std::uint16_t port, std::stop_token token = {})
{
    return asock::tcp_connect<platform, gated>(e, std::move(host), port, std::move(token));
}

/// One send and one receive of a few bytes across a socketpair on `e`: the
/// engine's loop is alive.
void ping_pong(asock::engine& e, asock::tcp_socket& a, asock::tcp_socket& b, int round)
{
    const std::string msg = "ping " + std::to_string(round);
    it::tracker tr;
    std::optional<asock::send_result> sent;
    std::optional<std::string> got;
    it::start(tr, it::send_string(a, msg), sent);
    it::start(tr,
              [](asock::tcp_socket& s, std::size_t n) -> asock::task<std::string> {
                  std::string out;
                  co_await it::receive_exact(s, out, n);
                  co_return out;
              }(b, msg.size()),
              got);
    tr.wait(e, "ping-pong");
    CHECK(*sent == asock::send_result::ok);
    CHECK(*got == msg);
}

int get_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    REQUIRE(::getsockopt(fd, level, name, &v, &len) == 0);
    return v;
}

std::pair<asock::tcp_socket, asock::tcp_socket> tcp_pair(asock::engine& e)
{
    auto l = listen_loopback(e);
    it::tracker tr;
    std::optional<outcome> acc, con;
    it::start(tr, l.accept(), acc);
    it::start(tr, asock::connect(e, "127.0.0.1", l.port()), con);
    tr.wait(e, "tcp pair");
    REQUIRE(static_cast<bool>(*acc));
    REQUIRE(static_cast<bool>(*con));
    return {std::move(con->socket), std::move(acc->socket)};
}

} // namespace

// ==== resolution ===========================================================================

TEST_CASE("tcp connect: a numeric host resolves inline without a lookup, a name on a thread of its own",
          "[tcp][resolve]")
{
    auto e = asock::make_engine({.threads = 1});
    REQUIRE(e);
    auto l = listen_loopback(*e);
    const auto me = std::this_thread::get_id();
    const auto engine_thread = it::engine_thread_id(*e);

    SECTION("127.0.0.1 and the empty host: numeric only, on the awaiting thread")
    {
        for (const char* host : {"127.0.0.1", ""}) {
            gated::reset();
            const outcome r = it::run(*e, connect_gated(*e, host, l.port()), "numeric connect");
            INFO(host << ": " << r.error.message());
            CHECK(static_cast<bool>(r));
            const auto calls = gated::calls();
            REQUIRE(calls.size() == 1);
            CHECK(calls[0].numeric_only);
            CHECK(calls[0].thread == me); // it::run starts the coroutine on this thread
        }
    }
    SECTION("localhost: tried numeric, then looked up on another thread than the caller's and the engine's")
    {
        gated::reset();
        const outcome r = it::run(*e, connect_gated(*e, "localhost", l.port()), "named connect");
        INFO(r.error.message());
        CHECK(static_cast<bool>(r));
        const auto calls = gated::calls();
        REQUIRE(calls.size() == 2);
        CHECK(calls[0].numeric_only);
        CHECK_FALSE(calls[1].numeric_only);
        CHECK(calls[1].thread != me);
        CHECK(calls[1].thread != engine_thread);
    }
    SECTION("the default connect, with the system's resolver")
    {
        for (const char* host : {"127.0.0.1", "localhost"}) {
            const outcome r = it::run(*e, asock::connect(*e, host, l.port()), "connect");
            INFO(host << ": " << r.error.message());
            CHECK(static_cast<bool>(r));
            CHECK(r.socket.state() == asock::socket_state::open);
        }
    }
    it::drain(*e);
}

TEST_CASE("resolve_async: a name's lookup resumes the coroutine on an engine thread", "[tcp][resolve]")
{
    auto e = asock::make_engine({.threads = 1});
    REQUIRE(e);
    const auto engine_thread = it::engine_thread_id(*e);
    gated::reset();
    struct seen {
        std::error_code error;
        bool any = false;
        std::thread::id resumed_on;
    };
    // The gate opens only once the lookup is under way, so the coroutine has
    // surely suspended (a lookup that ends while await_suspend still runs
    // resumes it inline, on the awaiting thread, as documented).
    it::tracker tr;
    std::optional<seen> s;
    it::start(tr,
              [](asock::engine& en) -> asock::task<seen> {
                  auto r = co_await asock::net::resolve_async<gated>(en, "blocked.test", 4242);
                  co_return seen{r.error, !r.addresses.empty(), it::this_thread_id()};
              }(*e),
              s);
    it::wait_until("lookup entered", [] { return gated::entered() == 1; });
    gated::open_gate();
    tr.wait(*e, "resolve_async");
    REQUIRE(s.has_value());
    CHECK_FALSE(s->error);
    CHECK(s->any);
    CHECK(s->resumed_on == engine_thread);
    CHECK(gated::returned() == 1);
}

TEST_CASE("tcp connect: a lookup that blocks leaves the engine's loop running; a stop request ends the connect at once",
          "[tcp][resolve][cancel]")
{
    // threads = 0: this thread is the engine's only loop. A lookup made inline
    // would block it, and start() below would not return before the gate's bound.
    auto e = asock::make_engine({.threads = 0});
    REQUIRE(e);
    auto l = listen_loopback(*e);
    gated::reset();

    auto [fa, fb] = it::make_socketpair();
    auto a = it::open_socket(*e, fa);
    auto b = it::open_socket(*e, fb);

    std::stop_source stop;
    it::tracker tr;
    std::optional<outcome> r;
    const auto started = it::clock::now();
    it::start(tr, connect_gated(*e, "blocked.test", l.port(), stop.get_token()), r);
    CHECK(it::clock::now() - started < 10s);
    it::wait_until("lookup entered", [] { return gated::entered() == 1; });
    const auto calls = gated::calls();
    REQUIRE(calls.size() == 2);
    CHECK(calls[1].thread != std::this_thread::get_id());

    for (int round = 0; round < 5; ++round) {
        ping_pong(*e, a, b, round);
    }
    CHECK_FALSE(r.has_value());
    CHECK(gated::returned() == 0);

    stop.request_stop();
    tr.wait(*e, "cancelled connect");
    REQUIRE(r.has_value());
    CHECK(r->error == std::errc::operation_canceled);
    CHECK_FALSE(r->socket.valid());
    CHECK(gated::returned() == 0); // it did not wait for the lookup

    // The lookup ends later: its result is discarded, nothing of the
    // coroutine or the engine is touched (ASan would see it).
    gated::open_gate();
    it::wait_until("lookup returned", [] { return gated::returned() == 1; });
    std::this_thread::sleep_for(50ms);
    ping_pong(*e, a, b, 99);
    CHECK_FALSE(gated::st().timed_out);
    it::drain(*e);
}

TEST_CASE("tcp connect: the engine may go while a lookup runs", "[tcp][resolve][lifetime]")
{
    gated::reset();
    SECTION("cancelled first: the engine is destroyed before the lookup returns")
    {
        auto e = asock::make_engine({.threads = 1});
        REQUIRE(e);
        std::stop_source stop;
        it::tracker tr;
        std::optional<outcome> r;
        it::start(tr, connect_gated(*e, "blocked.test", 9, stop.get_token()), r);
        it::wait_until("lookup entered", [] { return gated::entered() == 1; });
        stop.request_stop();
        tr.wait(*e, "cancelled connect");
        CHECK(r->error == std::errc::operation_canceled);
        r.reset();
        e = {}; // the last reference: destroyed now
        gated::open_gate();
        it::wait_until("lookup returned", [] { return gated::returned() == 1; });
        std::this_thread::sleep_for(50ms);
    }
    SECTION("not cancelled: the connect keeps the engine until it completes")
    {
        auto e = asock::make_engine({.threads = 1});
        REQUIRE(e);
        auto l = listen_loopback(*e);
        const std::uint16_t port = l.port();
        asock::engine* raw = e.get();
        it::tracker tr;
        std::optional<outcome> r;
        it::start(tr, connect_gated(*raw, "blocked.test", port), r);
        it::wait_until("lookup entered", [] { return gated::entered() == 1; });
        CHECK(raw->use_count() >= 3); // ours, the listener's, the connect's
        e = {};
        gated::open_gate();
        tr.wait(*raw, "connect after the lookup");
        INFO(r->error.message());
        CHECK(static_cast<bool>(*r));
        CHECK(r->socket.state() == asock::socket_state::open);
        r.reset(); // the listener still holds the engine
    }
    CHECK_FALSE(gated::st().timed_out);
}

// ==== socket options ========================================================================

TEST_CASE("socket options: each one set, and read back from the OS", "[tcp][options]")
{
    auto e = asock::make_engine({.threads = 1});
    REQUIRE(e);
    auto [client, server] = tcp_pair(*e);
    const int fd = client.native_handle();

    CHECK_FALSE(asock::set_no_delay(client, false));
    CHECK(get_int(fd, IPPROTO_TCP, TCP_NODELAY) == 0);
    CHECK_FALSE(asock::set_no_delay(client, true));
    CHECK(get_int(fd, IPPROTO_TCP, TCP_NODELAY) != 0);

    CHECK_FALSE(asock::set_keep_alive(client, {.enabled = true, .idle = 30s, .interval = 5s, .count = 4}));
    CHECK(get_int(fd, SOL_SOCKET, SO_KEEPALIVE) != 0);
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 30);
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 5);
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT) == 4);
    // Zero fields leave what is there.
    CHECK_FALSE(asock::set_keep_alive(client, {.enabled = true, .idle = 0s, .interval = 7s, .count = 0}));
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 30);
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 7);
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT) == 4);
    CHECK_FALSE(asock::set_keep_alive(client, {.enabled = false}));
    CHECK(get_int(fd, SOL_SOCKET, SO_KEEPALIVE) == 0);
    CHECK(asock::set_keep_alive(client, {.enabled = true, .idle = -1s}) == std::errc::invalid_argument);
    CHECK(asock::set_keep_alive(client, {.enabled = true, .count = -1}) == std::errc::invalid_argument);

    // Linux doubles what it is given (and caps it at wmem_max / rmem_max).
    CHECK_FALSE(asock::set_send_buffer_size(client, 32 * 1024));
    CHECK(get_int(fd, SOL_SOCKET, SO_SNDBUF) >= 32 * 1024);
    CHECK(get_int(fd, SOL_SOCKET, SO_SNDBUF) <= 2 * 32 * 1024);
    CHECK_FALSE(asock::set_receive_buffer_size(client, 48 * 1024));
    CHECK(get_int(fd, SOL_SOCKET, SO_RCVBUF) >= 48 * 1024);
    CHECK(get_int(fd, SOL_SOCKET, SO_RCVBUF) <= 2 * 48 * 1024);
    CHECK(asock::set_send_buffer_size(client, 0) == std::errc::invalid_argument);
    CHECK(asock::set_receive_buffer_size(client, -5) == std::errc::invalid_argument);

    // The socket still works.
    ping_pong(*e, client, server, 1);
}

TEST_CASE("socket options: a socket that is not OPEN, or has no socket, is bad_file_descriptor", "[tcp][options]")
{
    auto e = asock::make_engine({.threads = 1});
    REQUIRE(e);
    const auto all_bad = [](asock::tcp_socket& s) {
        CHECK(asock::set_no_delay(s, true) == std::errc::bad_file_descriptor);
        CHECK(asock::set_keep_alive(s, {}) == std::errc::bad_file_descriptor);
        CHECK(asock::set_send_buffer_size(s, 4096) == std::errc::bad_file_descriptor);
        CHECK(asock::set_receive_buffer_size(s, 4096) == std::errc::bad_file_descriptor);
        CHECK(asock::close_abortive(s) == std::errc::bad_file_descriptor);
    };
    SECTION("empty") {
        asock::tcp_socket s;
        all_bad(s);
    }
    SECTION("created, never opened") {
        asock::tcp_socket s(*e);
        all_bad(s);
    }
    SECTION("closed") {
        auto [client, server] = tcp_pair(*e);
        client.close();
        all_bad(client);
    }
    SECTION("a custom transport over a descriptor that is no socket") {
        static int dummy = 0;
        asock::custom_transport t{[](void*, const void*, std::size_t n) { return static_cast<int>(n); }, &dummy,
                                  [](void*, void*, std::size_t) {
                                      errno = EAGAIN;
                                      return -1;
                                  },
                                  &dummy};
        asock::tcp_socket s(*e, t);
        REQUIRE(s.valid());
        const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        REQUIRE(efd >= 0);
        REQUIRE(s.open(efd) == asock::open_result::ok);
        all_bad(s);
        CHECK(s.state() == asock::socket_state::open); // close_abortive left it alone
    }
    it::drain(*e);
}

TEST_CASE("close_abortive: the peer sees a reset, not an orderly close; pending operations complete abandoned",
          "[tcp][options]")
{
    auto e = asock::make_engine({.threads = 1});
    REQUIRE(e);
    SECTION("the peer's own recv fails with ECONNRESET, without reading an end of stream first")
    {
        auto [client, server] = tcp_pair(*e);
        const int sfd = server.native_handle();
        REQUIRE_FALSE(asock::close_abortive(client));
        CHECK(client.state() == asock::socket_state::closed);
        pollfd p{sfd, POLLIN, 0};
        REQUIRE(::poll(&p, 1, 10000) == 1);
        char c;
        const ssize_t n = ::recv(sfd, &c, 1, MSG_DONTWAIT);
        const int err = errno;
        CHECK(n == -1);
        CHECK(err == ECONNRESET);
    }
    SECTION("asock's receive on the peer completes abandoned; the closing side's own receive too")
    {
        auto [client, server] = tcp_pair(*e);
        it::tracker tr;
        std::optional<asock::receive_outcome> peer, own;
        static char pb[16], ob[16];
        it::start(tr, it::receive_into(server, pb, sizeof pb), peer);
        it::start(tr, it::receive_into(client, ob, sizeof ob), own);
        REQUIRE_FALSE(asock::close_abortive(client));
        tr.wait(*e, "receives after close_abortive");
        CHECK(peer->result == asock::receive_result::abandoned);
        CHECK(own->result == asock::receive_result::abandoned);
    }
}
