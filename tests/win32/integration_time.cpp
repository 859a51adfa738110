// tests/win32/integration_time.cpp: the shared scenarios of timeouts,
// when_any / when_all and task_scope (tests/support/time_scenarios.hpp, also
// run on Linux by tests/integration/time_test.cpp) over real loopback
// sockets, on engines without threads and with 1 and 4 pool threads. Runs
// under Wine in the cross build. (Sleep-only scenarios: integration_timers.cpp.)
#include "win32_harness.hpp"

#include "support/time_scenarios.hpp"

namespace timing = asock_scenarios::timing;

namespace {
asock::engine_ref<asock::engine> engine_with(unsigned threads)
{
    auto e = asock::make_engine({.threads = threads});
    REQUIRE(e);
    return e;
}
} // namespace

TEST_CASE("integration: with_timeout on a silent peer; 5,000 rounds of timeouts racing data lose no byte",
          "[win32][integration][timeout]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    timing::timeout_on_silent_peer(*e);
    timing::timeout_races_data(*e, 5000);
}

TEST_CASE("integration: when_any of a receive and a sleep; when_all of a send and a receive",
          "[win32][integration][when_any][when_all]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    timing::when_any_receive_or_sleep(*e);
    timing::when_all_send_and_receive(*e);
}

TEST_CASE("integration: a scope joins 200 connection handlers; shutdown with handlers blocked in receive",
          "[win32][integration][scope]")
{
    const unsigned threads = GENERATE(1u, 4u);
    CAPTURE(threads);
    {
        auto e = engine_with(threads);
        timing::scope_joins_handlers(*e, 200);
    }
    timing::shutdown_with_blocked_handlers(engine_with(threads), 20);
    timing::engine_destroy_completes_sleeps(engine_with(threads));
}

TEST_CASE("integration: connect with a deadline: in time; a lookup that hangs ends timed_out; a stop request ends it "
          "cancelled",
          "[win32][integration][timeout][tcp]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto e = engine_with(threads);
    timing::connect_with_deadline<asock_tests::gated_resolver_os<asock::win32::resolver_os>>(*e);
}
