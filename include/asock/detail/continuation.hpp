// asock/detail/continuation.hpp: what runs when an asock operation finishes,
// and the "launchable" form of an operation that the combinators use.
//
// Rationale: co_await hands an awaitable a coroutine handle to resume. The
// combinators (include/asock/when_any.hpp, when_all.hpp, with_timeout in
// include/asock/timeout.hpp) run several operations at once; giving each one
// a coroutine of its own would cost a heap-allocated frame per child. Every
// asock operation therefore also accepts a listener, a plain callback object
// that the combinator embeds in itself, and can be asked to finish early
// without a std::stop_token (whose std::stop_source allocates). With both,
// `with_timeout(engine, 5s, socket.receive_async(buf))` and `when_any` of
// asock operations allocate nothing.
#pragma once

#include <concepts>
#include <coroutine>

namespace asock::detail {

/// Told, through `done`, that a launched operation finished. Called exactly
/// once per launch that returned true, with no lock of the operation's held,
/// on an engine thread, or on the thread of a request_cancel() that finished
/// the operation at once; the operation's result is then ready (await_resume).
struct op_listener {
    void (*done)(op_listener*) noexcept = nullptr;
};

/// A coroutine to resume or a listener to call.
class continuation {
public:
    continuation() noexcept = default;
    explicit continuation(std::coroutine_handle<> h) noexcept : handle_(h) {}
    explicit continuation(op_listener* l) noexcept : listener_(l) {}

    void resume() const noexcept
    {
        if (listener_ != nullptr) {
            listener_->done(listener_);
        } else {
            handle_.resume();
        }
    }

    /// True when it is a coroutine (sync_wait's probe only concerns those).
    bool is_coroutine() const noexcept { return listener_ == nullptr; }

private:
    std::coroutine_handle<> handle_;
    op_listener* listener_ = nullptr;
};

/// An operation a combinator can run without a coroutine of its own:
/// - `launch(l)` starts it as `co_await` would (await_ready, then
///   await_suspend) and returns false when it finished during the call (the
///   result is ready; `l` is never called), true when it is pending (`l->done`
///   is called exactly once later);
/// - `request_cancel()` asks it to finish early with its `cancelled` result
///   (a receive that already got bytes finishes `ok` with them). Callable from
///   any thread, before, during or after launch, as long as the object lives;
///   it does nothing once the operation finished. It may call the listener
///   before it returns, on the calling thread: the combinators call it only
///   while they hold a count of their own, so that call never finishes them;
/// - `await_resume()` gives the result after either way of finishing.
template <class A>
concept launchable = requires(A& a, op_listener* l) {
    { a.launch(l) } noexcept -> std::same_as<bool>;
    { a.request_cancel() } noexcept;
    a.await_resume();
};

} // namespace asock::detail
