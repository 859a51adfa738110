// tests/win32/unit_regressions.cpp: the classes of defect found in the Linux
// backend (issue 13), checked against the Windows backend over the fake Win32
// layer. Each test fixes the schedule it needs (hooks that wait for a flag,
// helper threads that play the thread pool), so none depends on timing to
// pass; where the defect is a hang, the fake's hang guard turns it into a
// failure.
#include "unit_support.hpp"

#include <stop_token>

using namespace asock_wtest;
using asock::receive_result;
using asock::send_result;
using asock::send_sync_result;
using asock::socket_state;
using asock::start_result;
using kind = outstanding_call::kind;

namespace {

/// What a hook saw of the socket's other operations right after its destroy
/// (or close) returned.
struct after_destroy {
    std::unique_ptr<fake_socket_t>* owner = nullptr;
    std::vector<const std::atomic<int>*> others;
    std::vector<int> seen; // the others' call counts when destroy returned
    bool destroy = true;
    socket_state state = socket_state::open;

    void run()
    {
        if (destroy) {
            owner->reset();
        } else {
            (*owner)->close();
            state = (*owner)->state();
        }
        for (const auto* c : others) {
            seen.push_back(c->load());
        }
    }
};

asock::task<asock::receive_outcome> receive_some(fake_socket_t& s, char* buf, std::size_t n)
{
    co_return co_await s.receive_async(asock::buffer(buf, n));
}

struct posted_item : asock::detail::work_item {
    fake_engine* engine = nullptr;
    posted_item* then_post = nullptr; ///< posted by this item when it runs
    std::atomic<int> runs{0};
};

void run_posted_item(asock::detail::work_item* w)
{
    auto* self = static_cast<posted_item*>(w);
    self->runs.fetch_add(1);
    if (self->then_post != nullptr) {
        self->engine->post(self->then_post);
    }
}

} // namespace

// ---- 1. engine stop / destroy: no wake-up to lose ---------------------------------------------

TEST_CASE("engine destroyed while pool threads still run its callbacks returns once they are done",
          "[regression][engine]")
{
    // The Windows engine has no stop flag and no wake-up signal of its own: the
    // pool's threads belong to the OS, and destroying the engine waits for its
    // callbacks (WaitForThreadpoolWorkCallbacks, then the count of callbacks
    // still inside the engine's code). Here two "pool threads" are inside
    // posted items when the last reference goes on a third thread.
    fake().reset();
    fake_engine* e = fake_engine::create({.threads = 4});
    REQUIRE(e != nullptr);
    static std::atomic<int> entered{0};
    static std::atomic<bool> release{false};
    entered = 0;
    release = false;
    struct blocking : asock::detail::work_item {};
    blocking items[2];
    for (blocking& it : items) {
        it.run = [](asock::detail::work_item*) {
            entered.fetch_add(1);
            wait_until("release the items", [] { return release.load(); });
        };
        e->post(&it);
    }
    std::thread pool1([] { fake().run_work(1); });
    std::thread pool2([] { fake().run_work(1); });
    wait_until("both items running", [] { return entered.load() == 2; });
    std::atomic<bool> destroyed{false};
    std::thread destroyer([&] {
        e->dec_ref();
        destroyed = true;
    });
    release = true;
    destroyer.join(); // bounded by the fake's hang guard
    pool1.join();
    pool2.join();
    CHECK(destroyed);
    CHECK(fake().wsa_cleanups() == 1);
}

// ---- 3. nothing of a socket runs after its destroy (or close) returns ------------------------

TEST_CASE("destroy from a callback delivers the socket's other finished operations before it returns",
          "[regression][destroy][callback]")
{
    fixture f{false};
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r1, r2;
    after_destroy cx;
    cx.owner = &s;
    cx.others = {&r2.calls};
    r1.user = &cx;
    r1.then = [](receive_probe& p) { static_cast<after_destroy*>(p.user)->run(); };
    REQUIRE(r1.start(*s) == start_result::started);
    REQUIRE(r2.start(*s) == start_result::started); // queued behind r1
    // r1 completes; issuing r2 then fails at once: both are finished when the
    // callback thread delivers them, in one go.
    fake().script_recv(sock_a, fake_world::fail(WSAENOBUFS));
    REQUIRE(fake().complete_recv(sock_a, "x")); // r1's callback destroys the socket
    CHECK(s == nullptr);
    CHECK(r1.result == receive_result::ok);
    REQUIRE(cx.seen.size() == 1);
    CHECK(cx.seen[0] == 1); // r2's callback ran before the destroy returned
    CHECK(r2.calls == 1);
    CHECK(r2.result == receive_result::error);
    CHECK(fake().sock(sock_a).closes == 1);
}

