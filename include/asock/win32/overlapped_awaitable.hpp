// asock/win32/overlapped_awaitable.hpp: `co_await` one overlapped call on a socket's threadpool IO.
//
// Used by the Windows TCP helpers (include/asock/win32/tcp_win32.hpp) for
// ConnectEx and AcceptEx: the call runs through the socket's own threadpool IO
// (a SOCKET can be bound to one IO completion port only), so it completes in
// the socket's IO callback like a send or a receive, and close() and stop
// requests treat it like them. Shares the completion / cancellation race and
// the resumption rule of every asock awaitable (ops/awaitable_base.hpp):
// resumes on a pool thread, or without suspending when the call fails at once.
#pragma once

#include <asock/ops/awaitable_base.hpp>
#include <asock/results.hpp>
#include <asock/win32/threadpool_socket_core.hpp>

#include <stop_token>
#include <utility>

namespace asock::win32 {

/// What an overlapped call ended with. `result`: see overlapped_op.
struct overlapped_outcome {
    notify_io_result result = notify_io_result::error;
    DWORD io_result = NO_ERROR; ///< The completion's Win32 / WSA error code (NO_ERROR on success).
    DWORD bytes = 0;            ///< The completion's byte count.
};

template <class Core>
class overlapped_awaitable : asock::detail::op_awaitable<Core, overlapped_op> {
    using base = asock::detail::op_awaitable<Core, overlapped_op>;

public:
    /// `issue(context, socket, overlapped)` starts the call (see overlapped_op).
    overlapped_awaitable(Core* core, int (*issue)(void*, SOCKET, OVERLAPPED*) noexcept, void* context,
                         std::stop_token token) noexcept
        : base(core, std::move(token))
    {
        this->state_.issue = issue;
        this->state_.issue_context = context;
    }

    /// Movable until it is awaited.
    overlapped_awaitable(overlapped_awaitable&& o) noexcept : base(std::move(o))
    {
        this->state_.issue = o.state_.issue;
        this->state_.issue_context = o.state_.issue_context;
    }

    bool await_ready() noexcept { return this->no_socket(); }

    bool await_suspend(std::coroutine_handle<> h) noexcept
    {
        return this->suspend_and_start_op(asock::detail::continuation(h),
                                          [this](bool& done) { return this->core_->start_overlapped(this->state_, done); });
    }

    overlapped_outcome await_resume() const noexcept
    {
        return {this->state_.result, this->state_.io_result, this->state_.bytes};
    }
};

} // namespace asock::win32
