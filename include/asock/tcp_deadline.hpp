// asock/tcp_deadline.hpp: tcp_connect with a deadline, for every backend.
// Included at the end of include/asock/posix/tcp_posix.hpp and
// include/asock/win32/tcp_win32.hpp (after their tcp_connect); not meant to
// be included on its own.
//
//   auto c = co_await asock::tcp_connect<Platform>(engine, host, port, 5s [, stop_token]);
//   (asock.hpp: asock::connect(engine, host, port, 5s [, stop_token]))
//
// The name lookup (off the engine threads: asock/resolve.hpp) and the
// connect together must finish within the timeout, else the attempt is
// cancelled and the result is std::errc::timed_out. A stop request on the
// token ends it with std::errc::operation_canceled. A connect that succeeded
// in the same instant as the deadline or the stop request is kept (its
// socket is never dropped). Resumes on an engine thread, or inline when
// nothing had to wait. Allocates: the coroutine frames, one stop state.
#pragma once

#include <asock/tcp_outcome.hpp>
#include <asock/task.hpp>
#include <asock/time.hpp>
#include <asock/when_any.hpp>

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>

namespace asock {

/// tcp_connect within `timeout` (see the top of this header). `Resolver`:
/// at most one type, the OS layer of the lookup, as for tcp_connect.
template <class Platform, class... Resolver, class Rep, class Period>
task<connect_outcome<Platform>> tcp_connect(typename Platform::engine_type& engine, std::string host,
                                            std::uint16_t port, std::chrono::duration<Rep, Period> timeout,
                                            std::stop_token token = {})
{
    static_assert(sizeof...(Resolver) <= 1, "tcp_connect: at most one resolver type");
    using clock_point = detail::timer_clock::time_point;
    auto attempt = [&](std::stop_token t) { return tcp_connect<Platform, Resolver...>(engine, host, port, std::move(t)); };
    // Three ways to end: the connect, the deadline, the caller's stop request
    // (a wait for the end of time that only a stop request ends).
    auto r = co_await when_any(attempt, sleep_for(engine, timeout), sleep_until(engine, clock_point::max(), token));
    connect_outcome<Platform> out = std::move(std::get<0>(r.results));
    if (out.error == std::errc::operation_canceled) {
        if (r.index == 1) {
            out.error = std::make_error_code(std::errc::timed_out);
        } else if (r.index == 2) {
            out.error = std::make_error_code(std::errc::operation_canceled);
        }
    }
    co_return out;
}

} // namespace asock
