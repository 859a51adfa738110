// tests/unit/unit_engine.cpp: the epoll engine (creation, posting, the loop,
// stale events) over fake system calls, and the real system-call layer
// (include/asock/linux/epoll_sys.hpp) on a socket pair.
#include "unit_helpers.hpp"

#include <asock/linux/epoll_sys.hpp>

#include <csignal>
#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

using namespace asock_test;
using asock::detail::work_item;

namespace {

struct counted_item : work_item {
    std::vector<int>* log = nullptr;
    int id = 0;
    std::function<void()> then;

    counted_item(std::vector<int>& l, int i) : log(&l), id(i) { run = &run_fn; }
    static void run_fn(work_item* w)
    {
        auto* c = static_cast<counted_item*>(w);
        c->log->push_back(c->id);
        if (c->then) {
            c->then();
        }
    }
};

fake_engine* make_engine()
{
    return fake_engine::create(asock::linux_epoll::engine_options{.threads = 0});
}

} // namespace

// ---- creation ------------------------------------------------------------------------------

TEST_CASE("an engine without threads owns an epoll instance and a registered eventfd", "[engine]")
{
    fake().reset();
    asock::engine_ref<fake_engine> e(make_engine());
    REQUIRE(e);
    CHECK(e->thread_count() == 0);
    CHECK(e->use_count() == 1);
    REQUIRE(fake().epoll_fds().size() == 1);
    REQUIRE(fake().eventfds().size() == 1);
    CHECK(e->epoll_fd() == fake().epoll_fds()[0]);
    const auto reg = fake().registered(fake().eventfds()[0]);
    REQUIRE(reg.has_value());
    CHECK(reg->epfd == e->epoll_fd());
    CHECK((reg->events & EPOLLIN) != 0);
    const int epfd = e->epoll_fd();
    const int evfd = fake().eventfds()[0];
    e = {};
    CHECK(fake_world::count(fake().closed_fds, epfd) == 1);
    CHECK(fake_world::count(fake().closed_fds, evfd) == 1);
}

TEST_CASE("engine creation fails cleanly when the kernel refuses a resource", "[engine][SRS_ASYNC_SOCKET_LINUX_11_006]")
{
    fake().reset();
    SECTION("no epoll instance")
    {
        fake().fail_epoll_create = EMFILE;
        CHECK(make_engine() == nullptr);
        CHECK(fake().closed_fds.empty());
    }
    SECTION("no eventfd")
    {
        fake().fail_eventfd_create = ENFILE;
        CHECK(make_engine() == nullptr);
        REQUIRE(fake().epoll_fds().size() == 1);
        CHECK(fake().closed_fds == std::vector<int>{fake().epoll_fds()[0]});
    }
    SECTION("the eventfd cannot be registered")
    {
        fake().fail_epoll_add = ENOMEM;
        CHECK(make_engine() == nullptr);
        CHECK(fake().closed_fds.size() == 2);
        CHECK(fake_world::count(fake().closed_fds, fake().epoll_fds().at(0)) == 1);
        CHECK(fake_world::count(fake().closed_fds, fake().eventfds().at(0)) == 1);
    }
}

TEST_CASE("engine references: copies add one, sockets hold one", "[engine][SRS_ASYNC_SOCKET_LINUX_11_022]")
{
    test_env env;
    {
        asock::engine_ref<fake_engine> copy = env.engine;
        CHECK(env.engine->use_count() == 2);
        fake_socket a(*env.engine), b(*env.engine);
        CHECK(env.engine->use_count() == 4);
    }
    CHECK(env.engine->use_count() == 1);
    CHECK(fake().closed_fds.empty()); // still alive
}

// ---- posting and the loop ----------------------------------------------------------------------

TEST_CASE("work posted from outside the loop wakes it once and runs in order", "[engine]")
{
    test_env env;
    const int evfd = fake().eventfds().at(0);
    std::vector<int> log;
    counted_item a(log, 1), b(log, 2), c(log, 3);
    env.engine->post(&a);
    env.engine->post(&b);
    env.engine->post(&c);
    CHECK(log.empty());
    CHECK(fake().eventfd_signals == 1); // one wake-up for the batch
    CHECK(fake().eventfd_signalled(evfd));
    CHECK(env.engine->poll() == 3);
    CHECK(log == std::vector<int>{1, 2, 3});
    CHECK_FALSE(fake().eventfd_signalled(evfd)); // drained
    CHECK(env.engine->poll() == 0);
    CHECK(log.size() == 3);
}

