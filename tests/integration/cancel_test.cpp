// tests/integration/cancel_test.cpp: cancellation of every awaitable (and of
// the TCP helpers' accept and connect) through std::stop_source, the callback
// forms' completion rules, and the thread each awaitable resumes on.
//
// The cancellation of receives and sends is the shared scenarios of
// tests/support/scenarios.hpp (run on Windows too); notify_io_async, the TCP
// helpers, inline completions and resumption threads are Linux specifics.
#include "posix_harness.hpp"

#include <array>
#include <span>
#include <stop_token>
#include <system_error>

using asock::notify_io_result;
using asock::notify_io_type;
using asock::receive_outcome;
using asock::receive_result;
using asock::send_result;
namespace sc = asock_scenarios;
using sc::receive_t;
using sc::send_t;
using sc::with_threads;

namespace {

asock::task<with_threads<notify_io_result>> notify_t(asock::tcp_socket& s, notify_io_type type,
                                                     std::stop_token token = {})
{
    with_threads<notify_io_result> out;
    out.before = it::this_thread_id();
    out.result = co_await s.notify_io_async(type, std::move(token));
    out.after = it::this_thread_id();
    co_return out;
}

using accept_result = asock::accept_outcome<asock::default_platform>;

asock::task<with_threads<accept_result>> accept_t(asock::tcp_listener_t& l, std::stop_token token = {})
{
    with_threads<accept_result> out;
    out.before = it::this_thread_id();
    out.result = co_await l.accept(std::move(token));
    out.after = it::this_thread_id();
    co_return out;
}

} // namespace

// ==== cancellation ======================================================================

TEST_CASE("cancelling a pending receive: cancelled with 0 bytes, and the next receive gets the data sent afterwards",
          "[integration][cancel]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    it::with_harness(tcp, [&]<class H>() { sc::cancel_pending_receive<H>(*engine); });
}

TEST_CASE("regression: a receive cancelled while bytes arrive loses no byte", "[integration][regression][cancel]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    it::with_harness(tcp, [&]<class H>() { sc::cancel_receive_race<H>(*engine, threads * 2u + (tcp ? 1u : 0u)); });
}

TEST_CASE("cancelling a pending notify_io_async completes it cancelled", "[integration][cancel]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);
    const notify_io_type type = GENERATE(notify_io_type::in, notify_io_type::out);
    CAPTURE(type);
    if (type == notify_io_type::out) {
        REQUIRE(it::fill_send_buffer(a.native_handle()) > 0);
    }
    std::stop_source src;
    it::tracker tr;
    std::optional<with_threads<notify_io_result>> n;
    it::start(tr, notify_t(a, type, src.get_token()), n);
    REQUIRE(tr.pending() == 1);
    src.request_stop();
    tr.wait(*engine, "cancelled notify");
    REQUIRE(n.has_value());
    CHECK(n->result == notify_io_result::cancelled);
    // The socket still works: a new notify in sees data.
    REQUIRE(b.write_all("z"));
    CHECK(it::run(*engine, notify_t(a, notify_io_type::in)).result == notify_io_result::in);
    it::drain(*engine);
}

TEST_CASE("cancelling a pending send", "[integration][cancel]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    SECTION("part of it already sent: cancelled, then the sends queued behind it and later ones fail with error")
    {
        sc::cancel_partly_sent_send<it::posix_local_harness>(*engine);
    }
    SECTION("nothing of it sent yet: cancelled, and the stream stays usable without its bytes")
    {
        sc::cancel_queued_send<it::posix_local_harness>(*engine);
    }
}

TEST_CASE("stop requested before the co_await: cancelled at once, without suspending and without I/O",
          "[integration][cancel]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);

    SECTION("receive, with data waiting: cancelled, 0 bytes, the data stays for the next receive")
    {
        sc::cancel_before_await_receive<it::posix_local_harness>(*engine);
    }
    SECTION("send: cancelled, nothing sent") { sc::cancel_before_await_send<it::posix_local_harness>(*engine); }
    SECTION("notify: cancelled even though the socket is writable")
    {
        auto [fa, fb] = it::make_socketpair();
        asock::tcp_socket a = it::open_socket(*engine, fa);
        it::raw_peer b(fb);
        std::stop_source src;
        src.request_stop();
        const auto me = it::this_thread_id();
        it::tracker tr;
        std::optional<with_threads<notify_io_result>> n;
        it::start(tr, notify_t(a, notify_io_type::out, src.get_token()), n);
        REQUIRE(tr.pending() == 0);
        CHECK(n->result == notify_io_result::cancelled);
        CHECK(n->after == me);
    }
    it::drain(*engine);
}