TEST_CASE("destroy from a callback that close() is delivering delivers close's other completions before it returns",
          "[regression][destroy][close][callback]")
{
    fixture f; // its helper thread delivers the cancelled calls' completions
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r1, r2;
    send_probe p("pending");
    after_destroy cx;
    cx.owner = &s;
    cx.others = {&r2.calls, &p.calls};
    r1.user = &cx;
    r1.then = [](receive_probe& probe) { static_cast<after_destroy*>(probe.user)->run(); };
    REQUIRE(r1.start(*s) == start_result::started);
    REQUIRE(r2.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    fake_socket_t::core_type* core = s->core();
    core->close(); // this thread's close delivers r1, whose callback destroys the socket
    CHECK(s == nullptr);
    REQUIRE(cx.seen.size() == 2);
    CHECK(cx.seen[0] == 1); // r2 and the send completed before the destroy returned
    CHECK(cx.seen[1] == 1);
    CHECK(r1.result == receive_result::abandoned);
    CHECK(r2.result == receive_result::abandoned);
    CHECK(p.result == send_result::abandoned);
    CHECK(r2.calls == 1);
    CHECK(p.calls == 1);
    CHECK(fake().sock(sock_a).closes == 1);
}

TEST_CASE("close from a callback completes the socket's outstanding call (abandoned) before it returns",
          "[regression][close][callback]")
{
    fixture f{false}; // completion packets delivered by hand
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r;
    send_probe s1("one"), s2("two");
    after_destroy cx;
    cx.owner = &s;
    cx.destroy = false;
    cx.others = {&s1.calls, &s2.calls};
    r.user = &cx;
    r.then = [](receive_probe& p) { static_cast<after_destroy*>(p.user)->run(); };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(s1.start(*s) == send_sync_result::ok); // outstanding
    REQUIRE(s2.start(*s) == send_sync_result::ok); // queued
    const auto refs = f.engine->use_count();
    REQUIRE(fake().complete_recv(sock_a, "bye")); // r's callback closes the socket
    REQUIRE(cx.seen.size() == 2);
    CHECK(cx.seen[0] == 1); // the outstanding send, cancelled, completed before close returned
    CHECK(cx.seen[1] == 1);
    CHECK(cx.state == socket_state::closed);
    CHECK(s1.result == send_result::abandoned);
    CHECK(s2.result == send_result::abandoned);
    CHECK(fake().sock(sock_a).shutdowns == 1);
    // The cancelled send's completion packet is still on its way: the IO and
    // the engine reference stay until it has come, so nothing can reuse them.
    CHECK(fake().count("CloseThreadpoolIo") == 0);
    CHECK(f.engine->use_count() == refs + 1);
    CHECK(fake().abort_cancelled() == 1); // the packet: nothing left to complete
    CHECK(s1.calls == 1);
    CHECK(s2.calls == 1);
    CHECK(fake().count("CloseThreadpoolIo") == 1);
    CHECK(f.engine->use_count() == refs);
    CHECK(fake().count("WaitForThreadpoolIoCallbacks(FALSE)") == 0); // never from inside its own callback
}

TEST_CASE("close from a callback: a receive that got bytes before its cancel completes OK with them before close "
          "returns",
          "[regression][close][callback]")
{
    fixture f{false};
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r(16);
    send_probe p("x");
    after_destroy cx;
    cx.owner = &s;
    cx.destroy = false;
    cx.others = {&r.calls};
    p.user = &cx;
    p.then = [](send_probe& probe) { static_cast<after_destroy*>(probe.user)->run(); };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    REQUIRE(fake().finish_recv_in_kernel(sock_a, "late data")); // its packet not delivered yet
    REQUIRE(fake().complete_send(sock_a)); // p's callback closes the socket
    REQUIRE(cx.seen.size() == 1);
    CHECK(cx.seen[0] == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.got() == "late data");
    CHECK(fake().abort_cancelled() == 1);
    CHECK(r.calls == 1);
}

TEST_CASE("close from a callback asks again when CancelIoEx misses, until the call has finished",
          "[regression][close][callback]")
{
    fixture f{false};
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r;
    send_probe p("busy");
    after_destroy cx;
    cx.owner = &s;
    cx.others = {&p.calls};
    r.user = &cx;
    r.then = [](receive_probe& probe) { static_cast<after_destroy*>(probe.user)->run(); };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    fake().cancel_misses = 2; // the send is "busy moving data" for the first two requests
    REQUIRE(fake().complete_recv(sock_a, "x"));
    REQUIRE(cx.seen.size() == 1);
    CHECK(cx.seen[0] == 1);
    CHECK(p.result == send_result::abandoned);
    CHECK(fake().count("CancelIoEx") >= 3);
    CHECK(fake().sock(sock_a).closes == 0); // the destroy waits for the packet to close the handle
    CHECK(fake().abort_cancelled() == 1);
    CHECK(fake().sock(sock_a).closes == 1);
    fake().run_work(); // a retry the first miss may have posted finds nothing to do
}

TEST_CASE("destroy waits for a stop request that is completing one of its operations on another thread",
          "[regression][destroy][cancel]")
{
    fixture f;
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r1, r2;
    static std::atomic<bool> in_hook{false};
    static std::atomic<bool> release{false};
    static std::atomic<bool> destroyed{false};
    static std::atomic<bool> destroyed_before_hook_returned{false};
    in_hook = release = destroyed = destroyed_before_hook_returned = false;
    r2.then = [](receive_probe&) {
        in_hook = true;
        wait_until("release the hook", [] { return release.load(); });
        destroyed_before_hook_returned = destroyed.load();
    };
    REQUIRE(r1.start(*s) == start_result::started);
    REQUIRE(r2.start(*s) == start_result::started); // queued: a stop request completes it on its own thread
    fake_socket_t::core_type* core = s->core();
    std::thread canceller([&] { core->cancel(r2.op); });
    wait_until("r2's callback entered", [] { return in_hook.load(); });
    std::thread destroyer([&] {
        s.reset();
        destroyed = true;
    });
    // The destroy has had ample time to return, if it does not wait.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    release = true;
    canceller.join();
    destroyer.join();
    CHECK(r2.result == receive_result::cancelled);
    CHECK_FALSE(destroyed_before_hook_returned);
    CHECK(r1.calls == 1);
}

// ---- 4. a send that fails after part of it went out ----------------------------------------------

TEST_CASE("a send whose next WSASend fails after its first part went out completes through its callback and fails "
          "later sends",
          "[regression][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    std::string data(150, 'a');
    std::vector<const_buffer> bufs;
    for (std::size_t i = 0; i < data.size(); ++i) {
        bufs.push_back({data.data() + i, 1}); // more buffers than one WSASend takes
    }
    asock::send_operation op;
    static int calls = 0;
    static send_result seen = send_result::ok;
    calls = 0;
    REQUIRE(s.send_async(op, bufs, [](void*, send_result r) { seen = r; ++calls; }, nullptr) ==
            send_sync_result::ok);
    send_probe queued("after");
    REQUIRE(queued.start(s) == send_sync_result::ok);
    fake().script_send(sock_a, fake_world::fail(WSAENOBUFS)); // the second part
    REQUIRE(fake().complete_send(sock_a));                     // the first 64 bytes are on the wire
    CHECK(calls == 1);
    CHECK(seen == send_result::error);
    // Nothing may follow the truncated message: the queued send is not issued.
    CHECK(queued.calls == 1);
    CHECK(queued.result == send_result::error);
    CHECK(fake().count("WSASend") == 2);
    CHECK(fake().wire(sock_a) == std::string(64, 'a'));
    send_probe later;
    CHECK(later.start(s) == send_sync_result::error);
    CHECK(fake().count("WSASend") == 2);
}

TEST_CASE("a send completing with fewer bytes than its call was given fails the send direction for good",
          "[regression][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    send_probe first("0123456789"), second("next");
    REQUIRE(first.start(s) == send_sync_result::ok);
    REQUIRE(second.start(s) == send_sync_result::ok);
    REQUIRE(fake().complete_send(sock_a, NO_ERROR, 4));
    CHECK(first.result == send_result::error); // 01_102
    CHECK(second.calls == 1);
    CHECK(second.result == send_result::error);
    CHECK(fake().count("WSASend") == 1);
    CHECK(fake().wire(sock_a) == "0123");
    send_probe later;
    CHECK(later.start(s) == send_sync_result::error);
}

TEST_CASE("a send completing with an error after some of its bytes went out fails the send direction for good",
          "[regression][send]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    send_probe first("0123456789"), second("next");
    REQUIRE(first.start(s) == send_sync_result::ok);
    REQUIRE(second.start(s) == send_sync_result::ok);
    SECTION("a reset: the send and the later ones read as the connection being gone (42_002), as on Linux")
    {
        REQUIRE(fake().complete_send(sock_a, ERROR_NETNAME_DELETED, 3));
        CHECK(first.result == send_result::abandoned); // 01_067, deviation 11 (docs/windows.md)
        CHECK(second.calls == 1);
        CHECK(second.result == send_result::abandoned);
        send_probe later;
        CHECK(later.start(s) == send_sync_result::not_open);
    }
    SECTION("any other error")
    {
        REQUIRE(fake().complete_send(sock_a, ERROR_NOT_ENOUGH_MEMORY, 3));
        CHECK(first.result == send_result::error); // 01_067
        CHECK(second.calls == 1);
        CHECK(second.result == send_result::error);
        send_probe later;
        CHECK(later.start(s) == send_sync_result::error);
    }
    CHECK(fake().count("WSASend") == 1); // the queued send was never issued
}

// ---- 5. a completion that over-reports the bytes moved ---------------------------------------------

TEST_CASE("a completion claiming more bytes than its own call was given is an error, even within the operation's "
          "total",
          "[regression][send][receive]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    SECTION("send: 150 buffers, the first call is given 64 bytes and claims 100")
    {
        std::string data(150, 'b');
        std::vector<const_buffer> bufs;
        for (std::size_t i = 0; i < data.size(); ++i) {
            bufs.push_back({data.data() + i, 1});
        }
        asock::send_operation op;
        static send_result seen = send_result::ok;
        REQUIRE(s.send_async(op, bufs, [](void*, send_result r) { seen = r; }, nullptr) == send_sync_result::ok);
        send_probe queued("q");
        REQUIRE(queued.start(s) == send_sync_result::ok);
        REQUIRE(fake().complete_send(sock_a, NO_ERROR, 100));
        CHECK(seen == send_result::error);
        // Which bytes went out is unknown after an over-report: nothing may follow.
        CHECK(queued.result == send_result::error);
        CHECK(fake().count("WSASend") == 1);
    }
    SECTION("receive: 100 buffers, the call is given 64 bytes and claims 80")
    {
        receive_probe r(100, 100);
        REQUIRE(r.start(s) == start_result::started);
        REQUIRE(fake().complete_recv(sock_a, std::string(80, 'z')));
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::error); // 01_095, against what this call was given
    }
}

