// asock/when_any.hpp: `co_await asock::when_any(a, b, ...)`: the first of
// several operations to finish, and the others cancelled.
//
// Each argument is an asock operation (a socket's send / receive / notify,
// sleep_for, schedule, another when_any / when_all / with_timeout), a
// factory `f(std::stop_token) -> awaitable`, or any other awaitable (an
// asock::task); include/asock/detail/combinator.hpp says how each is held.
//
//   Starts every operation, in argument order, on the awaiting thread. When
//   the first one finishes (the "winner"), every other one is asked to
//   cancel: asock operations directly, factories through their stop token;
//   other awaitables cannot be cancelled and are waited for. An operation
//   not started yet when the winner is known is started already cancelled
//   (it finishes at once with its `cancelled` result, doing nothing).
//   Completes only when every operation has finished, so nothing an
//   operation received is lost and no buffer is in use once it returns.
//   Result: when_any_result{index, results}: the winner's index and every
//   operation's result (void results are std::monostate). A loser's result
//   is usually `cancelled`, but may be its own (a receive whose data won the
//   race reports the bytes, `ok`): read each one.
//   Resumes: without suspending when an operation finished during the start
//   and every other one then finished at once; otherwise on the thread that
//   finished the last operation (an engine thread for asock operations).
//   Cancellation: cancelling the when_any (as a child of another combinator)
//   cancels every operation; there is no stop_token argument: give each
//   operation its own.
//   Exceptions: an awaitable that threw has its exception rethrown by
//   co_await (the first in argument order), after all have finished.
//   Allocation: none for asock operations; one stop state per factory and one
//   coroutine frame per other awaitable.
#pragma once

#include <asock/detail/combinator.hpp>
#include <asock/detail/continuation.hpp>

#include <array>
#include <atomic>
#include <coroutine>
#include <cstddef>
#include <tuple>
#include <utility>

namespace asock {

/// What when_any gives: the index of the operation that finished first, and
/// the results of all of them.
template <class... R>
struct when_any_result {
    std::size_t index = 0;
    std::tuple<R...> results;
};

template <class... A>
class when_any_awaitable {
    static constexpr std::size_t count = sizeof...(A);
    static_assert(count > 0, "when_any needs at least one operation");
    static constexpr std::size_t none = ~std::size_t{0};

public:
    using result_type = when_any_result<typename detail::child_t<A>::value_type...>;

    template <class... U>
    explicit when_any_awaitable(detail::combinator_args_t, U&&... args) : children_(std::forward<U>(args)...)
    {
        init_slots();
    }
    when_any_awaitable(const when_any_awaitable&) = delete;
    when_any_awaitable& operator=(const when_any_awaitable&) = delete;
    /// Movable until it is awaited (or launched).
    when_any_awaitable(when_any_awaitable&& o) : children_(std::move(o.children_)) { init_slots(); }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return start(detail::continuation(h)); }

    result_type await_resume()
    {
        return take(std::index_sequence_for<A...>{});
    }

    /// detail::launchable (nesting in another combinator).
    bool launch(detail::op_listener* l) noexcept { return start(detail::continuation(l)); }
    void request_cancel() noexcept
    {
        std::apply([](auto&... c) { (c.request_cancel(), ...); }, children_);
    }

private:
    void init_slots() noexcept
    {
        for (std::size_t i = 0; i < count; ++i) {
            slots_[i].done = &on_done;
            slots_[i].self = this;
            slots_[i].index = i;
        }
    }

    struct slot : detail::op_listener {
        when_any_awaitable* self = nullptr;
        std::size_t index = 0;
    };

    bool start(detail::continuation c) noexcept
    {
        cont_ = c;
        remaining_.store(count + 1, std::memory_order_relaxed); // + 1: the start itself
        launch_all(std::index_sequence_for<A...>{});
        return remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1;
    }

    template <std::size_t... I>
    void launch_all(std::index_sequence<I...>) noexcept
    {
        (launch_one<I>(), ...);
    }

    template <std::size_t I>
    void launch_one() noexcept
    {
        auto& child = std::get<I>(children_);
        if (winner_.load(std::memory_order_acquire) != none) {
            child.request_cancel();
        }
        if (!child.launch(&slots_[I])) {
            finished(I);
            remaining_.fetch_sub(1, std::memory_order_acq_rel); // never the last: the start holds one
        }
    }

    // The first to finish cancels the others. Its own count is dropped only
    // after that, so the when_any cannot complete (and go) meanwhile.
    void finished(std::size_t i) noexcept
    {
        std::size_t expected = none;
        if (winner_.compare_exchange_strong(expected, i, std::memory_order_acq_rel)) {
            cancel_all_but(i, std::index_sequence_for<A...>{});
        }
    }

    template <std::size_t... I>
    void cancel_all_but(std::size_t winner, std::index_sequence<I...>) noexcept
    {
        ((I != winner ? std::get<I>(children_).request_cancel() : void()), ...);
    }

    static void on_done(detail::op_listener* l) noexcept
    {
        auto* s = static_cast<slot*>(l);
        when_any_awaitable* self = s->self;
        self->finished(s->index);
        if (self->remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            self->cont_.resume();
        }
    }

    template <std::size_t... I>
    result_type take(std::index_sequence<I...>)
    {
        return result_type{winner_.load(std::memory_order_acquire),
                           std::tuple<typename detail::child_t<A>::value_type...>{std::get<I>(children_).take()...}};
    }

    std::tuple<detail::child_t<A>...> children_;
    std::array<slot, count> slots_{};
    std::atomic<std::size_t> remaining_{0};
    std::atomic<std::size_t> winner_{none};
    detail::continuation cont_;
};

/// The first of `operations` to finish; see the top of this header.
template <class... A>
when_any_awaitable<A...> when_any(A&&... operations)
{
    return when_any_awaitable<A...>(detail::combinator_args_t{}, std::forward<A>(operations)...);
}

} // namespace asock
