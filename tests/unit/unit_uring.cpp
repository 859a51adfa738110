// tests/unit/unit_uring.cpp: the io_uring backend over the scripted ring of
// tests/support/fake_uring.hpp, where the conformance suite (run against it
// as conformance_uring) says nothing io_uring-specific: what each completion
// result means, short sends, batched submission, ASYNC_CANCEL races (the
// data wins: the bytes are reported), and close with calls the kernel still
// holds. Deterministic: the engine has no threads and the test runs its loop.
#include "conformance/backend.hpp"

#include <asock/detail/inline_budget.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <stop_token>
#include <thread>

using asock::receive_outcome;
using asock::receive_result;
using asock::send_result;
using asock::send_sync_result;
using asock::start_result;
using asock_utest::fake_uring;
using asock_utest::op_code;
using asock_utest::pending_call;
using namespace conformance;

TEST_CASE("uring: no engine when the kernel refuses a ring", "[uring][engine]")
{
    fake_uring().reset();
    fake_uring().init_error = EPERM;
    asock::uring::engine_options o;
    o.threads = 0;
    CHECK(asock_utest::fake_uring_engine::create(o) == nullptr);
    fake_uring().init_error = 0;
}

TEST_CASE("uring: a receive is one RECV into the caller's buffer; what each completion result means",
          "[uring][receive]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    receive_probe r(16);
    REQUIRE(r.start(s) == start_result::started);
    d.settle();
    const auto c = fake_uring().find(h, false);
    REQUIRE(c);
    CHECK(c->s.op == op_code::recv);
    CHECK(c->s.addr == static_cast<void*>(r.storage.data()));
    CHECK(c->s.len == 16);
    SECTION("bytes")
    {
        fake_uring().complete_recv(h, "hello");
        d.settle();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::ok);
        CHECK(r.got() == "hello");
    }
    SECTION("0: the peer closed")
    {
        fake_uring().complete(c->s.user_data, 0);
        d.settle();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::abandoned);
        CHECK(r.bytes == 0);
    }
    SECTION("-ECONNRESET: abandoned, and later sends are rejected not_open")
    {
        fake_uring().complete(c->s.user_data, -ECONNRESET);
        d.settle();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::abandoned);
        send_probe p{"late"};
        CHECK(p.start(s) == send_sync_result::not_open);
        d.settle();
        CHECK(p.calls == 0);
    }
    SECTION("another error")
    {
        fake_uring().complete(c->s.user_data, -EINVAL);
        d.settle();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::error);
    }
    SECTION("a count beyond what the call was given is an error, never trusted")
    {
        fake_uring().complete(c->s.user_data, 17);
        d.settle();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::error);
    }
    s.close();
    d.settle();
    CHECK(r.calls == 1);
}

TEST_CASE("uring: a receive into several buffers is one RECVMSG over all of them", "[uring][receive]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    receive_probe r(30, 3);
    REQUIRE(r.start(s) == start_result::started);
    d.settle();
    const auto c = fake_uring().find(h, false);
    REQUIRE(c);
    CHECK(c->s.op == op_code::recvmsg);
    REQUIRE(c->s.msg != nullptr);
    CHECK(c->s.msg->msg_iovlen == 3);
    fake_uring().complete_recv(h, "abcdefghijklmnopqrstuvwxyz0123");
    d.settle();
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(r.got() == "abcdefghijklmnopqrstuvwxyz0123");
}

TEST_CASE("uring: a send that completes short goes on with the rest, in order", "[uring][send]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    send_probe p{"hello ", "world"};
    REQUIRE(p.start(s) == send_sync_result::ok);
    send_probe q{"!"};
    REQUIRE(q.start(s) == send_sync_result::ok); // queued behind p, not submitted
    d.settle();
    auto c = fake_uring().find(h, true);
    REQUIRE(c);
    CHECK(c->s.op == op_code::sendmsg);
    CHECK(c->s.msg_flags == MSG_NOSIGNAL);
    CHECK(fake_uring().transport_calls(h) == 1);
    CHECK(fake_uring().complete_send(h, 4) == 4);
    d.settle();
    c = fake_uring().find(h, true);
    REQUIRE(c);
    CHECK(c->offered() == "o world"); // the rest of p, not q
    CHECK(p.calls == 0);
    fake_uring().complete_send(h);
    d.settle();
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::ok);
    c = fake_uring().find(h, true);
    REQUIRE(c);
    CHECK(c->s.op == op_code::send);
    CHECK(c->offered() == "!");
    fake_uring().complete_send(h);
    d.settle();
    CHECK(q.calls == 1);
    CHECK(q.result == send_result::ok);
    CHECK(d.wire(h) == "hello world!");
}

