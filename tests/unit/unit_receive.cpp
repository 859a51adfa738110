// tests/unit/unit_receive.cpp: async_socket::receive_async, callback and
// co_await forms, over the epoll backend with fake system calls.
#include "unit_helpers.hpp"

#include <limits>

using namespace asock_test;

namespace {

using lengths = std::vector<std::size_t>;

// A receive buffer pre-filled with a byte no test sends, to see what was written.
std::string blank(std::size_t n)
{
    return std::string(n, '#');
}

} // namespace

// ---- argument checks ------------------------------------------------------------------

TEST_CASE("receive on an empty socket is rejected", "[SRS_ASYNC_SOCKET_LINUX_11_064][SRS_ASYNC_SOCKET_LINUX_11_078]")
{
    test_env env;
    fake_socket empty;
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    receive_probe p;
    const start_result r = p.start(empty, b);
    CHECK(r != start_result::started);
    CHECK(r == start_result::not_open);
    CHECK(asock::sync_wait(*env.engine, empty.receive_async(b)).result == receive_result::not_open);
    env.drain();
    CHECK(p.calls == 0);
}

TEST_CASE("receive argument checks", "[SRS_ASYNC_SOCKET_LINUX_11_065][SRS_ASYNC_SOCKET_LINUX_11_066]"
                                     "[SRS_ASYNC_SOCKET_LINUX_11_067][SRS_ASYNC_SOCKET_LINUX_11_068]"
                                     "[SRS_ASYNC_SOCKET_LINUX_11_069][SRS_ASYNC_SOCKET_LINUX_11_078]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("never read");
    std::string in = blank(4);
    char byte = 0;
    receive_probe p;
    std::vector<mutable_buffer> bufs;
    SECTION("null buffer array [11_065]")
    {
        std::uint32_t total = 0;
        CHECK_FALSE(asock::detail::validate_buffers(static_cast<const mutable_buffer*>(nullptr), 1, total));
    }
    SECTION("zero buffer count [11_066]")
    {
        const mutable_buffer one[1]{mbuf(in)};
        CHECK(p.start(s, std::span<const mutable_buffer>(one, 0)) == start_result::invalid_argument);
        CHECK(asock::sync_wait(*env.engine, s.receive_async(std::span<const mutable_buffer>(one, 0))).result ==
              receive_result::invalid_argument);
    }
    SECTION("a null buffer [11_067]")
    {
        bufs = {mbuf(in), mutable_buffer{nullptr, 4}};
    }
    SECTION("a zero-length buffer [11_068]")
    {
        bufs = {mbuf(in), mutable_buffer{in.data(), 0}};
    }
    SECTION("more than UINT32_MAX bytes in total [11_069]")
    {
        bufs = {mutable_buffer{&byte, std::numeric_limits<std::uint32_t>::max()}, mutable_buffer{&byte, 1}};
    }
    // The empty list stands for both a null array and a zero count.
    const std::span<const mutable_buffer> span(bufs.data(), bufs.size());
    const start_result r = p.start(s, span);
    CHECK(r != start_result::started);
    CHECK(r == start_result::invalid_argument);
    CHECK(asock::sync_wait(*env.engine, s.receive_async(span)).result == receive_result::invalid_argument);
    env.drain();
    CHECK(p.calls == 0);
    CHECK(fake().sock(fd).recvs.empty());
    CHECK(in == blank(4));
}

TEST_CASE("receive without a completion callback is rejected", "[SRS_ASYNC_SOCKET_LINUX_11_070][SRS_ASYNC_SOCKET_LINUX_11_078]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("abc");
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    asock::receive_operation op;
    const start_result r = s.receive_async(op, b, nullptr, nullptr);
    CHECK(r != start_result::started);
    CHECK(r == start_result::invalid_argument);
    env.drain();
    CHECK(fake().sock(fd).recvs.empty());
}

TEST_CASE("receive accepts a null callback context", "[SRS_ASYNC_SOCKET_LINUX_11_071]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("abc");
    static int calls;
    static void* context_seen;
    static std::uint32_t bytes;
    calls = 0;
    context_seen = &calls;
    bytes = 0;
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    asock::receive_operation op;
    auto cb = [](void* c, receive_result r, std::uint32_t n) {
        ++calls;
        context_seen = c;
        bytes = r == receive_result::ok ? n : 0;
    };
    CHECK(s.receive_async(op, b, cb, nullptr) == start_result::started);
    env.drain();
    CHECK(calls == 1);
    CHECK(context_seen == nullptr);
    CHECK(bytes == 3);
}

