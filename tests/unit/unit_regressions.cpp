// tests/unit/unit_regressions.cpp: defects found by testing the installed
// package as a user would, each pinned by a deterministic test over the fake
// OS layer. Where the defect was a race, the test forces the losing schedule
// (a hook of the fake runs the other side at the exact point) instead of
// hoping to hit it.
#include "unit_helpers.hpp"

#include <asock/engine_ref.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <thread>

using namespace asock_test;

namespace {

/// Runs `body` on a new thread and fails the whole test program (a deadlock
/// cannot be recovered from) when it does not finish within `limit`.
template <class Body>
void within(std::chrono::seconds limit, const char* what, Body body)
{
    auto done = std::async(std::launch::async, std::move(body));
    if (done.wait_for(limit) != std::future_status::ready) {
        std::fprintf(stderr, "deadlock: %s did not finish within %lld s\n", what,
                     static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::_Exit(3);
    }
    done.get();
}

} // namespace

// ---- 1: engine stop lost its wake-up -------------------------------------------------------

TEST_CASE("regression: a stop that lands between an engine thread's stop check and its eventfd drain still wakes every "
          "thread",
          "[regression][engine][SRS_ASYNC_SOCKET_LINUX_11_005]")
{
    // Thread A takes the eventfd event and reads stop_ == false; stop() sets
    // stop_ and signals; A's drain then consumed that signal, and a thread B
    // sleeping in epoll_wait(-1) never woke: destroying the engine joined B
    // forever. The fake runs stop() exactly inside that window.
    test_env env;
    const int evfd = fake().eventfds().at(0);
    struct noop : asock::detail::work_item {
        static void run_fn(asock::detail::work_item*) noexcept {}
    } item;
    item.run = &noop::run_fn;
    env.engine->post(&item); // from outside the loop: signals the eventfd
    REQUIRE(fake().eventfd_signalled(evfd));
    int stops = 0;
    fake().on_eventfd_drain = [&] {
        if (stops++ == 0) {
            env.engine->stop();
        }
    };
    env.engine->run_one(0);
    fake().on_eventfd_drain = nullptr;
    CHECK(stops == 1);
    CHECK(env.engine->stopped());
    // The stop signal is still there for every other thread waiting on the instance.
    CHECK(fake().eventfd_signalled(evfd));
}

// ---- 2: an event of a destroyed socket reached the socket that reused its core ----------------

TEST_CASE("regression: an event harvested for a destroyed socket never reaches the socket that reuses its core",
          "[regression][engine][SRS_ASYNC_SOCKET_LINUX_11_079]")
{
    // One batch: X has data, then A hangs up. X's callback destroys A and
    // creates B, which gets A's pooled core, opens it on a healthy, silent
    // descriptor and waits for IN. A's hang-up, next in the batch, named the
    // core by address: B's notify completed abandoned and B's read side was
    // marked final.
    test_env env;
    int fd_a = -1, fd_x = -1;
    auto a = std::make_unique<fake_socket>(env.open_socket(fd_a));
    fake_socket x = env.open_socket(fd_x);
    const void* core_of_a = a->core();
    std::unique_ptr<fake_socket> b;
    const int fd_b = fake().make_socket();
    notify_probe nb;
    bool b_got_a_core = false;

    std::string in(4, '#');
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe rx;
    rx.then = [&] {
        a.reset();
        b = std::make_unique<fake_socket>(*env.engine);
        b_got_a_core = b->core() == core_of_a;
        REQUIRE(b->open(fd_b) == open_result::ok);
        REQUIRE(nb.start(*b, notify_io_type::in) == start_result::started);
    };
    REQUIRE(rx.start(x, rb) == start_result::started);
    env.drain();
    // Registered before the batch: A's event still carries A's token.
    const std::uint64_t token_a = fake().registered(fd_a)->data;
    fake().sock(fd_x).data("data");
    REQUIRE(fake().raise(fd_x, EPOLLIN));
    fake().inject(env.epfd(), token_a, EPOLLIN | EPOLLHUP | EPOLLRDHUP);
    env.drain();
    REQUIRE(rx.calls == 1);
    REQUIRE(b);
    CHECK(b_got_a_core); // the scenario needs the reuse; the pool hands out LIFO
    CHECK(nb.calls == 0); // B is healthy and silent: nothing to report
    CHECK(b->state() == socket_state::open);
    // B's read side was not marked final by A's hang-up: a receive waits for data.
    std::string bin(2, '#');
    const mutable_buffer brb[1]{mbuf(bin)};
    receive_probe rb2;
    REQUIRE(rb2.start(*b, brb) == start_result::started);
    env.drain();
    CHECK(rb2.calls == 0);
    fake().sock(fd_b).data("ok");
    fake().set_readiness(fd_b, POLLIN);
    REQUIRE(fake().raise(fd_b, EPOLLIN));
    env.drain();
    CHECK(nb.calls == 1);
    CHECK(nb.result == notify_io_result::in);
    CHECK(rb2.calls == 1);
    CHECK(rb2.result == receive_result::ok);
    CHECK(bin == "ok");
}

TEST_CASE("regression: each open of a pooled core registers a new event token",
          "[regression][engine][SRS_ASYNC_SOCKET_LINUX_11_079]")
{
    test_env env;
    int fd1 = -1;
    auto s1 = std::make_unique<fake_socket>(env.open_socket(fd1));
    const void* core = s1->core();
    const std::uint64_t t1 = fake().registered(fd1)->data;
    s1.reset();
    int fd2 = -1;
    fake_socket s2 = env.open_socket(fd2);
    REQUIRE(s2.core() == core);
    const std::uint64_t t2 = fake().registered(fd2)->data;
    CHECK(static_cast<std::uint32_t>(t1) == static_cast<std::uint32_t>(t2)); // same slot
    CHECK(t1 != t2);                                                           // another generation
    // An event with the old token is dropped; one with the new token is handled.
    std::string in(3, '#');
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe p;
    REQUIRE(p.start(s2, rb) == start_result::started);
    env.drain();
    fake().sock(fd2).eof();
    fake().inject(env.epfd(), t1, EPOLLIN | EPOLLRDHUP);
    env.drain();
    CHECK(p.calls == 0);
    fake().inject(env.epfd(), t2, EPOLLIN | EPOLLRDHUP);
    env.drain();
    CHECK(p.calls == 1);
    CHECK(p.result == receive_result::abandoned);
}

// ---- 3: callbacks after destroy / close returned ----------------------------------------------

TEST_CASE("regression: destroy or close called from a callback delivers the socket's other finished operations first",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_021][SRS_ASYNC_SOCKET_LINUX_11_036]")
{
    // The peer writes 1 byte and closes: two receives finish in one dispatch.
    // The first callback destroys the socket (and frees its per-connection
    // context); the second callback ran afterwards, with the freed context.
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    std::string in1(4, '#'), in2(4, '#');
    const mutable_buffer rb1[1]{mbuf(in1)};
    const mutable_buffer rb2[1]{mbuf(in2)};
    receive_probe r1, r2;
    bool returned = false;
    bool second_after_return = false;
    const bool by_destroy = GENERATE(true, false);
    r1.then = [&] {
        if (by_destroy) {
            s.reset();
        } else {
            s->close();
        }
        returned = true;
    };
    r2.then = [&] { second_after_return = returned; };
    REQUIRE(r1.start(*s, rb1) == start_result::started);
    REQUIRE(r2.start(*s, rb2) == start_result::started);
    env.drain();
    fake().sock(fd).data("x").eof();
    REQUIRE(fake().raise(fd, EPOLLIN | EPOLLRDHUP));
    env.drain();
    CHECK(r1.calls == 1);
    CHECK(r1.result == receive_result::ok);
    CHECK(r2.calls == 1);
    CHECK(r2.result == receive_result::abandoned);
    CHECK_FALSE(second_after_return);
}

TEST_CASE("regression: destroy called from a callback that close() is delivering delivers close's other completions "
          "first",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_021][SRS_ASYNC_SOCKET_LINUX_11_038]")
{
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    std::string in(4, '#');
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe r;
    notify_probe n;
    bool returned = false;
    bool notify_after_return = false;
    r.then = [&] {
        s.reset();
        returned = true;
    };
    n.then = [&] { notify_after_return = returned; };
    REQUIRE(r.start(*s, rb) == start_result::started);
    REQUIRE(n.start(*s, notify_io_type::in) == start_result::started);
    env.drain();
    s->close();
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::abandoned);
    CHECK(n.calls == 1);
    CHECK(n.result == notify_io_result::abandoned);
    CHECK_FALSE(notify_after_return);
    CHECK_FALSE(s);
}

