// tests/unit/unit_notify.cpp: async_socket::notify_io_async, callback and
// co_await forms, over the epoll backend with fake system calls.
#include "unit_helpers.hpp"

using namespace asock_test;

namespace {

short poll_bit(notify_io_type t)
{
    return t == notify_io_type::in ? POLLIN : POLLOUT;
}
std::uint32_t epoll_bit(notify_io_type t)
{
    return t == notify_io_type::in ? std::uint32_t{EPOLLIN} : std::uint32_t{EPOLLOUT};
}
notify_io_result ready_result(notify_io_type t)
{
    return t == notify_io_type::in ? notify_io_result::in : notify_io_result::out;
}

} // namespace

// ---- argument checks ------------------------------------------------------------------

TEST_CASE("notify on an empty socket is rejected", "[SRS_ASYNC_SOCKET_LINUX_04_012][SRS_ASYNC_SOCKET_LINUX_04_020]")
{
    test_env env;
    fake_socket empty;
    notify_probe p;
    const start_result r = p.start(empty, notify_io_type::in);
    CHECK(r != start_result::started);
    CHECK(r == start_result::not_open);
    CHECK(asock::sync_wait(*env.engine, empty.notify_io_async(notify_io_type::out)) == notify_io_result::not_open);
    env.drain();
    CHECK(p.calls == 0);
}

TEST_CASE("notify without a completion callback is rejected", "[SRS_ASYNC_SOCKET_LINUX_04_013][SRS_ASYNC_SOCKET_LINUX_04_020]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().set_readiness(fd, POLLIN | POLLOUT);
    asock::notify_operation op;
    const start_result r = s.notify_io_async(op, notify_io_type::in, nullptr, nullptr);
    CHECK(r != start_result::started);
    CHECK(r == start_result::invalid_argument);
    CHECK(fake().poll_requests(fd).empty());
}

TEST_CASE("notify with an io type other than in or out is rejected",
          "[SRS_ASYNC_SOCKET_LINUX_04_014][SRS_ASYNC_SOCKET_LINUX_04_020]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().set_readiness(fd, POLLIN | POLLOUT);
    const auto bad = static_cast<notify_io_type>(GENERATE(0, 3, 255));
    notify_probe p;
    const start_result r = p.start(s, bad);
    CHECK(r != start_result::started);
    CHECK(r == start_result::invalid_argument);
    CHECK(asock::sync_wait(*env.engine, s.notify_io_async(bad)) == notify_io_result::invalid_argument);
    env.drain();
    CHECK(p.calls == 0);
    CHECK(fake().poll_requests(fd).empty());
}

TEST_CASE("notify on a socket that is not OPEN is rejected", "[SRS_ASYNC_SOCKET_LINUX_04_015][SRS_ASYNC_SOCKET_LINUX_04_020]")
{
    test_env env;
    fake_socket s(*env.engine);
    notify_probe p;
    SECTION("created, never opened")
    {
    }
    SECTION("closed")
    {
        const int fd = fake().make_socket();
        REQUIRE(s.open(fd) == open_result::ok);
        fake().set_readiness(fd, POLLIN | POLLOUT);
        s.close();
    }
    const start_result r = p.start(s, notify_io_type::in);
    CHECK(r != start_result::started);
    CHECK(r == start_result::not_open);
    CHECK(asock::sync_wait(*env.engine, s.notify_io_async(notify_io_type::in)) == notify_io_result::not_open);
    env.drain();
    CHECK(p.calls == 0);
}

TEST_CASE("notify accepts a null callback context", "[SRS_ASYNC_SOCKET_LINUX_04_016][SRS_ASYNC_SOCKET_LINUX_04_019]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().set_readiness(fd, POLLOUT);
    static int calls;
    static void* context_seen;
    static notify_io_result result;
    calls = 0;
    context_seen = &calls;
    asock::notify_operation op;
    auto cb = [](void* c, notify_io_result r) {
        ++calls;
        context_seen = c;
        result = r;
    };
    CHECK(static_cast<int>(s.notify_io_async(op, notify_io_type::out, cb, nullptr)) == 0);
    env.drain();
    CHECK(calls == 1);
    CHECK(context_seen == nullptr);
    CHECK(result == notify_io_result::out);
}

// ---- readiness ---------------------------------------------------------------------------------

TEST_CASE("notify completes with the readiness already there, on the engine, never before it returns",
          "[SRS_ASYNC_SOCKET_LINUX_04_009][SRS_ASYNC_SOCKET_LINUX_04_010][SRS_ASYNC_SOCKET_LINUX_04_017]"
          "[SRS_ASYNC_SOCKET_LINUX_04_018][SRS_ASYNC_SOCKET_LINUX_04_019]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const int adds_after_open = fake().epoll_add_calls;
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    fake().set_readiness(fd, poll_bit(type));
    SECTION("callback form")
    {
        notify_probe p;
        CHECK(p.start(s, type) == start_result::started);
        CHECK(p.calls == 0);
        env.drain();
        CHECK(p.calls == 1);
        CHECK(p.result == ready_result(type));
    }
    SECTION("co_await form: no suspension")
    {
        awaited<notify_io_result> a;
        await_into(a, [&] { return s.notify_io_async(type); });
        CHECK(a.completions == 1);
        CHECK(a.value == ready_result(type));
        env.drain();
        CHECK(a.completions == 1);
        CHECK(a.extra_resumes == 0);
    }
    const auto asked = fake().poll_requests(fd);
    REQUIRE(asked.size() == 1);
    CHECK((asked[0] & poll_bit(type)) != 0);
    CHECK(fake().epoll_add_calls == adds_after_open);
}

