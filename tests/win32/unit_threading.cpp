// tests/win32/unit_threading.cpp: close, cancellation, delivery order and
// threads in the Windows backend, over the fake Win32 layer.
#include "unit_support.hpp"

#include <asock/detail/word_mutex.hpp>

#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

using namespace asock_wtest;
using asock::receive_result;
using asock::send_result;
using asock::send_sync_result;
using asock::socket_state;
using asock::start_result;
using kind = outstanding_call::kind;

namespace {

const std::vector<std::string> teardown_calls = {"CancelIoEx",
                                                 "WaitForThreadpoolIoCallbacks(FALSE)",
                                                 "CloseThreadpoolIo",
                                                 "DestroyThreadpoolEnvironment",
                                                 "shutdown",
                                                 "closesocket"};

asock::task<send_result> send_text(fake_socket_t& s, const std::string& text, std::stop_token token = {})
{
    co_return co_await s.send_async(asock::buffer(std::string_view(text)), std::move(token));
}

asock::task<asock::receive_outcome> receive_some(fake_socket_t& s, char* buf, std::size_t n,
                                                 std::stop_token token = {})
{
    co_return co_await s.receive_async(asock::buffer(buf, n), std::move(token));
}

asock::task<asock::receive_outcome> receive_into(fake_socket_t& s, std::span<const mutable_buffer> bufs,
                                                 std::stop_token token = {})
{
    co_return co_await s.receive_async(bufs, std::move(token));
}

struct logged_item : asock::detail::work_item {
    std::vector<int>* log = nullptr;
    int id = 0;
    fake_engine* engine = nullptr;
    logged_item* then_post = nullptr; ///< posted by this item when it runs
    bool stop = false;                ///< calls engine->stop() when it runs
    bool on_loop = false;             ///< running_in_this_thread() inside run
    std::thread::id thread;
    int runs = 0;

    logged_item(std::vector<int>& l, int i, fake_engine* e) : log(&l), id(i), engine(e)
    {
        run = [](asock::detail::work_item* w) {
            auto* self = static_cast<logged_item*>(w);
            ++self->runs;
            self->log->push_back(self->id);
            self->thread = std::this_thread::get_id();
            self->on_loop = self->engine->running_in_this_thread();
            if (self->then_post != nullptr) {
                self->engine->post(self->then_post);
            }
            if (self->stop) {
                self->engine->stop();
            }
        };
    }
};

const asock::win32::engine_options no_threads{.threads = 0};

} // namespace

// ---- close ------------------------------------------------------------------------------

TEST_CASE("close: outstanding and queued operations complete ABANDONED, in order, before close returns",
          "[win32][close][threading]")
{
    fixture f; // its helper thread completes the cancelled calls, as the OS would
    static std::vector<std::string> order;
    order.clear();
    receive_probe r1, r2;
    send_probe s1("one"), s2("two");
    r1.then = [](receive_probe&) { order.push_back("r1"); };
    r2.then = [](receive_probe&) { order.push_back("r2"); };
    s1.then = [](send_probe&) { order.push_back("s1"); };
    s2.then = [](send_probe&) { order.push_back("s2"); };
    fake_socket_t s = f.open_socket();
    REQUIRE(r1.start(s) == start_result::started);
    REQUIRE(r2.start(s) == start_result::started);
    REQUIRE(s1.start(s) == send_sync_result::ok);
    REQUIRE(s2.start(s) == send_sync_result::ok);
    const auto mark = fake().mark();
    s.close();
    CHECK(s.state() == socket_state::closed);
    for (auto* p : {&r1, &r2}) {
        CHECK(p->calls == 1);
        CHECK(p->result == receive_result::abandoned);
    }
    for (auto* p : {&s1, &s2}) {
        CHECK(p->calls == 1);
        CHECK(p->result == send_result::abandoned);
    }
    // Per direction, the outstanding one first, then the queued one.
    const auto pos = [](const char* n) { return std::find(order.begin(), order.end(), n) - order.begin(); };
    CHECK(pos("r1") < pos("r2"));
    CHECK(pos("s1") < pos("s2"));
    CHECK(fake().calls_since(mark, teardown_calls) ==
          std::vector<std::string>{"CancelIoEx", "CancelIoEx", "WaitForThreadpoolIoCallbacks(FALSE)",
                                   "CloseThreadpoolIo", "DestroyThreadpoolEnvironment", "shutdown"});
    CHECK(fake().count("WSASend") == 1); // the queued send was never issued
    CHECK(fake().count("WSARecv") == 1);
}

