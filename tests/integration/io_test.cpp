// tests/integration/io_test.cpp: data transfer over real sockets: echo on
// engines with 0, 1 and 4 threads, scatter / gather buffers, peer close and
// reset, 1000 connections at once, a 64 MiB send through EAGAIN,
// notify_io_async, and the TCP helpers' connect / accept.
//
// Most bodies are the shared scenarios of tests/support/scenarios.hpp (which
// tests/win32/integration_io.cpp runs on Windows too), over the harnesses of
// posix_harness.hpp; what only Linux has (AF_UNIX, notify_io_async, errno
// specifics, a pending send at a reset) is written here.
#include "posix_harness.hpp"

#include <array>
#include <cstdio>
#include <memory>
#include <span>
#include <system_error>

using asock::notify_io_result;
using asock::notify_io_type;
using asock::receive_outcome;
using asock::receive_result;
using asock::send_result;
namespace sc = asock_scenarios;

namespace {

asock::task<notify_io_result> notify(asock::tcp_socket& s, notify_io_type type)
{
    co_return co_await s.notify_io_async(type);
}

} // namespace

// ==== echo ======================================================================

TEST_CASE("echo over TCP loopback, both sides co_await, on engines with 0, 1 and 4 threads", "[integration][echo]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    sc::echo(*engine, {.host = "127.0.0.1", .clients = threads == 0 ? 3 : 8, .messages = 40});
}

TEST_CASE("echo over IPv6 loopback", "[integration][echo]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    sc::echo(*engine, {.host = "::1", .clients = 2, .messages = 10});
}

// ==== scatter / gather ===========================================================

TEST_CASE("regression: a multi-buffer receive fills every buffer in order, not only the first",
          "[integration][regression][buffers]")
{
    const unsigned threads = GENERATE(0u, 1u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        SECTION("data already there, exactly filling five buffers of different sizes")
        {
            sc::scatter_receive_waiting<H>(e, {1, 7, 100, 3, 4096}, 4207, 1);
        }
        SECTION("receive pending first, then one write that exactly fills them")
        {
            sc::scatter_receive_pending<H>(e, {2, 5, 1, 1000, 33}, 2);
        }
        SECTION("fewer bytes than room: the first buffers are filled in order, the rest untouched")
        {
            sc::scatter_receive_waiting<H>(e, {1, 7, 100, 3, 4096}, 50, 3);
        }
        SECTION("more buffers than one system call takes (150 buffers)")
        {
            // Past the 64 buffers of one recvmsg (Windows: of one WSARecv,
            // tests/win32/integration_io.cpp has its own run of this).
            sc::scatter_receive_waiting<H>(e, sc::ascending_sizes(150), 150 * 151 / 2, 4);
        }
    });
}

TEST_CASE("a multi-buffer send (gather) arrives complete and in order", "[integration][buffers]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        SECTION("a few small buffers") { sc::gather_send<H>(e, {3, 1000, 1, 7000, 5}, 5); }
        SECTION("150 buffers of odd sizes, 4 MiB in all: several system calls and EAGAIN in the middle")
        {
            sc::gather_send<H>(e, sc::odd_sizes(150, 4u << 20, 9), 5);
        }
    });
}

// ==== peer close / reset ==========================================================

TEST_CASE("regression: bytes sent just before the peer closes are all received, then abandoned",
          "[integration][regression][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        SECTION("a receive is pending when the bytes and the close arrive") { sc::peer_close_receive_pending<H>(e); }
        SECTION("nothing is pending when they arrive; the receives come later") { sc::peer_close_before_receive<H>(e); }
        SECTION("100 rounds: a helper thread writes in pieces and closes while the socket receives")
        {
            sc::peer_close_rounds<H>(e, 100);
        }
    });
}

