// tests/unit/unit_lifecycle.cpp: create, open, close and destroy of
// asock::async_socket over the epoll backend with fake system calls.
#include "unit_helpers.hpp"

#include <asock/linux/epoll_platform.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

using namespace asock_test;
using namespace std::chrono_literals;

namespace {

// Pending operations of every kind on one socket, in callback form.
struct pending_set {
    std::string out = "payload";
    std::string in1 = std::string(8, '\0');
    std::string in2 = std::string(8, '\0');
    const_buffer sb[1]{cbuf(out)};
    mutable_buffer rb1[1]{mbuf(in1)};
    mutable_buffer rb2[1]{mbuf(in2)};
    send_probe send;
    receive_probe recv1;
    receive_probe recv2;
    notify_probe notify_in;
    notify_probe notify_out;

    // The fake answers EAGAIN to every call, so each operation waits.
    void start(fake_socket& s)
    {
        REQUIRE(send.start(s, sb) == send_sync_result::ok);
        REQUIRE(recv1.start(s, rb1) == start_result::started);
        REQUIRE(recv2.start(s, rb2) == start_result::started);
        REQUIRE(notify_in.start(s, notify_io_type::in) == start_result::started);
        REQUIRE(notify_out.start(s, notify_io_type::out) == start_result::started);
    }

    void check_each_called_once_abandoned() const
    {
        CHECK(send.calls == 1);
        CHECK(send.result == send_result::abandoned);
        CHECK(recv1.calls == 1);
        CHECK(recv1.result == receive_result::abandoned);
        CHECK(recv1.bytes == 0);
        CHECK(recv2.calls == 1);
        CHECK(recv2.result == receive_result::abandoned);
        CHECK(notify_in.calls == 1);
        CHECK(notify_in.result == notify_io_result::abandoned);
        CHECK(notify_out.calls == 1);
        CHECK(notify_out.result == notify_io_result::abandoned);
    }

    int total_calls() const { return send.calls + recv1.calls + recv2.calls + notify_in.calls + notify_out.calls; }
};

} // namespace

// ---- create ----------------------------------------------------------------------

TEST_CASE("create makes a socket bound to the engine, not yet open, holding an engine reference",
          "[SRS_ASYNC_SOCKET_LINUX_11_001][SRS_ASYNC_SOCKET_LINUX_11_005][SRS_ASYNC_SOCKET_LINUX_11_022]")
{
    test_env env;
    const int adds_before = fake().epoll_add_calls;
    REQUIRE(env.engine->use_count() == 1);
    {
        fake_socket s(*env.engine);
        CHECK(s.valid());
        CHECK(static_cast<bool>(s));
        CHECK(s.state() == socket_state::created);
        CHECK(&s.engine() == env.engine.get());
        CHECK(s.native_handle() == -1);
        CHECK(env.engine->use_count() == 2);
        CHECK(fake().epoll_add_calls == adds_before); // nothing registered before open
    }
    CHECK(env.engine->use_count() == 1);
}

TEST_CASE("create_with_transport requires both on_send and on_recv",
          "[SRS_ASYNC_SOCKET_LINUX_04_002][SRS_ASYNC_SOCKET_LINUX_04_003][SRS_ASYNC_SOCKET_LINUX_11_006]")
{
    test_env env;
    fake_transport t;
    asock::custom_transport send_only = t.get();
    send_only.on_recv = nullptr;
    asock::custom_transport recv_only = t.get();
    recv_only.on_send = nullptr;

    SECTION("on_send missing")
    {
        fake_socket s(*env.engine, recv_only);
        CHECK_FALSE(s.valid());
        CHECK(env.engine->use_count() == 1);
        CHECK(s.open(fake().make_socket()) == open_result::error);
        CHECK_FALSE(fake_socket::on_default_engine(recv_only).valid());
    }
    SECTION("on_recv missing")
    {
        fake_socket s(*env.engine, send_only);
        CHECK_FALSE(s.valid());
        CHECK(env.engine->use_count() == 1);
        CHECK_FALSE(fake_socket::on_default_engine(send_only).valid());
    }
    SECTION("both given")
    {
        fake_socket s(*env.engine, t.get());
        CHECK(s.valid());
        CHECK(env.engine->use_count() == 2);
    }
}