TEST_CASE("work posted from inside the loop needs no wake-up and runs on the next pass", "[engine]")
{
    test_env env;
    std::vector<int> log;
    counted_item outer(log, 1), inner(log, 2);
    outer.then = [&] {
        CHECK(env.engine->running_in_this_thread());
        env.engine->post(&inner);
        CHECK(log == std::vector<int>{1}); // not run inside post
    };
    inner.then = [&] { env.engine->stop(); };
    env.engine->post(&outer); // from outside: one wake-up
    CHECK_FALSE(env.engine->running_in_this_thread());
    const int signals = fake().eventfd_signals;
    env.engine->run();
    CHECK(log == std::vector<int>{1, 2});
    CHECK(fake().eventfd_signals == signals + 1); // stop()'s own, none for the inner post
}

TEST_CASE("dropping the last engine reference inside its own caller-run loop defers the destruction", "[engine]")
{
    // Without the deferral the engine is deleted while run_one() is still
    // inside it: a use-after-free that the sanitizer flavours report.
    fake().reset();
    fake_engine* engine = make_engine();
    REQUIRE(engine != nullptr);
    const int epfd = engine->epoll_fd();
    std::vector<int> log;
    counted_item last(log, 1);
    last.then = [&] {
        CHECK(engine->running_in_this_thread());
        engine->dec_ref(); // the only reference
    };
    engine->post(&last);
    engine->run_one(0); // runs the item; the engine is destroyed as run_one returns
    CHECK(log == std::vector<int>{1});
    CHECK(fake_world::count(fake().closed_fds, epfd) == 1); // destroyed, once
}

TEST_CASE("stop makes run return; restart lets it run again", "[engine]")
{
    test_env env;
    std::vector<int> log;
    counted_item stopper(log, 1);
    stopper.then = [&] { env.engine->stop(); };
    env.engine->post(&stopper);
    env.engine->run(); // returns because the item stopped it
    CHECK(log == std::vector<int>{1});
    CHECK(env.engine->stopped());
    CHECK(env.engine->run() == 0); // stopped: returns at once

    env.engine->restart();
    CHECK_FALSE(env.engine->stopped());
    CHECK_FALSE(fake().eventfd_signalled(fake().eventfds().at(0)));
    counted_item again(log, 2);
    again.then = [&] { env.engine->stop(); };
    env.engine->post(&again);
    env.engine->run();
    CHECK(log == std::vector<int>{1, 2});
}

TEST_CASE("sync_wait runs a thread-less engine's loop until the awaitable completes", "[engine]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in(8, '#');
    // The first call would block; the event raised ahead completes the receive.
    fake().sock(fd).recv_fails(EAGAIN).data("late");
    REQUIRE(fake().raise(fd, EPOLLIN));
    const auto out = asock::sync_wait(*env.engine, s.receive_async(mbuf(in)));
    CHECK(out == receive_outcome{receive_result::ok, 4});
    CHECK(in == "late####");
}

// ---- events for sockets that are gone ----------------------------------------------------------