TEST_CASE("receive on a socket that is not OPEN is rejected", "[SRS_ASYNC_SOCKET_LINUX_11_072][SRS_ASYNC_SOCKET_LINUX_11_078]")
{
    test_env env;
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    receive_probe p;
    fake_socket s(*env.engine);
    SECTION("created, never opened")
    {
    }
    SECTION("closed")
    {
        const int fd = fake().make_socket();
        REQUIRE(s.open(fd) == open_result::ok);
        fake().sock(fd).data("abc");
        s.close();
    }
    const start_result r = p.start(s, b);
    CHECK(r != start_result::started);
    CHECK(r == start_result::not_open);
    CHECK(asock::sync_wait(*env.engine, s.receive_async(b)).result == receive_result::not_open);
    env.drain();
    CHECK(p.calls == 0);
    CHECK(in == blank(4));
}

// ---- receiving ---------------------------------------------------------------------------------

TEST_CASE("a started receive returns 0 and calls back later on the engine, even when data is there",
          "[SRS_ASYNC_SOCKET_LINUX_11_077][SRS_ASYNC_SOCKET_LINUX_11_073][SRS_ASYNC_SOCKET_LINUX_11_074]"
          "[SRS_ASYNC_SOCKET_LINUX_11_102][SRS_ASYNC_SOCKET_LINUX_11_083][SRS_ASYNC_SOCKET_LINUX_04_007]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const int adds_after_open = fake().epoll_add_calls;
    fake().sock(fd).data("hello");
    std::string in = blank(8);
    const mutable_buffer b[1]{mbuf(in)};
    receive_probe p;
    const start_result r = p.start(s, b);
    CHECK(static_cast<int>(r) == 0);
    CHECK(p.calls == 0);
    env.drain();
    CHECK(p.calls == 1);
    CHECK(p.result == receive_result::ok);
    CHECK(p.bytes == 5);
    CHECK(in == "hello###");
    CHECK(fake().epoll_add_calls == adds_after_open);
    REQUIRE(fake().sock(fd).recvs.size() == 1);
    CHECK(fake().sock(fd).recvs[0].lengths == lengths{8});
}

TEST_CASE("a co_await receive with data there completes without suspending", "[SRS_ASYNC_SOCKET_LINUX_11_083][SRS_ASYNC_SOCKET_LINUX_11_092]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("hi");
    std::string in = blank(4);
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(in)); });
    CHECK(a.completions == 1);
    CHECK(a.value == receive_outcome{receive_result::ok, 2});
    CHECK(in == "hi##");
    env.drain();
    CHECK(a.completions == 1);
    CHECK(a.extra_resumes == 0);
}

TEST_CASE("a receive that would block waits for EPOLLIN; events without data leave it waiting",
          "[SRS_ASYNC_SOCKET_LINUX_11_082][SRS_ASYNC_SOCKET_LINUX_11_083][SRS_ASYNC_SOCKET_LINUX_11_088]"
          "[SRS_ASYNC_SOCKET_LINUX_11_089][SRS_ASYNC_SOCKET_LINUX_11_092]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const int e = GENERATE(EAGAIN, EWOULDBLOCK);
    std::string in = blank(6);
    const mutable_buffer b[1]{mbuf(in)};
    receive_probe p;
    awaited<receive_outcome> a;
    const bool callback_form = GENERATE(true, false);
    fake().sock(fd).recv_fails(e);
    if (callback_form) {
        REQUIRE(p.start(s, b) == start_result::started);
    } else {
        await_into(a, [&] { return s.receive_async(b); });
    }
    env.drain();
    fake().sock(fd).recv_fails(e);
    REQUIRE(fake().raise(fd, EPOLLIN)); // spurious: the call still would block
    env.drain();
    REQUIRE(fake().raise(fd, EPOLLIN)); // spurious: nothing scripted (EAGAIN)
    env.drain();
    CHECK(p.calls == 0);
    CHECK_FALSE(a.done());
    CHECK(in == blank(6));

    fake().sock(fd).data("abc");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    if (callback_form) {
        CHECK(p.calls == 1);
        CHECK(p.result == receive_result::ok);
        CHECK(p.bytes == 3);
    } else {
        CHECK(a.completions == 1);
        CHECK(a.value == receive_outcome{receive_result::ok, 3});
    }
    CHECK(in == "abc###");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(p.calls + a.completions == 1);
    CHECK(a.extra_resumes == 0);
}

