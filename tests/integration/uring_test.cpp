// tests/integration/uring_test.cpp: the shared integration scenarios
// (tests/support/scenarios.hpp) over real sockets with the io_uring backend:
// TCP over 127.0.0.1 and AF_UNIX socketpairs, engines with 0, 1 and 4
// threads. Built with ASOCK_DEFAULT_BACKEND_URING, so that the scenarios'
// asock::engine and asock::tcp_socket are the io_uring ones.
//
// Timers: the shared timer scenarios that need no TCP helpers, and
// with_timeout on a receive from a silent peer.
//
// Not here yet: the scenarios that need the TCP helpers (echo through a
// listener and connect) or notify_io_async, which wait for readiness (the
// io_uring backend has no notify_io yet).
//
// When io_uring cannot be used here, every test says why and checks nothing
// (scripts/test.sh's uring flavour counts the run as skipped).
#include "posix_harness.hpp"

#include "support/time_scenarios.hpp"

#include <asock/io_uring.hpp>

#include <chrono>
#include <cstdio>

static_assert(std::is_same_v<asock::default_platform, asock::uring::platform>);

namespace sc = asock_scenarios;

namespace {

/// An io_uring engine, or an empty one (with the reason printed) when io_uring
/// is not available on this machine.
asock::engine_ref<asock::engine> engine_with(unsigned threads)
{
    if (!asock::uring::available()) {
        WARN("skipped: " << asock::uring::unavailable_reason());
        return {};
    }
    auto e = asock::make_engine({.threads = threads});
    REQUIRE(e);
    return e;
}

} // namespace

TEST_CASE("uring: io_uring is available here, or the reason is given", "[uring][integration]")
{
    if (!asock::uring::available()) {
        WARN("skipped: " << asock::uring::unavailable_reason());
        return;
    }
    CHECK(std::string(asock::uring::unavailable_reason()).empty());
    CHECK(std::string(asock::default_backend_name) == "uring");
}

TEST_CASE("uring: scatter / gather buffers, more than 64 of them", "[uring][integration][buffers]")
{
    const unsigned threads = GENERATE(0u, 1u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        sc::multi_buffer<H>(e);
        sc::scatter_receive_waiting<H>(e, {1, 7, 100, 3, 4096}, 4207, 1);
        sc::scatter_receive_pending<H>(e, {2, 5, 1, 1000, 33}, 2);
        sc::scatter_receive_waiting<H>(e, {1, 7, 100, 3, 4096}, 50, 3);
        sc::scatter_receive_waiting<H>(e, sc::ascending_sizes(150), 150 * 151 / 2, 4);
        sc::gather_send<H>(e, sc::odd_sizes(150, 4u << 20, 9), 5);
    });
}

TEST_CASE("uring: peer close, half close, peer reset", "[uring][integration][peer]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        sc::peer_close<H>(e);
        sc::peer_close_rounds<H>(e, 50);
        sc::half_close<H>(e);
    });
    asock::tcp_socket s = sc::peer_reset_pending_receive<it::posix_harness>(e);
    s.close();
}

TEST_CASE("uring: many sockets at once", "[uring][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    sc::many_sockets<it::posix_harness>(*engine, 200);
}

TEST_CASE("uring: a 64 MiB send to a late reader (short sends resumed), full duplex, both ways at once",
          "[uring][integration][large]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    asock::engine& e = *engine;
    sc::large_send_late_reader<it::posix_harness>(e, false);
    sc::large_send_late_reader<it::posix_harness>(e, true);
    sc::send_and_receive_pending<it::posix_harness>(e);
    sc::bidirectional<it::posix_harness>(e, 8u << 20);
    sc::queued_receives_in_order<it::posix_harness>(e);
}

