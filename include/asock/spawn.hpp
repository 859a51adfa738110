// asock/spawn.hpp: start a coroutine and let it run on its own ("detached").
//
// spawn(awaitable) starts the awaitable at once on the calling thread; it runs
// until its first suspension, and spawn returns then. It continues wherever its
// I/O resumes it (an engine thread) and frees itself when done. An exception
// escaping a spawned task calls std::terminate: handle errors inside it. Keep
// whatever it uses (engine, sockets it does not own) alive until it finishes.
//
// Nothing can wait for a spawned coroutine or stop it: for work that must be
// stopped and waited for (a server's connection handlers at shutdown), spawn
// it into an asock::task_scope (asock/scope.hpp) instead.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

namespace asock {

namespace detail {
struct detached_coro {
    struct promise_type {
        detached_coro get_return_object() const noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
    };
};

template <class A>
detached_coro run_detached(A awaitable)
{
    co_await std::move(awaitable);
}
} // namespace detail

/// Starts `awaitable` (typically an asock::task<void>) and returns at its first
/// suspension; it frees itself when it completes.
template <class A>
void spawn(A&& awaitable)
{
    detail::run_detached(std::forward<A>(awaitable));
}

} // namespace asock