TEST_CASE("close: a cancelled call that the OS finishes only later is settled by its completion or as soon as it "
          "finished",
          "[win32][close][threading]")
{
    fixture f; // its helper thread delivers the cancelled calls' completions
    fake().cancel_finishes_at_once = false; // CancelIoEx only asks; the call ends when its packet comes
    receive_probe r;
    send_probe p("pending");
    fake_socket_t s = f.open_socket();
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(p.start(s) == send_sync_result::ok);
    const auto mark = fake().mark();
    s.close();
    CHECK(s.state() == socket_state::closed);
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::abandoned);
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::abandoned);
    CHECK(fake().count("WSAGetOverlappedResult") >= 1);
    CHECK(fake().calls_since(mark, {"WaitForThreadpoolIoCallbacks(FALSE)", "CloseThreadpoolIo",
                                    "DestroyThreadpoolEnvironment", "shutdown"}) ==
          std::vector<std::string>{"WaitForThreadpoolIoCallbacks(FALSE)", "CloseThreadpoolIo",
                                   "DestroyThreadpoolEnvironment", "shutdown"});
    CHECK(fake().outstanding_total() == 0);
}

TEST_CASE("close from inside a callback completes the outstanding calls before it returns; their last packet closes "
          "the IO",
          "[win32][close][threading]")
{
    fixture f{false}; // completions delivered by hand
    receive_probe r;
    send_probe s1("one"), s2("two");
    fake_socket_t s = f.open_socket();
    r.user = &s;
    r.then = [](receive_probe& p) { static_cast<fake_socket_t*>(p.user)->close(); };
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(s1.start(s) == send_sync_result::ok);
    REQUIRE(s2.start(s) == send_sync_result::ok);
    const auto refs = f.engine->use_count();
    const auto mark = fake().mark();
    REQUIRE(fake().complete_recv(sock_a, "bye")); // the callback closes the socket
    CHECK(r.result == receive_result::ok);
    // close() cancelled the outstanding send and settled it as soon as the OS
    // had finished it, without waiting for its callback: everything completed.
    CHECK(s.state() == socket_state::closed);
    CHECK(s1.calls == 1);
    CHECK(s1.result == send_result::abandoned);
    CHECK(s2.calls == 1);
    CHECK(s2.result == send_result::abandoned);
    // The send's completion packet is still to come: the IO, the core and an
    // engine reference stay until it has.
    CHECK(f.engine->use_count() == refs + 1);
    CHECK(fake().count("CloseThreadpoolIo") == 0);
    CHECK(fake().abort_cancelled() == 1);
    CHECK(s1.calls == 1);
    CHECK(s2.calls == 1);
    CHECK(f.engine->use_count() == refs);
    // Never WaitForThreadpoolIoCallbacks from inside the socket's own callback.
    CHECK(fake().calls_since(mark, teardown_calls) ==
          std::vector<std::string>{"CancelIoEx", "shutdown", "CloseThreadpoolIo", "DestroyThreadpoolEnvironment"});
}

TEST_CASE("close from inside a callback with nothing else outstanding finishes before it returns",
          "[win32][close][threading]")
{
    fixture f{false};
    receive_probe r, later;
    fake_socket_t s = f.open_socket();
    r.user = &s;
    static socket_state seen = socket_state::open;
    r.then = [](receive_probe& p) {
        auto* sock = static_cast<fake_socket_t*>(p.user);
        sock->close();
        seen = sock->state();
    };
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(fake().complete_recv(sock_a, ""));
    CHECK(r.result == receive_result::abandoned);
    CHECK(seen == socket_state::closed);
    CHECK(fake().count("WaitForThreadpoolIoCallbacks(FALSE)") == 0);
    CHECK(fake().count("CloseThreadpoolIo") == 1);
    CHECK(later.start(s) == start_result::not_open);
}

TEST_CASE("destroy from inside a callback while a call is outstanding: the close finishes the destroy",
          "[win32][destroy][threading]")
{
    fixture f{false};
    receive_probe r;
    send_probe p("pending");
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    const void* core = s->core();
    r.user = &s;
    r.then = [](receive_probe& probe) { static_cast<std::unique_ptr<fake_socket_t>*>(probe.user)->reset(); };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    const auto refs = f.engine->use_count();
    REQUIRE(fake().complete_recv(sock_a, "x")); // destroys the socket inside the callback
    CHECK(s == nullptr);
    CHECK(p.calls == 1); // settled by the close before the destroy returned
    CHECK(p.result == send_result::abandoned);
    CHECK(fake().sock(sock_a).closes == 0);        // not yet: the send's packet is still to come
    CHECK(f.engine->use_count() == refs);          // the socket's reference went, the close's is held
    {
        fake_socket_t other(*f.engine);            // the core is not reused meanwhile
        CHECK(static_cast<const void*>(other.core()) != core);
    }
    CHECK(fake().abort_cancelled() == 1);
    CHECK(p.calls == 1);
    CHECK(fake().sock(sock_a).closes == 1);
    CHECK(f.engine->use_count() == refs - 1);
    fake_socket_t again(*f.engine); // back in the pool now
    fake_socket_t again2(*f.engine);
    CHECK((static_cast<const void*>(again.core()) == core || static_cast<const void*>(again2.core()) == core));
}