TEST_CASE("regression: close from a callback while a co_await of the same socket finished in the same dispatch",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_036]")
{
    // The awaiter's result is set in the dispatch; close() from the earlier
    // callback must hand it over before it returns (resumed exactly once).
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string in1(4, '#'), in2(4, '#');
    const mutable_buffer rb1[1]{mbuf(in1)};
    receive_probe r1;
    awaited<receive_outcome> a;
    r1.then = [&] { s.close(); };
    REQUIRE(r1.start(s, rb1) == start_result::started);
    await_into(a, [&] { return s.receive_async(mbuf(in2)); });
    env.drain();
    fake().sock(fd).data("x").eof();
    REQUIRE(fake().raise(fd, EPOLLIN | EPOLLRDHUP));
    env.drain();
    CHECK(r1.calls == 1);
    CHECK(a.completions == 1);
    CHECK(a.extra_resumes == 0);
    CHECK(a.value == receive_outcome{receive_result::abandoned, 0});
}

// ---- 6: close on one thread + destroy from a callback on the engine thread ----------------------

TEST_CASE("regression: destroy from a callback does not deadlock with a close waiting on another thread",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_020][SRS_ASYNC_SOCKET_LINUX_11_021]")
{
    // The engine thread runs a receive's callback; the main thread's close()
    // waits for that dispatch; the callback destroys the socket, whose destroy
    // waited for the close: each waited for the other. The callback waits
    // until the close is under way, so the schedule is forced.
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    fake_core* core = s->core();
    std::string in(4, '#');
    const mutable_buffer rb[1]{mbuf(in)};
    std::string in2(4, '#');
    const mutable_buffer rb2[1]{mbuf(in2)};
    receive_probe r, pending;
    std::atomic<bool> in_callback{false};
    std::atomic<bool> destroy_returned{false};
    bool pending_after_destroy = false;
    r.then = [&] {
        in_callback = true;
        while (core->state() != socket_state::closing) {
            std::this_thread::yield();
        }
        // Let the close reach its wait for this dispatch.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        s.reset();
        destroy_returned = true;
    };
    pending.then = [&] { pending_after_destroy = destroy_returned.load(); };
    REQUIRE(r.start(*s, rb) == start_result::started);
    REQUIRE(pending.start(*s, rb2) == start_result::started);
    env.drain();
    fake().sock(fd).data("ab");
    REQUIRE(fake().raise(fd, EPOLLIN));
    within(std::chrono::seconds(30), "close + destroy from a callback", [&] {
        std::thread loop([&] { env.engine->run_one(0); });
        while (!in_callback) {
            std::this_thread::yield();
        }
        core->close(); // as a concurrent async_socket_close on the same handle would
        loop.join();
    });
    CHECK(destroy_returned);
    CHECK(r.calls == 1);
    CHECK(pending.calls == 1);
    CHECK(pending.result == receive_result::abandoned);
    CHECK_FALSE(pending_after_destroy);
}