TEST_CASE("cancelling accept and connect of the TCP helpers", "[integration][cancel][tcp]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);

    SECTION("accept with no connection waiting")
    {
        auto listened = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
        const std::error_code ec = listened.error;
        auto& listener = listened.listener;
        REQUIRE_FALSE(ec);
        std::stop_source src;
        it::tracker tr;
        std::optional<with_threads<accept_result>> a;
        it::start(tr, accept_t(listener, src.get_token()), a);
        REQUIRE(tr.pending() == 1);
        src.request_stop();
        tr.wait(*engine, "cancelled accept");
        REQUIRE(a.has_value());
        CHECK_FALSE(a->result);
        CHECK(a->result.error == std::errc::operation_canceled);
        CHECK_FALSE(a->result.socket.valid());
        // The listener still accepts afterwards.
        std::optional<with_threads<accept_result>> again;
        it::start(tr, accept_t(listener), again);
        auto c = it::run(*engine, asock::connect(*engine, "127.0.0.1", listener.port()));
        REQUIRE(c);
        tr.wait(*engine, "accept after a cancelled one");
        CHECK(again->result);
    }
    SECTION("connect that cannot complete (the listener's accept queue is full)")
    {
        // A listener with backlog 0 that never accepts: once one connection
        // sits in its accept queue, the kernel drops further SYNs, so the next
        // connect stays in progress until cancelled.
        const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(lfd >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(lfd, 0) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        const int filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(filler, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        it::wait_until("the filler connection in the accept queue", [&] {
            tcp_info info{};
            socklen_t n = sizeof info;
            return ::getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &info, &n) == 0 && info.tcpi_unacked >= 1;
        });

        std::stop_source src;
        it::tracker tr;
        std::optional<asock::connect_outcome<asock::default_platform>> c;
        it::start(tr, asock::connect(*engine, "127.0.0.1", ntohs(addr.sin_port), src.get_token()), c);
        REQUIRE(tr.pending() == 1);
        src.request_stop();
        tr.wait(*engine, "cancelled connect");
        REQUIRE(c.has_value());
        CHECK_FALSE(*c);
        CHECK(c->error == std::errc::operation_canceled);
        CHECK_FALSE(c->socket.valid());
        ::close(filler);
        ::close(lfd);
    }
    it::drain(*engine);
}

// ==== callback forms =====================================================================

namespace {

/// Set on the thread that is inside a start call (receive_async / notify_io_async / send_async).
thread_local bool tls_in_call = false;

/// Records a callback-form completion and whether it came after the start call
/// returned. The starting thread sets `returned` right after the call returns;
/// a callback on another thread waits (bounded) for that flag, so a callback
/// made inline, or one the start call waited for, is caught.
struct after_return_probe {
    std::atomic<bool> returned{false};
    std::atomic<int> calls{0};
    bool inline_call = false;
    bool saw_returned = false;
    int result = 0;
    std::uint32_t bytes = 0;
    std::thread::id thread;

    void called(int r, std::uint32_t n)
    {
        inline_call = tls_in_call;
        if (!inline_call) {
            const auto deadline = it::clock::now() + std::chrono::seconds(20);
            while (!returned.load(std::memory_order_acquire) && it::clock::now() < deadline) {
                std::this_thread::yield();
            }
        }
        saw_returned = returned.load(std::memory_order_acquire);
        result = r;
        bytes = n;
        thread = it::this_thread_id();
        calls.fetch_add(1, std::memory_order_release);
    }
    int count() const { return calls.load(std::memory_order_acquire); }
};

void probe_receive(void* c, receive_result r, std::uint32_t n)
{
    static_cast<after_return_probe*>(c)->called(static_cast<int>(r), n);
}
void probe_notify(void* c, notify_io_result r) { static_cast<after_return_probe*>(c)->called(static_cast<int>(r), 0); }
void probe_send(void* c, send_result r) { static_cast<after_return_probe*>(c)->called(static_cast<int>(r), 0); }

template <class F>
auto call_marked(after_return_probe& p, F&& f)
{
    tls_in_call = true;
    auto r = f();
    tls_in_call = false;
    p.returned.store(true, std::memory_order_release);
    return r;
}

} // namespace

TEST_CASE("callback forms: receive and notify completions never run before the start call returns",
          "[integration][callback]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    const auto me = it::this_thread_id();
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    SECTION("receive with data already waiting, 50 times")
    {
        for (int round = 0; round < 50; ++round) {
            CAPTURE(round);
            REQUIRE(b.write_all("abc"));
            it::wait_until("data readable", [&] {
                pollfd p{a.native_handle(), POLLIN, 0};
                return ::poll(&p, 1, 0) == 1;
            });
            asock::receive_operation op;
            after_return_probe p;
            char buf[8];
            const asock::mutable_buffer mb = asock::buffer(buf);
            const auto r = call_marked(p, [&] {
                return a.receive_async(op, std::span<const asock::mutable_buffer>(&mb, 1), probe_receive, &p);
            });
            REQUIRE(r == asock::start_result::started);
            it::drive_until(*engine, "receive callback", [&] { return p.count() == 1; });
            REQUIRE_FALSE(p.inline_call);
            REQUIRE(p.saw_returned);
            REQUIRE(static_cast<receive_result>(p.result) == receive_result::ok);
            REQUIRE(std::string(buf, p.bytes) == "abc");
            if (threads != 0) {
                REQUIRE(p.thread != me);
            }
        }
    }
    SECTION("receive with nothing waiting, completed by data later")
    {
        asock::receive_operation op;
        after_return_probe p;
        char buf[8];
        const asock::mutable_buffer mb = asock::buffer(buf);
        REQUIRE(call_marked(p, [&] {
                    return a.receive_async(op, std::span<const asock::mutable_buffer>(&mb, 1), probe_receive, &p);
                }) == asock::start_result::started);
        it::drain(*engine);
        CHECK(p.count() == 0);
        REQUIRE(b.write_all("later"));
        it::drive_until(*engine, "receive callback", [&] { return p.count() == 1; });
        CHECK_FALSE(p.inline_call);
        CHECK(p.saw_returned);
        CHECK(static_cast<receive_result>(p.result) == receive_result::ok);
        CHECK(std::string(buf, p.bytes) == "later");
    }
    SECTION("notify out on a writable socket and notify in with data waiting, 50 times each")
    {
        for (int round = 0; round < 50; ++round) {
            CAPTURE(round);
            asock::notify_operation op;
            after_return_probe p;
            REQUIRE(call_marked(p, [&] { return a.notify_io_async(op, notify_io_type::out, probe_notify, &p); }) ==
                    asock::start_result::started);
            it::drive_until(*engine, "notify out callback", [&] { return p.count() == 1; });
            REQUIRE_FALSE(p.inline_call);
            REQUIRE(p.saw_returned);
            REQUIRE(static_cast<notify_io_result>(p.result) == notify_io_result::out);
        }
        REQUIRE(b.write_all("d"));
        for (int round = 0; round < 50; ++round) {
            CAPTURE(round);
            asock::notify_operation op;
            after_return_probe p;
            REQUIRE(call_marked(p, [&] { return a.notify_io_async(op, notify_io_type::in, probe_notify, &p); }) ==
                    asock::start_result::started);
            it::drive_until(*engine, "notify in callback", [&] { return p.count() == 1; });
            REQUIRE_FALSE(p.inline_call);
            REQUIRE(p.saw_returned);
            REQUIRE(static_cast<notify_io_result>(p.result) == notify_io_result::in);
            if (threads != 0) {
                REQUIRE(p.thread != me);
            }
        }
    }
    SECTION("rejected starts never call back")
    {
        after_return_probe p;
        asock::receive_operation rop;
        asock::notify_operation nop;
        asock::send_operation sop;
        char buf[8];
        const asock::mutable_buffer good = asock::buffer(buf);
        const asock::mutable_buffer empty_buf(buf, 0);
        const asock::const_buffer cgood = asock::buffer(static_cast<const void*>(buf), sizeof buf);
        CHECK(a.receive_async(rop, std::span<const asock::mutable_buffer>(), probe_receive, &p) ==
              asock::start_result::invalid_argument);
        CHECK(a.receive_async(rop, std::span<const asock::mutable_buffer>(&empty_buf, 1), probe_receive, &p) ==
              asock::start_result::invalid_argument);
        CHECK(a.receive_async(rop, std::span<const asock::mutable_buffer>(&good, 1), nullptr, &p) ==
              asock::start_result::invalid_argument);
        CHECK(a.notify_io_async(nop, static_cast<notify_io_type>(0), probe_notify, &p) ==
              asock::start_result::invalid_argument);
        CHECK(a.send_async(sop, std::span<const asock::const_buffer>(), probe_send, &p) ==
              asock::send_sync_result::invalid_argument);
        a.close();
        CHECK(a.receive_async(rop, std::span<const asock::mutable_buffer>(&good, 1), probe_receive, &p) ==
              asock::start_result::not_open);
        CHECK(a.notify_io_async(nop, notify_io_type::in, probe_notify, &p) == asock::start_result::not_open);
        CHECK(a.send_async(sop, std::span<const asock::const_buffer>(&cgood, 1), probe_send, &p) ==
              asock::send_sync_result::not_open);
        it::drain(*engine);
        CHECK(p.count() == 0);
    }
    it::drain(*engine);
}

TEST_CASE("callback form send: completes inline when it can (spec 11_061), else later on an engine thread",
          "[integration][callback]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    const auto me = it::this_thread_id();
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    SECTION("room in the kernel buffer: the callback runs before send_async returns, once, ok")
    {
        asock::send_operation op;
        after_return_probe p;
        const asock::const_buffer cb = asock::buffer(std::string_view("hello"));
        tls_in_call = true;
        const auto r = a.send_async(op, std::span<const asock::const_buffer>(&cb, 1), probe_send, &p);
        tls_in_call = false;
        CHECK(r == asock::send_sync_result::ok);
        CHECK(p.count() == 1);
        CHECK(p.inline_call);
        CHECK(static_cast<send_result>(p.result) == send_result::ok);
        it::drain(*engine);
        CHECK(p.count() == 1);
        CHECK(b.read_string(5) == "hello");
    }
    SECTION("no room: the callback runs after the peer reads, once, ok, on an engine thread")
    {
        std::vector<char> big(4u << 20);
        it::fill_pattern(big.data(), big.size(), 0, 60);
        asock::send_operation op;
        after_return_probe p;
        const asock::const_buffer cb = asock::buffer(static_cast<const void*>(big.data()), big.size());
        const auto r = call_marked(p, [&] {
            return a.send_async(op, std::span<const asock::const_buffer>(&cb, 1), probe_send, &p);
        });
        REQUIRE(r == asock::send_sync_result::ok);
        it::drain(*engine);
        CHECK(p.count() == 0);
        std::string got;
        std::thread reader([&] { got = b.read_string(big.size()); });
        it::drive_until(*engine, "pending send callback", [&] { return p.count() == 1; });
        reader.join();
        CHECK_FALSE(p.inline_call);
        CHECK(static_cast<send_result>(p.result) == send_result::ok);
        if (threads != 0) {
            CHECK(p.thread != me);
        }
        REQUIRE(got.size() == big.size());
        CHECK(it::check_pattern(got.data(), got.size(), 0, 60) == got.size());
        it::drain(*engine);
        CHECK(p.count() == 1);
    }
    it::drain(*engine);
}

// ==== resumption threads ====================================================================

TEST_CASE("each awaitable resumes inline when it completes at once, else on the engine thread",
          "[integration][threads]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    const auto me = it::this_thread_id();
    const auto engine_id = it::engine_thread_id(*engine);
    REQUIRE(engine_id != me);
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);
    char buf[64];

    SECTION("send completed at once: inline")
    {
        const auto s = it::run(*engine, send_t(a, "now", 3));
        CHECK(s.result == send_result::ok);
        CHECK(s.before == me);
        CHECK(s.after == me);
    }
    SECTION("send that waited for room: engine thread")
    {
        std::vector<char> big(4u << 20, 'w');
        it::tracker tr;
        std::optional<with_threads<send_result>> s;
        it::start(tr, send_t(a, big.data(), big.size()), s);
        REQUIRE(tr.pending() == 1);
        std::string got;
        std::thread reader([&] { got = b.read_string(big.size()); });
        tr.wait(*engine);
        reader.join();
        CHECK(s->result == send_result::ok);
        CHECK(s->before == me);
        CHECK(s->after == engine_id);
    }
    SECTION("send pending when close() is called on this thread: engine thread")
    {
        std::vector<char> big(4u << 20, 'w');
        it::tracker tr;
        std::optional<with_threads<send_result>> s;
        it::start(tr, send_t(a, big.data(), big.size()), s);
        REQUIRE(tr.pending() == 1);
        a.close();
        tr.wait(*engine);
        CHECK(s->result == send_result::abandoned);
        CHECK(s->after == engine_id);
    }
    SECTION("receive with data waiting: inline")
    {
        REQUIRE(b.write_all("ready"));
        it::wait_until("data readable", [&] {
            pollfd p{a.native_handle(), POLLIN, 0};
            return ::poll(&p, 1, 0) == 1;
        });
        const auto r = it::run(*engine, receive_t(a, buf, sizeof buf));
        CHECK(r.result.result == receive_result::ok);
        CHECK(r.after == me);
    }
    SECTION("receive that waited for data: engine thread")
    {
        it::tracker tr;
        std::optional<with_threads<receive_outcome>> r;
        it::start(tr, receive_t(a, buf, sizeof buf), r);
        REQUIRE(tr.pending() == 1);
        REQUIRE(b.write_all("late"));
        tr.wait(*engine);
        CHECK(r->result.result == receive_result::ok);
        CHECK(r->after == engine_id);
    }
    SECTION("receive cancelled from this thread: engine thread")
    {
        std::stop_source src;
        it::tracker tr;
        std::optional<with_threads<receive_outcome>> r;
        it::start(tr, receive_t(a, buf, sizeof buf, src.get_token()), r);
        REQUIRE(tr.pending() == 1);
        src.request_stop();
        tr.wait(*engine);
        CHECK(r->result.result == receive_result::cancelled);
        CHECK(r->after == engine_id);
    }
    SECTION("receive pending when the socket is destroyed on this thread: engine thread")
    {
        auto owned = std::make_unique<asock::tcp_socket>(std::move(a));
        it::tracker tr;
        std::optional<with_threads<receive_outcome>> r;
        it::start(tr, receive_t(*owned, buf, sizeof buf), r);
        REQUIRE(tr.pending() == 1);
        owned.reset();
        tr.wait(*engine);
        CHECK(r->result.result == receive_result::abandoned);
        CHECK(r->after == engine_id);
    }
    SECTION("notify out on a writable socket: inline; notify in that waited: engine thread")
    {
        const auto n = it::run(*engine, notify_t(a, notify_io_type::out));
        CHECK(n.result == notify_io_result::out);
        CHECK(n.after == me);
        it::tracker tr;
        std::optional<with_threads<notify_io_result>> nin;
        it::start(tr, notify_t(a, notify_io_type::in), nin);
        REQUIRE(tr.pending() == 1);
        REQUIRE(b.write_all("!"));
        tr.wait(*engine);
        CHECK(nin->result == notify_io_result::in);
        CHECK(nin->after == engine_id);
    }
    SECTION("accept with a connection waiting: inline; accept that waited: engine thread")
    {
        auto listened = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
        const std::error_code ec = listened.error;
        auto& listener = listened.listener;
        REQUIRE_FALSE(ec);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(listener.port());
        const int c1 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(c1, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        it::wait_until("connection waiting", [&] {
            pollfd p{listener.native_handle(), POLLIN, 0};
            return ::poll(&p, 1, 0) == 1;
        });
        const auto first = it::run(*engine, accept_t(listener));
        CHECK(first.result);
        CHECK(first.after == me);

        it::tracker tr;
        std::optional<with_threads<accept_result>> second;
        it::start(tr, accept_t(listener), second);
        REQUIRE(tr.pending() == 1);
        const int c2 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(c2, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        tr.wait(*engine);
        CHECK(second->result);
        CHECK(second->after == engine_id);
        ::close(c1);
        ::close(c2);
    }
}

TEST_CASE("on an engine without threads, completions from close and cancel resume inside the loop, not inside the call",
          "[integration][threads]")
{
    auto engine = asock::make_engine({.threads = 0});
    REQUIRE(engine);
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);
    char buf[16];
    std::stop_source src;
    it::tracker tr;
    std::optional<with_threads<receive_outcome>> cancelled;
    std::optional<with_threads<notify_io_result>> closed;
    it::start(tr, receive_t(a, buf, sizeof buf, src.get_token()), cancelled);
    it::start(tr, notify_t(a, notify_io_type::in), closed);
    REQUIRE(tr.pending() == 2);
    src.request_stop();
    CHECK_FALSE(cancelled.has_value());
    a.close();
    CHECK_FALSE(closed.has_value());
    tr.wait(*engine);
    CHECK(cancelled->result.result == receive_result::cancelled);
    CHECK(closed->result == notify_io_result::abandoned);
    it::drain(*engine);
}