TEST_CASE("a socket created without an engine runs on the shared default engine", "[SRS_ASYNC_SOCKET_LINUX_11_002]")
{
    // The default engine has a thread of its own, so this uses the real system
    // calls (nothing is opened: no descriptor is needed).
    using real_socket = asock::async_socket<asock::linux_epoll::epoll_platform>;
    real_socket a = real_socket::on_default_engine();
    REQUIRE(a.valid());
    CHECK(a.state() == socket_state::created);
    CHECK(a.engine().thread_count() == 1);
    CHECK(a.engine().use_count() == 1); // the socket's reference is the only one

    fake_transport t; // never called: the socket is not opened
    real_socket b = real_socket::on_default_engine(t.get());
    REQUIRE(b.valid());
    CHECK(&b.engine() == &a.engine());
    CHECK(a.engine().use_count() == 2);

    b = real_socket{};
    CHECK(a.engine().use_count() == 1);
}

// ---- empty socket (the spec's NULL handle) ------------------------------------------------

TEST_CASE("an empty socket: destroy, close and open do nothing or fail",
          "[SRS_ASYNC_SOCKET_LINUX_11_019][SRS_ASYNC_SOCKET_LINUX_11_035][SRS_ASYNC_SOCKET_LINUX_11_024]")
{
    test_env env;
    const int fd = fake().make_socket();
    int open_calls = 0;
    auto on_open = [](void* c, open_result) { ++*static_cast<int*>(c); };
    {
        fake_socket empty;
        CHECK_FALSE(empty.valid());
        CHECK(empty.state() == socket_state::closed);
        empty.close();
        CHECK(empty.open(fd) == open_result::error);
        CHECK(empty.open_async(fd, fake_platform::default_owner(), on_open, &open_calls) == open_result::error);
    }
    {
        fake_socket s(*env.engine);
        fake_socket moved = std::move(s);
        CHECK_FALSE(s.valid());
        s.close();
        CHECK(s.open(fd) == open_result::error);
    } // both destroyed: the moved-from one is empty
    CHECK(open_calls == 0);
    CHECK(fake().epoll_del_calls == 0);
    CHECK(fake().shutdown_fds.empty());
    CHECK(fake_world::count(fake().closed_fds, fd) == 0);
    CHECK_FALSE(fake().registered(fd).has_value());
    CHECK(env.engine->use_count() == 1);
}

// ---- open ------------------------------------------------------------------------------------

TEST_CASE("open registers the descriptor with epoll once and makes the socket OPEN",
          "[SRS_ASYNC_SOCKET_LINUX_11_028][SRS_ASYNC_SOCKET_LINUX_11_031][SRS_ASYNC_SOCKET_LINUX_11_032]")
{
    test_env env;
    const int fd = fake().make_socket();
    fake_socket s(*env.engine);
    const int adds_before = fake().epoll_add_calls;

    CHECK(s.open(fd) == open_result::ok);
    CHECK(s.state() == socket_state::open);
    CHECK(s.native_handle() == fd);
    CHECK(fake().epoll_add_calls == adds_before + 1);
    auto reg = fake().registered(fd);
    REQUIRE(reg.has_value());
    CHECK(reg->epfd == env.epfd());
    CHECK(reg->data != fake_engine::wakeup_token);
    CHECK((reg->events & EPOLLIN) != 0);
    CHECK((reg->events & EPOLLOUT) != 0);
    CHECK((reg->events & EPOLLRDHUP) != 0);
    CHECK((reg->events & EPOLLET) != 0);
}

TEST_CASE("open_async calls on_open_complete with ok before returning; its context may be null",
          "[SRS_ASYNC_SOCKET_LINUX_11_033][SRS_ASYNC_SOCKET_LINUX_11_026][SRS_ASYNC_SOCKET_LINUX_11_028]")
{
    test_env env;
    struct record {
        int calls = 0;
        open_result result{};
        void* context = reinterpret_cast<void*>(1);
        socket_state state_seen{};
        fake_socket* sock = nullptr;
    };
    static record rec; // reached through the context, or through this when the context is null
    rec = record{};
    auto on_open = [](void* c, open_result r) {
        ++rec.calls;
        rec.result = r;
        rec.context = c;
        rec.state_seen = rec.sock->state();
    };
    fake_socket s(*env.engine);
    rec.sock = &s;
    const int fd = fake().make_socket();

    SECTION("with a context")
    {
        int marker = 0;
        CHECK(s.open_async(fd, fake_platform::default_owner(), on_open, &marker) == open_result::ok);
        CHECK(rec.context == &marker);
    }
    SECTION("with a null context")
    {
        CHECK(s.open_async(fd, fake_platform::default_owner(), on_open, nullptr) == open_result::ok);
        CHECK(rec.context == nullptr);
    }
    CHECK(rec.calls == 1);
    CHECK(rec.result == open_result::ok);
    CHECK(rec.state_seen == socket_state::open);
    CHECK(fake().registered(fd).has_value());
}

