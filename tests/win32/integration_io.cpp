// tests/win32/integration_io.cpp: the shared integration scenarios of
// tests/support/scenarios.hpp (which the Linux tests in tests/integration/
// run too) over real loopback sockets, on engines without threads (the test
// runs the loop: run_one / poll, as on Linux) and on engines whose pool has 1
// thread and 4 threads. Runs under Wine in the cross build.
//
// Left to Linux (tests/integration/): AF_UNIX pairs and notify_io_async.
//
// A close() made inside a callback delivers every other completion of the
// socket before it returns, as on Linux: it cancels the calls still
// outstanding and settles each as soon as the OS reports it finished, without
// waiting for a pool thread (on a one-thread pool the only one is its own).
#include "win32_harness.hpp"

using asock_wtest::win32_harness;
namespace sc = asock_scenarios;

namespace {
asock::engine_ref<asock::engine> engine_with(unsigned threads)
{
    auto e = asock::make_engine({.threads = threads});
    REQUIRE(e);
    return e;
}
} // namespace

TEST_CASE("integration: echo", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::echo(*e);
}

TEST_CASE("integration: multi-buffer send and receive", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::multi_buffer<win32_harness>(*e);
}

TEST_CASE("integration: peer close delivers every byte, then ABANDONED", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::peer_close<win32_harness>(*e);
}

TEST_CASE("integration: shutdown_send after 1 MiB of sends: the peer gets every byte, then ABANDONED, and can "
          "still reply",
          "[win32][integration][shutdown]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::half_close<win32_harness>(*e);
}

TEST_CASE("integration: SRS_ASYNC_SOCKET_WIN32_42_001 peer reset abandons a pending receive", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    asock::tcp_socket s = sc::peer_reset_pending_receive<win32_harness>(*e);
    s.close();
}

TEST_CASE("integration: many sockets", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::many_sockets<win32_harness>(*e, 64);
}

TEST_CASE("integration: a large send to a late reader", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool temporary_list = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::large_send_late_reader<win32_harness>(*e, temporary_list);
}

TEST_CASE("integration: a send and a receive pending together (full duplex)", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::send_and_receive_pending<win32_harness>(*e);
}

TEST_CASE("integration: 8 MiB each way at the same time, both ends async sockets", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::bidirectional<win32_harness>(*e, 8u << 20);
}

TEST_CASE("integration: queued receives complete in order", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::queued_receives_in_order<win32_harness>(*e);
}

TEST_CASE("integration: close inside a callback does not deadlock, even on a one-thread pool", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    const int completed_at_close = sc::close_inside_callback<win32_harness>(*e, destroy);
    CHECK(completed_at_close == 4); // two receives and two sends, before close() returned
}

TEST_CASE("integration: close inside a resumed coroutine does not deadlock; the others complete abandoned once",
          "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    const int completed_at_close = sc::close_inside_coroutine<win32_harness>(*e, destroy);
    CHECK(completed_at_close == 4);
}

TEST_CASE("integration: close inside a send callback abandons the pending receives and the queued send",
          "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    const int completed_at_close = sc::close_inside_send_callback<win32_harness>(*e);
    CHECK(completed_at_close == 3); // the two receives and the queued send, before close() returned
}

TEST_CASE("integration: close with pending operations completes them before it returns", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::close_with_pending<win32_harness>(*e, destroy);
}

TEST_CASE("integration: destroy waits while another thread's close delivers callbacks", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::destroy_during_close_callbacks<win32_harness>(*e);
}

TEST_CASE("integration: 4 concurrent framed senders", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    const sc::sender_form form =
        GENERATE(sc::sender_form::awaited, sc::sender_form::callback, sc::sender_form::coroutine);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::concurrent_senders<win32_harness>(*e, form);
}

TEST_CASE("integration: cancellation", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::cancellation<win32_harness>(*e);
}