TEST_CASE("uring: what each send completion error means", "[uring][send]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    send_probe p{"payload"};
    REQUIRE(p.start(s) == send_sync_result::ok);
    d.settle();
    const auto c = fake_uring().find(h, true);
    REQUIRE(c);
    SECTION("-EPIPE: abandoned; later sends not_open")
    {
        fake_uring().complete(c->s.user_data, -EPIPE);
        d.settle();
        CHECK(p.result == send_result::abandoned);
        send_probe q{"x"};
        CHECK(q.start(s) == send_sync_result::not_open);
    }
    SECTION("-ENOBUFS: error; nothing went out, later sends go on")
    {
        fake_uring().complete(c->s.user_data, -ENOBUFS);
        d.settle();
        CHECK(p.result == send_result::error);
        send_probe q{"x"};
        CHECK(q.start(s) == send_sync_result::ok);
        d.settle();
        fake_uring().complete_send(h);
        d.settle();
        CHECK(q.result == send_result::ok);
    }
    SECTION("0 bytes: an error")
    {
        fake_uring().complete(c->s.user_data, 0);
        d.settle();
        CHECK(p.result == send_result::error);
    }
    SECTION("part, then an error: the direction fails for good")
    {
        fake_uring().complete_send(h, 3);
        d.settle();
        const auto rest = fake_uring().find(h, true);
        REQUIRE(rest);
        fake_uring().complete(rest->s.user_data, -EINVAL);
        d.settle();
        CHECK(p.result == send_result::error);
        send_probe q{"x"};
        CHECK(q.start(s) == send_sync_result::error);
        CHECK(d.wire(h) == "pay");
    }
    CHECK(p.calls == 1);
    s.close();
    d.settle();
    CHECK(p.calls == 1);
}

TEST_CASE("uring: a stop request is an ASYNC_CANCEL; a receive whose data won the race reports the bytes",
          "[uring][cancel]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    std::stop_source stop;
    char buf[16] = {};
    awaited<receive_outcome> a;
    await_into(a, [&] { return s.receive_async(asock::mutable_buffer{buf, sizeof buf}, stop.get_token()); });
    d.settle();
    const auto c = fake_uring().find(h, false);
    REQUIRE(c);
    SECTION("the cancel wins")
    {
        stop.request_stop();
        d.settle();
        CHECK(a.completions == 1);
        CHECK(a.result().result == receive_result::cancelled);
    }
    SECTION("the data wins")
    {
        fake_uring().on_cancel = [](const pending_call& call) -> std::optional<std::int32_t> {
            call.fill("data");
            return 4;
        };
        stop.request_stop();
        d.settle();
        CHECK(a.completions == 1);
        CHECK(a.result().result == receive_result::ok);
        CHECK(a.result().bytes_received == 4);
        CHECK(std::string(buf, 4) == "data");
    }
    SECTION("the cancel finds the call busy: its own completion settles it later")
    {
        fake_uring().on_cancel = [](const pending_call&) -> std::optional<std::int32_t> { return std::nullopt; };
        stop.request_stop();
        d.settle();
        CHECK(a.completions == 0);
        fake_uring().complete(c->s.user_data, -ECANCELED);
        d.settle();
        CHECK(a.completions == 1);
        CHECK(a.result().result == receive_result::cancelled);
    }
    CHECK(fake_uring().count(op_code::cancel) == 1);
    s.close();
    d.settle();
    CHECK(a.completions == 1);
    CHECK(a.extra_resumes == 0);
}

TEST_CASE("uring: close cancels the calls in flight and returns only once the kernel gave back every buffer",
          "[uring][close]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    receive_probe r(16);
    send_probe p{"payload"};
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(p.start(s) == send_sync_result::ok);
    d.settle();
    REQUIRE(fake_uring().outstanding_count(h) == 2);
    SECTION("the cancels complete them at once")
    {
        s.close();
        CHECK(r.calls == 1);
        CHECK(r.result == receive_result::abandoned);
        CHECK(p.calls == 1);
        CHECK(p.result == send_result::abandoned);
        CHECK(fake_uring().count(op_code::cancel) == 2);
    }
    SECTION("the kernel is still busy with the send: close waits for its completion")
    {
        fake_uring().on_cancel = [](const pending_call& call) -> std::optional<std::int32_t> {
            if (call.is_send()) {
                return std::nullopt;
            }
            return -ECANCELED;
        };
        const auto send = fake_uring().find(h, true);
        REQUIRE(send);
        std::atomic<bool> given_back{false};
        std::thread kernel([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            given_back = true;
            fake_uring().complete(send->s.user_data, 3); // part of it went out meanwhile
        });
        s.close();
        CHECK(given_back.load());
        kernel.join();
        CHECK(r.calls == 1);
        CHECK(p.calls == 1);
        CHECK(p.result == send_result::abandoned);
    }
    CHECK(fake_uring().outstanding_count(h) == 0);
    d.settle();
    CHECK(r.calls == 1);
    CHECK(p.calls == 1);
}

namespace {
struct start_receives : asock::detail::work_item {
    std::vector<socket_t*> sockets;
    std::vector<receive_probe>* probes = nullptr;
    static void go(asock::detail::work_item* w)
    {
        auto* self = static_cast<start_receives*>(w);
        for (std::size_t i = 0; i < self->sockets.size(); ++i) {
            static_cast<void>((*self->probes)[i].start(*self->sockets[i]));
        }
    }
};
} // namespace