TEST_CASE("open_async without on_open_complete fails and takes nothing", "[SRS_ASYNC_SOCKET_LINUX_11_025]")
{
    test_env env;
    const int fd = fake().make_socket();
    {
        fake_socket s(*env.engine);
        CHECK(s.open_async(fd, fake_platform::default_owner(), nullptr, nullptr) == open_result::error);
        CHECK(s.state() == socket_state::created);
        CHECK_FALSE(fake().registered(fd).has_value());
    }
    CHECK(fake_world::count(fake().closed_fds, fd) == 0); // ownership was not taken
}

TEST_CASE("open without a valid handle fails", "[SRS_ASYNC_SOCKET_LINUX_11_003]")
{
    test_env env;
    fake_socket s(*env.engine);
    const int adds_before = fake().epoll_add_calls;
    CHECK(s.open(-1) == open_result::error);
    CHECK(s.state() == socket_state::created);
    CHECK(fake().epoll_add_calls == adds_before);
    CHECK(s.open(fake().make_socket()) == open_result::ok); // still openable
}

TEST_CASE("open rejects a descriptor that is not a socket, unless a custom transport owns the I/O",
          "[SRS_ASYNC_SOCKET_LINUX_11_003][bad_input]")
{
    test_env env;
    const int not_a_socket = fake().eventfds().at(0); // the engine's eventfd: a descriptor, not a socket
    fake_socket s(*env.engine);
    const int adds_before = fake().epoll_add_calls;
    CHECK(s.open(not_a_socket, asock::basic_handle_owner<int>{}) == open_result::error);
    CHECK(s.state() == socket_state::created);
    CHECK(fake().epoll_add_calls == adds_before); // rejected before epoll saw it
    CHECK(s.open(fake().make_socket()) == open_result::ok); // still openable

    // A custom transport decides what its descriptor is: epoll's word counts.
    fake_transport t;
    fake_socket c(*env.engine, t.get());
    const int pipe_like = fake().sys_eventfd_create(); // not a socket, not registered yet
    CHECK(c.open(pipe_like, asock::basic_handle_owner<int>{}) == open_result::ok);
}

TEST_CASE("the socket is OPENING while it registers, and cannot be opened meanwhile",
          "[SRS_ASYNC_SOCKET_LINUX_11_027][SRS_ASYNC_SOCKET_LINUX_11_029]")
{
    test_env env;
    const int fd = fake().make_socket();
    const int other = fake().make_socket();
    fake_socket s(*env.engine);
    std::optional<socket_state> seen;
    std::optional<open_result> nested;
    fake().on_epoll_add = [&] {
        seen = s.state();
        nested = s.open(other);
    };
    CHECK(s.open(fd) == open_result::ok);
    fake().on_epoll_add = nullptr;
    CHECK(seen == socket_state::opening);
    CHECK(nested == open_result::error);
    CHECK(s.native_handle() == fd);
    CHECK_FALSE(fake().registered(other).has_value());
}

TEST_CASE("open on an OPEN socket fails and leaves it as it was", "[SRS_ASYNC_SOCKET_LINUX_11_029]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const int other = fake().make_socket();
    CHECK(s.open(other) == open_result::error);
    CHECK(s.state() == socket_state::open);
    CHECK(s.native_handle() == fd);
    CHECK_FALSE(fake().registered(other).has_value());
}

