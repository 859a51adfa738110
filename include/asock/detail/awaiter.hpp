// asock/detail/awaiter.hpp: the awaiter of an awaitable, and what co_await
// on it gives; shared by sync_wait (asock/sync_wait.hpp) and the combinators
// (asock/detail/combinator.hpp).
#pragma once

#include <utility>

namespace asock::detail {

// decltype(auto): an awaitable that is its own awaiter comes back as a
// reference, so non-movable ones work too.
template <class A>
decltype(auto) get_awaiter(A&& a)
{
    if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
        return std::forward<A>(a).operator co_await();
    } else {
        return std::forward<A>(a);
    }
}

/// The type `co_await std::declval<A>()` gives.
template <class A>
using awaitable_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

} // namespace asock::detail
