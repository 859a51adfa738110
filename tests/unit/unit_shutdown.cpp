// tests/unit/unit_shutdown.cpp: async_socket::shutdown_send (half-close) over
// the epoll backend with fake system calls: when the FIN (shutdown SHUT_WR)
// goes, what sends and receives do afterwards, and when no FIN goes at all.
#include "unit_helpers.hpp"

#include <asock/format.hpp>

#include <cerrno>
#include <string>
#include <vector>

using namespace asock_test;

namespace {

std::vector<int> fins() { return fake().shutdown_send_fds; }

} // namespace

TEST_CASE("shutdown_result values have names", "[shutdown]")
{
    CHECK(asock::to_string(shutdown_result::ok) == "ok");
    CHECK(asock::to_string(shutdown_result::not_open) == "not_open");
    CHECK(asock::to_string(shutdown_result::error) == "error");
    CHECK(asock::to_string(shutdown_result::unsupported) == "unsupported");
    CHECK(fmt::format("{}", shutdown_result::unsupported) == "unsupported");
}

TEST_CASE("shutdown_send on an idle socket sends the FIN at once", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    CHECK(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins() == std::vector<int>{fd});
    CHECK(fake().shutdown_fds.empty()); // a half-close, not the owner's full shutdown
    CHECK(s.state() == socket_state::open);
    env.drain();
    CHECK(fins() == std::vector<int>{fd});
}

TEST_CASE("shutdown_send behind a blocked send sends the FIN only once that send completed", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).accept(2); // then EAGAIN: the rest waits for EPOLLOUT
    std::string first = "first-";
    std::string second = "second";
    const const_buffer b1[1]{cbuf(first)};
    const const_buffer b2[1]{cbuf(second)};
    send_probe p1;
    send_probe p2;
    REQUIRE(p1.start(s, b1) == send_sync_result::ok);
    REQUIRE(p2.start(s, b2) == send_sync_result::ok);
    REQUIRE(p1.calls == 0);

    CHECK(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins().empty()); // deferred: bytes accepted before it are not all out

    fake().sock(fd).accept(5); // part of the rest, then EAGAIN again
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(p1.calls == 1);
    CHECK(p1.result == send_result::ok);
    CHECK(p2.calls == 0);
    CHECK(fins().empty());

    fake().sock(fd).accept_all();
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(p2.calls == 1);
    CHECK(p2.result == send_result::ok);
    CHECK(fake().sock(fd).wire == "first-second");
    CHECK(fins() == std::vector<int>{fd});

    REQUIRE(fake().raise(fd, EPOLLOUT)); // later edges send nothing more
    env.drain();
    CHECK(fins() == std::vector<int>{fd});
}

TEST_CASE("sends after shutdown_send are rejected not_open, in both forms", "[shutdown]")
{
    test_env env;
    int fd = -1;
    send_probe queued; // outlives the socket: its callback may run when the socket goes
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).auto_accept = true;
    std::string out = "late";
    const const_buffer b[1]{cbuf(out)};
    SECTION("after an immediate FIN") {}
    SECTION("while the FIN waits for a queued send")
    {
        fake().sock(fd).auto_accept = false; // EAGAIN: the first send queues
        REQUIRE(queued.start(s, b) == send_sync_result::ok);
        REQUIRE(queued.calls == 0);
        fake().sock(fd).sends.clear();
    }
    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    send_probe p;
    CHECK(p.start(s, b) == send_sync_result::not_open);
    CHECK(asock::sync_wait(*env.engine, s.send_async(b)) == send_result::not_open);
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out))) == send_result::not_open);
    CHECK(p.calls == 0);
    CHECK(fake().sock(fd).sends.empty()); // no system call for them
}

TEST_CASE("receives go on after shutdown_send until the peer closes", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    std::string in(16, '\0');

    // co_await form: the reply arrives after the FIN.
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(in)); });
    env.drain();
    CHECK_FALSE(a.done());
    fake().sock(fd).data("reply");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    REQUIRE(a.done());
    CHECK(*a.value == receive_outcome{receive_result::ok, 5});
    CHECK(in.substr(0, 5) == "reply");

    // Callback form: the peer's own FIN ends the stream.
    fake().sock(fd).data("more").eof();
    REQUIRE(fake().raise(fd, EPOLLIN | EPOLLRDHUP));
    receive_probe r1;
    receive_probe r2;
    const mutable_buffer b[1]{mbuf(in)};
    REQUIRE(r1.start(s, b) == start_result::started);
    env.drain();
    CHECK(r1.calls == 1);
    CHECK(r1.result == receive_result::ok);
    CHECK(r1.bytes == 4);
    REQUIRE(r2.start(s, b) == start_result::started);
    env.drain();
    CHECK(r2.calls == 1);
    CHECK(r2.result == receive_result::abandoned);
    CHECK(fins() == std::vector<int>{fd});
}

