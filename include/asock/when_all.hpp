// asock/when_all.hpp: `co_await asock::when_all(a, b, ...)`: several
// operations at once, and every result.
//
// Arguments as for when_any (include/asock/when_any.hpp): asock operations,
// factories `f(std::stop_token) -> awaitable`, or other awaitables.
//
//   Starts every operation, in argument order, on the awaiting thread, and
//   completes when all have finished. Nothing is cancelled by when_all
//   itself: give operations stop tokens, or wrap them in with_timeout.
//   Result: std::tuple of every operation's result, in argument order (void
//   results are std::monostate).
//   Resumes: without suspending when every operation finished during the
//   start; otherwise on the thread that finished the last one (an engine
//   thread for asock operations).
//   Cancellation: cancelling the when_all (as a child of another combinator)
//   cancels every operation.
//   Exceptions: the first in argument order is rethrown by co_await, after
//   all have finished.
//   Allocation: none for asock operations; one stop state per factory and one
//   coroutine frame per other awaitable.
//
// Two operations of one socket in different directions (a send and a
// receive) run at the same time; two in the same direction queue in
// argument order, as they would if started one after the other.
#pragma once

#include <asock/detail/combinator.hpp>
#include <asock/detail/continuation.hpp>

#include <coroutine>
#include <cstddef>
#include <tuple>
#include <utility>

namespace asock {

template <class... A>
class when_all_awaitable {
public:
    using result_type = std::tuple<typename detail::child_t<A>::value_type...>;

    template <class... U>
    explicit when_all_awaitable(detail::combinator_args_t tag, U&&... args) : group_(tag, std::forward<U>(args)...)
    {
    }
    when_all_awaitable(const when_all_awaitable&) = delete;
    when_all_awaitable& operator=(const when_all_awaitable&) = delete;
    /// Movable until it is awaited (or launched).
    when_all_awaitable(when_all_awaitable&& o) = default;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return group_.start(detail::continuation(h)); }
    result_type await_resume() { return group_.take(); }

    /// detail::launchable (nesting in another combinator).
    bool launch(detail::op_listener* l) noexcept { return group_.start(detail::continuation(l)); }
    void request_cancel() noexcept { group_.request_cancel(); }

private:
    detail::child_group<false, A...> group_;
};

/// Every one of `operations`, at once; see the top of this header.
template <class... A>
when_all_awaitable<A...> when_all(A&&... operations)
{
    return when_all_awaitable<A...>(detail::combinator_args_t{}, std::forward<A>(operations)...);
}

} // namespace asock