TEST_CASE("when epoll refuses the descriptor, open fails and the socket stays openable",
          "[SRS_ASYNC_SOCKET_LINUX_11_034]")
{
    test_env env;
    const int fd = fake().make_socket();
    int expected_closes = 0;
    {
        fake_socket s(*env.engine);
        fake().fail_epoll_add = ENOMEM;
        CHECK(s.open(fd) == open_result::error);
        CHECK(s.state() == socket_state::created);
        CHECK_FALSE(fake().registered(fd).has_value());

        SECTION("opened again")
        {
            CHECK(s.open(fd) == open_result::ok);
            CHECK(s.state() == socket_state::open);
            expected_closes = 1;
        }
        SECTION("destroyed without a second try: the handle was not taken")
        {
            expected_closes = 0;
        }
    }
    CHECK(fake_world::count(fake().closed_fds, fd) == expected_closes);
}

// ---- close -----------------------------------------------------------------------------------

TEST_CASE("close goes CLOSING, disconnects the transport, then CLOSED",
          "[SRS_ASYNC_SOCKET_LINUX_11_036][SRS_ASYNC_SOCKET_LINUX_11_041][SRS_ASYNC_SOCKET_LINUX_11_104]")
{
    test_env env;
    const int fd = fake().make_socket();
    fake_socket s(*env.engine);
    owner_probe owner;
    std::optional<socket_state> state_at_disconnect;
    bool registered_at_disconnect = true;
    owner.on_disconnect = [&] {
        state_at_disconnect = s.state();
        registered_at_disconnect = fake().registered(fd).has_value();
    };
    REQUIRE(s.open(fd, owner.get()) == open_result::ok);

    s.close();
    CHECK(owner.disconnects == 1);
    CHECK(owner.last_fd == fd);
    CHECK(state_at_disconnect == socket_state::closing);
    CHECK_FALSE(registered_at_disconnect);
    CHECK(s.state() == socket_state::closed);
    CHECK(fake_world::count(fake().deleted_fds, fd) == 1);
    CHECK(owner.destroys == 0); // destroying the handle is destroy's job
}

TEST_CASE("close with the default owner shuts the connection down but keeps the descriptor until destroy",
          "[SRS_ASYNC_SOCKET_LINUX_11_104][SRS_ASYNC_SOCKET_LINUX_11_103]")
{
    test_env env;
    int fd = -1;
    {
        fake_socket s = env.open_socket(fd);
        s.close();
        CHECK(fake_world::count(fake().shutdown_fds, fd) == 1);
        CHECK(fake_world::count(fake().closed_fds, fd) == 0);
    }
    CHECK(fake_world::count(fake().shutdown_fds, fd) == 1);
    CHECK(fake_world::count(fake().closed_fds, fd) == 1);
}

TEST_CASE("close does nothing unless the socket is OPEN", "[SRS_ASYNC_SOCKET_LINUX_11_042]")
{
    test_env env;
    fake_socket s(*env.engine);
    s.close(); // CREATED
    CHECK(s.state() == socket_state::created);
    CHECK(fake().epoll_del_calls == 0);
    CHECK(fake().shutdown_fds.empty());

    const int fd = fake().make_socket();
    REQUIRE(s.open(fd) == open_result::ok); // closing a CREATED socket did not end it
    s.close();
    s.close(); // CLOSED
    CHECK(s.state() == socket_state::closed);
    CHECK(fake().epoll_del_calls == 1);
    CHECK(fake_world::count(fake().shutdown_fds, fd) == 1);
}

TEST_CASE("a closed socket cannot be opened again", "[SRS_ASYNC_SOCKET_LINUX_11_029][SRS_ASYNC_SOCKET_LINUX_11_034]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    s.close();
    const int other = fake().make_socket();
    CHECK(s.open(other) == open_result::error);
    CHECK(s.state() == socket_state::closed);
    CHECK_FALSE(fake().registered(other).has_value());
}

TEST_CASE("close completes every pending operation abandoned, exactly once, before it returns",
          "[SRS_ASYNC_SOCKET_LINUX_11_080][SRS_ASYNC_SOCKET_LINUX_11_081][SRS_ASYNC_SOCKET_LINUX_04_008]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    pending_set ops;
    ops.start(s);
    env.drain(); // receives try their call once (EAGAIN) and keep waiting
    REQUIRE(ops.total_calls() == 0);

    s.close();
    ops.check_each_called_once_abandoned();

    // Events after close and the engine's loop deliver nothing more.
    CHECK_FALSE(fake().raise(fd, EPOLLIN | EPOLLOUT)); // no longer registered
    env.drain();
    CHECK(ops.total_calls() == 5);
}

