// tests/win32/integration_timers.cpp: the engine's timers with the real Win32
// layer (one threadpool timer per engine), on engines without threads (the
// test runs the loop: sync_wait(engine, ...) / run_one) and on 1-thread and
// 4-thread pools. Runs under Wine in the cross build.
//
// Times are checked from below only (a sleep never ends before its deadline
// by steady_clock); upper bounds are generous hang guards, since the machine
// running the tests may be loaded.
#include "win32_harness.hpp"

#include <asock/spawn.hpp>
#include <asock/sync_wait.hpp>
#include <asock/task.hpp>
#include <asock/time.hpp>

#include <atomic>
#include <chrono>
#include <stop_token>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using asock::timer_result;
using steady = std::chrono::steady_clock;

namespace {
asock::engine_ref<asock::engine> engine_with(unsigned threads)
{
    auto e = asock::make_engine({.threads = threads});
    REQUIRE(e);
    return e;
}

struct finished_sleep {
    std::atomic<bool> done{false};
    timer_result result = timer_result::cancelled;
    steady::time_point at{};
};

asock::task<void> sleep_and_record(asock::engine& e, steady::duration d, finished_sleep& out)
{
    out.result = co_await asock::sleep_for(e, d);
    out.at = steady::now();
    out.done.store(true, std::memory_order_release);
}

// Runs the loop of an engine without threads, or waits, until `pred` holds.
template <class Pred>
void run_until(asock::engine& e, Pred pred)
{
    const auto limit = steady::now() + 30s;
    while (!pred()) {
        REQUIRE(steady::now() < limit);
        if (e.thread_count() == 0) {
            e.run_one(50);
        } else {
            std::this_thread::sleep_for(1ms);
        }
    }
}
} // namespace

TEST_CASE("integration: sleep_for(20ms) completes expired, not before 20 ms by steady_clock", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    for (int round = 0; round < 3; ++round) {
        const auto t0 = steady::now();
        const timer_result r = asock::sync_wait(*e, asock::sleep_for(*e, 20ms));
        const auto elapsed = steady::now() - t0;
        CHECK(r == timer_result::expired);
        CHECK(elapsed >= 20ms);
    }
}

TEST_CASE("integration: sleeps of different lengths started together each end after their own deadline",
          "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    constexpr int n = 8;
    std::vector<finished_sleep> sleeps(n);
    const auto t0 = steady::now();
    for (int i = n - 1; i >= 0; --i) { // latest first: each earlier one sets the OS timer again
        asock::spawn(sleep_and_record(*e, std::chrono::milliseconds(5 + 5 * i), sleeps[static_cast<std::size_t>(i)]));
    }
    run_until(*e, [&] {
        for (const auto& s : sleeps) {
            if (!s.done.load(std::memory_order_acquire)) {
                return false;
            }
        }
        return true;
    });
    for (int i = 0; i < n; ++i) {
        CAPTURE(i);
        const auto& s = sleeps[static_cast<std::size_t>(i)];
        CHECK(s.result == timer_result::expired);
        CHECK(s.at - t0 >= std::chrono::milliseconds(5 + 5 * i));
    }
}

TEST_CASE("integration: a stop request cancels a 10 s sleep promptly", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    std::stop_source src;
    std::thread requester([&] {
        std::this_thread::sleep_for(50ms);
        src.request_stop();
    });
    const auto t0 = steady::now();
    const timer_result r = asock::sync_wait(*e, asock::sleep_for(*e, 10s, src.get_token()));
    const auto elapsed = steady::now() - t0;
    requester.join();
    CHECK(r == timer_result::cancelled);
    CHECK(elapsed < 5s);
}

TEST_CASE("integration: destroying an engine completes a pending sleep cancelled", "[win32][integration]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    finished_sleep s;
    {
        auto e = engine_with(threads);
        asock::spawn(sleep_and_record(*e, 1h, s));
        if (threads == 0) {
            e->poll();
        }
        CHECK_FALSE(s.done.load());
    } // the last reference: the engine goes
    CHECK(s.done.load());
    CHECK(s.result == timer_result::cancelled);
}
