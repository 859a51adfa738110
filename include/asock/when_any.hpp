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
public:
    using result_type = when_any_result<typename detail::child_t<A>::value_type...>;

    template <class... U>
    explicit when_any_awaitable(detail::combinator_args_t tag, U&&... args) : group_(tag, std::forward<U>(args)...)
    {
    }
    when_any_awaitable(const when_any_awaitable&) = delete;
    when_any_awaitable& operator=(const when_any_awaitable&) = delete;
    /// Movable until it is awaited (or launched).
    when_any_awaitable(when_any_awaitable&& o) = default;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return group_.start(detail::continuation(h)); }
    result_type await_resume() { return result_type{group_.winner(), group_.take()}; }

    /// detail::launchable (nesting in another combinator).
    bool launch(detail::op_listener* l) noexcept { return group_.start(detail::continuation(l)); }
    void request_cancel() noexcept { group_.request_cancel(); }

private:
    detail::child_group<true, A...> group_;
};

/// The first of `operations` to finish; see the top of this header.
template <class... A>
when_any_awaitable<A...> when_any(A&&... operations)
{
    return when_any_awaitable<A...>(detail::combinator_args_t{}, std::forward<A>(operations)...);
}

} // namespace asock
