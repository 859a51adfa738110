// tests/unit/unit_receive_drain.cpp: which receives make a system call, over
// the epoll backend with fake system calls. A receive on a socket known to be
// drained waits for the next EPOLLIN edge instead of a recv that could only
// fail with EAGAIN; a receive on a socket that may hold more tries at once.
// "Known drained": a short read from the kernel, or (once TCP_INQ is on, see
// readiness_core::try_receive in include/asock/detail/readiness_core.hpp) a
// read after which the kernel says nothing is left, an exact fill included.
#include "unit_helpers.hpp"

#include <asock/linux/epoll_sys.hpp>

#include <cerrno>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace asock_test;

namespace {

std::string blank(std::size_t n)
{
    return std::string(n, '#');
}

std::size_t recv_calls(int fd)
{
    return fake().sock(fd).recvs.size();
}

// One receive into `in`, which must finish inside the co_await (data there,
// socket not known drained), with the bytes scripted before it.
receive_outcome receive_now(fake_socket& s, std::string& in)
{
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(in)); });
    if (a.completions != 1) {
        s.close(); // completes the waiting receive before `a` goes away
        FAIL("the receive did not finish inside the co_await");
    }
    return *a.value;
}

// Opens a socket whose kernel receives report what they leave behind: the
// first receive fills its 4-byte buffer exactly, which turns TCP_INQ on.
fake_socket open_hinted(test_env& env, int& fd)
{
    fake().tcp_inq = true;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("abcd");
    std::string in = blank(4);
    CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
    REQUIRE(fake().enable_inq_fds == std::vector<int>{fd});
    return s;
}

} // namespace

TEST_CASE("after a short read the next receive makes no recv until an EPOLLIN edge", "[receive][drain]")
{
    test_env env;
    fake().tcp_inq = GENERATE(false, true);
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("abc");
    std::string in = blank(8);
    CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 3});
    CHECK(recv_calls(fd) == 1);

    std::string next = blank(8);
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(next)); });
    fake().sock(fd).data("xyz"); // arrives after the short read: its edge is still to come
    env.drain();
    CHECK_FALSE(a.done());
    CHECK(recv_calls(fd) == 1);

    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(a.completions == 1);
    CHECK(a.value == receive_outcome{receive_result::ok, 3});
    CHECK(next == "xyz#####");
    CHECK(recv_calls(fd) == 2);
    CHECK(fake().enable_inq_fds.empty()); // asked for only when a receive fills its buffers exactly
}

TEST_CASE("an exact fill after which the kernel says nothing is left waits for the edge; data arriving meanwhile is "
          "received when it comes",
          "[receive][drain]")
{
    test_env env;
    int fd = -1;
    fake_socket s = open_hinted(env, fd);
    CHECK(fake().sock(fd).recvs.back().inq == false); // the fill that turned the hint on did not have it

    // With the hint on, an exact fill that left nothing marks the socket drained.
    fake().sock(fd).data("efgh");
    std::string in = blank(4);
    CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
    CHECK(in == "efgh");
    REQUIRE(recv_calls(fd) == 2);
    CHECK(fake().sock(fd).recvs.back().inq);

    const bool callback_form = GENERATE(false, true);
    std::string next = blank(4);
    awaited<receive_outcome> a;
    receive_probe p;
    const mutable_buffer b[1]{mbuf(next)};
    if (callback_form) {
        REQUIRE(p.start(s, b) == start_result::started);
    } else {
        await_into(a, [&] { return s.receive_async(mbuf(next)); });
    }
    env.drain();
    CHECK(recv_calls(fd) == 2); // no recv: it could only have failed with EAGAIN
    fake().sock(fd).data("ijkl"); // arrives between the drain and the next edge
    env.drain();
    CHECK(recv_calls(fd) == 2);
    CHECK(p.calls + a.completions == 0);

    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(p.calls + a.completions == 1);
    if (callback_form) {
        CHECK(p.result == receive_result::ok);
        CHECK(p.bytes == 4);
    } else {
        CHECK(a.value == receive_outcome{receive_result::ok, 4});
    }
    CHECK(next == "ijkl");
    CHECK(recv_calls(fd) == 3);
    CHECK(fake().enable_inq_fds == std::vector<int>{fd}); // once per socket
}

TEST_CASE("an exact fill with more left behind: the next receive tries at once", "[receive][drain]")
{
    test_env env;
    int fd = -1;
    fake_socket s = open_hinted(env, fd);
    fake().sock(fd).data("efghij");
    std::string in = blank(4);
    CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
    std::string rest = blank(4);
    CHECK(receive_now(s, rest) == receive_outcome{receive_result::ok, 2}); // no edge needed
    CHECK(rest == "ij##");
    CHECK(recv_calls(fd) == 3);
}

