// tests/win32/unit_timers.cpp: the threadpool engine's timers over the fake
// Win32 layer's virtual clock (tests/win32/fake_win32.hpp: now(), advance(),
// one threadpool timer per engine): sleep_for expiring, cancellation, engine
// destruction, how often the OS timer is set, a timer firing early by our
// clock, and an engine without threads whose loop a due timer wakes. The
// engines are the real basic_threadpool_engine, with a pool (the test thread
// plays the pool thread that gets the timer callback) and without threads.
// Nothing here sleeps.
#include "unit_support.hpp"

#include <asock/spawn.hpp>
#include <asock/time.hpp>

#include <algorithm>

using namespace asock_wtest;
using namespace std::chrono_literals;
using asock::timer_result;

namespace {

const asock::win32::engine_options with_pool{};
const asock::win32::engine_options no_threads{.threads = 0};

struct recorded_timer {
    std::optional<timer_result> result;
    int resumptions = 0;
    std::thread::id thread;
    bool on_engine = false;      // running_in_this_thread() when resumed
    std::size_t calls_seen = 0;  // fake().mark() when resumed
    std::optional<timer_result> second; // a sleep started after the first one ended (with_second)
};

asock::task<void> sleep_into(fake_engine& e, std::chrono::steady_clock::duration d, std::stop_token token,
                             recorded_timer& out, bool with_second = false)
{
    const timer_result r = co_await asock::sleep_for(e, d, std::move(token));
    out.thread = std::this_thread::get_id();
    out.on_engine = e.running_in_this_thread();
    out.calls_seen = fake().mark();
    if (with_second) {
        out.second = co_await asock::sleep_for(e, 1h);
    }
    out.result = r;
    ++out.resumptions;
}

// Runs what the engine has queued: the pool's posted work, or the loop of an
// engine without threads, on this thread.
void drain(fake_engine& e)
{
    if (e.caller_runs_loop()) {
        while (e.poll() != 0) {
        }
    } else {
        fake().run_work();
    }
}

std::ptrdiff_t index_of(const std::vector<std::string>& calls, const std::string& name)
{
    const auto it = std::find(calls.begin(), calls.end(), name);
    return it == calls.end() ? -1 : it - calls.begin();
}

} // namespace

TEST_CASE("timers: one threadpool timer per engine, in its callback environment", "[win32][timers]")
{
    for (const auto& options : {with_pool, no_threads}) {
        fixture f{false, options};
        CHECK(fake().count("CreateThreadpoolTimer") == 1);
        CHECK(fake().timer_pool() == f.engine->pool());
        CHECK(f.engine->now() == fake().now());
        CHECK(fake().count("SetThreadpoolTimer") == 0); // set only once a timer is added
    }
}

TEST_CASE("timers: sleep_for expires when the virtual clock reaches its deadline, on the thread of the timer callback",
          "[win32][timers]")
{
    fixture f{false};
    recorded_timer r;
    const auto t0 = fake().now();
    asock::spawn(sleep_into(*f.engine, 5s, {}, r));
    CHECK(!r.result);
    CHECK(fake().timer_deadline() == t0 + 5s);
    CHECK(fake().timer_due() == -50'000'000); // relative, in 100 ns units
    fake().advance(4999ms);
    CHECK(!r.result);
    fake().advance(1ms);
    REQUIRE(r.result);
    CHECK(*r.result == timer_result::expired);
    CHECK(r.resumptions == 1);
    CHECK(r.thread == std::this_thread::get_id()); // this thread played the pool thread
    CHECK(r.on_engine);
    CHECK_FALSE(f.engine->running_in_this_thread());
    CHECK(fake().pending_work() == 0); // run in the callback, not posted
}