TEST_CASE("close on a thread that is not the engine's resumes awaiters on the engine, not inside close",
          "[win32][close][awaitable]")
{
    fixture f{false};
    char buf[8];
    fake_socket_t s = f.open_socket();
    detached_result<asock::receive_outcome> out;
    start_detached(receive_some(s, buf, sizeof buf), out);
    pool_runner aborter(true);
    s.close();
    CHECK_FALSE(out.done); // the resumption was posted to the engine
    CHECK(fake().pending_work() >= 1);
    fake().run_work();
    REQUIRE(out.done);
    CHECK(out.value->result == receive_result::abandoned);
}

TEST_CASE("close while completions arrive on another thread: every operation completes exactly once",
          "[win32][close][threading]")
{
    for (int round = 0; round < 100; ++round) {
        fixture f;
        std::vector<std::unique_ptr<receive_probe>> rs;
        std::vector<std::unique_ptr<send_probe>> ss;
        for (int i = 0; i < 3; ++i) {
            rs.push_back(std::make_unique<receive_probe>());
            ss.push_back(std::make_unique<send_probe>("m"));
        }
        {
            fake_socket_t s = f.open_socket();
            for (int i = 0; i < 3; ++i) {
                REQUIRE(rs[i]->start(s) == start_result::started);
                REQUIRE(ss[i]->start(s) == send_sync_result::ok);
            }
            std::atomic<bool> go{false};
            std::thread completer([&] {
                wait_until("go", [&] { return go.load(); });
                for (int i = 0; i < 6; ++i) {
                    if (i % 2 == round % 2) {
                        fake().complete_recv(sock_a, "d");
                    } else {
                        fake().complete_send(sock_a);
                    }
                }
            });
            go = true;
            s.close();
            completer.join();
        }
        for (int i = 0; i < 3; ++i) {
            REQUIRE(rs[i]->calls == 1);
            REQUIRE(ss[i]->calls == 1);
        }
    }
}

TEST_CASE("close during a later batch of a long receive reports the bytes the earlier batches got",
          "[win32][close][receive]")
{
    fixture f; // its helper thread completes the cancelled calls, as the OS would
    fake_socket_t s = f.open_socket();
    receive_probe r(150, 150);
    REQUIRE(r.start(s) == start_result::started);
    fake().script_readable(sock_a, 10);
    REQUIRE(fake().complete_recv(sock_a, std::string(64, 'x')));
    REQUIRE(r.calls == 0); // the second batch is outstanding
    SECTION("the later batch got nothing yet")
    {
        s.close();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::ok); // not abandoned: 64 bytes were received
        CHECK(r.bytes == 64);
        CHECK(r.got() == std::string(64, 'x'));
    }
    SECTION("the later batch got bytes just before the cancel reached it")
    {
        REQUIRE(fake().finish_recv_in_kernel(sock_a, "yyy"));
        s.close();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::ok);
        CHECK(r.bytes == 67);
        CHECK(r.got() == std::string(64, 'x') + "yyy");
    }
    CHECK(s.state() == socket_state::closed);
    CHECK(fake().count("WSARecv") == 2);
}

// ---- cancellation ----------------------------------------------------------------------------

TEST_CASE("cancel: a stop request during a later batch of a long receive completes it OK with the earlier bytes",
          "[win32][cancel][receive]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    std::vector<char> storage(150, '\0');
    std::vector<mutable_buffer> bufs;
    for (char& c : storage) {
        bufs.push_back({&c, 1});
    }
    std::stop_source stop;
    detached_result<asock::receive_outcome> out;
    start_detached(receive_into(s, bufs, stop.get_token()), out);
    fake().script_readable(sock_a, 3);
    REQUIRE(fake().complete_recv(sock_a, std::string(64, 'x')));
    REQUIRE_FALSE(out.done);
    stop.request_stop(); // the second batch is outstanding: CancelIoEx
    CHECK(fake().cancel_requested(sock_a, kind::recv));
    CHECK(fake().abort_cancelled() == 1);
    REQUIRE(out.done);
    CHECK(out.value->result == receive_result::ok); // cancelled means 0 bytes: these 64 were received
    CHECK(out.value->bytes_received == 64);
}