TEST_CASE("a short read with bytes that arrived meanwhile: the next receive tries at once", "[receive][drain]")
{
    test_env env;
    int fd = -1;
    fake_socket s = open_hinted(env, fd);
    fake().sock(fd).data("ab").data("cd"); // one call hands out "ab"; "cd" is left behind it
    std::string first = blank(8), second = blank(8);
    CHECK(receive_now(s, first) == receive_outcome{receive_result::ok, 2});
    CHECK(receive_now(s, second) == receive_outcome{receive_result::ok, 2}); // no edge needed
    CHECK(first == "ab######");
    CHECK(second == "cd######");
    CHECK(recv_calls(fd) == 3);
}

TEST_CASE("without the kernel's hint an exact fill keeps trying, and the hint is asked for once",
          "[receive][drain]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd); // fake().tcp_inq is off: like a Unix socket
    for (const char* chunk : {"abcd", "efgh", "ijkl"}) {
        fake().sock(fd).data(chunk);
        std::string in = blank(4);
        CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
        CHECK(in == chunk);
    }
    CHECK(fake().enable_inq_fds == std::vector<int>{fd});
    CHECK(recv_calls(fd) == 3);
    for (const auto& call : fake().sock(fd).recvs) {
        CHECK_FALSE(call.inq);
    }
    // The last read filled its buffer: more may be waiting, so the next
    // receive makes the call (EAGAIN here) before it waits for an edge.
    std::string next = blank(4);
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(mbuf(next)); });
    CHECK(recv_calls(fd) == 4);
    CHECK_FALSE(a.done());
    fake().sock(fd).data("mn");
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(a.value == receive_outcome{receive_result::ok, 2});
}

TEST_CASE("the end of the stream after hinted data is still reported", "[receive][drain]")
{
    test_env env;
    int fd = -1;
    fake_socket s = open_hinted(env, fd);
    std::string in = blank(4);
    SECTION("the FIN already behind the data: the kernel reports it as something left")
    {
        fake().sock(fd).data("efgh").eof();
        CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
        CHECK(receive_now(s, in) == receive_outcome{receive_result::abandoned, 0});
    }
    SECTION("the FIN after the drain: its edge completes the waiting receive")
    {
        fake().sock(fd).data("efgh");
        CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
        const std::size_t calls = recv_calls(fd);
        awaited<receive_outcome> a;
        await_into(a, [&] { return s.receive_async(mbuf(in)); });
        env.drain();
        CHECK(recv_calls(fd) == calls);
        CHECK_FALSE(a.done());
        fake().sock(fd).eof();
        REQUIRE(fake().raise(fd, EPOLLIN | EPOLLRDHUP));
        env.drain();
        CHECK(a.value == receive_outcome{receive_result::abandoned, 0});
        // Sticky: no further edge comes, and none is needed.
        CHECK(receive_now(s, in) == receive_outcome{receive_result::abandoned, 0});
    }
    CHECK(in == "efgh");
}

TEST_CASE("a multi-buffer receive that the kernel says drained the socket stops there", "[receive][drain]")
{
    test_env env;
    int fd = -1;
    fake_socket s = open_hinted(env, fd);
    SECTION("every buffer filled in one call: the next receive waits for the edge")
    {
        std::string a = blank(3), b = blank(4), c = blank(5);
        const mutable_buffer bufs[3]{mbuf(a), mbuf(b), mbuf(c)};
        fake().sock(fd).data("0123456789AB");
        CHECK(asock::sync_wait(*env.engine, s.receive_async(bufs)) == receive_outcome{receive_result::ok, 12});
        CHECK(a + b + c == "0123456789AB");
        const std::size_t calls = recv_calls(fd);
        awaited<receive_outcome> w;
        await_into(w, [&] { return s.receive_async(bufs); });
        CHECK(recv_calls(fd) == calls);
        CHECK_FALSE(w.done());
        fake().sock(fd).data("z");
        REQUIRE(fake().raise(fd, EPOLLIN));
        env.drain();
        CHECK(w.value == receive_outcome{receive_result::ok, 1});
    }
    SECTION("more buffers than one call takes: no second call after the kernel said nothing is left")
    {
        const std::size_t max_iov = asock::linux_epoll::epoll_io<fake_sys>::max_iov;
        std::string in = blank(max_iov + 6);
        std::vector<mutable_buffer> bufs;
        for (std::size_t i = 0; i < in.size(); ++i) {
            bufs.push_back(mutable_buffer{in.data() + i, 1});
        }
        fake().sock(fd).data(std::string(max_iov, 'q'));
        const std::size_t calls = recv_calls(fd);
        CHECK(asock::sync_wait(*env.engine, s.receive_async(bufs)) ==
              receive_outcome{receive_result::ok, static_cast<std::uint32_t>(max_iov)});
        CHECK(recv_calls(fd) == calls + 1);
        CHECK(in == std::string(max_iov, 'q') + blank(6));
    }
}