TEST_CASE("close completes pending co_await operations abandoned, each resumed once",
          "[SRS_ASYNC_SOCKET_LINUX_11_080][SRS_ASYNC_SOCKET_LINUX_11_081][SRS_ASYNC_SOCKET_LINUX_04_008]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string out = "x", in(4, '\0');
    awaited<send_result> sent;
    awaited<receive_outcome> received;
    awaited<notify_io_result> notified;
    await_into(sent, [&] { return s.send_async(cbuf(out)); });
    await_into(received, [&] { return s.receive_async(mbuf(in)); });
    await_into(notified, [&] { return s.notify_io_async(notify_io_type::out); });
    REQUIRE_FALSE(sent.done());
    REQUIRE_FALSE(received.done());
    REQUIRE_FALSE(notified.done());

    s.close();
    env.drain(); // awaiters completed by close resume on the engine
    CHECK(sent.value == send_result::abandoned);
    CHECK(received.value == receive_outcome{receive_result::abandoned, 0});
    CHECK(notified.value == notify_io_result::abandoned);
    for (int n : {sent.completions, received.completions, notified.completions}) {
        CHECK(n == 1);
    }
    for (int n : {sent.extra_resumes, received.extra_resumes, notified.extra_resumes}) {
        CHECK(n == 0);
    }
}

TEST_CASE("close from inside a completion callback", "[SRS_ASYNC_SOCKET_LINUX_11_036][SRS_ASYNC_SOCKET_LINUX_11_041]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    pending_set ops;
    ops.start(s);
    env.drain();

    SECTION("a receive that completed closes the socket: the rest is abandoned")
    {
        fake().sock(fd).data("abc");
        ops.recv1.then = [&] {
            CHECK(s.state() == socket_state::open);
            s.close();
            CHECK(s.state() == socket_state::closed);
        };
        REQUIRE(fake().raise(fd, EPOLLIN));
        env.drain();
        CHECK(ops.recv1.calls == 1);
        CHECK(ops.recv1.result == receive_result::ok);
        CHECK(ops.recv1.bytes == 3);
        CHECK(ops.recv2.result == receive_result::abandoned);
        CHECK(ops.send.result == send_result::abandoned);
        CHECK(ops.notify_in.calls == 1);
        CHECK(ops.notify_out.result == notify_io_result::abandoned);
    }
    SECTION("a callback run by close calls close again")
    {
        int inner_closes = 0;
        ops.recv1.then = [&] {
            ++inner_closes;
            s.close();
        };
        s.close();
        CHECK(inner_closes == 1);
        ops.check_each_called_once_abandoned();
    }
    CHECK(ops.recv2.calls == 1);
    CHECK(ops.send.calls == 1);
    CHECK(ops.notify_out.calls == 1);
    CHECK(fake_world::count(fake().shutdown_fds, fd) == 1);
    CHECK(fake_world::count(fake().deleted_fds, fd) == 1);
    env.drain();
    CHECK(ops.total_calls() == 5);
}

// ---- destroy ----------------------------------------------------------------------------------

TEST_CASE("destroy closes an OPEN socket: pending operations abandoned, handle destroyed, engine released",
          "[SRS_ASYNC_SOCKET_LINUX_11_021][SRS_ASYNC_SOCKET_LINUX_11_103][SRS_ASYNC_SOCKET_LINUX_11_022]"
          "[SRS_ASYNC_SOCKET_LINUX_11_023]")
{
    test_env env;
    int fd = -1;
    pending_set ops;
    {
        fake_socket s = env.open_socket(fd);
        CHECK(env.engine->use_count() == 2);
        ops.start(s);
        env.drain();
        REQUIRE(ops.total_calls() == 0);
    }
    ops.check_each_called_once_abandoned();
    CHECK(fake_world::count(fake().deleted_fds, fd) == 1);
    CHECK(fake_world::count(fake().shutdown_fds, fd) == 1);
    CHECK(fake_world::count(fake().closed_fds, fd) == 1);
    CHECK(env.engine->use_count() == 1);
    env.drain();
    CHECK(ops.total_calls() == 5);

    // What the socket held is back in the engine: a new socket opens and works.
    int fd2 = -1;
    fake_socket s2 = env.open_socket(fd2);
    fake().sock(fd2).accept_all();
    std::string out = "again";
    send_probe p;
    const const_buffer b[1]{cbuf(out)};
    CHECK(p.start(s2, b) == send_sync_result::ok);
    CHECK(p.result == send_result::ok);
    CHECK(fake().sock(fd2).wire == "again");
}

