// tests/unit/unit_cancel.cpp: cancelling co_await operations through a
// std::stop_token, over the epoll backend with fake system calls.
#include "unit_helpers.hpp"

#include <stop_token>

using namespace asock_test;

namespace {

std::string blank(std::size_t n)
{
    return std::string(n, '#');
}

} // namespace

// ---- stop before start ------------------------------------------------------------------

TEST_CASE("an awaiter whose stop was requested before it starts completes cancelled without any call", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).auto_accept = true;
    fake().sock(fd).data("abc");
    fake().set_readiness(fd, POLLIN | POLLOUT);
    std::stop_source stop;
    stop.request_stop();
    std::string out = "xyz", in = blank(4);

    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out), stop.get_token())) == send_result::cancelled);
    CHECK(asock::sync_wait(*env.engine, s.receive_async(mbuf(in), stop.get_token())) ==
          receive_outcome{receive_result::cancelled, 0});
    CHECK(asock::sync_wait(*env.engine, s.notify_io_async(notify_io_type::in, stop.get_token())) ==
          notify_io_result::cancelled);
    CHECK(fake().sock(fd).sends.empty());
    CHECK(fake().sock(fd).recvs.empty());
    CHECK(fake().poll_requests(fd).empty());
    CHECK(in == blank(4));

    // The socket is untouched: the same operations without a stop go through.
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(out))) == send_result::ok);
    CHECK(fake().sock(fd).wire == "xyz");
}

// ---- stop while queued ---------------------------------------------------------------------

TEST_CASE("a waiting send that is cancelled completes cancelled once; later sends are unaffected", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string out = "never", next = "next";
    std::stop_source stop;
    awaited<send_result> a;
    await_into(a, [&] { return s.send_async(cbuf(out), stop.get_token()); }); // EAGAIN: waits
    REQUIRE_FALSE(a.done());
    stop.request_stop();
    env.drain(); // the resumption is posted to the engine
    CHECK(a.completions == 1);
    CHECK(a.value == send_result::cancelled);

    fake().sock(fd).auto_accept = true;
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(a.completions == 1);
    CHECK(a.extra_resumes == 0);
    CHECK(fake().sock(fd).wire.empty()); // nothing of the cancelled send went out
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(next))) == send_result::ok);
    CHECK(fake().sock(fd).wire == "next");
}

TEST_CASE("cancelling a send queued behind another leaves the other to complete", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string first = "first", second = "second", third = "third";
    std::stop_source stop;
    awaited<send_result> a1, a2, a3;
    await_into(a1, [&] { return s.send_async(cbuf(first)); });
    await_into(a2, [&] { return s.send_async(cbuf(second), stop.get_token()); });
    await_into(a3, [&] { return s.send_async(cbuf(third)); });
    stop.request_stop();
    env.drain();
    CHECK(a2.value == send_result::cancelled);
    CHECK_FALSE(a1.done());
    fake().sock(fd).auto_accept = true;
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(a1.value == send_result::ok);
    CHECK(a3.value == send_result::ok);
    CHECK(fake().sock(fd).wire == "firstthird");
}

TEST_CASE("cancelling a send after part of it went out fails the sends queued behind it and later ones", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string first = "first message", second = "second", third = "third";
    const const_buffer b2[1]{cbuf(second)};
    std::stop_source stop;
    awaited<send_result> a1, a3;
    send_probe p2;
    fake().sock(fd).accept(5); // "first" goes out, then EAGAIN
    await_into(a1, [&] { return s.send_async(cbuf(first), stop.get_token()); });
    REQUIRE(p2.start(s, b2) == send_sync_result::ok);
    await_into(a3, [&] { return s.send_async(cbuf(third)); });
    REQUIRE(fake().sock(fd).wire == "first");

    stop.request_stop();
    // A callback runs on an engine thread (or inside its own start call),
    // never on the thread that requested a stop of another operation.
    CHECK(p2.calls == 0);
    env.drain();
    CHECK(p2.calls == 1);
    CHECK(p2.result == send_result::error);
    CHECK(a1.value == send_result::cancelled);
    CHECK(a3.value == send_result::error);

    // The stream is broken mid-message: nothing more is sent on it.
    fake().sock(fd).auto_accept = true;
    const std::size_t calls = fake().sock(fd).sends.size();
    send_probe p4;
    CHECK(p4.start(s, b2) == send_sync_result::error);
    CHECK(asock::sync_wait(*env.engine, s.send_async(b2)) == send_result::error);
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(fake().sock(fd).sends.size() == calls);
    CHECK(fake().sock(fd).wire == "first");
    CHECK(p4.calls == 0);
    for (int n : {a1.completions, p2.calls, a3.completions}) {
        CHECK(n == 1);
    }
    CHECK(a1.extra_resumes + a3.extra_resumes == 0);
}