// ---- 7: engine destruction dropped posted work -----------------------------------------------

TEST_CASE("regression: destroying an engine runs the resumptions it had accepted",
          "[regression][engine][SRS_ASYNC_SOCKET_LINUX_11_036]")
{
    // A coroutine awaits a receive; close() posts its resumption to the
    // engine; the socket and then the engine go. The resumption was dropped:
    // the coroutine never ran again and its frame leaked.
    fake().reset();
    auto* engine = fake_engine::create(asock::linux_epoll::engine_options{.threads = 0});
    REQUIRE(engine != nullptr);
    awaited<receive_outcome> a;
    std::string in(4, '#');
    {
        const int fd = fake().make_socket();
        fake_socket s(*engine);
        REQUIRE(s.open(fd) == open_result::ok);
        await_into(a, [&] { return s.receive_async(mbuf(in)); });
        engine->poll();
        s.close(); // from this thread, not a loop thread: the resumption is posted
        CHECK(a.completions == 0);
    }
    engine->dec_ref(); // the last reference
    CHECK(a.completions == 1);
    CHECK(a.value == receive_outcome{receive_result::abandoned, 0});
}

// ---- found by the fuzzers: deliveries outside the dispatch ------------------------------------

TEST_CASE("regression: close on another thread waits for the callback of a send that completed inside its start call",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_037][SRS_ASYNC_SOCKET_LINUX_11_061]")
{
    // Thread A's send completes at once and A runs its callback; thread B's
    // close found nothing queued and returned while that callback still ran,
    // so the caller freed the callback's context under it.
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake_core* core = s.core();
    fake().sock(fd).auto_accept = true;
    std::string out = "abc";
    const const_buffer b[1]{cbuf(out)};
    send_probe p;
    std::atomic<bool> in_callback{false};
    std::atomic<bool> callback_done{false};
    p.then = [&] {
        in_callback = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        callback_done = true;
    };
    bool done_when_close_returned = false;
    within(std::chrono::seconds(30), "close during an inline send callback", [&] {
        std::thread sender([&] { CHECK(p.start(s, b) == send_sync_result::ok); });
        while (!in_callback) {
            std::this_thread::yield();
        }
        core->close();
        done_when_close_returned = callback_done;
        sender.join();
    });
    CHECK(p.calls == 1);
    CHECK(done_when_close_returned);
}