TEST_CASE("notify waits for the readiness asked for and ignores the other direction",
          "[SRS_ASYNC_SOCKET_LINUX_04_009][SRS_ASYNC_SOCKET_LINUX_04_010][SRS_ASYNC_SOCKET_LINUX_11_082]"
          "[SRS_ASYNC_SOCKET_LINUX_11_094][SRS_ASYNC_SOCKET_LINUX_04_018]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    const notify_io_type other = type == notify_io_type::in ? notify_io_type::out : notify_io_type::in;
    fake().set_readiness(fd, poll_bit(other)); // the other direction is ready, this one is not
    notify_probe p;
    awaited<notify_io_result> a;
    REQUIRE(p.start(s, type) == start_result::started);
    await_into(a, [&] { return s.notify_io_async(type); });
    env.drain();
    CHECK(p.calls == 0);
    CHECK_FALSE(a.done());

    REQUIRE(fake().raise(fd, epoll_bit(other)));
    env.drain();
    CHECK(p.calls == 0);
    CHECK_FALSE(a.done());

    REQUIRE(fake().raise(fd, epoll_bit(type)));
    env.drain();
    CHECK(p.calls == 1);
    CHECK(p.result == ready_result(type));
    CHECK(a.completions == 1);
    CHECK(a.value == ready_result(type));

    REQUIRE(fake().raise(fd, epoll_bit(type)));
    env.drain();
    CHECK(p.calls == 1);
    CHECK(a.extra_resumes == 0);
}

TEST_CASE("notify reports an error condition, at once or later", "[SRS_ASYNC_SOCKET_LINUX_04_011][SRS_ASYNC_SOCKET_LINUX_11_085]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    notify_probe p;
    SECTION("at once")
    {
        fake().set_readiness(fd, static_cast<short>(POLLERR | poll_bit(type)));
        REQUIRE(p.start(s, type) == start_result::started);
        env.drain();
        CHECK(asock::sync_wait(*env.engine, s.notify_io_async(type)) == notify_io_result::error);
    }
    SECTION("later")
    {
        REQUIRE(p.start(s, type) == start_result::started);
        env.drain();
        CHECK(p.calls == 0);
        REQUIRE(fake().raise(fd, EPOLLERR | epoll_bit(type)));
        env.drain();
    }
    CHECK(p.calls == 1);
    CHECK(p.result == notify_io_result::error);
}

TEST_CASE("notify reports a hang-up as abandoned, at once or later", "[SRS_ASYNC_SOCKET_LINUX_04_008][SRS_ASYNC_SOCKET_LINUX_11_080]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    notify_probe p;
    SECTION("at once")
    {
        const short hup = GENERATE(short{POLLHUP}, short{POLLRDHUP});
        fake().set_readiness(fd, hup);
        REQUIRE(p.start(s, type) == start_result::started);
        env.drain();
        CHECK(asock::sync_wait(*env.engine, s.notify_io_async(type)) == notify_io_result::abandoned);
    }
    SECTION("later")
    {
        const std::uint32_t hup = GENERATE(std::uint32_t{EPOLLHUP}, std::uint32_t{EPOLLRDHUP});
        REQUIRE(p.start(s, type) == start_result::started);
        env.drain();
        CHECK(p.calls == 0);
        REQUIRE(fake().raise(fd, hup));
        env.drain();
    }
    SECTION("the socket is closed")
    {
        REQUIRE(p.start(s, type) == start_result::started);
        env.drain();
        s.close();
    }
    CHECK(p.calls == 1);
    CHECK(p.result == notify_io_result::abandoned);
}

TEST_CASE("several notifies waiting for the same readiness all complete on one event", "[SRS_ASYNC_SOCKET_LINUX_04_009]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::vector<int> order;
    notify_probe p1, p2, p3;
    p1.log = p2.log = p3.log = &order;
    p1.id = 1;
    p2.id = 2;
    p3.id = 3;
    REQUIRE(p1.start(s, notify_io_type::in) == start_result::started);
    REQUIRE(p2.start(s, notify_io_type::out) == start_result::started);
    REQUIRE(p3.start(s, notify_io_type::in) == start_result::started);
    env.drain();
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(order == std::vector<int>{1, 3});
    CHECK(p1.result == notify_io_result::in);
    CHECK(p3.result == notify_io_result::in);
    REQUIRE(fake().raise(fd, EPOLLOUT));
    env.drain();
    CHECK(order == std::vector<int>{1, 3, 2});
    CHECK(p2.result == notify_io_result::out);
}

TEST_CASE("a notify ready at start but not yet delivered is delivered with its result by a close",
          "[SRS_ASYNC_SOCKET_LINUX_04_009][SRS_ASYNC_SOCKET_LINUX_04_010]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    fake().set_readiness(fd, poll_bit(type));
    notify_probe p;
    REQUIRE(p.start(s, type) == start_result::started);
    CHECK(p.calls == 0);
    s.close(); // every operation is complete when close returns
    CHECK(p.calls == 1);
    CHECK(p.result == ready_result(type));
    env.drain();
    CHECK(p.calls == 1);
}