TEST_CASE("uring: close inside callbacks and coroutines; close and destroy with operations in flight",
          "[uring][integration][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads, destroy);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    asock::engine& e = *engine;
    CHECK(sc::close_inside_callback<it::posix_harness>(e, destroy) == 4);
    CHECK(sc::close_inside_coroutine<it::posix_harness>(e, destroy) == 4);
    CHECK(sc::close_inside_send_callback<it::posix_harness>(e) == 3);
    sc::close_with_pending<it::posix_harness>(e, destroy);
    if (threads > 0) {
        sc::destroy_during_close_callbacks<it::posix_harness>(e);
    }
}

TEST_CASE("uring: ordered, non-interleaved sends from many threads", "[uring][integration][concurrency]")
{
    const unsigned threads = GENERATE(1u, 4u);
    const sc::sender_form form = GENERATE(sc::sender_form::awaited, sc::sender_form::callback, sc::sender_form::coroutine);
    CAPTURE(threads);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    sc::concurrent_senders<it::posix_harness>(*engine, form);
}

TEST_CASE("uring: cancellation; a receive whose data won the race reports the bytes",
          "[uring][integration][cancel]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    sc::cancellation<it::posix_harness>(*engine);
    sc::cancel_receive_race<it::posix_harness>(*engine, threads * 2u + 1u);
}

TEST_CASE("uring: timers: sleeps expire and cancel, the engine's end completes them; a receive times out",
          "[uring][integration][time]")
{
    using namespace std::chrono_literals;
    namespace timing = asock_scenarios::timing;
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = engine_with(threads);
    if (!engine) {
        return;
    }
    asock::engine& e = *engine;
    timing::sleep_expires(e);
    timing::sleep_cancelled(e);
    timing::engine_destroy_completes_sleeps(engine_with(threads));

    auto c = sc::make_async_and_peer<it::posix_harness>(e);
    char buf[8] = {};
    auto body = [](asock::engine& eng, asock::tcp_socket& s,
                   char* b) -> asock::task<std::pair<asock::timeout_result<asock::receive_outcome>,
                                                     std::chrono::steady_clock::duration>> {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = co_await asock::with_timeout(eng, 30ms, s.receive_async(asock::mutable_buffer{b, 8}));
        co_return std::pair{r, std::chrono::steady_clock::now() - t0};
    };
    const auto [r, took] = sc::run(e, body(e, c.socket, buf), "receive with a 30 ms timeout");
    CHECK(r.timed_out);
    CHECK(took >= 30ms);
    // The socket is still usable: the receive was cancelled, not the connection.
    c.peer.write_all("ping", 4);
    const auto [again, _] = sc::run(e, body(e, c.socket, buf), "receive after the timeout");
    CHECK_FALSE(again.timed_out);
    CHECK(again.result.result == asock::receive_result::ok);
    CHECK(std::string(buf, again.result.bytes_received) == "ping");
    sc::drain(e);
}

namespace {
struct stop_item : asock::detail::work_item {
    asock::engine* engine = nullptr;
    std::atomic<int> ran{0};
    std::atomic<bool> on_engine_thread{false};
    static void go(asock::detail::work_item* w)
    {
        auto* self = static_cast<stop_item*>(w);
        self->on_engine_thread = self->engine->running_in_this_thread();
        self->ran.fetch_add(1);
        self->engine->stop();
    }
};
} // namespace

TEST_CASE("uring: the engine: work posted from another thread wakes a loop asleep in the kernel; stop() ends run()",
          "[uring][integration][engine]")
{
    auto engine = engine_with(0);
    if (!engine) {
        return;
    }
    stop_item item;
    item.run = &stop_item::go;
    item.engine = &*engine;
    std::thread poster([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        engine->post(&item);
    });
    engine->run(); // asleep in io_uring_enter until the post's wake-up
    poster.join();
    CHECK(item.ran.load() == 1);
    CHECK(item.on_engine_thread.load());
    CHECK(engine->stopped());
    engine->restart();
    CHECK(engine->poll() == 0);
}