TEST_CASE("uring: the calls started during a turn of the loop go to the kernel with one submit", "[uring][engine]")
{
    backend d;
    native_t h1{}, h2{}, h3{};
    socket_t s1 = open_socket(d, h1);
    socket_t s2 = open_socket(d, h2);
    socket_t s3 = open_socket(d, h3);
    std::vector<receive_probe> probes(3);
    start_receives w;
    w.run = &start_receives::go;
    w.sockets = {&s1, &s2, &s3};
    w.probes = &probes;
    d.settle();
    d.engine().post(&w); // from the test thread: a wake-up (IORING_OP_NOP) goes at once
    const std::size_t submits = fake_uring().submit_calls;
    const std::size_t recvs = fake_uring().count(op_code::recv);
    d.engine().poll(); // runs the item: three receives, queued until the turn ends
    d.engine().poll(); // the next turn gives them to the kernel
    CHECK(fake_uring().count(op_code::recv) == recvs + 3);
    CHECK(fake_uring().submit_calls == submits + 1);
    CHECK(fake_uring().count(op_code::nop) == 1);
    for (native_t h : {h1, h2, h3}) {
        fake_uring().complete_recv(h, "x");
    }
    d.settle();
    for (const receive_probe& p : probes) {
        CHECK(p.calls == 1);
        CHECK(p.result == receive_result::ok);
    }
}

TEST_CASE("uring: close inside a hook finds the socket's next completion in the same batch and delivers it",
          "[uring][close]")
{
    backend d;
    native_t h{};
    socket_t s = open_socket(d, h);
    receive_probe r(16);
    send_probe p{"payload"};
    REQUIRE(r.start(s) == start_result::started);
    REQUIRE(p.start(s) == send_sync_result::ok);
    d.settle();
    bool closed_inside = false;
    r.then = [&] {
        s.close(); // the send's completion is still in this turn's batch, not yet called
        closed_inside = true;
    };
    fake_uring().complete_recv(h, "in");
    fake_uring().complete_send(h); // both in the ring: one batch
    d.engine().poll();
    CHECK(closed_inside);
    CHECK(r.calls == 1);
    CHECK(r.result == receive_result::ok);
    CHECK(p.calls == 1);
    CHECK(p.result == send_result::ok); // the kernel had sent it all: its completion says so
    CHECK(s.state() == asock::socket_state::closed);
    d.settle();
    CHECK(p.calls == 1);
}

namespace {

/// Posted work that posts itself again `left` times; with `spend`, each run
/// spends the thread's inline budget first (as a socket whose operations all
/// finished at their start would have).
struct reposting : asock::detail::work_item {
    asock_utest::fake_uring_engine* engine = nullptr;
    int left = 0;
    int runs = 0;
    int fresh = 0; // runs that found a full inline budget
    bool spend = false;
};

void run_reposting(asock::detail::work_item* w) noexcept
{
    auto* r = static_cast<reposting*>(w);
    ++r->runs;
    if (asock::detail::tls_inline_budget == asock::detail::inline_budget_limit) {
        ++r->fresh;
    }
    if (r->spend) {
        asock::detail::tls_inline_budget = 0;
    }
    if (r->left > 0) {
        --r->left;
        r->engine->post(r);
    }
}

} // namespace

TEST_CASE("uring: each posted item runs with a fresh inline budget; once one spends it, what it posted waits for "
          "the next turn",
          "[uring][engine][fairness]")
{
    backend d;
    reposting r;
    r.engine = &d.engine();
    r.run = &run_reposting;

    // Back from the completion queue: a full budget, whatever was left.
    asock::detail::tls_inline_budget = 0;
    static_cast<void>(d.engine().poll());
    CHECK(asock::detail::tls_inline_budget == asock::detail::inline_budget_limit);

    SECTION("budget left: a few rounds of what posted work posts run in the same turn")
    {
        r.left = 3;
        d.engine().post(&r);
        static_cast<void>(d.engine().poll());
        CHECK(r.runs == 4);
    }
    SECTION("budget left: at most 9 rounds a turn, each item with a fresh budget")
    {
        r.left = 20;
        d.engine().post(&r);
        static_cast<void>(d.engine().poll());
        CHECK(r.runs == 9);
        static_cast<void>(d.engine().poll());
        CHECK(r.runs == 18);
        static_cast<void>(d.engine().poll());
        CHECK(r.runs == 21);
        CHECK(r.fresh == 21);
    }
    SECTION("an item that spends its budget: what it posts waits for the next turn, with a fresh budget")
    {
        r.left = 3;
        r.spend = true;
        d.engine().post(&r);
        static_cast<void>(d.engine().poll());
        CHECK(r.runs == 1);
        static_cast<void>(d.engine().poll());
        CHECK(r.runs == 2);
        static_cast<void>(d.engine().run_one(-1)); // work left for the loop: no wait in the kernel
        CHECK(r.runs == 3);
        d.settle();
        CHECK(r.runs == 4);
        CHECK(r.fresh == 4);
    }
    asock::detail::refill_inline_budget();
}