// ---- 6. close on one thread, destroy from a callback on a pool thread --------------------------------

TEST_CASE("close on one thread and destroy from a callback of the socket on a pool thread do not deadlock",
          "[regression][close][destroy][threading]")
{
    fixture f; // its helper thread delivers the cancelled calls' completions
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    fake_socket_t::core_type* core = s->core();
    receive_probe r;
    send_probe p("pending");
    static std::atomic<bool> in_hook{false};
    static std::atomic<bool> destroy_returned{false};
    in_hook = destroy_returned = false;
    static fake_socket_t::core_type* closing_core = nullptr;
    closing_core = core;
    after_destroy cx;
    cx.owner = &s;
    cx.others = {&p.calls};
    r.user = &cx;
    r.then = [](receive_probe& probe) {
        in_hook = true;
        // Destroy only once the close on the other thread is under way.
        wait_until("close started", [] { return closing_core->state() != socket_state::open; });
        static_cast<after_destroy*>(probe.user)->run();
        destroy_returned = true;
    };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    std::thread pool([] { fake().complete_recv(sock_a, "x"); }); // a pool thread running r's callback
    wait_until("r's callback entered", [] { return in_hook.load(); });
    std::thread closer([&] { core->close(); }); // bounded by the hang guard of the IO callback wait
    pool.join();
    closer.join();
    CHECK(destroy_returned);
    REQUIRE(cx.seen.size() == 1);
    CHECK(cx.seen[0] == 1); // the send completed (abandoned) before the destroy returned
    CHECK(p.result == send_result::abandoned);
    CHECK(fake().sock(sock_a).closes == 1);
    CHECK(fake().io_of(sock_a).closed);
}