TEST_CASE("timers: the due time is rounded up to whole milliseconds", "[win32][timers]")
{
    fixture f{false};
    recorded_timer r;
    asock::spawn(sleep_into(*f.engine, 1500us, {}, r));
    CHECK(fake().timer_due() == -20'000); // 2 ms
    fake().advance(1500us);
    CHECK(!r.result); // the OS timer is set for 2 ms
    fake().advance(500us);
    CHECK(r.result == timer_result::expired);
}

TEST_CASE("timers: on an engine without threads a due timer waits for the loop, and runs there", "[win32][timers]")
{
    fixture f{false, no_threads};
    recorded_timer r;
    asock::spawn(sleep_into(*f.engine, 1s, {}, r));
    fake().advance(1s); // the pool thread's callback: hands the timer to the loop
    CHECK(!r.result);
    CHECK(f.engine->poll() == 1);
    CHECK(r.result == timer_result::expired);
    CHECK(r.on_engine);
    CHECK(r.thread == std::this_thread::get_id());
}

TEST_CASE("timers: run_one on an engine without threads returns when a timer is due", "[win32][timers]")
{
    fixture f{false, no_threads};
    recorded_timer a, b;
    const auto t0 = fake().now();
    asock::spawn(sleep_into(*f.engine, 3s, {}, a));
    asock::spawn(sleep_into(*f.engine, 1s, {}, b));
    for (const auto step : {1s, 2s}) {
        std::thread pool([&] {
            // Fires once this thread is waiting inside run_one.
            wait_until("the loop runs", [&] { return !f.engine->loop_unattended(); });
            fake().advance(step);
        });
        // Bounded, so that a wake-up that never comes fails instead of hanging.
        const std::size_t n = f.engine->run_one(30'000);
        pool.join();
        CHECK(n == 1);
    }
    CHECK(fake().now() - t0 == 3s);
    CHECK(b.result == timer_result::expired);
    CHECK(a.result == timer_result::expired);
    CHECK(a.thread == std::this_thread::get_id());
    CHECK(b.thread == std::this_thread::get_id());
}

TEST_CASE("timers: a stop request completes a pending sleep cancelled, through the engine; the timer never fires",
          "[win32][timers]")
{
    for (const auto& options : {with_pool, no_threads}) {
        fixture f{false, options};
        CAPTURE(f.engine->caller_runs_loop());
        std::stop_source src;
        recorded_timer r;
        asock::spawn(sleep_into(*f.engine, 5s, src.get_token(), r));
        src.request_stop();
        CHECK(!r.result); // resumed by the engine, not on the requesting thread
        drain(*f.engine);
        CHECK(r.result == timer_result::cancelled);
        CHECK(r.on_engine);
        fake().advance(10s);
        drain(*f.engine);
        CHECK(r.resumptions == 1);
    }
}

TEST_CASE("timers: a stop requested before the sleep starts completes it cancelled without suspending",
          "[win32][timers]")
{
    fixture f{false};
    std::stop_source src;
    src.request_stop();
    recorded_timer r;
    asock::spawn(sleep_into(*f.engine, 5s, src.get_token(), r));
    CHECK(r.result == timer_result::cancelled);
    CHECK_FALSE(r.on_engine);
    CHECK(fake().count("SetThreadpoolTimer") == 0);
}

TEST_CASE("timers: a zero or past deadline completes expired without suspending", "[win32][timers]")
{
    fixture f{false};
    recorded_timer zero, past;
    asock::spawn(sleep_into(*f.engine, 0s, {}, zero));
    asock::spawn(sleep_into(*f.engine, -5s, {}, past));
    CHECK(zero.result == timer_result::expired);
    CHECK(past.result == timer_result::expired);
    CHECK_FALSE(zero.on_engine);
    CHECK(fake().count("SetThreadpoolTimer") == 0);
}

TEST_CASE("timers: destroying an engine completes its pending sleeps cancelled on the destroying thread, before the "
          "pool goes; a timer added then is refused",
          "[win32][timers]")
{
    for (const auto& options : {with_pool, no_threads}) {
        fake().reset();
        fake_engine* e = fake_engine::create(options);
        REQUIRE(e != nullptr);
        CAPTURE(e->caller_runs_loop());
        recorded_timer r, later;
        asock::spawn(sleep_into(*e, 1h, {}, r, true));
        asock::spawn(sleep_into(*e, 2h, {}, later));
        CHECK(!r.result);
        const auto mark = fake().mark();
        e->dec_ref();
        REQUIRE(r.result);
        CHECK(*r.result == timer_result::cancelled);
        CHECK(r.second == timer_result::cancelled); // add_timer refused: the engine is closing
        CHECK(r.resumptions == 1);
        CHECK(r.thread == std::this_thread::get_id());
        CHECK(r.on_engine);
        CHECK(later.result == timer_result::cancelled);
        const auto calls = fake().calls();
        const auto stop = index_of(calls, "SetThreadpoolTimer(NULL)");
        const auto wait = index_of(calls, "WaitForThreadpoolTimerCallbacks(TRUE)");
        const auto close = index_of(calls, "CloseThreadpoolTimer");
        const auto pool = index_of(calls, "CloseThreadpool");
        CHECK(static_cast<std::size_t>(stop) >= mark);
        CHECK(stop < wait);
        CHECK(wait < close);
        CHECK(close < pool);
        // The OS timer was stopped before the sleep resumed; the pool went after.
        CHECK(static_cast<std::size_t>(close) < r.calls_seen);
        CHECK(r.calls_seen <= static_cast<std::size_t>(pool));
    }
    fake().reset();
}

TEST_CASE("timers: adding and withdrawing 100 timeouts sets the OS timer once", "[win32][timers]")
{
    for (const auto& options : {with_pool, no_threads}) {
        fixture f{false, options};
        CAPTURE(f.engine->caller_runs_loop());
        // A timeout per operation: each added, then withdrawn long before it is due.
        for (int i = 0; i < 100; ++i) {
            std::stop_source src;
            recorded_timer r;
            asock::spawn(sleep_into(*f.engine, 5s, src.get_token(), r));
            src.request_stop();
            drain(*f.engine);
            CHECK(r.result == timer_result::cancelled);
            fake().advance(1ms);
        }
        CHECK(fake().count("SetThreadpoolTimer") == 1);
        // That setting fires, finds nothing due, and sets nothing new.
        fake().advance(10s);
        drain(*f.engine);
        CHECK(fake().count("SetThreadpoolTimer") == 1);
        CHECK(!fake().timer_deadline());
    }
}

TEST_CASE("timers: an earlier timer sets the OS timer again; when it fires it is set to the next deadline",
          "[win32][timers]")
{
    fixture f{false};
    recorded_timer a, b, c;
    const auto t0 = fake().now();
    asock::spawn(sleep_into(*f.engine, 10s, {}, a));
    CHECK(fake().timer_deadline() == t0 + 10s);
    asock::spawn(sleep_into(*f.engine, 2s, {}, b));
    CHECK(fake().timer_deadline() == t0 + 2s);
    asock::spawn(sleep_into(*f.engine, 5s, {}, c));
    CHECK(fake().timer_deadline() == t0 + 2s);
    CHECK(fake().count("SetThreadpoolTimer") == 2);
    fake().advance(2s);
    CHECK(b.result == timer_result::expired);
    CHECK(!c.result);
    CHECK(fake().timer_deadline() == t0 + 5s); // c, the next one
    fake().advance(3s);
    CHECK(c.result == timer_result::expired);
    CHECK(fake().timer_deadline() == t0 + 10s);
    fake().advance(5s);
    CHECK(a.result == timer_result::expired);
    CHECK(!fake().timer_deadline());
    CHECK(fake().count("SetThreadpoolTimer") == 4);
}

TEST_CASE("timers: an OS timer that fires before the deadline by the engine's clock is set again, and the sleep "
          "waits for its deadline",
          "[win32][timers]")
{
    for (const auto& options : {with_pool, no_threads}) {
        fixture f{false, options};
        CAPTURE(f.engine->caller_runs_loop());
        recorded_timer r;
        const auto t0 = fake().now();
        asock::spawn(sleep_into(*f.engine, 5s, {}, r));
        fake().advance(4999ms);
        REQUIRE(fake().fire_timer_early());
        drain(*f.engine);
        CHECK(!r.result);
        CHECK(fake().timer_deadline() == t0 + 5s);
        CHECK(fake().timer_due() == -10'000); // the 1 ms left
        fake().advance(1ms);
        drain(*f.engine);
        CHECK(r.result == timer_result::expired);
    }
}