TEST_CASE("a custom transport is never hinted: an exact fill from on_recv still reads until EAGAIN",
          "[receive][drain]")
{
    test_env env;
    fake().tcp_inq = true;
    fake_transport t;
    int fd = -1;
    fake_socket s = env.open_socket(fd, t.get());
    t.ep.data("abcd").data("ef");
    std::string in = blank(4);
    CHECK(receive_now(s, in) == receive_outcome{receive_result::ok, 4});
    std::string rest = blank(4);
    CHECK(receive_now(s, rest) == receive_outcome{receive_result::ok, 2});
    CHECK(rest == "ef##");
    CHECK(fake().enable_inq_fds.empty());
    CHECK(recv_calls(fd) == 0);
}

// ---- the real system calls (include/asock/linux/epoll_sys.hpp) over loopback TCP ----------------

namespace {

struct tcp_pair {
    int fd[2] = {-1, -1}; // [0] connected, [1] accepted (non-blocking)
    tcp_pair()
    {
        const int l = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(l >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(l, 1) == 0);
        REQUIRE(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        fd[0] = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(::connect(fd[0], reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        fd[1] = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK);
        ::close(l);
        REQUIRE(fd[1] >= 0);
    }
    ~tcp_pair()
    {
        for (int f : fd) {
            if (f >= 0) {
                ::close(f);
            }
        }
    }
    // Waits (up to 5 s) until fd[1] has `n` bytes, or the end of the stream, to read.
    void wait_readable(std::size_t n) const
    {
        for (int i = 0; i < 500; ++i) {
            int queued = 0;
            pollfd p{fd[1], POLLIN, 0};
            if (::ioctl(fd[1], FIONREAD, &queued) == 0 && static_cast<std::size_t>(queued) >= n &&
                ::poll(&p, 1, 10) == 1) {
                return;
            }
            ::poll(nullptr, 0, 10);
        }
        FAIL("the bytes never arrived");
    }
};

} // namespace

TEST_CASE("the real TCP_INQ hint: the bytes left, 0 when drained, non-zero before the end of the stream",
          "[receive][drain][engine]")
{
    using sys = asock::linux_epoll::epoll_sys;
    tcp_pair tp;
    if (sys::enable_inq(tp.fd[1]) != 0) {
        WARN("TCP_INQ is not available (kernel before 4.18): nothing to check");
        return;
    }
    REQUIRE(::send(tp.fd[0], "0123456789", 10, 0) == 10);
    tp.wait_readable(10);
    char x[4], y[6];
    int inq = -7;
    iovec one[1] = {{x, sizeof x}};
    CHECK(sys::recv_iov_inq(tp.fd[1], one, 1, inq) == 4);
    CHECK(inq == 6);
    iovec two[1] = {{y, sizeof y}};
    CHECK(sys::recv_iov_inq(tp.fd[1], two, 1, inq) == 6); // an exact fill that drained the socket
    CHECK(inq == 0);
    CHECK(std::string(x, 4) + std::string(y, 6) == "0123456789");
    errno = 0;
    CHECK(sys::recv_iov_inq(tp.fd[1], one, 1, inq) == -1);
    CHECK((errno == EAGAIN || errno == EWOULDBLOCK));
    CHECK(inq == -1);

    REQUIRE(::send(tp.fd[0], "abcd", 4, 0) == 4);
    REQUIRE(::shutdown(tp.fd[0], SHUT_WR) == 0);
    tp.wait_readable(4);
    for (int i = 0; i < 500; ++i) { // the FIN may trail the bytes
        pollfd p{tp.fd[1], POLLRDHUP, 0};
        if (::poll(&p, 1, 10) == 1) {
            break;
        }
    }
    CHECK(sys::recv_iov_inq(tp.fd[1], one, 1, inq) == 4); // exact fill, but the end of the stream is left
    CHECK(inq > 0);
    CHECK(sys::recv_iov_inq(tp.fd[1], one, 1, inq) == 0);
}

TEST_CASE("the real TCP_INQ is refused on a Unix socket", "[receive][drain][engine]")
{
    int sp[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == 0);
    CHECK(asock::linux_epoll::epoll_sys::enable_inq(sp[0]) != 0);
    ::close(sp[0]);
    ::close(sp[1]);
}