TEST_CASE("destroy with a custom owner calls its destroy once, after disconnect", "[SRS_ASYNC_SOCKET_LINUX_11_103]")
{
    test_env env;
    const int fd = fake().make_socket();
    owner_probe owner;
    {
        fake_socket s(*env.engine);
        REQUIRE(s.open(fd, owner.get()) == open_result::ok);
    }
    CHECK(owner.disconnects == 1);
    CHECK(owner.destroys == 1);
    CHECK(owner.last_fd == fd);
    CHECK(fake_world::count(fake().closed_fds, fd) == 0); // the owner decides, not the default
}

TEST_CASE("destroy from inside a completion callback", "[SRS_ASYNC_SOCKET_LINUX_11_021]")
{
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    pending_set ops;
    ops.start(*s);
    env.drain();
    fake().sock(fd).data("z");
    ops.recv1.then = [&] { s.reset(); };
    REQUIRE(fake().raise(fd, EPOLLIN));
    env.drain();
    CHECK(s == nullptr);
    CHECK(ops.recv1.result == receive_result::ok);
    CHECK(ops.recv2.result == receive_result::abandoned);
    CHECK(ops.send.result == send_result::abandoned);
    CHECK(ops.total_calls() == 5);
    CHECK(fake_world::count(fake().closed_fds, fd) == 1);
    CHECK(env.engine->use_count() == 1);
}

TEST_CASE("destroy waits while another thread is opening the socket", "[SRS_ASYNC_SOCKET_LINUX_11_020]")
{
    // Driven at the core level (async_socket forbids destroying while another
    // call on the same object runs; the spec's destroy must still wait).
    test_env env;
    fake_core* core = env.engine->acquire_core();
    REQUIRE(core != nullptr);
    core->attach(env.engine.get(), {});
    const int fd = fake().make_socket();
    std::atomic<bool> destroyed{false};
    bool destroyed_while_opening = true;
    std::thread destroyer;
    fake().on_epoll_add = [&] {
        destroyer = std::thread([&] {
            core->detach();
            destroyed = true;
        });
        std::this_thread::sleep_for(20ms); // room for a wrong destroy to run ahead
        destroyed_while_opening = destroyed.load();
    };
    CHECK(core->open(fd, fake_platform::default_owner()) == open_result::ok);
    destroyer.join();
    fake().on_epoll_add = nullptr;
    CHECK_FALSE(destroyed_while_opening);
    CHECK(destroyed);
    // The open succeeded, so destroy closed it implicitly.
    CHECK(fake_world::count(fake().deleted_fds, fd) == 1);
    CHECK(fake_world::count(fake().shutdown_fds, fd) == 1);
    CHECK(fake_world::count(fake().closed_fds, fd) == 1);
    env.engine->release_core(core);
}

TEST_CASE("destroy waits while another thread is closing the socket", "[SRS_ASYNC_SOCKET_LINUX_11_020]")
{
    test_env env;
    fake_core* core = env.engine->acquire_core();
    REQUIRE(core != nullptr);
    core->attach(env.engine.get(), {});
    const int fd = fake().make_socket();
    owner_probe owner;
    std::atomic<bool> destroyed{false};
    bool destroyed_while_closing = true;
    std::optional<socket_state> state_seen;
    std::thread destroyer;
    owner.on_disconnect = [&] {
        state_seen = core->state();
        destroyer = std::thread([&] {
            core->detach();
            destroyed = true;
        });
        std::this_thread::sleep_for(20ms);
        destroyed_while_closing = destroyed.load();
    };
    REQUIRE(core->open(fd, owner.get()) == open_result::ok);
    core->close();
    destroyer.join();
    CHECK(state_seen == socket_state::closing);
    CHECK_FALSE(destroyed_while_closing);
    CHECK(destroyed);
    CHECK(owner.disconnects == 1); // no second, implicit close
    CHECK(owner.destroys == 1);
    env.engine->release_core(core);
}

