// asock/ops/sleep_awaitable.hpp: `co_await asock::sleep_for(engine, d [, stop_token])`,
// `sleep_until(engine, t [, stop_token])` and `co_await asock::schedule(engine)`.
//
// sleep_awaitable: a wait for a deadline of the engine's clock
// (std::chrono::steady_clock; virtual under the unit tests' fake OS layers).
//   Completes when the deadline is reached, when a stop request arrives, or
//   when the engine is destroyed while the wait is pending.
//   Results (timer_result): expired (the deadline was reached); cancelled (a
//   stop request came first, or the engine was being destroyed).
//   Resumes: without suspending when the deadline has already passed or stop
//   was already requested; otherwise on an engine thread (the thread that
//   handled the engine's OS timer; the caller's loop for an engine with
//   threads = 0; the destroying thread at engine shutdown).
//   Cancellation: a stop request withdraws the timer and resumes the
//   coroutine on an engine thread with `cancelled`; after the deadline fired
//   it does nothing.
//   Allocation: none. The timer node lives inside the awaitable; the engine
//   keeps one OS timer armed at the earliest deadline
//   (include/asock/detail/timer_queue.hpp).
//
// schedule_awaitable: moves the coroutine onto an engine thread.
//   Completes once an engine thread runs it (always suspends, even on an
//   engine thread: it then runs after the work already queued). Result: none.
//   Cannot be cancelled (it completes as soon as the engine gets to it).
//   Allocation: none. An engine being destroyed runs it before it goes.
//
// Lifetime: the engine must outlive the wait. Movable until awaited.
#pragma once

#include <asock/detail/continuation.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/sync_wait_probe.hpp>
#include <asock/detail/timer_queue.hpp>
#include <asock/results.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <utility>

namespace asock {

template <class Engine>
class sleep_awaitable {
public:
    /// What the maker knows of the deadline: already due (a duration <= 0),
    /// in the future when made (a positive duration: the clock is not read
    /// again), or unknown (a time point: await_ready reads the clock).
    enum when_made : std::uint8_t { due_now, in_future, check_clock };

    sleep_awaitable(Engine& engine, detail::timer_clock::time_point deadline, std::stop_token token,
                    when_made known = check_clock) noexcept
        : engine_(&engine), token_(std::move(token)), known_(known)
    {
        node_.self = this;
        node_.deadline = deadline;
    }
    sleep_awaitable(const sleep_awaitable&) = delete;
    sleep_awaitable& operator=(const sleep_awaitable&) = delete;
    /// Movable until it is awaited (the combinators take it by value).
    sleep_awaitable(sleep_awaitable&& o) noexcept : engine_(o.engine_), token_(std::move(o.token_)), known_(o.known_)
    {
        node_.self = this;
        node_.deadline = o.node_.deadline;
        cancel_requested_.store(o.cancel_requested_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }

    bool await_ready() noexcept
    {
        if (token_.stop_requested() || cancel_requested_.load(std::memory_order_acquire)) {
            result_ = timer_result::cancelled;
            return true;
        }
        if (known_ == due_now || (known_ == check_clock && node_.deadline <= engine_->now())) {
            result_ = timer_result::expired;
            return true;
        }
        return false;
    }

    bool await_suspend(std::coroutine_handle<> h) noexcept { return start(detail::continuation(h)); }

    /// detail::launchable (the combinators): start without a coroutine.
    bool launch(detail::op_listener* l) noexcept { return !await_ready() && start(detail::continuation(l)); }

    /// detail::launchable: withdraw the timer (result `cancelled`) unless it
    /// fired. Launched by a combinator, which holds a count of its own while
    /// it cancels, the listener is told at once on this thread (no post).
    void request_cancel() noexcept
    {
        cancel_requested_.store(true, std::memory_order_release);
        withdraw(true);
    }

    timer_result await_resume() const noexcept { return result_; }

    /// The deadline this wait is for.
    detail::timer_clock::time_point deadline() const noexcept { return node_.deadline; }

private:
    struct node_type : detail::timer_node {
        sleep_awaitable* self = nullptr;
    };

    // A stop request may come on any thread: the resumption is posted.
    struct stop_handler {
        sleep_awaitable* self;
        void operator()() const noexcept
        {
            self->cancel_requested_.store(true, std::memory_order_release);
            self->withdraw(false);
        }
    };

    bool start(detail::continuation c) noexcept
    {
        cont_ = c;
        if (token_.stop_possible()) {
            stop_cb_.emplace(token_, stop_handler{this}); // runs at once if stop came meanwhile
        }
        if (c.is_coroutine()) {
            if (detail::sync_wait_probe* probe = detail::tls_sync_wait) {
                detail::note_suspension(probe, *engine_);
            }
        }
        node_.run = &on_fired;
        // Refused when the engine is shutting down, or when a cancel came
        // first (its cancel_timer marked the node). Once added, the timer may
        // fire on another thread at once and the awaiter be resumed and
        // gone: nothing of `this` is touched after a successful add.
        if (!engine_->add_timer(&node_)) {
            result_ = timer_result::cancelled;
            return false;
        }
        return true;
    }

    // Whoever removes the node from the engine's queue finishes the wait: the
    // engine (on_fired) or this: at once for a combinator's listener when
    // `listener_now` (cont_ was set before the node was queued, so reading it
    // after a successful removal is ordered by the queue's lock), else by a
    // post, since any thread may ask.
    void withdraw(bool listener_now) noexcept
    {
        if (engine_->cancel_timer(&node_)) {
            result_ = timer_result::cancelled;
            if (listener_now && !cont_.is_coroutine()) {
                cont_.resume();
                return;
            }
            node_.run = &on_withdrawn;
            engine_->post(&node_);
        }
    }

    static void on_fired(detail::work_item* w) noexcept
    {
        sleep_awaitable* self = static_cast<node_type*>(w)->self;
        self->result_ = static_cast<node_type*>(w)->shutdown ? timer_result::cancelled : timer_result::expired;
        self->cont_.resume();
    }

    static void on_withdrawn(detail::work_item* w) noexcept { static_cast<node_type*>(w)->self->cont_.resume(); }

    Engine* engine_;
    std::stop_token token_;
    std::optional<std::stop_callback<stop_handler>> stop_cb_;
    detail::continuation cont_;
    node_type node_;
    std::atomic<bool> cancel_requested_{false};
    when_made known_ = check_clock;
    timer_result result_ = timer_result::cancelled;
};

template <class Engine>
class schedule_awaitable {
public:
    explicit schedule_awaitable(Engine& engine) noexcept : engine_(&engine) { item_.self = this; }
    schedule_awaitable(const schedule_awaitable&) = delete;
    schedule_awaitable& operator=(const schedule_awaitable&) = delete;
    /// Movable until it is awaited.
    schedule_awaitable(schedule_awaitable&& o) noexcept : engine_(o.engine_) { item_.self = this; }

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { start(detail::continuation(h)); }
    void await_resume() const noexcept {}

    /// detail::launchable (the combinators).
    bool launch(detail::op_listener* l) noexcept
    {
        start(detail::continuation(l));
        return true;
    }
    /// Nothing to withdraw: it completes as soon as the engine runs it.
    void request_cancel() noexcept {}

private:
    struct item_type : detail::work_item {
        schedule_awaitable* self = nullptr;
    };

    void start(detail::continuation c) noexcept
    {
        cont_ = c;
        item_.run = [](detail::work_item* w) noexcept { static_cast<item_type*>(w)->self->cont_.resume(); };
        engine_->post(&item_);
    }

    Engine* engine_;
    detail::continuation cont_;
    item_type item_;
};

} // namespace asock
