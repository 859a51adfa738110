// asock/ops/receive_awaitable.hpp: `co_await socket.receive_async(buffers [, stop_token])`.
//
// Completes as soon as at least one byte has arrived, with as many bytes as
// were available then, written into the buffers in order (the first buffer is
// filled before the second is touched, and so on). Receives on one socket
// complete in the order they were started. Bytes that arrived before the peer
// closed or reset the connection are always delivered before `abandoned`.
//
// Results (receive_outcome{result, bytes_received}):
//   ok               bytes_received > 0 bytes were written.
//   abandoned        the peer closed the connection (orderly, all earlier bytes
//                    delivered) or reset it (ECONNRESET), or the socket was closed
//                    while the receive was pending. bytes_received == 0.
//   error            the transport failed (any other errno). bytes_received == 0.
//   not_open         the socket was not OPEN.
//   cancelled        the stop_token fired first. bytes_received == 0: a receive
//                    that had got bytes completes `ok` with them instead (on
//                    Windows: a call whose data won the race with CancelIoEx,
//                    or the earlier batches of a receive of more than 64
//                    buffers), so no byte is ever lost.
//   invalid_argument no buffers, a null buffer, a zero length, or more than
//                    UINT32_MAX bytes in total.
//
// Resumes: (epoll) inline (unless the thread's inline budget is spent, then
// through the engine's queue) when data is already there and the socket has not
// been found drained since its last readiness edge; otherwise on an engine
// thread (also for bytes that arrived after a drain but whose edge is not yet
// handled). (Windows) always on an engine thread: a pool thread, or the
// caller's loop for an engine with threads = 0.
// Lifetime: as for send_awaitable.
#pragma once

#include <asock/buffer.hpp>
#include <asock/ops/awaitable_base.hpp>
#include <asock/results.hpp>

#include <span>

namespace asock {

template <class Core>
class receive_awaitable : detail::buffers_awaitable<Core, detail::receive_op, mutable_buffer> {
    using base = detail::buffers_awaitable<Core, detail::receive_op, mutable_buffer>;

public:
    receive_awaitable(Core* core, std::span<const mutable_buffer> buffers) noexcept : base(core, buffers) {}

    receive_awaitable(Core* core, mutable_buffer single) noexcept : base(core, single) {}

    receive_awaitable(Core* core, std::span<const mutable_buffer> buffers, std::stop_token token) noexcept
        : base(core, buffers, std::move(token))
    {
    }

    receive_awaitable(Core* core, mutable_buffer single, std::stop_token token) noexcept
        : base(core, single, std::move(token))
    {
    }

    /// Movable until it is awaited (the combinators take it by value).
    receive_awaitable(receive_awaitable&&) noexcept = default;

    ASOCK_ALWAYS_INLINE bool await_ready() noexcept { return this->ready_without_start(); }

    bool await_suspend(std::coroutine_handle<> h) noexcept { return start(detail::continuation(h)); }

    /// detail::launchable (the combinators): start without a coroutine.
    bool launch(detail::op_listener* l) noexcept { return !await_ready() && start(detail::continuation(l)); }
    void request_cancel() noexcept { this->cancel_now(); }

    receive_outcome await_resume() const noexcept { return {this->state_.result, this->state_.received}; }

private:
    bool start(detail::continuation c) noexcept
    {
        return this->suspend_and_start_op(c, [this](bool& done) { return this->core_->start_receive(this->state_, true, done); });
    }
};

} // namespace asock