TEST_CASE("a close whose cancelled call needs the pool's only thread does not deadlock with a destroy on that thread",
          "[regression][close][destroy][threading]")
{
    // A one-thread pool: its thread runs a callback of socket X that destroys
    // socket S while another thread closes S. S's cancelled receive can only
    // report through the pool, which is busy with that destroy.
    fixture f{false};
    auto s = std::make_unique<fake_socket_t>(f.open_socket(sock_a));
    fake_socket_t x = f.open_socket(sock_b);
    fake_socket_t::core_type* core = s->core();
    receive_probe r_s, r_x;
    static std::atomic<bool> in_hook{false};
    in_hook = false;
    static fake_socket_t::core_type* closing_core = nullptr;
    closing_core = core;
    after_destroy cx;
    cx.owner = &s;
    cx.others = {&r_s.calls};
    r_x.user = &cx;
    r_x.then = [](receive_probe& probe) {
        in_hook = true;
        wait_until("close started", [] { return closing_core->state() != socket_state::open; });
        static_cast<after_destroy*>(probe.user)->run();
    };
    REQUIRE(r_s.start(*s) == start_result::started);
    REQUIRE(r_x.start(x) == start_result::started);
    std::thread pool([] {
        fake().complete_recv(sock_b, "x"); // X's callback destroys S
        // Back in the pool: now it can deliver what S's close cancelled.
        wait_until("S's cancelled receive delivered", [] { return fake().abort_cancelled() == 1; });
    });
    wait_until("X's callback entered", [] { return in_hook.load(); });
    std::thread closer([&] { core->close(); });
    pool.join();
    closer.join();
    REQUIRE(cx.seen.size() == 1);
    CHECK(cx.seen[0] == 1);
    CHECK(r_s.result == receive_result::abandoned);
    CHECK(fake().sock(sock_a).closes == 1);
}