TEST_CASE("cancel: a stop requested before the start completes CANCELLED with no call", "[win32][cancel]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    std::stop_source stop;
    stop.request_stop();
    char buf[4];
    const auto mark = fake().mark();
    CHECK(asock::sync_wait(send_text(s, "x", stop.get_token())) == send_result::cancelled);
    CHECK(asock::sync_wait(receive_some(s, buf, 4, stop.get_token())).result == receive_result::cancelled);
    CHECK(fake().calls_since(mark).empty());
}

TEST_CASE("cancel: a queued send is withdrawn at once; an outstanding one is cancelled with CancelIoEx and fails the "
          "sends after it",
          "[win32][cancel]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    std::stop_source stop_a, stop_b;
    detached_result<send_result> a, b, c;
    start_detached(send_text(s, "aaaa", stop_a.get_token()), a); // outstanding
    start_detached(send_text(s, "bbbb", stop_b.get_token()), b); // queued
    start_detached(send_text(s, "cccc"), c);                     // queued
    CHECK(fake().count("WSASend") == 1);

    stop_b.request_stop(); // queued: withdrawn, no call
    CHECK(fake().count("CancelIoEx") == 0);
    fake().run_work(); // its coroutine resumes on the engine
    REQUIRE(b.done);
    CHECK(*b.value == send_result::cancelled);

    stop_a.request_stop(); // outstanding: CancelIoEx; the completion decides
    CHECK(fake().count("CancelIoEx") == 1);
    CHECK_FALSE(a.done);
    CHECK(fake().abort_cancelled() == 1);
    REQUIRE(a.done);
    CHECK(*a.value == send_result::cancelled);
    // How much of "aaaa" went out is unknown: the stream cannot be framed any more.
    REQUIRE(c.done);
    CHECK(*c.value == send_result::error);
    CHECK(fake().count("WSASend") == 1);
    CHECK(asock::sync_wait(send_text(s, "dddd")) == send_result::error);
}

TEST_CASE("cancel: a send whose completion wins the race completes OK", "[win32][cancel]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    std::stop_source stop;
    detached_result<send_result> a;
    start_detached(send_text(s, "aaaa", stop.get_token()), a);
    stop.request_stop();
    REQUIRE(fake().complete_send(sock_a)); // it had completed before the cancel reached it
    REQUIRE(a.done);
    CHECK(*a.value == send_result::ok);
    detached_result<send_result> next;
    start_detached(send_text(s, "bbbb"), next);
    REQUIRE(fake().complete_send(sock_a));
    CHECK(*next.value == send_result::ok); // not poisoned
}

TEST_CASE("cancel: an outstanding receive completes CANCELLED with no byte, or OK with the bytes that won the race",
          "[win32][cancel]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    char b1[8], b2[8], b3[8];
    std::stop_source stop1, stop2;
    detached_result<asock::receive_outcome> r1, r2, r3;
    start_detached(receive_some(s, b1, 8, stop1.get_token()), r1);
    start_detached(receive_some(s, b2, 8, stop2.get_token()), r2);
    start_detached(receive_some(s, b3, 8), r3);

    stop1.request_stop();
    CHECK(fake().cancel_requested(sock_a, kind::recv));
    CHECK(fake().abort_cancelled() == 1);
    REQUIRE(r1.done);
    CHECK(r1.value->result == receive_result::cancelled);
    CHECK(r1.value->bytes_received == 0);

    // r2 is now outstanding; cancelled, but the data arrives first.
    CHECK(fake().outstanding_count(sock_a, kind::recv) == 1);
    stop2.request_stop();
    REQUIRE(fake().complete_recv(sock_a, "data"));
    REQUIRE(r2.done);
    CHECK(r2.value->result == receive_result::ok);
    CHECK(std::string(b2, r2.value->bytes_received) == "data");

    REQUIRE(fake().complete_recv(sock_a, "more")); // r3 follows in order
    REQUIRE(r3.done);
    CHECK(std::string(b3, r3.value->bytes_received) == "more");
}

TEST_CASE("cancel: a CancelIoEx that finds nothing to cancel is asked again until the completion comes",
          "[win32][cancel]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    std::stop_source stop;
    detached_result<send_result> a;
    start_detached(send_text(s, "aaaa", stop.get_token()), a);
    fake().cancel_misses = 2; // the call is "busy" for the first two requests
    stop.request_stop();
    CHECK_FALSE(fake().cancel_requested(sock_a, kind::send));
    CHECK(fake().run_work() == 2); // a retry, which misses again and schedules another
    CHECK(fake().count("CancelIoEx") == 3);
    CHECK(fake().cancel_requested(sock_a, kind::send));
    CHECK(fake().abort_cancelled() == 1);
    REQUIRE(a.done);
    CHECK(*a.value == send_result::cancelled);
    CHECK(fake().run_work() == 0); // nothing more once it came back
}

