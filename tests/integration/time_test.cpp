// tests/integration/time_test.cpp: timers, with_timeout, when_any /
// when_all and task_scope over real sockets on Linux, on engines with 0, 1
// and 4 threads (the scenarios are tests/support/time_scenarios.hpp, shared
// with the Windows tests), and that a receive with a timeout allocates
// nothing in steady state.
#include "integration_support.hpp"

#include "support/time_scenarios.hpp"

#include <cstdlib>
#include <new>

using namespace it;
namespace timing = asock_scenarios::timing;

// Counts this program's heap allocations (for the allocation test below).
// Not under the sanitizers, whose runtimes own operator new.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define ASOCK_TEST_NO_ALLOC_COUNT 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define ASOCK_TEST_NO_ALLOC_COUNT 1
#endif
namespace {
std::atomic<long> g_allocations{0};
}
#if !defined(ASOCK_TEST_NO_ALLOC_COUNT)
// g++ 12 at -O2 inlines these into new-expressions and then warns that
// free() gets memory from operator new (-Wmismatched-new-delete): they are
// the same allocator here, by construction.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n)
{
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept
{
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#endif

namespace {
asock::engine_ref<asock::engine> engine_with(unsigned threads)
{
    auto e = asock::make_engine(asock::engine_options{.threads = threads});
    REQUIRE(e);
    return e;
}
} // namespace

TEST_CASE("sleep_for expires after its duration and a stop request cancels it, on engines with 0, 1 and 4 threads",
          "[integration][timers]")
{
    for (unsigned threads : {0u, 1u, 4u}) {
        INFO("threads " << threads);
        auto e = engine_with(threads);
        timing::sleep_expires(*e);
        timing::sleep_cancelled(*e);
    }
}

TEST_CASE("with_timeout fires on a silent peer and leaves the connection usable", "[integration][timeout]")
{
    for (unsigned threads : {0u, 1u, 4u}) {
        INFO("threads " << threads);
        auto e = engine_with(threads);
        timing::timeout_on_silent_peer(*e);
    }
}

TEST_CASE("5,000 rounds of a receive timeout racing the peer's data lose no byte", "[integration][timeout]")
{
    for (unsigned threads : {0u, 1u, 4u}) {
        INFO("threads " << threads);
        auto e = engine_with(threads);
        timing::timeout_races_data(*e, 5000);
    }
}

TEST_CASE("when_any of a receive and a sleep; when_all of a send and a receive on one socket",
          "[integration][when_any][when_all]")
{
    for (unsigned threads : {0u, 1u, 4u}) {
        INFO("threads " << threads);
        auto e = engine_with(threads);
        timing::when_any_receive_or_sleep(*e);
        timing::when_all_send_and_receive(*e);
    }
}

TEST_CASE("a scope joins 1,000 connection handlers", "[integration][scope]")
{
    // 2,000 descriptors and more: raise the soft limit as far as allowed.
    rlimit lim{};
    int handlers = 1000;
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 2200) {
        lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 4096);
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
        if (lim.rlim_cur < 2200) {
            handlers = static_cast<int>(lim.rlim_cur / 2) - 50;
            WARN("descriptor limit " << lim.rlim_cur << ": " << handlers << " handlers instead of 1,000");
        }
    }
    for (unsigned threads : {1u, 4u}) {
        INFO("threads " << threads);
        auto e = engine_with(threads);
        timing::scope_joins_handlers(*e, handlers);
    }
}

TEST_CASE("shutdown with handlers blocked in receive: stop, join, destroy the engine, nothing leaked",
          "[integration][scope]")
{
    for (unsigned threads : {0u, 1u, 4u}) {
        INFO("threads " << threads);
        timing::shutdown_with_blocked_handlers(engine_with(threads), 50);
    }
}

TEST_CASE("connect with a deadline: in time; a lookup that hangs ends timed_out; a stop request ends it cancelled",
          "[integration][timeout][tcp]")
{
    for (unsigned threads : {0u, 1u}) {
        INFO("threads " << threads);
        auto e = engine_with(threads);
        timing::connect_with_deadline<asock_tests::gated_resolver_os<asock::posix::resolver_os>>(*e);
    }
}

TEST_CASE("destroying an engine completes its pending sleeps cancelled before it returns", "[integration][timers]")
{
    for (unsigned threads : {0u, 1u, 4u}) {
        INFO("threads " << threads);
        timing::engine_destroy_completes_sleeps(engine_with(threads));
    }
}

TEST_CASE("a receive with a timeout, and when_any of a receive and a sleep, allocate nothing in steady state",
          "[integration][timeout][allocation]")
{
    auto e = engine_with(0);
    const auto fds = make_socketpair(); // (not a structured binding: the lambda below captures it)
    const int fd_async = fds.first;
    const int fd_peer = fds.second;
    asock::tcp_socket s(*e);
    REQUIRE(s.open(fd_async) == asock::open_result::ok);
    long during = -1;
    int timeouts = 0;
    auto body = [&]() -> asock::task<void> {
        char buf[8];
        const asock::mutable_buffer b{buf, sizeof buf};
        for (int round = 0; round < 2; ++round) {
            const long before = g_allocations.load();
            for (int i = 0; i < 200; ++i) {
                REQUIRE(::write(fd_peer, "x", 1) == 1);
                const auto r = co_await asock::with_timeout(*e, 5s, s.receive_async(b));
                CHECK(r.result.bytes_received == 1);
                const auto t = co_await asock::when_any(s.receive_async(b), asock::sleep_for(*e, 100us));
                timeouts += t.index == 1;
                co_await asock::schedule(*e);
            }
            during = g_allocations.load() - before; // round 0 warms up; round 1 counts
        }
    };
    asock::sync_wait(*e, body());
#if defined(ASOCK_TEST_NO_ALLOC_COUNT)
    WARN("allocations are not counted under a sanitizer");
#else
    CHECK(during == 0);
#endif
    CHECK(timeouts == 400);
    ::close(fd_peer);
}