TEST_CASE("a second shutdown_send returns ok and sends nothing more", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    SECTION("after an immediate FIN")
    {
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(fins() == std::vector<int>{fd});
    }
    SECTION("while the FIN waits")
    {
        std::string out = "queued";
        const const_buffer b[1]{cbuf(out)};
        send_probe p;
        REQUIRE(p.start(s, b) == send_sync_result::ok); // EAGAIN: queued
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(fins().empty());
        fake().sock(fd).accept_all();
        REQUIRE(fake().raise(fd, EPOLLOUT));
        env.drain();
        CHECK(p.result == send_result::ok);
        CHECK(fins() == std::vector<int>{fd});
        CHECK(s.shutdown_send() == shutdown_result::ok);
        CHECK(fins() == std::vector<int>{fd});
    }
}

TEST_CASE("shutdown_send on a socket that is not OPEN is not_open", "[shutdown]")
{
    test_env env;
    SECTION("no socket")
    {
        fake_socket empty;
        CHECK(empty.shutdown_send() == shutdown_result::not_open);
    }
    SECTION("created, never opened")
    {
        fake_socket s(*env.engine);
        REQUIRE(s.valid());
        CHECK(s.shutdown_send() == shutdown_result::not_open);
    }
    SECTION("closed")
    {
        int fd = -1;
        fake_socket s = env.open_socket(fd);
        s.close();
        CHECK(s.shutdown_send() == shutdown_result::not_open);
    }
    SECTION("moved from")
    {
        int fd = -1;
        fake_socket s = env.open_socket(fd);
        fake_socket t = std::move(s);
        CHECK(s.shutdown_send() == shutdown_result::not_open); // NOLINT(bugprone-use-after-move): the point
        CHECK(t.shutdown_send() == shutdown_result::ok);
        CHECK(fins().size() == 1);
        return;
    }
    CHECK(fins().empty());
}

TEST_CASE("shutdown_send on a custom transport is unsupported and leaves sending open", "[shutdown]")
{
    test_env env;
    fake_transport t;
    t.ep.auto_accept = true;
    int fd = -1;
    fake_socket s = env.open_socket(fd, t.get());
    CHECK(s.shutdown_send() == shutdown_result::unsupported);
    CHECK(fins().empty());
    std::string out = "still";
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out))) == send_result::ok);
    CHECK(t.ep.wire == "still");
}

TEST_CASE("shutdown_send whose immediate shutdown fails is error, and sending stays closed", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).auto_accept = true;
    fake().fail_shutdown_send = ENOTCONN;
    CHECK(s.shutdown_send() == shutdown_result::error);
    CHECK(fins() == std::vector<int>{fd});
    std::string out = "x";
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out))) == send_result::not_open);
    CHECK(s.shutdown_send() == shutdown_result::ok); // a repeated call
    CHECK(fins().size() == 1);
}

TEST_CASE("shutdown_send is retried when interrupted", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().fail_shutdown_send = EINTR;
    CHECK(s.shutdown_send() == shutdown_result::ok);
    CHECK(fins() == std::vector<int>{fd, fd});
}