TEST_CASE("close: a CancelIoEx that misses is asked again, so close still finishes", "[win32][close]")
{
    fixture f; // the helper thread aborts what was cancelled
    receive_probe r;
    fake_socket_t s = f.open_socket();
    REQUIRE(r.start(s) == start_result::started);
    fake().cancel_misses = 1;
    pool_runner runner; // runs the posted retry
    s.close();
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::abandoned);
    CHECK(fake().count("CancelIoEx") >= 2);
}

TEST_CASE("cancel: a queued receive is withdrawn without touching the outstanding one", "[win32][cancel]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    char b1[8], b2[8];
    std::stop_source stop2;
    detached_result<asock::receive_outcome> r1, r2;
    start_detached(receive_some(s, b1, 8), r1);
    start_detached(receive_some(s, b2, 8, stop2.get_token()), r2);
    stop2.request_stop();
    CHECK(fake().count("CancelIoEx") == 0);
    fake().run_work();
    REQUIRE(r2.done);
    CHECK(r2.value->result == receive_result::cancelled);
    REQUIRE(fake().complete_recv(sock_a, "x"));
    CHECK(r1.value->result == receive_result::ok);
    CHECK(fake().count("WSARecv") == 1);
}

// ---- order and threads --------------------------------------------------------------------------

TEST_CASE("completions of one direction are delivered in order even when completed on two threads",
          "[win32][order][threading]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    static std::atomic<bool> in_a{false};
    static std::atomic<bool> b_returned{false};
    static std::mutex mu;
    static std::vector<std::pair<std::string, std::thread::id>> seen;
    in_a = false;
    b_returned = false;
    seen.clear();
    send_probe a("A"), b("B");
    a.then = [](send_probe&) {
        in_a = true;
        // Holds A's callback until B's completion has come and gone on another thread.
        wait_until("B's completion", [] { return b_returned.load(); });
        std::lock_guard lk(mu);
        seen.emplace_back("A", std::this_thread::get_id());
    };
    b.then = [](send_probe&) {
        std::lock_guard lk(mu);
        seen.emplace_back("B", std::this_thread::get_id());
    };
    REQUIRE(a.start(s) == send_sync_result::ok);
    REQUIRE(b.start(s) == send_sync_result::ok);
    std::thread t1([] { fake().complete_send(sock_a); });
    wait_until("A's callback", [] { return in_a.load(); });
    // B was issued when A completed, before A's callback ran.
    REQUIRE(fake().outstanding_count(sock_a, kind::send) == 1);
    REQUIRE(fake().complete_send(sock_a)); // B completes on this thread...
    b_returned = true;                     // ...and its callback has not run here
    t1.join();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].first == "A");
    CHECK(seen[1].first == "B");
    CHECK(seen[1].second == seen[0].second); // delivered by the thread delivering A
}

TEST_CASE("sends from 4 threads: one WSASend outstanding at a time, every message whole, each thread's in order",
          "[win32][order][threading]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    constexpr int threads = 4;
    constexpr int per_thread = 50;
    std::vector<std::unique_ptr<send_probe>> probes;
    for (int t = 0; t < threads; ++t) {
        for (int i = 0; i < per_thread; ++i) {
            char msg[16];
            std::snprintf(msg, sizeof msg, "<%d:%03d>", t, i);
            probes.push_back(std::make_unique<send_probe>(msg));
        }
    }
    std::atomic<int> completed{0};
    std::atomic<int> rejected{0};
    std::thread completer([&] {
        const auto deadline = std::chrono::steady_clock::now() + hang_limit;
        while (completed.load() < threads * per_thread) {
            if (fake().complete_send(sock_a)) {
                completed.fetch_add(1);
            } else if (std::chrono::steady_clock::now() > deadline) {
                hang("4 senders");
            } else {
                std::this_thread::yield();
            }
        }
    });
    std::vector<std::thread> senders;
    for (int t = 0; t < threads; ++t) {
        senders.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                if (probes[t * per_thread + i]->start(s) != send_sync_result::ok) {
                    rejected.fetch_add(1); // asserted on the test thread below
                }
            }
        });
    }
    for (auto& th : senders) {
        th.join();
    }
    REQUIRE(rejected.load() == 0);
    completer.join();
    for (const auto& p : probes) {
        REQUIRE(p->calls == 1);
        REQUIRE(p->result == send_result::ok);
    }
    CHECK(fake().sock(sock_a).max_sends_outstanding == 1);
    const std::string wire = fake().wire(sock_a);
    REQUIRE(wire.size() == static_cast<std::size_t>(threads * per_thread * 7));
    int next[threads] = {};
    for (std::size_t at = 0; at < wire.size(); at += 7) {
        const std::string m = wire.substr(at, 7);
        REQUIRE(m.front() == '<');
        REQUIRE(m.back() == '>');
        const int t = m[1] - '0';
        REQUIRE((t >= 0 && t < threads));
        CHECK(std::stoi(m.substr(3, 3)) == next[t]);
        ++next[t];
    }
}