TEST_CASE("receive retries a call interrupted by a signal", "[SRS_ASYNC_SOCKET_LINUX_11_088]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).recv_fails(EINTR).recv_fails(EINTR).data("ok");
    std::string in = blank(4);
    const auto out = asock::sync_wait(*env.engine, s.receive_async(mbuf(in)));
    CHECK(out == receive_outcome{receive_result::ok, 2});
    CHECK(in == "ok##");
}

TEST_CASE("a receive that finds the end of the stream completes abandoned", "[SRS_ASYNC_SOCKET_LINUX_11_091]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    receive_probe p;
    SECTION("callback form")
    {
        const bool at_once = GENERATE(true, false);
        if (at_once) {
            fake().sock(fd).eof();
        }
        REQUIRE(p.start(s, b) == start_result::started);
        env.drain();
        if (!at_once) {
            CHECK(p.calls == 0);
            fake().sock(fd).eof();
            REQUIRE(fake().raise(fd, EPOLLIN | EPOLLRDHUP));
            env.drain();
        }
        CHECK(p.calls == 1);
        CHECK(p.result == receive_result::abandoned);
        CHECK(p.bytes == 0);
    }
    SECTION("co_await form")
    {
        fake().sock(fd).eof();
        CHECK(asock::sync_wait(*env.engine, s.receive_async(b)) == receive_outcome{receive_result::abandoned, 0});
    }
    CHECK(in == blank(4));
}

TEST_CASE("a receive that finds the connection reset completes abandoned",
          "[SRS_ASYNC_SOCKET_LINUX_11_090][SRS_ASYNC_SOCKET_LINUX_11_088]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    receive_probe p;
    REQUIRE(p.start(s, b) == start_result::started);
    env.drain();
    fake().sock(fd).recv_fails(ECONNRESET);
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(p.calls == 1);
    CHECK(p.result == receive_result::abandoned);
    CHECK(p.bytes == 0);

    fake().sock(fd).recv_fails(ECONNRESET);
    CHECK(asock::sync_wait(*env.engine, s.receive_async(b)) == receive_outcome{receive_result::abandoned, 0});
}

TEST_CASE("a receive that fails otherwise completes with error", "[SRS_ASYNC_SOCKET_LINUX_11_095][SRS_ASYNC_SOCKET_LINUX_11_088]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const int e = GENERATE(EIO, EBADF, ENOTCONN, ETIMEDOUT, ECONNREFUSED, ENOMEM);
    std::string in = blank(4);
    const mutable_buffer b[1]{mbuf(in)};
    SECTION("callback form, at once")
    {
        fake().sock(fd).recv_fails(e);
        receive_probe p;
        REQUIRE(p.start(s, b) == start_result::started);
        env.drain();
        CHECK(p.calls == 1);
        CHECK(p.result == receive_result::error);
        CHECK(p.bytes == 0);
    }
    SECTION("callback form, after waiting")
    {
        receive_probe p;
        REQUIRE(p.start(s, b) == start_result::started);
        env.drain();
        fake().sock(fd).recv_fails(e);
        REQUIRE(fake().raise(fd, EPOLLIN));
        env.drain();
        CHECK(p.calls == 1);
        CHECK(p.result == receive_result::error);
    }
    SECTION("co_await form")
    {
        fake().sock(fd).recv_fails(e);
        CHECK(asock::sync_wait(*env.engine, s.receive_async(b)) == receive_outcome{receive_result::error, 0});
    }
    CHECK(s.state() == socket_state::open);
}

// ---- several buffers, several receives -------------------------------------------------------

TEST_CASE("a multi-buffer receive fills the buffers in order in one scattering call",
          "[SRS_ASYNC_SOCKET_LINUX_11_092][SRS_ASYNC_SOCKET_LINUX_11_074][SRS_ASYNC_SOCKET_LINUX_04_007]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string a = blank(3), b = blank(4), c = blank(5);
    const mutable_buffer bufs[3]{mbuf(a), mbuf(b), mbuf(c)};
    receive_probe p;
    SECTION("partly filled")
    {
        fake().sock(fd).data("0123456789");
        REQUIRE(p.start(s, bufs) == start_result::started);
        env.drain();
        CHECK(p.bytes == 10);
        CHECK(a == "012");
        CHECK(b == "3456");
        CHECK(c == "789##");
    }
    SECTION("exactly filled; the rest stays for the next receive")
    {
        fake().sock(fd).data("abcdefghijklXYZ");
        REQUIRE(p.start(s, bufs) == start_result::started);
        env.drain();
        CHECK(p.bytes == 12);
        CHECK(a + b + c == "abcdefghijkl");
        std::string rest = blank(8);
        CHECK(asock::sync_wait(*env.engine, s.receive_async(mbuf(rest))) == receive_outcome{receive_result::ok, 3});
        CHECK(rest == "XYZ#####");
    }
    CHECK(p.calls == 1);
    CHECK(p.result == receive_result::ok);
    REQUIRE_FALSE(fake().sock(fd).recvs.empty());
    CHECK(fake().sock(fd).recvs[0].lengths == lengths{3, 4, 5});
}

