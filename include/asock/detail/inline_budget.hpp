// asock/detail/inline_budget.hpp: fairness between sockets served by one
// engine thread.
//
// Rationale: an operation that finishes while it is being started (a receive
// that finds data waiting, a send the kernel takes at once) lets its
// coroutine continue without suspending, and a callback-form send calls its
// callback before the start returns. That is the fast path, but a coroutine
// looping on a socket whose data is always ready would then never give its
// thread back to the engine loop, and every other socket of that thread
// would starve. So each thread has a budget of consecutive inline
// completions. The engine loop refills it each time it goes back to waiting
// for events (epoll_wait; the caller-run loop's wait or a pool callback on
// Windows). Once it is spent, an operation that finishes at its start is
// delivered through the engine's queue instead (the coroutine suspends and
// its resumption is posted; a callback-form send's callback is posted), so
// the loop runs the events that other sockets got meanwhile before it comes
// back to this one.
//
// The budget only binds a thread that is running the loop of the socket's
// own engine: elsewhere (a thread that is no engine's, or another engine's
// loop) there is no queue of that thread's to go through without moving the
// coroutine to another thread, so the operation continues inline as always.
//
// The limit: 32. A pass of the epoll loop handles up to 64 events, and in a
// request / response exchange each event's resumption usually makes one send
// that completes inline; a limit far below that would post work for most of
// a busy pass and cost every connection a queue trip, while a limit far above
// it lets one socket delay the others' events for longer (a 64 KiB receive is
// a few microseconds of copying, so 32 of them stay well under a millisecond).
// benchmarks/ (workload `fairness`) measures the effect; docs/design.md,
// section "Fairness". It can be changed at build time with
// -DASOCK_INLINE_BUDGET=N (N >= 1).
//
// Cost on the hot path: one thread_local load, decrement, store and branch.
#pragma once

namespace asock::detail {

#ifdef ASOCK_INLINE_BUDGET
inline constexpr unsigned inline_budget_limit = ASOCK_INLINE_BUDGET;
#else
inline constexpr unsigned inline_budget_limit = 32;
#endif
static_assert(inline_budget_limit >= 1, "ASOCK_INLINE_BUDGET must be at least 1");

/// Inline completions this thread may still make before the engine loop
/// waits again.
inline thread_local unsigned tls_inline_budget = inline_budget_limit;

/// Called by an engine loop when it goes back to waiting for events.
inline void refill_inline_budget() noexcept { tls_inline_budget = inline_budget_limit; }

/// True once this thread's budget is spent: its loop should go back to the
/// OS for events rather than run more rounds of posted work first.
inline bool inline_budget_spent() noexcept { return tls_inline_budget == 0; }

/// Asks to complete one operation inline, on an engine of type `Engine`
/// (anything with running_in_this_thread()). True: go ahead (one unit of the
/// budget taken). False: the budget is spent and this thread runs `engine`'s
/// loop; deliver the completion through the engine's queue.
template <class Engine>
inline bool take_inline_budget(const Engine& engine) noexcept
{
    unsigned& left = tls_inline_budget;
    if (left != 0) [[likely]] {
        --left;
        return true;
    }
    if (engine.running_in_this_thread()) {
        return false;
    }
    // Not this engine's loop: nothing to go through here. Start over, so that
    // a thread outside any loop pays this branch once per limit only.
    left = inline_budget_limit - 1;
    return true;
}

} // namespace asock::detail
