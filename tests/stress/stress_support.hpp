// tests/stress/stress_support.hpp: the sizes each build flavour runs the
// stress tests at, on top of stress_common.hpp and the integration helpers.
//
// Sizes scale with the build, so that each flavour's stress run stays well
// within a minute or two on two cores (measured: 10-30 s alone):
//
//   flavour            connections  engine rounds  close rounds  operations
//   optimised, -O0     10,000       4,000          3,000         1,000,000
//   AddressSanitizer   10,000       2,000          2,000           500,000
//   ThreadSanitizer     5,000       2,000          2,000           500,000
//
// ASOCK_STRESS_SCALE=<factor> in the environment multiplies every size (a
// longer soak: ASOCK_STRESS_SCALE=10). A run prints the sizes it used.
//
// Catch2 assertions only on the test's thread (see stress_common.hpp).
#pragma once

// The integration helpers: raw sockets (make_socketpair, make_tcp_pair,
// raw_peer), the data pattern, rng, tracker / start / run, and a Catch2
// listener that fails a section making no progress for this long.
#ifndef ASOCK_IT_WATCHDOG_SECONDS
#define ASOCK_IT_WATCHDOG_SECONDS 300
#endif
#include "integration/integration_support.hpp"

#include "stress_common.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace stress {

/// How big each stress test runs in this build.
struct sizes_t {
    const char* flavour;
    int connections;             ///< concurrent TCP connections, each echoing
    std::uint32_t echo_max;      ///< most bytes one connection echoes (each picks 1..echo_max)
    int engine_rounds;           ///< engines created, given work and sockets, destroyed
    int close_rounds;            ///< sockets closed / destroyed from other threads with operations in flight
    std::uint64_t operations;    ///< operations on one socket, memory checked
    bool check_rss;              ///< resident memory is a meaningful measure (no sanitizer allocator)
};

inline sizes_t make_sizes()
{
#if defined(ASOCK_STRESS_TSAN)
    sizes_t s{"ThreadSanitizer", 5000, 16384, 2000, 2000, 500'000, false};
#elif defined(ASOCK_STRESS_ASAN)
    sizes_t s{"AddressSanitizer", 10000, 16384, 2000, 2000, 500'000, false};
#elif !defined(ASOCK_STRESS_OPTIMISED)
    sizes_t s{"unoptimised (-O0)", 10000, 32768, 4000, 3000, 1'000'000, true};
#else
    sizes_t s{"optimised", 10000, 32768, 4000, 3000, 1'000'000, true};
#endif
    if (const char* env = std::getenv("ASOCK_STRESS_SCALE"); env != nullptr && *env != '\0') {
        const double f = std::strtod(env, nullptr);
        if (f > 0) {
            auto scale = [f](auto v) { return static_cast<decltype(v)>(std::max(1.0, static_cast<double>(v) * f)); };
            s.connections = scale(s.connections);
            s.engine_rounds = scale(s.engine_rounds);
            s.close_rounds = scale(s.close_rounds);
            s.operations = scale(s.operations);
        }
    }
    return s;
}

/// The sizes of this build; printed once, on first use.
inline const sizes_t& sizes()
{
    static const sizes_t s = [] {
        const sizes_t v = make_sizes();
        std::printf("stress: build flavour %s: %d connections (each echoing 1..%u bytes), %d engine rounds, "
                    "%d close/destroy rounds, %llu operations on one socket%s\n",
                    v.flavour, v.connections, v.echo_max, v.engine_rounds, v.close_rounds,
                    static_cast<unsigned long long>(v.operations),
                    std::getenv("ASOCK_STRESS_SCALE") != nullptr ? " (scaled by ASOCK_STRESS_SCALE)" : "");
        std::fflush(stdout);
        return v;
    }();
    return s;
}

} // namespace stress