TEST_CASE("a receive with more buffers than one call takes fills them all, in order", "[SRS_ASYNC_SOCKET_LINUX_11_092]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string expected;
    for (int i = 0; i < 150; ++i) {
        expected.push_back(static_cast<char>('A' + i % 26));
    }
    fake().sock(fd).data(expected);
    std::string in = blank(expected.size());
    std::vector<mutable_buffer> bufs;
    for (std::size_t i = 0; i < in.size(); ++i) {
        bufs.push_back(mutable_buffer{in.data() + i, 1});
    }
    const auto out = asock::sync_wait(*env.engine, s.receive_async(bufs));
    CHECK(out == receive_outcome{receive_result::ok, static_cast<std::uint32_t>(expected.size())});
    CHECK(in == expected);
    std::size_t listed = 0;
    for (const auto& call : fake().sock(fd).recvs) {
        listed += call.lengths.size();
    }
    CHECK(listed >= bufs.size()); // every buffer offered
}

TEST_CASE("receives complete in the order they were started, each with the next bytes of the stream",
          "[SRS_ASYNC_SOCKET_LINUX_11_092]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::vector<int> order;
    std::string in1 = blank(4), in2 = blank(4), in3 = blank(4), in4 = blank(4);
    const mutable_buffer b1[1]{mbuf(in1)}, b2[1]{mbuf(in2)}, b4[1]{mbuf(in4)};
    receive_probe p1, p2, p4;
    p1.log = p2.log = p4.log = &order;
    p1.id = 1;
    p2.id = 2;
    p4.id = 4;
    awaited<receive_outcome> a3;
    REQUIRE(p1.start(s, b1) == start_result::started);
    REQUIRE(p2.start(s, b2) == start_result::started);
    await_into(a3, [&] { return s.receive_async(mbuf(in3)); }, [&](const receive_outcome&) { order.push_back(3); });
    REQUIRE(p4.start(s, b4) == start_result::started);
    env.drain();
    CHECK(order.empty());

    fake().sock(fd).data("aaaabbbbcc");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(order == std::vector<int>{1, 2, 3});
    CHECK(in1 == "aaaa");
    CHECK(in2 == "bbbb");
    CHECK(in3 == "cc##");
    CHECK(a3.value == receive_outcome{receive_result::ok, 2});

    fake().sock(fd).data("d");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(order == std::vector<int>{1, 2, 3, 4});
    CHECK(in4 == "d###");
    CHECK(p1.calls + p2.calls + p4.calls + a3.completions == 4);
}

TEST_CASE("bytes that arrived before a hang-up are delivered first, then abandoned",
          "[SRS_ASYNC_SOCKET_LINUX_11_080][SRS_ASYNC_SOCKET_LINUX_11_081][SRS_ASYNC_SOCKET_LINUX_11_091]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const std::uint32_t ev = GENERATE(std::uint32_t{EPOLLRDHUP}, std::uint32_t{EPOLLIN | EPOLLRDHUP},
                                      std::uint32_t{EPOLLHUP}, std::uint32_t{EPOLLIN | EPOLLHUP | EPOLLRDHUP});
    std::string in1 = blank(8), in2 = blank(8);
    const mutable_buffer b1[1]{mbuf(in1)}, b2[1]{mbuf(in2)};
    receive_probe p1, p2;
    REQUIRE(p1.start(s, b1) == start_result::started);
    REQUIRE(p2.start(s, b2) == start_result::started);
    env.drain();
    fake().sock(fd).data("last").eof();
    REQUIRE(fake().raise(fd, ev));
    env.drain();
    CHECK(p1.calls == 1);
    CHECK(p1.result == receive_result::ok);
    CHECK(p1.bytes == 4);
    CHECK(in1 == "last####");
    CHECK(p2.calls == 1);
    CHECK(p2.result == receive_result::abandoned);
    CHECK(in2 == blank(8));

    // The end of the stream stays: a later receive is abandoned too.
    CHECK(asock::sync_wait(*env.engine, s.receive_async(b2)) == receive_outcome{receive_result::abandoned, 0});
}