TEST_CASE("destroy after a close from a callback does not wait for the packet that closes the IO",
          "[regression][close][destroy][threading]")
{
    // The close completed everything; only its IO is left to close, by the
    // cancelled call's packet, which needs a pool thread. A destroy on some
    // other thread must not depend on one: it hands the handle to that packet.
    fixture f{false};
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    receive_probe r;
    send_probe p("pending");
    r.user = s.get();
    r.then = [](receive_probe& probe) { static_cast<fake_socket_t*>(probe.user)->close(); };
    REQUIRE(r.start(*s) == start_result::started);
    REQUIRE(p.start(*s) == send_sync_result::ok);
    REQUIRE(fake().complete_recv(sock_a, "x"));
    CHECK(p.calls == 1);
    s.reset(); // this thread plays no pool thread: the packet cannot come meanwhile
    CHECK(fake().sock(sock_a).closes == 0);
    CHECK(fake().abort_cancelled() == 1);
    CHECK(fake().sock(sock_a).closes == 1);
    CHECK(fake().io_of(sock_a).closed);
}

// ---- 7. engine destruction drops no posted work ---------------------------------------------------------

TEST_CASE("a coroutine whose socket was closed is resumed when the engine is destroyed, not leaked",
          "[regression][engine][awaitable]")
{
    fake().reset();
    fake_engine* e = fake_engine::create({});
    REQUIRE(e != nullptr);
    char buf[8];
    detached_result<asock::receive_outcome> out;
    {
        fake_socket_t s(*e);
        REQUIRE(s.open(sock_a) == asock::open_result::ok);
        start_detached(receive_some(s, buf, sizeof buf), out);
        pool_runner aborter(true); // delivers the cancelled receive's packet; runs no posted work
        s.close();                 // the resumption is posted to the engine
        CHECK_FALSE(out.done);
    }
    CHECK_FALSE(out.done);
    e->dec_ref(); // the last reference: the posted resumption runs before this returns
    REQUIRE(out.done);
    CHECK(out.value->result == receive_result::abandoned);
}

TEST_CASE("engine destruction runs work that its posted work posts, even when the pool's wait does not cover it",
          "[regression][engine]")
{
    fake().reset();
    fake_engine* e = fake_engine::create({});
    REQUIRE(e != nullptr);
    fake().work_wait_covers_new_submissions = false;
    posted_item first, second, third;
    for (posted_item* it : {&first, &second, &third}) {
        it->engine = e;
        it->run = &run_posted_item;
    }
    first.then_post = &second;
    second.then_post = &third;
    e->post(&first);
    e->dec_ref();
    CHECK(first.runs == 1);
    CHECK(second.runs == 1);
    CHECK(third.runs == 1);
    fake().reset();
}
