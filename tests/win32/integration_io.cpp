// tests/win32/integration_io.cpp: the platform-neutral scenarios of
// tests/win32/scenarios.hpp over real loopback sockets, on engines whose pool
// has 1 thread and 4 threads. Runs under Wine in the cross build.
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
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::echo(*e);
}

TEST_CASE("integration: multi-buffer send and receive", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::multi_buffer<win32_harness>(*e);
}

TEST_CASE("integration: peer close delivers every byte, then ABANDONED", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::peer_close<win32_harness>(*e);
}

TEST_CASE("integration: SRS_ASYNC_SOCKET_WIN32_42_001 peer reset abandons a pending receive", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::peer_reset<win32_harness>(*e);
}

TEST_CASE("integration: many sockets", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::many_sockets(*e, 64);
}

TEST_CASE("integration: a large send to a late reader", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::large_send_late_reader<win32_harness>(*e);
}

TEST_CASE("integration: a send and a receive pending together (full duplex)", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::send_and_receive_pending<win32_harness>(*e);
}

TEST_CASE("integration: queued receives complete in order", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::queued_receives_in_order<win32_harness>(*e);
}

TEST_CASE("integration: close inside a callback does not deadlock, even on a one-thread pool", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::close_inside_callback<win32_harness>(*e);
}

TEST_CASE("integration: close with pending operations completes them before it returns", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::close_with_pending<win32_harness>(*e);
}

TEST_CASE("integration: 4 concurrent framed senders", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::concurrent_framed_senders(*e, 4, 200);
}

TEST_CASE("integration: cancellation", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    auto e = engine_with(threads);
    sc::cancellation<win32_harness>(*e);
}