// A completion racing its stop request: the coroutine resumes on a pool thread
// while the stop callback still runs on the requesting thread, so
// ~std::stop_callback waits for it. With mingw-w64's libstdc++ that wait hung
// until asock::asock selected the sem_t semaphore (asock/detail/toolchain.hpp).
TEST_CASE("integration: a receive cancelled while bytes arrive loses no byte", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::cancel_receive_race<win32_harness>(*e, threads * 2u + 1u);
}

// ---- what the Linux backend does and the Windows one now does too --------------------------------------

TEST_CASE("integration: a receive of more than 64 buffers fills every buffer while the bytes are there, as on Linux",
          "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    // Every byte waits in the kernel before the receive starts: one receive
    // takes them all, into its 150 buffers (three WSARecv calls).
    sc::scatter_receive_waiting<win32_harness>(*e, sc::ascending_sizes(150), 150 * 151 / 2, 4);
    // Fewer bytes than the buffers hold, beyond the first 64 buffers.
    sc::scatter_receive_waiting<win32_harness>(*e, sc::ascending_sizes(150), 64 * 65 / 2 + 1000, 5);
}

TEST_CASE("integration: a send pending when the peer resets completes ABANDONED, as on Linux", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    SECTION("a pending send")
    {
        auto [a, b] = sc::make_async_and_peer<win32_harness>(*e);
        // 32 MiB is more than loopback TCP buffers hold: the send waits for room.
        sc::tracker tr;
        std::optional<asock::send_result> s;
        sc::start(tr, sc::send_string(a, std::string(32u << 20, 's')), s);
        REQUIRE(tr.pending() == 1);
        b.reset();
        tr.wait(*e, "send pending at reset");
        REQUIRE(s.has_value());
        CHECK(*s == asock::send_result::abandoned);
        const asock::send_result later = sc::run(*e, sc::send_string(a, "x"));
        CHECK(later == asock::send_result::not_open);
    }
    SECTION("a pending send and a pending receive together")
    {
        auto [a, b] = sc::make_async_and_peer<win32_harness>(*e);
        sc::tracker tr;
        std::optional<asock::send_result> s;
        std::optional<asock::receive_outcome> r;
        char buf[100];
        sc::start(tr, sc::receive_into(a, buf, sizeof buf), r);
        sc::start(tr, sc::send_string(a, std::string(32u << 20, 's')), s);
        REQUIRE(tr.pending() == 2);
        b.reset();
        tr.wait(*e, "send and receive pending at reset");
        REQUIRE(r.has_value());
        REQUIRE(s.has_value());
        CHECK(r->result == asock::receive_result::abandoned);
        CHECK(r->bytes_received == 0);
        CHECK(*s == asock::send_result::abandoned);
    }
    sc::drain(*e);
}

TEST_CASE("integration: on an engine without threads, completions from close and cancel resume inside the loop, not "
          "inside the call",
          "[win32][integration]")
{
    auto e = engine_with(0);
    auto [a, b] = sc::make_async_and_peer<win32_harness>(*e);
    char buf[16];
    char more[16];
    std::stop_source src;
    sc::tracker tr;
    std::optional<sc::with_threads<asock::receive_outcome>> cancelled;
    std::optional<sc::with_threads<asock::receive_outcome>> closed;
    sc::start(tr, sc::receive_t(a, buf, sizeof buf, src.get_token()), cancelled);
    sc::start(tr, sc::receive_t(a, more, sizeof more), closed);
    REQUIRE(tr.pending() == 2);
    src.request_stop();
    CHECK_FALSE(cancelled.has_value()); // its completion comes through the loop
    sc::drive_until(*e, "the cancelled receive", [&] { return cancelled.has_value(); });
    a.close(); // the second receive is outstanding now
    CHECK_FALSE(closed.has_value());
    tr.wait(*e);
    REQUIRE(cancelled.has_value());
    REQUIRE(closed.has_value());
    CHECK(cancelled->result.result == asock::receive_result::cancelled);
    CHECK(closed->result.result == asock::receive_result::abandoned);
    const std::thread::id me = std::this_thread::get_id();
    CHECK(cancelled->after == me); // resumed by this thread's loop
    CHECK(closed->after == me);
    sc::drain(*e);
}