TEST_CASE("a waiting receive that is cancelled completes cancelled with nothing read; the data goes to the next", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in1 = blank(4), in2 = blank(4);
    std::stop_source stop;
    awaited<receive_outcome> a1, a2;
    await_into(a1, [&] { return s.receive_async(mbuf(in1), stop.get_token()); });
    await_into(a2, [&] { return s.receive_async(mbuf(in2)); });
    REQUIRE_FALSE(a1.done());
    stop.request_stop();
    env.drain();
    CHECK(a1.completions == 1);
    CHECK(a1.value == receive_outcome{receive_result::cancelled, 0});
    CHECK_FALSE(a2.done());

    fake().sock(fd).data("data");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(a2.value == receive_outcome{receive_result::ok, 4});
    CHECK(in2 == "data");
    CHECK(in1 == blank(4));
    CHECK(a1.completions == 1);
    CHECK(a1.extra_resumes + a2.extra_resumes == 0);
}

TEST_CASE("a waiting notify that is cancelled completes cancelled once", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    std::stop_source stop;
    awaited<notify_io_result> a;
    await_into(a, [&] { return s.notify_io_async(type, stop.get_token()); });
    REQUIRE_FALSE(a.done());
    stop.request_stop();
    env.drain();
    CHECK(a.value == notify_io_result::cancelled);
    REQUIRE(fake().raise(fd, EPOLLIN | EPOLLOUT));
    env.drain();
    CHECK(a.completions == 1);
    CHECK(a.extra_resumes == 0);
}

TEST_CASE("a stop requested after completion changes nothing", "[cancel]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in = blank(4);
    std::stop_source stop;
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(in), stop.get_token()); });
    fake().sock(fd).data("ab");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    REQUIRE(a.done());
    stop.request_stop();
    env.drain();
    CHECK(a.completions == 1);
    CHECK(a.value == receive_outcome{receive_result::ok, 2});
    CHECK(a.extra_resumes == 0);
}

// ---- stop racing a completion on the same thread ---------------------------------------------------

TEST_CASE("a stop for an operation already finished in the same event batch does not complete it again", "[cancel]")
{
    // Two receives finish in one dispatch; the first one's continuation asks the
    // second to stop before the second has been resumed.
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in1 = blank(4), in2 = blank(4);
    std::stop_source stop2;
    awaited<receive_outcome> a1, a2;
    await_into(a1, [&] { return s.receive_async(mbuf(in1)); }, [&](const receive_outcome&) { stop2.request_stop(); });
    await_into(a2, [&] { return s.receive_async(mbuf(in2), stop2.get_token()); });
    fake().sock(fd).data("aaaabb");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(a1.value == receive_outcome{receive_result::ok, 4});
    CHECK(a2.completions == 1);
    CHECK(a2.value == receive_outcome{receive_result::ok, 2}); // the bytes it read are not lost
    CHECK(in2 == "bb##");
    CHECK(a2.extra_resumes == 0);
    env.drain();
    CHECK(a2.extra_resumes == 0);
}

TEST_CASE("a stop for an operation that close is abandoning does not complete it again", "[cancel]")
{
    // close() completes a callback-form receive, whose callback asks a co_await
    // receive, also being abandoned by the same close, to stop.
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in1 = blank(4), in2 = blank(4), in3 = blank(4);
    const mutable_buffer b1[1]{mbuf(in1)}, b3[1]{mbuf(in3)};
    std::stop_source stop;
    receive_probe p1, p3;
    awaited<receive_outcome> a2;
    REQUIRE(p1.start(s, b1) == start_result::started);
    await_into(a2, [&] { return s.receive_async(mbuf(in2), stop.get_token()); });
    REQUIRE(p3.start(s, b3) == start_result::started);
    env.drain();
    p1.then = [&] { stop.request_stop(); };
    s.close();
    CHECK(p1.calls == 1);
    CHECK(p3.calls == 1);
    CHECK(p3.result == receive_result::abandoned);
    env.drain();
    CHECK(a2.completions == 1);
    CHECK(a2.value == receive_outcome{receive_result::abandoned, 0});
    CHECK(a2.extra_resumes == 0);
}

TEST_CASE("a stop for a send that a cancellation is failing does not complete it again", "[cancel]")
{
    // Cancelling a half-sent send fails the sends queued behind it; the first
    // failed one's callback asks a co_await send behind it to stop.
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string first = "first message", second = "second", third = "third", fourth = "fourth";
    const const_buffer b2[1]{cbuf(second)}, b4[1]{cbuf(fourth)};
    std::stop_source stop1, stop3;
    awaited<send_result> a1, a3;
    send_probe p2, p4;
    fake().sock(fd).accept(3);
    await_into(a1, [&] { return s.send_async(cbuf(first), stop1.get_token()); });
    REQUIRE(p2.start(s, b2) == send_sync_result::ok);
    await_into(a3, [&] { return s.send_async(cbuf(third), stop3.get_token()); });
    REQUIRE(p4.start(s, b4) == send_sync_result::ok);
    p2.then = [&] { stop3.request_stop(); };
    stop1.request_stop();
    env.drain();
    CHECK(a1.value == send_result::cancelled);
    CHECK(p2.calls == 1);
    CHECK(p2.result == send_result::error);
    CHECK(a3.completions == 1);
    CHECK(a3.value == send_result::error);
    CHECK(a3.extra_resumes == 0);
    CHECK(p4.calls == 1);
    CHECK(p4.result == send_result::error);
}
