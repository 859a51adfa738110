// asock/timeout.hpp: an operation with a deadline, in one expression:
//
//   auto r = co_await asock::with_timeout(engine, 5s, socket.receive_async(buf));
//   if (r.timed_out) { ... }            // r.result: the receive's own result
//
// with_timeout(engine, duration, operation) and with_deadline(engine,
// time_point, operation) run the operation (any argument when_any accepts:
// include/asock/when_any.hpp) against a timer of `engine`.
//
//   Completes when the operation has finished: by itself, or cancelled
//   because the deadline came first.
//   Result: timeout_result{result, timed_out}. `timed_out` is true when the
//   deadline came before the operation finished; `result` is then what the
//   cancelled operation reported: `cancelled` (nothing was transferred), or,
//   for a receive that had already got bytes, `ok` with those bytes (no byte
//   is lost, exactly as for a cancelled receive), or its own result if it
//   finished in the same instant. When `timed_out` is false, `result` is the
//   operation's own result and the timer was withdrawn.
//   Resumes: without suspending when the operation finished during the start
//   (the timer is then never armed); otherwise on an engine thread.
//   Cancellation: give the operation its own stop_token; a stop request
//   finishes it `cancelled` with timed_out false. Cancelling the
//   with_timeout as a child of another combinator cancels both.
//   Allocation: none for an asock operation (the timer node lives inside the
//   returned awaitable); as when_any for other awaitables.
#pragma once

#include <asock/detail/combinator.hpp>
#include <asock/ops/sleep_awaitable.hpp>
#include <asock/time.hpp>
#include <asock/when_any.hpp>

#include <chrono>
#include <coroutine>
#include <stop_token>
#include <utility>

namespace asock {

/// What with_timeout / with_deadline give.
template <class R>
struct timeout_result {
    R result{};
    bool timed_out = false;
};

template <class Engine, class A>
class timeout_awaitable {
public:
    using value_type = typename detail::child_t<A>::value_type;

    template <class U>
    timeout_awaitable(Engine& engine, detail::timer_clock::time_point deadline, U&& operation)
        : any_(detail::combinator_args_t{}, std::forward<U>(operation), sleep_awaitable<Engine>(engine, deadline, std::stop_token{}))
    {
    }
    timeout_awaitable(const timeout_awaitable&) = delete;
    timeout_awaitable& operator=(const timeout_awaitable&) = delete;
    /// Movable until it is awaited (or launched).
    timeout_awaitable(timeout_awaitable&& o) : any_(std::move(o.any_)) {}

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return any_.await_suspend(h); }
    timeout_result<value_type> await_resume()
    {
        auto r = any_.await_resume();
        return {std::move(std::get<0>(r.results)), r.index == 1 && std::get<1>(r.results) == timer_result::expired};
    }

    /// detail::launchable (nesting in another combinator).
    bool launch(detail::op_listener* l) noexcept { return any_.launch(l); }
    void request_cancel() noexcept { any_.request_cancel(); }

private:
    when_any_awaitable<A, sleep_awaitable<Engine>> any_;
};

/// `operation`, cancelled if it has not finished by `deadline` of `engine`'s clock.
template <class Engine, class A>
timeout_awaitable<Engine, A> with_deadline(Engine& engine, detail::timer_clock::time_point deadline, A&& operation)
{
    return timeout_awaitable<Engine, A>(engine, deadline, std::forward<A>(operation));
}

/// `operation`, cancelled if it has not finished within `timeout`.
template <class Engine, class Rep, class Period, class A>
timeout_awaitable<Engine, A> with_timeout(Engine& engine, std::chrono::duration<Rep, Period> timeout, A&& operation)
{
    return timeout_awaitable<Engine, A>(engine, detail::deadline_after(engine.now(), timeout),
                                        std::forward<A>(operation));
}

} // namespace asock