TEST_CASE("post_completion: delivered on an engine thread, or by close() if that comes first", "[win32][threading]")
{
    fixture f{false};
    fake_socket_t s = f.open_socket();
    send_probe p;
    p.op.result = send_result::ok;
    static bool on_engine = false;
    static fake_engine* engine = nullptr;
    engine = f.engine;
    p.then = [](send_probe&) { on_engine = engine->running_in_this_thread(); };
    p.op.complete = [](asock::detail::operation* op, asock::detail::completion_mode) {
        auto* o = static_cast<asock::send_operation*>(op);
        o->on_complete(o->context, o->result);
    };
    p.op.on_complete = &send_probe::on_done;
    p.op.context = &p;
    s.core()->post_completion(p.op);
    CHECK(p.calls == 0);
    fake().run_work();
    CHECK(p.calls == 1);
    CHECK(on_engine);

    send_probe q;
    q.op.result = send_result::ok;
    q.op.complete = p.op.complete;
    q.op.on_complete = &send_probe::on_done;
    q.op.context = &q;
    s.core()->post_completion(q.op);
    s.close(); // before the engine ran it
    CHECK(q.calls == 1);
    CHECK(q.result == send_result::ok);
    fake().run_work();
    CHECK(q.calls == 1);
}

// ---- an engine without threads (threads = 0): the caller runs the loop -----------------------------------------

TEST_CASE("engine without threads: created with no engine threads; run_one and poll return 0 with nothing queued",
          "[win32][engine][loop]")
{
    fixture f{false, no_threads};
    CHECK(f.engine->thread_count() == 0);
    CHECK(f.engine->caller_runs_loop());
    CHECK(f.engine->loop_unattended());
    // A pool of one thread for the IO completions and the timer; no work
    // object: posts wait for the loop.
    CHECK(fake().calls() == std::vector<std::string>{"WSAStartup", "CreateThreadpool", "SetThreadpoolThreadMinimum(1)",
                                                     "InitializeThreadpoolEnvironment", "SetThreadpoolCallbackPool",
                                                     "CreateThreadpoolTimer"});
    CHECK(f.engine->poll() == 0);
    CHECK(f.engine->run_one(0) == 0);
    CHECK(f.engine->run_one(1) == 0);
    CHECK_FALSE(f.engine->running_in_this_thread());
}

TEST_CASE("engine options: threads = 0 means the caller runs the loop; min / max without threads (the C API's form) "
          "is a pool",
          "[win32][engine][loop]")
{
    fake().reset();
    SECTION("default: a pool of 4")
    {
        fake_engine* e = fake_engine::create({});
        REQUIRE(e != nullptr);
        CHECK(e->thread_count() == 4);
        CHECK_FALSE(e->caller_runs_loop());
        CHECK_FALSE(e->loop_unattended());
        e->dec_ref();
    }
    SECTION("min_threads / max_threads without threads, as execution_engine_create passes them")
    {
        fake_engine* e = fake_engine::create({.min_threads = 4, .max_threads = 0});
        REQUIRE(e != nullptr);
        CHECK(e->thread_count() == 4);
        CHECK_FALSE(e->caller_runs_loop());
        CHECK(fake().count("SetThreadpoolThreadMinimum(4)") == 1);
        CHECK(fake().count("CreateThreadpoolWork") == 1);
        e->dec_ref();
    }
    SECTION("threads 0: the caller runs the loop, whatever min / max say")
    {
        fake_engine* e = fake_engine::create({.threads = 0, .min_threads = 4});
        REQUIRE(e != nullptr);
        CHECK(e->thread_count() == 0);
        CHECK(e->caller_runs_loop());
        CHECK(fake().count("CreateThreadpoolWork") == 0);
        e->dec_ref();
        CHECK(fake().count("CloseThreadpool") == 1);
        CHECK(fake().wsa_cleanups() == 1);
    }
}

