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
#include <asock/detail/timer_queue.hpp>
#include <asock/time.hpp>

#include <atomic>

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

/// with_timeout's awaitable. Two parties finish it: the operation and the
/// timer. Rather than a when_any of the operation and a sleep_awaitable, it
/// embeds the timer node itself: a timeout that does not fire (the usual
/// case) costs one add and one removal in the engine's timer queue and a few
/// atomic operations, and nothing at all when the operation finishes during
/// the start (the timer is then never added).
template <class Engine, class A>
class timeout_awaitable {
public:
    using value_type = typename detail::child_t<A>::value_type;

    template <class U>
    timeout_awaitable(Engine& engine, detail::timer_clock::time_point deadline, bool due, U&& operation)
        : engine_(&engine), op_(std::forward<U>(operation)), due_(due)
    {
        init(deadline);
    }
    timeout_awaitable(const timeout_awaitable&) = delete;
    timeout_awaitable& operator=(const timeout_awaitable&) = delete;
    /// Movable until it is awaited (or launched).
    timeout_awaitable(timeout_awaitable&& o) : engine_(o.engine_), op_(std::move(o.op_)), due_(o.due_)
    {
        init(o.node_.deadline);
    }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return start(detail::continuation(h)); }
    timeout_result<value_type> await_resume() { return {op_.take(), winner_.load(std::memory_order_acquire) == timer_won}; }

    /// detail::launchable (nesting in another combinator): cancels the
    /// operation and withdraws the timer; `timed_out` stays false.
    bool launch(detail::op_listener* l) noexcept { return start(detail::continuation(l)); }
    void request_cancel() noexcept
    {
        op_.request_cancel();
        withdraw_timer();
    }

private:
    static constexpr int nobody = 0;
    static constexpr int op_won = 1;
    static constexpr int timer_won = 2;

    struct node_type : detail::timer_node {
        timeout_awaitable* self = nullptr;
    };
    struct slot_type : detail::op_listener {
        timeout_awaitable* self = nullptr;
    };

    void init(detail::timer_clock::time_point deadline) noexcept
    {
        node_.self = this;
        node_.deadline = deadline;
        node_.run = &on_timer;
        slot_.self = this;
        slot_.done = &on_op_done;
    }

    // remaining_: the parties that have not reported yet (the operation, the
    // timer) plus the start itself; the one that brings it to 0 resumes.
    bool start(detail::continuation c) noexcept
    {
        cont_ = c;
        remaining_.store(3, std::memory_order_relaxed);
        if (!op_.launch(&slot_)) {
            return false; // finished during the start: no timer, not timed out
        }
        // Refused when the engine is shutting down, or when the operation's
        // finish or a cancel came first: each withdrew the node before it was
        // queued (detail::timer_queue). Already due or refused, the timer's
        // part ends here, as if it fired (only a due deadline is a timeout).
        if (due_ || !engine_->add_timer(&node_)) {
            timer_fired(due_);
        }
        return !release();
    }

    bool release() noexcept { return remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

    // The timer's part: it fired (or can never fire). First to finish
    // cancels the operation.
    void timer_fired(bool is_timeout) noexcept
    {
        int expected = nobody;
        if (is_timeout ? winner_.compare_exchange_strong(expected, timer_won, std::memory_order_acq_rel)
                       : winner_.load(std::memory_order_acquire) != op_won) {
            op_.request_cancel();
        }
        if (release()) {
            cont_.resume();
        }
    }

    // Withdraws the timer if it is still queued: its part ends here.
    void withdraw_timer() noexcept
    {
        if (engine_->cancel_timer(&node_) && release()) {
            cont_.resume();
        }
    }

    static void on_timer(detail::work_item* w) noexcept
    {
        timeout_awaitable* self = static_cast<node_type*>(w)->self;
        self->timer_fired(!static_cast<node_type*>(w)->shutdown);
    }

    static void on_op_done(detail::op_listener* l) noexcept
    {
        timeout_awaitable* self = static_cast<slot_type*>(l)->self;
        int expected = nobody;
        if (self->winner_.compare_exchange_strong(expected, op_won, std::memory_order_acq_rel)) {
            // Queued: withdrawn here. Not queued yet: marked, so that the
            // start's add refuses it and ends the timer's part. Firing: it
            // reports itself.
            if (self->engine_->cancel_timer(&self->node_)) {
                self->remaining_.fetch_sub(1, std::memory_order_acq_rel); // the start or the op still holds one
            }
        }
        if (self->release()) {
            self->cont_.resume();
        }
    }

    Engine* engine_;
    detail::child_t<A> op_;
    node_type node_;
    slot_type slot_;
    detail::continuation cont_;
    std::atomic<int> remaining_{0};
    std::atomic<int> winner_{nobody};
    bool due_ = false;
};

/// `operation`, cancelled if it has not finished by `deadline` of `engine`'s clock.
template <class Engine, class A>
timeout_awaitable<Engine, A> with_deadline(Engine& engine, detail::timer_clock::time_point deadline, A&& operation)
{
    return timeout_awaitable<Engine, A>(engine, deadline, deadline <= engine.now(), std::forward<A>(operation));
}

/// `operation`, cancelled if it has not finished within `timeout`.
template <class Engine, class Rep, class Period, class A>
timeout_awaitable<Engine, A> with_timeout(Engine& engine, std::chrono::duration<Rep, Period> timeout, A&& operation)
{
    return timeout_awaitable<Engine, A>(engine, detail::deadline_after(engine.now(), timeout), timeout <= timeout.zero(),
                                        std::forward<A>(operation));
}

} // namespace asock
