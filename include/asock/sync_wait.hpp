// asock/sync_wait.hpp: run an awaitable to completion from ordinary code.
//
// sync_wait(awaitable) starts the awaitable on the calling thread and blocks
// until it completes; the awaitable's I/O completes on the engine's threads.
// sync_wait(engine, awaitable) does the same but, for an engine created with
// `threads == 0`, runs that engine's loop on the calling thread meanwhile, so
// everything (completions and coroutine resumptions) happens on this thread.
// Both return the awaitable's result, or rethrow its exception.
#pragma once

#include <asock/detail/awaiter.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/sync_wait_probe.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <coroutine>
#include <exception>
#include <condition_variable>
#include <mutex>
#include <type_traits>
#include <utility>
#include <variant>

namespace asock {

namespace detail {

/// A bare coroutine that awaits one awaitable and then signals.
struct sync_wait_coro {
    struct promise_type {
        void (*signal)(void*) = nullptr;
        void* signal_context = nullptr;
        std::exception_ptr exception;
        sync_wait_coro get_return_object() noexcept
        {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        auto final_suspend() const noexcept
        {
            struct signaller {
                bool await_ready() const noexcept { return false; }
                void await_suspend(std::coroutine_handle<promise_type> h) const noexcept
                {
                    h.promise().signal(h.promise().signal_context);
                }
                void await_resume() const noexcept {}
            };
            return signaller{};
        }
        void return_void() const noexcept {}
        void unhandled_exception() noexcept { exception = std::current_exception(); }
    };
    std::coroutine_handle<promise_type> handle;
};

template <class A, class Slot>
sync_wait_coro make_sync_wait_coro(A&& awaitable, Slot& slot)
{
    // static_cast rather than std::forward: g++ 12 wants to move a non-movable
    // awaitable named through std::forward's return value.
    if constexpr (std::is_void_v<awaitable_result_t<A>>) {
        co_await static_cast<A&&>(awaitable);
        slot.template emplace<1>();
    } else {
        slot.template emplace<1>(co_await static_cast<A&&>(awaitable));
    }
}

template <class T>
using sync_slot = std::variant<std::monostate, std::conditional_t<std::is_void_v<T>, std::monostate, T>>;

template <class T>
T take_sync_result(sync_slot<T>& slot, std::coroutine_handle<sync_wait_coro::promise_type> h)
{
    std::exception_ptr e = h.promise().exception;
    h.destroy();
    if (e) {
        std::rethrow_exception(e);
    }
    if constexpr (!std::is_void_v<T>) {
        return std::move(std::get<1>(slot));
    }
}

/// A one-shot latch. Not std::binary_semaphore: libstdc++'s semaphore (and
/// std::atomic::wait) can lose wake-ups on targets without a futex, such as
/// mingw-w64 on Windows; a mutex and a condition variable cannot.
struct sync_latch {
    std::mutex mu;
    std::condition_variable cv;
    bool set = false;
    void release()
    {
        std::lock_guard lk(mu); // notify under the lock: the waiter may destroy the latch once it returns
        set = true;
        cv.notify_one();
    }
    void acquire()
    {
        std::unique_lock lk(mu);
        cv.wait(lk, [this] { return set; });
    }
    /// False when `d` passed without a release.
    template <class Duration>
    bool acquire_for(Duration d)
    {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, d, [this] { return set; });
    }
};

/// Waits for `done`; stops the program with a message when the awaitable is
/// suspended on an engine that has no threads and whose loop no thread has
/// run for two checks in a row: that wait could never end.
inline void wait_or_diagnose(sync_latch& done, const sync_wait_probe& probe)
{
    int unattended_checks = 0;
    while (!done.acquire_for(std::chrono::milliseconds(500))) {
        if (probe.engine != nullptr && probe.unattended(probe.engine)) {
            if (++unattended_checks >= 2) {
                std::fputs("asock: sync_wait(awaitable) waits for an operation of an engine created with threads = 0, "
                           "and no thread runs that engine's loop, so it can never complete. Use "
                           "sync_wait(engine, awaitable), which runs the loop, or run() the engine on another "
                           "thread.\n",
                           stderr);
                std::abort();
            }
        } else {
            unattended_checks = 0;
        }
    }
}

} // namespace detail

/// Blocks the calling thread until `awaitable` completes; returns its result.
template <class A>
auto sync_wait(A&& awaitable) -> detail::awaitable_result_t<A>
{
    using T = detail::awaitable_result_t<A>;
    detail::sync_slot<T> slot;
    detail::sync_latch done;
    auto coro = detail::make_sync_wait_coro(std::forward<A>(awaitable), slot);
    coro.handle.promise().signal = [](void* s) { static_cast<detail::sync_latch*>(s)->release(); };
    coro.handle.promise().signal_context = &done;
    detail::sync_wait_probe probe;
    detail::sync_wait_probe* const outer = std::exchange(detail::tls_sync_wait, &probe);
    coro.handle.resume();
    detail::tls_sync_wait = outer;
    detail::wait_or_diagnose(done, probe);
    return detail::take_sync_result<T>(slot, coro.handle);
}

/// Like sync_wait(awaitable), but runs `engine`'s loop on this thread while
/// waiting when the engine has no threads of its own.
template <class Engine, class A>
auto sync_wait(Engine& engine, A&& awaitable) -> detail::awaitable_result_t<A>
{
    if (engine.thread_count() != 0) {
        return sync_wait(std::forward<A>(awaitable));
    }
    using T = detail::awaitable_result_t<A>;
    struct state {
        Engine* engine;
        std::atomic<bool> done{false};
        detail::work_item wake{};
    } st{&engine};
    detail::sync_slot<T> slot;
    auto coro = detail::make_sync_wait_coro(std::forward<A>(awaitable), slot);
    coro.handle.promise().signal = [](void* p) {
        auto* s = static_cast<state*>(p);
        s->done.store(true, std::memory_order_release);
        s->wake.run = [](detail::work_item*) {};
        s->engine->post(&s->wake); // wakes run_one if the signal came from another thread
    };
    coro.handle.promise().signal_context = &st;
    coro.handle.resume();
    while (!st.done.load(std::memory_order_acquire)) {
        engine.run_one(-1);
    }
    engine.poll(); // runs the wake item, so it is not left queued on the engine
    return detail::take_sync_result<T>(slot, coro.handle);
}

} // namespace asock