TEST_CASE("regression: destroy from an inline send callback does not deadlock with a close on another thread",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_020][SRS_ASYNC_SOCKET_LINUX_11_021]")
{
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    fake_core* core = s->core();
    fake().sock(fd).auto_accept = true;
    std::string out = "abc";
    const const_buffer b[1]{cbuf(out)};
    send_probe p;
    std::atomic<bool> in_callback{false};
    p.then = [&] {
        in_callback = true;
        while (core->state() != socket_state::closing) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20)); // let the close reach its wait
        s.reset();
    };
    within(std::chrono::seconds(30), "destroy in an inline send callback + close", [&] {
        std::thread sender([&] { CHECK(p.start(*s, b) == send_sync_result::ok); });
        while (!in_callback) {
            std::this_thread::yield();
        }
        core->close();
        sender.join();
    });
    CHECK(p.calls == 1);
    CHECK_FALSE(s);
}

TEST_CASE("regression: a callback that a close delivers may call its socket while another thread destroys it",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_020]")
{
    // Found by the C API fuzzer under TSan: the destructor cleared the
    // object's core pointer before waiting for the close in progress, while a
    // callback delivered by that close called close() on the same object
    // (which reads it): a data race. The pointer now stays until the wait is
    // over. (TSan builds see the race; others see a callback that still works.)
    test_env env;
    int fd = -1;
    auto s = std::make_unique<fake_socket>(env.open_socket(fd));
    fake_socket* raw = s.get();
    std::string in(4, '#');
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe r;
    std::atomic<bool> in_callback{false};
    std::atomic<bool> destroy_started{false};
    socket_state seen = socket_state::open;
    r.then = [&] {
        in_callback = true;
        while (!destroy_started) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20)); // the destroy reaches its wait
        raw->close();         // reads the object's core pointer
        seen = raw->state(); // so does this
    };
    REQUIRE(r.start(*s, rb) == start_result::started);
    env.drain();
    within(std::chrono::seconds(30), "destroy while a close delivers", [&] {
        std::thread closer([&] { raw->close(); });
        while (!in_callback) {
            std::this_thread::yield();
        }
        destroy_started = true;
        s.reset(); // waits for the close on `closer`
        closer.join();
    });
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::abandoned);
    CHECK(seen == socket_state::closing);
}

// ---- found by CI: a close waiting for one dispatch missed the end of the next -----------------

TEST_CASE("regression: a close waiting for a dispatch is woken when a dispatch that began after its mark ends",
          "[regression][lifecycle][SRS_ASYNC_SOCKET_LINUX_11_037]")
{
    // close() marked the dispatch word (close_wait) and waited while a
    // dispatch D1 ran. D1 ended, clearing the mark and waking nobody yet, and
    // a second dispatch D2 (another thread's event or kick) started before
    // the closer looked again. The closer then waited on a word without its
    // mark, D2 ended without a wake-up, and close() never returned (seen once
    // in CI, C API test under ASan: a notify's kick and the registration's
    // first edge on two engine threads). The hooks of the fake run D1's end
    // and D2's start between the closer's mark and its wait.
    using asock::detail::readiness::schedule_point;
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake_core* core = s.core();
    std::string in(4, '#');
    const mutable_buffer rb[1]{mbuf(in)};
    receive_probe r;
    std::atomic<bool> in_callback{false};
    std::atomic<bool> release_d1{false};
    r.then = [&] {
        in_callback = true;
        while (!release_d1) {
            std::this_thread::yield();
        }
    };
    REQUIRE(r.start(s, rb) == start_result::started);
    env.drain();
    const std::uint64_t token = fake().registered(fd)->data;
    fake().sock(fd).data("ab");
    REQUIRE(fake().raise(fd, EPOLLIN));

    std::thread d1_thread;
    std::thread d2_thread;
    std::atomic<int> dispatches{0};
    std::atomic<bool> d2_running{false};
    std::atomic<bool> d1_done{false};
    std::atomic<int> marks{0};
    fake().on_schedule_point = [&](schedule_point p) {
        if (p == schedule_point::dispatch_started) {
            if (dispatches.fetch_add(1) == 1) { // D2
                d2_running = true;
                // Stay running until the closer is back in its wait.
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            return;
        }
        if (marks.fetch_add(1) != 0) {
            return;
        }
        // The closer has marked the word while D1 runs: end D1, start D2.
        release_d1 = true;
        d1_thread.join();
        d1_done = true;
        fake().inject(env.epfd(), token, EPOLLIN);
        d2_thread = std::thread([&] { env.engine->run_one(0); });
        while (!d2_running) {
            std::this_thread::yield();
        }
    };
    // The hook is set before any thread that reaches it starts.
    d1_thread = std::thread([&] { env.engine->run_one(0); });
    while (!in_callback) {
        std::this_thread::yield();
    }
    within(std::chrono::seconds(30), "close waiting for a second dispatch", [&] { core->close(); });
    if (d2_thread.joinable()) {
        d2_thread.join(); // before the hook goes: D2 may still be inside it
    }
    fake().on_schedule_point = nullptr;
    CHECK(d1_done);
    CHECK(dispatches == 2);
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(core->state() == socket_state::closed);
}
