// asock/ops/notify_awaitable.hpp: `co_await socket.notify_io_async(notify_io_type::in|out [, stop_token])`.
//
// Completes when the socket is readable (in) or writable (out), or reports an
// error or a hang-up. Readiness that is already there completes it at once. It
// moves no data: it is for driving code that does its own I/O on the handle
// (a TLS library, a non-blocking connect, accept on a listener).
//
// Results (notify_io_result):
//   in / out         the readiness asked for is there.
//   error            the socket has an error pending (EPOLLERR).
//   abandoned        the peer hung up (EPOLLHUP / EPOLLRDHUP), or the socket was
//                    closed while waiting.
//   not_open         the socket was not OPEN.
//   cancelled        the stop_token fired first.
//   invalid_argument the io type was neither in nor out.
//
// Resumes: inline when the readiness is already there (unless the thread's
// inline budget is spent, then through the engine's queue); otherwise on an
// engine thread.
// On Windows readiness waits do not exist (spec 04_002): `not_open` at once,
// without suspending.
#pragma once

#include <asock/ops/awaitable_base.hpp>
#include <asock/results.hpp>

namespace asock {

template <class Core>
class notify_awaitable : detail::op_awaitable<Core, detail::notify_op> {
    using base = detail::op_awaitable<Core, detail::notify_op>;

public:
    notify_awaitable(Core* core, notify_io_type type) noexcept : base(core) { this->state_.for_type(type); }

    notify_awaitable(Core* core, notify_io_type type, std::stop_token token) noexcept : base(core, std::move(token))
    {
        this->state_.for_type(type);
    }

    /// Movable until it is awaited (the combinators take it by value).
    notify_awaitable(notify_awaitable&& o) noexcept : base(std::move(o)) { this->state_.for_type(o.state_.type); }

    bool await_ready() noexcept
    {
        if (this->no_socket()) {
            return true;
        }
        if (this->state_.type != notify_io_type::in && this->state_.type != notify_io_type::out) {
            this->state_.result = notify_io_result::invalid_argument;
            return true;
        }
        return false;
    }

    bool await_suspend(std::coroutine_handle<> h) noexcept { return start(detail::continuation(h)); }

    /// detail::launchable (the combinators): start without a coroutine.
    bool launch(detail::op_listener* l) noexcept { return !await_ready() && start(detail::continuation(l)); }
    void request_cancel() noexcept { this->cancel_now(); }

    notify_io_result await_resume() const noexcept { return this->state_.result; }

private:
    bool start(detail::continuation c) noexcept
    {
        return this->suspend_and_start_op(c, [this](bool& done) { return this->core_->start_notify(this->state_, true, done); });
    }
};

} // namespace asock