TEST_CASE("peer reset: pending operations complete abandoned, later sends report not_open", "[integration][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);

    SECTION("a pending receive")
    {
        asock::tcp_socket a = sc::peer_reset_pending_receive<it::posix_harness>(*engine);
        // The receive side keeps reporting the end (Linux; a Windows WSARecv on
        // a reset connection is rejected at once).
        char buf[100];
        const receive_outcome again = it::run(*engine, it::receive_into(a, buf, sizeof buf));
        CHECK(again.result == receive_result::abandoned);
    }
    // A send pending when the connection is reset completes `abandoned` on
    // both backends (tests/win32/integration_io.cpp checks Windows).
    SECTION("a pending send")
    {
        auto [a, b] = sc::make_async_and_peer<it::posix_harness>(*engine);
        // 32 MiB is more than loopback TCP buffers hold: the send waits for room.
        it::tracker tr;
        std::optional<send_result> s;
        it::start(tr, it::send_string(a, std::string(32u << 20, 's')), s);
        REQUIRE(tr.pending() == 1);
        b.reset();
        tr.wait(*engine, "send pending at reset");
        REQUIRE(s.has_value());
        CHECK(*s == send_result::abandoned);
        const send_result later = it::run(*engine, it::send_string(a, "x"));
        CHECK(later == send_result::not_open);
    }
    SECTION("a pending send and a pending receive together")
    {
        auto [a, b] = sc::make_async_and_peer<it::posix_harness>(*engine);
        it::tracker tr;
        std::optional<send_result> s;
        std::optional<receive_outcome> r;
        char buf[100];
        it::start(tr, it::receive_into(a, buf, sizeof buf), r);
        it::start(tr, it::send_string(a, std::string(32u << 20, 's')), s);
        REQUIRE(tr.pending() == 2);
        b.reset();
        tr.wait(*engine, "send and receive pending at reset");
        REQUIRE(r.has_value());
        REQUIRE(s.has_value());
        CHECK(r->result == receive_result::abandoned);
        CHECK(r->bytes_received == 0);
        // The connection was reset while the send was pending.
        CHECK(*s == send_result::abandoned);
    }
    it::drain(*engine);
}

// ==== half-close ==================================================================

TEST_CASE("shutdown_send: 1 MiB of queued sends, then the FIN; the peer gets every byte, then abandoned, and can "
          "still reply",
          "[integration][shutdown]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() { sc::half_close<H>(e); });
}

TEST_CASE("shutdown_send on a custom transport socket is unsupported", "[integration][shutdown]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    const asock::custom_transport t{[](void*, const void*, std::size_t) { return 0; }, nullptr,
                                    [](void*, void*, std::size_t) { return 0; }, nullptr};
    asock::tcp_socket s(*engine, t);
    REQUIRE(s.valid());
    CHECK(s.shutdown_send() == asock::shutdown_result::not_open); // not OPEN yet
    auto [a, b] = it::posix_harness::native_pair();
    REQUIRE(s.open(a) == asock::open_result::ok);
    CHECK(s.shutdown_send() == asock::shutdown_result::unsupported);
    s.close();
    ::close(b);
}

// ==== scale =======================================================================