TEST_CASE("engine without threads: completions run only inside poll / run_one, on the calling thread, never on the "
          "pool thread that received them",
          "[win32][engine][loop][threading]")
{
    fixture f{false, no_threads};
    fake_socket_t s = f.open_socket();
    static fake_engine* engine = nullptr;
    static bool receive_on_loop = false;
    engine = f.engine;
    receive_on_loop = false;
    receive_probe r;
    send_probe p("ping");
    r.then = [](receive_probe&) { receive_on_loop = engine->running_in_this_thread(); };
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(p.start(s) == send_sync_result::ok);
    // A pool thread receives both completions (threadpool IO always does).
    std::thread pool([] {
        fake().complete_recv(sock_a, "data");
        fake().complete_send(sock_a);
    });
    pool.join();
    CHECK(r.calls == 0); // settled, but handed to the loop
    CHECK(p.calls == 0);
    CHECK(fake().pending_work() == 0); // nothing was submitted to the pool
    CHECK(f.engine->poll() >= 1);
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.got() == "data");
    CHECK(receive_on_loop);
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::ok);
    CHECK(p.thread == std::this_thread::get_id());
    CHECK(f.engine->poll() == 0);
    CHECK_FALSE(f.engine->running_in_this_thread());
}

TEST_CASE("engine without threads: a co_await resumes inside the loop; run_one waits for a completion from the pool",
          "[win32][engine][loop][awaitable]")
{
    fixture f{false, no_threads};
    fake_socket_t s = f.open_socket();
    char buf[8];
    detached_result<asock::receive_outcome> out;
    start_detached(receive_some(s, buf, sizeof buf), out);
    std::thread pool([&] {
        // Completes once this thread is waiting inside run_one(-1).
        wait_until("the loop runs", [&] { return !f.engine->loop_unattended(); });
        fake().complete_recv(sock_a, "abc");
    });
    CHECK(f.engine->run_one(-1) >= 1);
    pool.join();
    REQUIRE(out.done);
    CHECK(out.value->result == receive_result::ok);
    CHECK(std::string(buf, out.value->bytes_received) == "abc");
}

TEST_CASE("engine without threads: sync_wait(engine, awaitable) runs the loop on the calling thread",
          "[win32][engine][loop][awaitable]")
{
    fixture f{false, no_threads};
    fake_socket_t s = f.open_socket();
    std::thread pool([&] {
        wait_until("the receive and the loop", [&] {
            return fake().outstanding_count(sock_a, kind::recv) == 1 && !f.engine->loop_unattended();
        });
        fake().complete_recv(sock_a, "hey");
    });
    char buf[8];
    const asock::receive_outcome r = asock::sync_wait(*f.engine, s.receive_async(asock::buffer(buf, sizeof buf)));
    pool.join();
    CHECK(r.result == receive_result::ok);
    CHECK(std::string(buf, r.bytes_received) == "hey");
}

