// tests/win32/integration_io.cpp: the shared integration scenarios of
// tests/support/scenarios.hpp (which the Linux tests in tests/integration/
// run too) over real loopback sockets, on engines whose pool has 1 thread and
// 4 threads. Runs under Wine in the cross build.
//
// Left to Linux (tests/integration/): AF_UNIX pairs, engines without threads,
// notify_io_async, a receive of more than 64 buffers (a Windows receive fills
// at most its first 64), and a send pending when the peer resets (it completes
// `error` here, `abandoned` there).
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
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::echo(*e);
}

TEST_CASE("integration: multi-buffer send and receive", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::multi_buffer<win32_harness>(*e);
}

TEST_CASE("integration: peer close delivers every byte, then ABANDONED", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::peer_close<win32_harness>(*e);
}

TEST_CASE("integration: SRS_ASYNC_SOCKET_WIN32_42_001 peer reset abandons a pending receive", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    asock::tcp_socket s = sc::peer_reset_pending_receive<win32_harness>(*e);
    s.close();
}

TEST_CASE("integration: many sockets", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::many_sockets<win32_harness>(*e, 64);
}

TEST_CASE("integration: a large send to a late reader", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    const bool temporary_list = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::large_send_late_reader<win32_harness>(*e, temporary_list);
}

TEST_CASE("integration: a send and a receive pending together (full duplex)", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::send_and_receive_pending<win32_harness>(*e);
}

TEST_CASE("integration: 8 MiB each way at the same time, both ends async sockets", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::bidirectional<win32_harness>(*e, 8u << 20);
}

TEST_CASE("integration: queued receives complete in order", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::queued_receives_in_order<win32_harness>(*e);
}

TEST_CASE("integration: close inside a callback does not deadlock, even on a one-thread pool", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    const int completed_at_close = sc::close_inside_callback<win32_harness>(*e, destroy);
    CHECK(completed_at_close == 4); // two receives and two sends, before close() returned
}

TEST_CASE("integration: close inside a resumed coroutine does not deadlock; the others complete abandoned once",
          "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads);
    auto e = engine_with(threads);
    const int completed_at_close = sc::close_inside_coroutine<win32_harness>(*e, destroy);
    CHECK(completed_at_close == 4);
}

TEST_CASE("integration: close inside a send callback abandons the pending receives and the queued send",
          "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    const int completed_at_close = sc::close_inside_send_callback<win32_harness>(*e);
    CHECK(completed_at_close == 3); // the two receives and the queued send, before close() returned
}

TEST_CASE("integration: close with pending operations completes them before it returns", "[win32][integration]")
{
    const unsigned threads = GENERATE(1u, 4u);
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
    const unsigned threads = GENERATE(1u, 4u);
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
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    sc::cancel_receive_race<win32_harness>(*e, threads * 2u + 1u);
}
