// asock/time.hpp: waiting for time on an engine, and moving onto one.
//
//   co_await asock::sleep_for(engine, 50ms [, stop_token])   -> timer_result
//   co_await asock::sleep_until(engine, deadline [, stop_token]) -> timer_result
//   co_await asock::schedule(engine)                          (resumes on an engine thread)
//
// `engine` is any asock engine (asock::engine, linux_epoll::engine,
// win32::engine, ...); its clock is std::chrono::steady_clock
// (engine.now()). Each awaitable is documented in
// include/asock/ops/sleep_awaitable.hpp and docs/awaitables.md. Timeouts on
// operations (with_timeout, with_deadline) are in include/asock/timeout.hpp.
#pragma once

#include <asock/detail/timer_queue.hpp>
#include <asock/ops/sleep_awaitable.hpp>

#include <chrono>
#include <stop_token>
#include <type_traits>

namespace asock {

/// A wait until `deadline` of the engine's clock.
template <class Engine>
sleep_awaitable<Engine> sleep_until(Engine& engine, detail::timer_clock::time_point deadline,
                                    std::stop_token token = {}) noexcept
{
    return {engine, deadline, std::move(token), sleep_awaitable<Engine>::check_clock};
}

namespace detail {
/// now + d, saturating at the clock's end (a wait of hours::max() never fires
/// instead of wrapping into the past); a negative d is the past.
template <class Rep, class Period>
timer_clock::time_point deadline_after(timer_clock::time_point now, std::chrono::duration<Rep, Period> d) noexcept
{
    using dur = timer_clock::duration;
    if (d <= d.zero()) {
        return now;
    }
    if constexpr (std::is_same_v<std::chrono::duration<Rep, Period>, dur>) {
        if (d >= timer_clock::time_point::max() - now) {
            return timer_clock::time_point::max();
        }
        return now + d;
    } else {
        // The room left, in d's unit, rounded down: d fits when it is below.
        const auto room = std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(timer_clock::time_point::max() - now);
        if (d >= room) {
            return timer_clock::time_point::max();
        }
        return now + std::chrono::ceil<dur>(d);
    }
}
} // namespace detail

/// A wait of `d` from now (engine.now()).
template <class Engine, class Rep, class Period>
sleep_awaitable<Engine> sleep_for(Engine& engine, std::chrono::duration<Rep, Period> d,
                                  std::stop_token token = {}) noexcept
{
    // A positive d is in the future when made: await_ready need not read
    // the clock again. d <= 0 is due at once.
    return {engine, detail::deadline_after(engine.now(), d), std::move(token),
            d > d.zero() ? sleep_awaitable<Engine>::in_future : sleep_awaitable<Engine>::due_now};
}

/// Resumes the awaiting coroutine on one of `engine`'s threads.
template <class Engine>
schedule_awaitable<Engine> schedule(Engine& engine) noexcept
{
    return schedule_awaitable<Engine>(engine);
}

} // namespace asock