TEST_CASE("engine without threads: posted work runs in order only inside run / run_one / poll; stop and restart",
          "[win32][engine][loop]")
{
    fixture f{false, no_threads};
    std::vector<int> log;
    logged_item a(log, 1, f.engine), b(log, 2, f.engine), c(log, 3, f.engine);
    f.engine->post(&a);
    f.engine->post(&b);
    f.engine->post(&c);
    CHECK(fake().pending_work() == 0);
    CHECK(log.empty()); // not run inside post
    CHECK(f.engine->poll() == 3);
    CHECK(log == std::vector<int>{1, 2, 3});
    CHECK(a.on_loop);
    CHECK(a.thread == std::this_thread::get_id());

    logged_item d(log, 4, f.engine), e(log, 5, f.engine);
    d.then_post = &e; // posted from inside the loop: runs in the same run, after d
    e.stop = true;
    f.engine->post(&d);
    CHECK(f.engine->run() == 2); // returns because e stopped it
    CHECK(log == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(f.engine->stopped());
    CHECK(f.engine->run() == 0); // stopped: returns at once
    f.engine->restart();
    CHECK_FALSE(f.engine->stopped());
    logged_item g(log, 6, f.engine);
    g.stop = true;
    f.engine->post(&g);
    f.engine->run();
    CHECK(log == std::vector<int>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("engine without threads: close on the caller's thread outside the loop completes every operation before "
          "it returns, without the loop",
          "[win32][engine][loop][close]")
{
    fixture f{true, no_threads}; // its helper thread completes the cancelled calls, as the OS would
    fake_socket_t s = f.open_socket();
    receive_probe r1, r2;
    send_probe s1("one"), s2("two");
    REQUIRE(r1.start(s) == start_result::started);
    REQUIRE(r2.start(s) == start_result::started);
    REQUIRE(s1.start(s) == send_sync_result::ok);
    REQUIRE(s2.start(s) == send_sync_result::ok);
    char buf[8];
    detached_result<asock::receive_outcome> awaited;
    start_detached(receive_some(s, buf, sizeof buf), awaited); // queued behind r1 and r2
    std::thread([] { fake().complete_send(sock_a); }).join(); // s1 is done; its delivery waits for the loop
    REQUIRE(s1.calls == 0);
    s.close(); // never runs the loop; nobody else does either
    CHECK(s.state() == socket_state::closed);
    CHECK(s1.calls == 1);
    CHECK(s1.result == send_result::ok);
    CHECK(s1.thread == std::this_thread::get_id());
    for (auto* p : {&r1, &r2}) {
        CHECK(p->calls == 1);
        CHECK(p->result == receive_result::abandoned);
    }
    CHECK(s2.calls == 1);
    CHECK(s2.result == send_result::abandoned);
    // The awaiter completed too; its coroutine resumes in the loop, not inside close().
    CHECK_FALSE(awaited.done);
    CHECK(f.engine->poll() >= 1);
    REQUIRE(awaited.done);
    CHECK(awaited.value->result == receive_result::abandoned);
    CHECK(s1.calls == 1); // the loop's stale delivery finds nothing more
}

TEST_CASE("engine without threads: destroy from a callback run by the loop completes the socket's other operations "
          "before it returns; the last packet finishes the close on the pool",
          "[win32][engine][loop][destroy]")
{
    fixture f{false, no_threads};
    receive_probe r;
    send_probe p("pending");
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    r.user = &s;
    static send_probe* other = nullptr;
    static int other_calls_at_destroy = -1;
    other = &p;
    other_calls_at_destroy = -1;
    r.then = [](receive_probe& probe) {
        static_cast<std::unique_ptr<fake_socket_t>*>(probe.user)->reset();
        other_calls_at_destroy = other->calls.load();
    };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    const auto refs = f.engine->use_count();
    std::thread([] { fake().complete_recv(sock_a, "x"); }).join();
    CHECK(r.calls == 0);
    CHECK(f.engine->poll() >= 1); // the receive's callback destroys the socket
    CHECK(r.calls == 1);
    CHECK(s == nullptr);
    CHECK(other_calls_at_destroy == 1); // the send was completed (abandoned) before the destroy returned
    CHECK(p.result == send_result::abandoned);
    CHECK(fake().sock(sock_a).closes == 0); // the send's packet is still to come
    CHECK(f.engine->use_count() == refs);   // the close holds an engine reference until then
    std::thread([] { fake().abort_cancelled(); }).join(); // the pool receives it
    CHECK(fake().sock(sock_a).closes == 1);
    CHECK(f.engine->use_count() == refs - 1);
    CHECK(p.calls == 1);
    CHECK(f.engine->poll() == 0);
}

TEST_CASE("engine without threads: the last reference dropped inside run_one destroys the engine as run_one returns",
          "[win32][engine][loop]")
{
    fake().reset();
    fake_engine* e = fake_engine::create(no_threads);
    REQUIRE(e != nullptr);
    struct dropper : asock::detail::work_item {
        fake_engine* engine = nullptr;
        bool on_loop = false;
    } last;
    last.engine = e;
    last.run = [](asock::detail::work_item* w) {
        auto* self = static_cast<dropper*>(w);
        self->on_loop = self->engine->running_in_this_thread();
        self->engine->dec_ref(); // the only reference
    };
    std::vector<int> log;
    logged_item after(log, 1, e); // queued behind it: still runs, in the same run_one
    e->post(&last);
    e->post(&after);
    e->run_one(0);
    CHECK(last.on_loop);
    CHECK(after.runs == 1);
    CHECK(after.thread == std::this_thread::get_id());
    CHECK(fake().wsa_cleanups() == 1); // destroyed, once, on this thread
    CHECK(fake().count("CloseThreadpool") == 1);
}

TEST_CASE("engine without threads: work the loop never ran runs when the engine is destroyed", "[win32][engine][loop]")
{
    fake().reset();
    fake_engine* e = fake_engine::create(no_threads);
    REQUIRE(e != nullptr);
    std::vector<int> log;
    logged_item a(log, 1, e), b(log, 2, e);
    a.then_post = &b; // posted while the engine is being destroyed
    e->post(&a);
    e->dec_ref();
    CHECK(log == std::vector<int>{1, 2});
    CHECK(a.on_loop);
    CHECK(fake().wsa_cleanups() == 1);
}

TEST_CASE("regression: detail::word_mutex under contention never loses a wake-up (the timer queue's lock)",
          "[win32][threading][regression]")
{
    // With libstdc++ on mingw-w64, std::atomic::wait can lose a wake-up
    // (include/asock/detail/toolchain.hpp); word_mutex's contended path slept
    // on it, and the engines' timer queue hung under Wine with four pool
    // threads. On that toolchain word_mutex is now std::mutex. Four threads
    // hammer one lock; a lost wake-up would stop one of them for good.
    asock::detail::word_mutex mu;
    long counter = 0;
    constexpr int threads = 4;
    constexpr int rounds = 100000;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&] {
            for (int i = 0; i < rounds; ++i) {
                std::lock_guard lk(mu);
                ++counter;
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    CHECK(counter == long{threads} * rounds);
}