TEST_CASE("a queued send that does not complete ok means no FIN", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string out = "abcdef";
    const const_buffer b[1]{cbuf(out)};
    send_probe p;
    std::string second = "behind";
    const const_buffer b2[1]{cbuf(second)};
    send_probe p2;

    SECTION("torn by a reset")
    {
        fake().sock(fd).accept(2);
        REQUIRE(p.start(s, b) == send_sync_result::ok);
        REQUIRE(p2.start(s, b2) == send_sync_result::ok);
        REQUIRE(s.shutdown_send() == shutdown_result::ok);
        fake().sock(fd).send_fails(ECONNRESET);
        REQUIRE(fake().raise(fd, EPOLLOUT | EPOLLERR));
        env.drain();
        CHECK(p.result == send_result::abandoned);
        CHECK(p2.calls == 1);
        CHECK(p2.result == send_result::abandoned); // behind a torn send
    }
    SECTION("failed before any byte went out")
    {
        REQUIRE(p.start(s, b) == send_sync_result::ok); // EAGAIN: queued
        REQUIRE(p2.start(s, b2) == send_sync_result::ok);
        REQUIRE(s.shutdown_send() == shutdown_result::ok);
        fake().sock(fd).send_fails(EIO).accept_all();
        REQUIRE(fake().raise(fd, EPOLLOUT));
        env.drain();
        CHECK(p.result == send_result::error);
        CHECK(p2.calls == 1);
        CHECK(p2.result == send_result::ok); // the stream is whole, but one send of it is missing
        CHECK(fake().sock(fd).wire == "behind");
    }
    SECTION("cancelled while queued")
    {
        REQUIRE(p.start(s, b) == send_sync_result::ok);
        std::stop_source stop;
        awaited<send_result> a;
        await_into(a, [&] { return s.send_async(cbuf(second), stop.get_token()); });
        REQUIRE_FALSE(a.done());
        REQUIRE(s.shutdown_send() == shutdown_result::ok);
        stop.request_stop();
        env.drain();
        REQUIRE(a.done());
        CHECK(a.value == send_result::cancelled);
        fake().sock(fd).accept_all();
        REQUIRE(fake().raise(fd, EPOLLOUT));
        env.drain();
        CHECK(p.result == send_result::ok);
        CHECK(fake().sock(fd).wire == "abcdef");
    }
    CHECK(fins().empty());
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(fins().empty());
    s.close(); // close works as before
    CHECK(s.state() == socket_state::closed);
    CHECK(fins().empty());
}

TEST_CASE("shutdown_send after a torn send is error and sends no FIN", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).accept(1).send_fails(EIO);
    std::string out = "torn";
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out))) == send_result::error);
    CHECK(s.shutdown_send() == shutdown_result::error);
    CHECK(fins().empty());
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out))) == send_result::not_open);
}

TEST_CASE("close after shutdown_send completes pending operations abandoned and sends no deferred FIN",
          "[shutdown]")
{
    test_env env;
    int fd = -1;
    owner_probe owner;
    fd = fake().make_socket();
    fake_socket s(*env.engine);
    REQUIRE(s.open(fd, owner.get()) == open_result::ok);
    std::string out = "pending";
    const const_buffer b[1]{cbuf(out)};
    send_probe sp;
    REQUIRE(sp.start(s, b) == send_sync_result::ok); // EAGAIN: queued
    std::string in(8, '\0');
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe rp;
    REQUIRE(rp.start(s, rb) == start_result::started);
    env.drain(); // the receive finds nothing and waits
    REQUIRE(rp.calls == 0);
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(in)); });
    REQUIRE_FALSE(a.done());

    REQUIRE(s.shutdown_send() == shutdown_result::ok);
    s.close();
    CHECK(sp.calls == 1);
    CHECK(sp.result == send_result::abandoned);
    CHECK(rp.calls == 1);
    CHECK(rp.result == receive_result::abandoned);
    env.drain();
    REQUIRE(a.done());
    CHECK(a.value->result == receive_result::abandoned);
    CHECK(owner.disconnects == 1);
    CHECK(s.state() == socket_state::closed);
    CHECK(fins().empty());
    CHECK(s.shutdown_send() == shutdown_result::not_open);
}

TEST_CASE("shutdown_send from inside a send's callback sends the FIN at once", "[shutdown]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string out = "last words";
    const const_buffer b[1]{cbuf(out)};
    send_probe p;
    shutdown_result seen = shutdown_result::not_open;
    p.then = [&] { seen = s.shutdown_send(); };
    REQUIRE(p.start(s, b) == send_sync_result::ok); // EAGAIN: queued
    fake().sock(fd).accept_all();
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(p.result == send_result::ok);
    CHECK(seen == shutdown_result::ok);
    CHECK(fins() == std::vector<int>{fd});
}

TEST_CASE("destroying a socket with a deferred FIN sends none", "[shutdown]")
{
    test_env env;
    int fd = -1;
    send_probe p;
    std::string out = "queued";
    const const_buffer b[1]{cbuf(out)};
    {
        fake_socket s = env.open_socket(fd);
        REQUIRE(p.start(s, b) == send_sync_result::ok);
        REQUIRE(s.shutdown_send() == shutdown_result::ok);
    }
    CHECK(p.result == send_result::abandoned);
    fake().sock(fd).accept_all();
    fake().raise(fd, EPOLLOUT); // unregistered: dropped
    env.drain();
    CHECK(fins().empty());
}
