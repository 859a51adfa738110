// asock/ops/send_awaitable.hpp: `co_await socket.send_async(buffers [, stop_token])`.
//
// Completes when every byte of every buffer has been handed to the transport
// (accepted by the kernel's send buffer, or by the custom on_send), in the
// order the buffers are given. Sends on one socket complete in the order they
// were started and their bytes are never interleaved, even when started from
// several threads at once.
//
// Results (send_result):
//   ok               all bytes sent.
//   not_open         no socket, the socket was not OPEN, or the peer had reset /
//                    closed the connection when the send started (ECONNRESET,
//                    ENOTCONN, EPIPE) and none of its bytes went out; also every
//                    later send once a send failed half-way after a reset.
//   error            the transport failed (any other errno), or claimed more
//                    bytes than it was offered; also every send queued behind (or
//                    started after) a send that was cancelled or failed half-way.
//   abandoned        the socket was closed while the send was pending, or the
//                    connection was reset (ECONNRESET, or EPIPE once the reset
//                    was reported elsewhere) while it was pending or after part
//                    of this send had gone out.
//   cancelled        the stop_token fired first. If part of the message was
//                    already sent, the stream can no longer be framed: later and
//                    queued sends on the socket complete `error`; close it.
// A send that fails after part of it went out (torn) is never reported as
// "not started": it completes with abandoned / error, and the socket's send
// direction has failed for good, so no later bytes follow the truncated ones.
//   invalid_argument no buffers, a null buffer, a zero length, or more than
//                    UINT32_MAX bytes in total.
//
// Resumes: (epoll) inline (no suspension) when the send completes at once,
// which is the common case, unless the thread's inline budget is spent
// (detail/inline_budget.hpp: then through the engine's queue); otherwise on
// an engine thread (see ops/awaitable_base.hpp). (Windows) always on an
// engine thread, once the IO completion of its last WSASend came back.
//
// Lifetime: the buffers, and the array that lists them, must stay valid until
// the co_await completes. A temporary array inside the co_await expression does.
#pragma once

#include <asock/buffer.hpp>
#include <asock/ops/awaitable_base.hpp>
#include <asock/results.hpp>

#include <span>

namespace asock {

template <class Core>
class send_awaitable : detail::buffers_awaitable<Core, detail::send_op, const_buffer> {
    using base = detail::buffers_awaitable<Core, detail::send_op, const_buffer>;

public:
    send_awaitable(Core* core, std::span<const const_buffer> buffers) noexcept : base(core, buffers) {}

    send_awaitable(Core* core, const_buffer single) noexcept : base(core, single) {}

    send_awaitable(Core* core, std::span<const const_buffer> buffers, std::stop_token token) noexcept
        : base(core, buffers, std::move(token))
    {
    }

    send_awaitable(Core* core, const_buffer single, std::stop_token token) noexcept
        : base(core, single, std::move(token))
    {
    }

    /// Movable until it is awaited (the combinators take it by value).
    send_awaitable(send_awaitable&&) noexcept = default;

    ASOCK_ALWAYS_INLINE bool await_ready() noexcept { return this->ready_without_start(); }

    bool await_suspend(std::coroutine_handle<> h) noexcept { return start(detail::continuation(h)); }

    /// detail::launchable (the combinators): start without a coroutine.
    bool launch(detail::op_listener* l) noexcept { return !await_ready() && start(detail::continuation(l)); }
    void request_cancel() noexcept { this->cancel_now(); }

    send_result await_resume() const noexcept { return this->state_.result; }

private:
    bool start(detail::continuation c) noexcept
    {
        return this->suspend_and_start(
            c,
            [this] {
                bool done = false;
                switch (this->core_->start_send(this->state_, done)) {
                case send_sync_result::ok: return !done;
                case send_sync_result::not_open: this->state_.result = send_result::not_open; return false;
                case send_sync_result::invalid_argument: this->state_.result = send_result::invalid_argument; return false;
                case send_sync_result::error: break;
                }
                this->state_.result = send_result::error;
                return false;
            },
            [this] { this->state_.result = send_result::cancelled; });
    }
};

} // namespace asock