TEST_CASE("EPOLLERR retries the receive: bytes before the error come first, then the error",
          "[SRS_ASYNC_SOCKET_LINUX_11_085][SRS_ASYNC_SOCKET_LINUX_11_086]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in1 = blank(8), in2 = blank(8);
    const mutable_buffer b1[1]{mbuf(in1)}, b2[1]{mbuf(in2)};
    receive_probe p1, p2;
    REQUIRE(p1.start(s, b1) == start_result::started);
    REQUIRE(p2.start(s, b2) == start_result::started);
    env.drain();
    SECTION("an error: error")
    {
        fake().sock(fd).data("tail").recv_fails(ETIMEDOUT);
        REQUIRE(fake().raise(fd, EPOLLERR));
        env.drain();
        CHECK(p2.result == receive_result::error);
    }
    SECTION("a reset: abandoned")
    {
        fake().sock(fd).data("tail").recv_fails(ECONNRESET);
        REQUIRE(fake().raise(fd, EPOLLERR | EPOLLHUP));
        env.drain();
        CHECK(p2.result == receive_result::abandoned);
    }
    CHECK(p1.calls == 1);
    CHECK(p1.result == receive_result::ok);
    CHECK(in1 == "tail####");
    CHECK(p2.calls == 1);
    CHECK(p2.bytes == 0);
}

TEST_CASE("a receive completes with the bytes it has once at least one arrived", "[SRS_ASYNC_SOCKET_LINUX_11_092]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("x");
    std::string in = blank(64);
    const auto out = asock::sync_wait(*env.engine, s.receive_async(mbuf(in)));
    CHECK(out == receive_outcome{receive_result::ok, 1});
    CHECK(in[0] == 'x');
    CHECK(in.substr(1) == blank(63));
}

// ---- custom transport ----------------------------------------------------------------------

TEST_CASE("with a custom transport, receive calls on_recv buffer by buffer until it would block",
          "[SRS_ASYNC_SOCKET_LINUX_11_083][SRS_ASYNC_SOCKET_LINUX_11_092][SRS_ASYNC_SOCKET_LINUX_11_088]")
{
    test_env env;
    fake_transport t;
    int fd = -1;
    fake_socket s = env.open_socket(fd, t.get());
    std::string a = blank(3), b = blank(4);
    const mutable_buffer bufs[2]{mbuf(a), mbuf(b)};
    receive_probe p;
    REQUIRE(p.start(s, bufs) == start_result::started);
    env.drain(); // on_recv: EAGAIN
    CHECK(p.calls == 0);
    t.ep.data("ab").data("c").recv_fails(EINTR).data("de"); // then EAGAIN
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(p.calls == 1);
    CHECK(p.result == receive_result::ok);
    CHECK(p.bytes == 5);
    CHECK(a == "abc");
    CHECK(b == "de##");
    std::vector<std::size_t> asked;
    for (const auto& c : t.ep.recvs) {
        REQUIRE(c.lengths.size() == 1);
        asked.push_back(c.lengths[0]);
    }
    // EAGAIN; then 3 ("ab"), the rest of the first buffer (1: "c"), the second
    // buffer (4: EINTR, then "de"), what is left of it (2: EAGAIN).
    CHECK(asked == std::vector<std::size_t>{3, 3, 1, 4, 4, 2});
    CHECK(fake().sock(fd).recvs.empty()); // the descriptor itself is never read
}

TEST_CASE("with a custom transport, receive maps on_recv's results like recv's",
          "[SRS_ASYNC_SOCKET_LINUX_11_090][SRS_ASYNC_SOCKET_LINUX_11_091][SRS_ASYNC_SOCKET_LINUX_11_095]")
{
    test_env env;
    fake_transport t;
    int fd = -1;
    fake_socket s = env.open_socket(fd, t.get());
    std::string in = blank(4);
    receive_outcome expected{};
    SECTION("0: abandoned")
    {
        t.ep.eof();
        expected = {receive_result::abandoned, 0};
    }
    SECTION("ECONNRESET: abandoned")
    {
        t.ep.recv_fails(ECONNRESET);
        expected = {receive_result::abandoned, 0};
    }
    SECTION("another errno: error")
    {
        t.ep.recv_fails(EIO);
        expected = {receive_result::error, 0};
    }
    SECTION("bytes, then the end: the bytes")
    {
        t.ep.data("zz").eof();
        expected = {receive_result::ok, 2};
    }
    CHECK(asock::sync_wait(*env.engine, s.receive_async(mbuf(in))) == expected);
}