TEST_CASE("1000 socket pairs open at once, each echoing its own message", "[integration][scale]")
{
    constexpr int pairs = 1000;
    const rlim_t limit = it::raise_fd_limit();
    if (limit < static_cast<rlim_t>(2 * pairs + 64)) {
        WARN("RLIMIT_NOFILE hard limit " << limit << " is below the " << 2 * pairs + 64
                                         << " descriptors this test needs: skipped");
        return;
    }
    const unsigned threads = GENERATE(0u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    sc::many_sockets<it::posix_local_harness>(*engine, pairs);
}

// ==== a large send through EAGAIN ==================================================

TEST_CASE("regression: a 64 MiB send that hits EAGAIN never uses freed memory and arrives intact",
          "[integration][regression][large]")
{
    const unsigned threads = GENERATE(0u, 1u);
    const bool tcp = GENERATE(false, true);
    const bool temporary_list = GENERATE(false, true);
    CAPTURE(threads, tcp, temporary_list);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    it::with_harness(tcp, [&]<class H>() { sc::large_send_late_reader<H>(*engine, temporary_list); });
}

// ==== notify_io_async ==============================================================

TEST_CASE("notify_io_async in / out over real sockets", "[integration][notify]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    SECTION("out on a socket with room completes out")
    {
        CHECK(it::run(*engine, notify(a, notify_io_type::out)) == notify_io_result::out);
    }
    SECTION("in waits for data, completes in, and moves no data")
    {
        it::tracker tr;
        std::optional<notify_io_result> n;
        it::start(tr, notify(a, notify_io_type::in), n);
        CHECK(tr.pending() == 1);
        REQUIRE(b.write_all("ping"));
        tr.wait(*engine, "notify in");
        REQUIRE(n.has_value());
        CHECK(*n == notify_io_result::in);
        char buf[16];
        const receive_outcome r = it::run(*engine, it::receive_into(a, buf, sizeof buf));
        REQUIRE(r.result == receive_result::ok);
        CHECK(std::string(buf, r.bytes_received) == "ping");
    }
    SECTION("in with data already there completes in")
    {
        REQUIRE(b.write_all("x"));
        CHECK(it::run(*engine, notify(a, notify_io_type::in)) == notify_io_result::in);
    }
    SECTION("out waits while the send buffer is full, completes out once the peer reads")
    {
        const std::size_t filled = it::fill_send_buffer(a.native_handle());
        REQUIRE(filled > 0);
        it::tracker tr;
        std::optional<notify_io_result> n;
        it::start(tr, notify(a, notify_io_type::out), n);
        CHECK(tr.pending() == 1);
        std::string drained;
        std::thread reader([&] { drained = b.read_string(filled); });
        tr.wait(*engine, "notify out");
        reader.join();
        CHECK(drained.size() == filled);
        REQUIRE(n.has_value());
        CHECK(*n == notify_io_result::out);
    }
    SECTION("in when the peer hangs up completes abandoned")
    {
        it::tracker tr;
        std::optional<notify_io_result> n;
        it::start(tr, notify(a, notify_io_type::in), n);
        b.close();
        tr.wait(*engine, "notify in at hang-up");
        REQUIRE(n.has_value());
        CHECK(*n == notify_io_result::abandoned);
        // Already hung up: a new one completes abandoned at once.
        CHECK(it::run(*engine, notify(a, notify_io_type::in)) == notify_io_result::abandoned);
    }
    SECTION("pending in and out are both abandoned by close")
    {
        it::fill_send_buffer(a.native_handle());
        it::tracker tr;
        std::optional<notify_io_result> nin;
        std::optional<notify_io_result> nout;
        it::start(tr, notify(a, notify_io_type::in), nin);
        it::start(tr, notify(a, notify_io_type::out), nout);
        CHECK(tr.pending() == 2);
        a.close();
        tr.wait(*engine, "notifies at close");
        CHECK(nin == notify_io_result::abandoned);
        CHECK(nout == notify_io_result::abandoned);
    }
    SECTION("not_open after close, on an empty socket; invalid_argument for a bad type")
    {
        a.close();
        CHECK(it::run(*engine, notify(a, notify_io_type::in)) == notify_io_result::not_open);
        asock::tcp_socket empty;
        CHECK(it::run(*engine, notify(empty, notify_io_type::out)) == notify_io_result::not_open);
        asock::tcp_socket c = it::open_socket(*engine, it::make_socketpair().first);
        CHECK(it::run(*engine, notify(c, static_cast<notify_io_type>(9))) == notify_io_result::invalid_argument);
    }
    it::drain(*engine);
}

TEST_CASE("notify_io_async in when a TCP peer resets reports the error or the hang-up", "[integration][notify]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    auto [fa, fb] = it::make_tcp_pair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);
    it::tracker tr;
    std::optional<notify_io_result> n;
    it::start(tr, notify(a, notify_io_type::in), n);
    b.reset();
    tr.wait(*engine, "notify at reset");
    REQUIRE(n.has_value());
    CHECK((*n == notify_io_result::error || *n == notify_io_result::abandoned));
}

// ==== TCP helpers ====================================================================

TEST_CASE("asock::connect reports connection refused", "[integration][tcp]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    // A bound socket that does not listen: connecting to its port is refused,
    // and no other process can take the port meanwhile.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const std::uint16_t port = ntohs(addr.sin_port);

    auto outcome = it::run(*engine, asock::connect(*engine, "127.0.0.1", port));
    CHECK_FALSE(outcome);
    CHECK(outcome.error == std::errc::connection_refused);
    CHECK_FALSE(outcome.error.message().empty()); // the system's text (system:111 "Connection refused")
    CHECK(outcome.error.message() != "Unknown error");
    CHECK_FALSE(outcome.socket.valid());
    ::close(fd);
    it::drain(*engine);
}

TEST_CASE("tcp_listener accepts connections made with asock::connect; close ends a pending accept",
          "[integration][tcp]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto listened = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
    const std::error_code ec = listened.error;
    auto& listener = listened.listener;
    REQUIRE_FALSE(ec);

    it::tracker tr;
    std::optional<asock::accept_outcome<asock::default_platform>> accepted;
    it::start(tr, listener.accept(), accepted);
    auto connected = it::run(*engine, asock::connect(*engine, "127.0.0.1", listener.port()));
    REQUIRE(connected);
    tr.wait(*engine, "accept");
    REQUIRE(accepted.has_value());
    REQUIRE(*accepted);
    REQUIRE(accepted->socket.state() == asock::socket_state::open);

    // Bytes flow both ways between the two sockets the helpers produced.
    CHECK(it::run(*engine, it::send_string(connected.socket, "hello")) == send_result::ok);
    std::string got;
    CHECK(it::run(*engine, it::receive_exact(accepted->socket, got, 5)) == receive_result::ok);
    CHECK(got == "hello");

    // A pending accept ends with bad_file_descriptor when the listener closes.
    std::optional<asock::accept_outcome<asock::default_platform>> second;
    it::start(tr, listener.accept(), second);
    CHECK(tr.pending() == 1);
    listener.close();
    tr.wait(*engine, "accept at listener close");
    REQUIRE(second.has_value());
    CHECK_FALSE(*second);
    CHECK(second->error == std::errc::bad_file_descriptor);
    // So does an accept started after the close (accept4 itself would say EINVAL).
    std::optional<asock::accept_outcome<asock::default_platform>> third;
    it::start(tr, listener.accept(), third);
    tr.wait(*engine, "accept after listener close");
    REQUIRE(third.has_value());
    CHECK(third->error == std::errc::bad_file_descriptor);
    it::drain(*engine);
}

TEST_CASE("bad input: open refuses a pipe or a file; listen reports its error as connect does",
          "[integration][bad_input][SRS_ASYNC_SOCKET_LINUX_11_003]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    int p[2];
    REQUIRE(::pipe(p) == 0);
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    for (const int fd : {p[0], p[1], ::fileno(f)}) {
        asock::tcp_socket s(*engine);
        CHECK(s.open(fd, asock::basic_handle_owner<int>{}) == asock::open_result::error);
        CHECK(s.state() == asock::socket_state::created);
    }
    ::close(p[0]);
    ::close(p[1]);
    std::fclose(f);

    // Not an address of this machine: bind fails, and the outcome says so.
    auto bad = asock::tcp_listener_t::listen(*engine, "192.0.2.1", 0);
    CHECK_FALSE(bad);
    CHECK(bad.error);
    CHECK_FALSE(bad.listener.valid());
    auto good = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
    REQUIRE(good);
    CHECK(good.listener.valid());
    CHECK(good.listener.port() != 0);
}