TEST_CASE("close waits for a send or receive that is executing on another thread", "[SRS_ASYNC_SOCKET_LINUX_11_037]")
{
    test_env env;
    fake_transport t;
    int fd = -1;
    fake_socket s = env.open_socket(fd, t.get());
    std::atomic<bool> entered{false};
    std::atomic<bool> release{false};
    std::atomic<bool> closed{false};
    auto block = [&] {
        entered = true;
        while (!release.load()) {
            std::this_thread::yield();
        }
    };
    std::string out = "abcdef";
    std::string in(6, '\0');
    send_probe sp;
    awaited<receive_outcome> received;
    const const_buffer sb[1]{cbuf(out)};

    std::thread worker;
    SECTION("send")
    {
        t.ep.accept_all();
        t.on_send_hook = block;
        worker = std::thread([&] { sp.start(s, sb); });
    }
    SECTION("receive")
    {
        t.ep.data("hello!");
        t.on_recv_hook = block;
        worker = std::thread([&] { await_into(received, [&] { return s.receive_async(mbuf(in)); }); });
    }
    while (!entered.load()) {
        std::this_thread::yield();
    }
    std::thread closer([&] {
        s.close();
        closed = true;
    });
    std::this_thread::sleep_for(20ms); // room for a wrong close to finish early
    const bool closed_early = closed.load();
    release = true;
    worker.join();
    closer.join();
    CHECK_FALSE(closed_early);
    CHECK(closed);
    CHECK(s.state() == socket_state::closed);
    if (sp.calls != 0) {
        CHECK(sp.calls == 1);
        CHECK(sp.result == send_result::ok);
        CHECK(t.ep.wire == "abcdef");
    } else {
        CHECK(received.completions == 1);
        CHECK(received.value == receive_outcome{receive_result::ok, 6});
        CHECK(in == "hello!");
    }
}

// ---- operation records ---------------------------------------------------------------------

TEST_CASE("an operation record is the caller's again once its callback ran, and can start the next operation",
          "[SRS_ASYNC_SOCKET_LINUX_11_056][SRS_ASYNC_SOCKET_LINUX_11_073][SRS_ASYNC_SOCKET_LINUX_04_017]"
          "[SRS_ASYNC_SOCKET_LINUX_11_084][SRS_ASYNC_SOCKET_LINUX_11_087][SRS_ASYNC_SOCKET_LINUX_11_093]"
          "[SRS_ASYNC_SOCKET_LINUX_11_100]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string out1 = "one", out2 = "two", in = std::string(3, '#');
    const const_buffer b1[1]{cbuf(out1)}, b2[1]{cbuf(out2)};
    const mutable_buffer rb[1]{mbuf(in)};
    std::string received;

    // Each record is restarted from inside its own callback, after a wait each time.
    send_probe sp;
    sp.then = [&] {
        if (sp.calls == 1) {
            CHECK(sp.start(s, b2) == send_sync_result::ok);
        }
    };
    receive_probe rp;
    rp.then = [&] {
        received.append(in, 0, rp.bytes);
        if (rp.calls == 1) {
            CHECK(rp.start(s, rb) == start_result::started);
        }
    };
    notify_probe np;
    np.then = [&] {
        if (np.calls == 1) {
            CHECK(np.start(s, notify_io_type::in) == start_result::started);
        }
    };
    REQUIRE(sp.start(s, b1) == send_sync_result::ok);
    REQUIRE(rp.start(s, rb) == start_result::started);
    REQUIRE(np.start(s, notify_io_type::in) == start_result::started);
    env.drain();

    for (const char* chunk : {"abc", "def"}) {
        fake().sock(fd).accept_all();
        fake().sock(fd).data(chunk);
        REQUIRE(fake().raise(fd, EPOLLIN | EPOLLOUT));
        env.drain();
    }
    CHECK(sp.calls == 2);
    CHECK(sp.result == send_result::ok);
    CHECK(fake().sock(fd).wire == "onetwo");
    CHECK(rp.calls == 2);
    CHECK(received == "abcdef");
    CHECK(np.calls == 2);
    CHECK(np.result == notify_io_result::in);
}