TEST_CASE("an event naming a closed or destroyed socket does nothing", "[engine][SRS_ASYNC_SOCKET_LINUX_11_079]")
{
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    const std::uint64_t data = fake().registered(fd)->data;
    std::string in(4, '#'), out = "abc";
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe p;
    REQUIRE(p.start(*s, rb) == start_result::started);
    env.drain();
    fake().sock(fd).data("abcd");
    fake().sock(fd).auto_accept = true;

    SECTION("closed")
    {
        s->close();
    }
    SECTION("destroyed")
    {
        s.reset();
    }
    REQUIRE(p.calls == 1); // abandoned by the close
    const std::size_t recv_calls = fake().sock(fd).recvs.size();
    fake().inject(env.epfd(), data, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
    CHECK(env.engine->poll() == 1); // handled ...
    CHECK(fake().sock(fd).recvs.size() == recv_calls); // ... by doing nothing
    CHECK(fake().sock(fd).sends.empty());
    CHECK(p.calls == 1);
    CHECK(in == "####");
}

TEST_CASE("an event for a socket that another socket's callback destroyed in the same batch does nothing",
          "[engine][SRS_ASYNC_SOCKET_LINUX_11_079]")
{
    test_env env;
    int fd1 = -1, fd2 = -1;
    fake_socket s1 = env.open_socket(fd1);
    auto s2 = std::make_unique<fake_socket>(env.open_socket(fd2));
    std::string in1(4, '#'), in2(4, '#');
    const mutable_buffer b1[1]{mbuf(in1)}, b2[1]{mbuf(in2)};
    receive_probe p1, p2;
    REQUIRE(p1.start(s1, b1) == start_result::started);
    REQUIRE(p2.start(*s2, b2) == start_result::started);
    env.drain();
    p1.then = [&] { s2.reset(); };
    fake().sock(fd1).data("one");
    fake().sock(fd2).data("two");
    REQUIRE(fake().raise(fd1, EPOLLIN));
    REQUIRE(fake().raise(fd2, EPOLLIN)); // same epoll_wait batch
    env.drain();
    CHECK(p1.result == receive_result::ok);
    CHECK(p2.calls == 1);
    CHECK(p2.result == receive_result::abandoned);
    CHECK(in2 == "####");
}

// ---- the real system-call layer ---------------------------------------------------------------------

namespace {
struct socket_pair {
    int fd[2] = {-1, -1};
    socket_pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0); }
    ~socket_pair()
    {
        for (int f : fd) {
            if (f >= 0) {
                ::close(f);
            }
        }
    }
};
} // namespace

TEST_CASE("the real send gathers every buffer in one call and receive scatters in order",
          "[engine][SRS_ASYNC_SOCKET_LINUX_04_001][SRS_ASYNC_SOCKET_LINUX_04_007]")
{
    using sys = asock::linux_epoll::epoll_sys;
    socket_pair sp;
    char a[] = "hello", b[] = ", ", c[] = "world";
    iovec out[3] = {{a, 5}, {b, 2}, {c, 5}};
    CHECK(sys::send_iov(sp.fd[0], out, 3) == 12);
    char x[4] = {}, y[10] = {};
    iovec in[2] = {{x, sizeof x}, {y, sizeof y}};
    CHECK(sys::recv_iov(sp.fd[1], in, 2) == 12);
    CHECK(std::string(x, 4) == "hell");
    CHECK(std::string(y, 8) == "o, world");
    errno = 0;
    CHECK(sys::recv_iov(sp.fd[1], in, 2) == -1);
    CHECK((errno == EAGAIN || errno == EWOULDBLOCK));
}

TEST_CASE("the real send reports a closed peer as EPIPE without raising SIGPIPE", "[engine][SRS_ASYNC_SOCKET_LINUX_11_052]")
{
    using sys = asock::linux_epoll::epoll_sys;
    // The default action of SIGPIPE would end this process and fail the test.
    struct sigaction old {};
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    REQUIRE(::sigaction(SIGPIPE, &dfl, &old) == 0);
    socket_pair sp;
    ::close(sp.fd[1]);
    sp.fd[1] = -1;
    char a[] = "x";
    iovec out[1] = {{a, 1}};
    errno = 0;
    const auto r = sys::send_iov(sp.fd[0], out, 1);
    const int e = errno;
    ::sigaction(SIGPIPE, &old, nullptr);
    CHECK(r == -1);
    CHECK(e == EPIPE);
}

TEST_CASE("the real poll_now reports readiness and a peer's shutdown", "[engine][SRS_ASYNC_SOCKET_LINUX_04_018]")
{
    using sys = asock::linux_epoll::epoll_sys;
    socket_pair sp;
    CHECK((sys::poll_now(sp.fd[1], POLLIN) & POLLIN) == 0);
    CHECK((sys::poll_now(sp.fd[1], POLLOUT) & POLLOUT) != 0);
    char a[] = "x";
    iovec out[1] = {{a, 1}};
    REQUIRE(sys::send_iov(sp.fd[0], out, 1) == 1);
    CHECK((sys::poll_now(sp.fd[1], POLLIN) & POLLIN) != 0);
    REQUIRE(sys::shutdown(sp.fd[0]) == 0);
    CHECK((sys::poll_now(sp.fd[1], POLLIN) & POLLRDHUP) != 0);
}
