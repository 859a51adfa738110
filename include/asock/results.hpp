// asock/results.hpp: the result values every asock operation reports.
//
// Nothing in asock throws on an I/O error: every operation completes with one
// of these values. The numbering of the values shared with the C API
// (ASYNC_SOCKET_*_RESULT in c_pal/async_socket.h) is identical, so the C shim
// converts with a cast; values that exist only in C++ (not_open, cancelled,
// invalid_argument) come after them.
#pragma once

#include <cstdint>
#include <string_view>

namespace asock {

/// Result of async_socket::open.
enum class open_result : std::uint8_t {
    ok = 1,    ///< The socket is OPEN; operations may be started.
    error = 2, ///< Bad argument, wrong state (already opened, or closed), or the backend refused the handle.
};

/// Outcome of a timer wait (asock::sleep_for / sleep_until).
enum class timer_result : std::uint8_t {
    expired = 1,   ///< The deadline was reached.
    cancelled = 2, ///< A stop request came first, or the engine was destroyed while the wait was pending.
};

/// Immediate result of starting a send in callback form (the spec's ASYNC_SOCKET_SEND_SYNC_RESULT).
enum class send_sync_result : std::uint8_t {
    ok = 1,               ///< Accepted: the completion callback will be called exactly once.
    error = 2,            ///< Rejected: the transport failed at once, before any byte went out. The callback is not called.
    not_open = 3,         ///< Rejected: no socket, the socket is not OPEN, or the peer reset / closed it.
    invalid_argument = 4, ///< Rejected (C++ only; the C API reports it as ..._SYNC_ERROR): a null callback or bad buffers.
};

/// Outcome of a send. The first three values are the spec's ASYNC_SOCKET_SEND_RESULT.
enum class send_result : std::uint8_t {
    ok = 1,               ///< Every byte of every buffer was handed to the transport.
    error = 2,            ///< The transport reported an error.
    abandoned = 3,        ///< The socket was closed, or the peer reset the connection, before the send finished.
    not_open = 4,         ///< (co_await form) the socket was not OPEN, or the peer had already reset / closed it.
    cancelled = 5,        ///< (co_await form) the stop_token was triggered before the send finished.
    invalid_argument = 6, ///< (co_await form) no buffers, a null buffer, a zero length, or more than UINT32_MAX bytes.
};

/// Outcome of a receive. The first three values are the spec's ASYNC_SOCKET_RECEIVE_RESULT.
enum class receive_result : std::uint8_t {
    ok = 1,               ///< At least one byte was received (bytes_received > 0).
    error = 2,            ///< The transport reported an error.
    abandoned = 3,        ///< The peer closed or reset the connection (after all earlier bytes were delivered), or the socket was closed.
    not_open = 4,         ///< (co_await form) the socket was not OPEN.
    cancelled = 5,        ///< (co_await form) the stop_token was triggered; bytes_received tells what was already read.
    invalid_argument = 6, ///< (co_await form) no buffers, a null buffer, a zero length, or more than UINT32_MAX bytes.
};

/// Which readiness notify_io_async waits for (the spec's ASYNC_SOCKET_NOTIFY_IO_TYPE).
enum class notify_io_type : std::uint8_t {
    in = 1,  ///< The socket is readable (data, or an incoming connection on a listener).
    out = 2, ///< The socket is writable (send buffer space, or a connect finished).
};

/// Outcome of notify_io_async. The first four values are the spec's ASYNC_SOCKET_NOTIFY_IO_RESULT.
enum class notify_io_result : std::uint8_t {
    in = 1,               ///< The socket became readable.
    out = 2,              ///< The socket became writable.
    abandoned = 3,        ///< The socket was closed, or the peer hung up.
    error = 4,            ///< The socket reported an error condition.
    not_open = 5,         ///< (co_await form) the socket was not OPEN.
    cancelled = 6,        ///< (co_await form) the stop_token was triggered.
    invalid_argument = 7, ///< (co_await form) io_type was not in or out.
};

/// Result of async_socket::shutdown_send (half-close: the sending direction ends with a FIN).
enum class shutdown_result : std::uint8_t {
    ok = 1,          ///< The FIN is scheduled (sent now, or once the sends accepted before the call completed); also a repeated call.
    not_open = 2,    ///< No socket, or the socket is not OPEN.
    error = 3,       ///< The OS refused the shutdown made at once, or the send direction had already failed; no FIN was sent.
    unsupported = 4, ///< The socket runs on a custom transport, which has no way to send a FIN.
};

/// Immediate result of starting a receive or notify in callback form.
enum class start_result : std::uint8_t {
    started = 0,          ///< Accepted: the completion callback will be called exactly once, never before the call returns.
    invalid_argument = 1, ///< Rejected: bad argument. The callback is not called.
    not_open = 2,         ///< Rejected: the socket is not OPEN. The callback is not called.
};

/// The spec's socket state machine. A socket starts `created`, is `open` after a
/// successful open, and ends `closed`; it cannot be opened again after close.
/// `opening` and `closing` are transient states other threads may observe.
enum class socket_state : std::uint8_t { created = 0, opening = 1, open = 2, closing = 3, closed = 4 };

/// What a receive produced: the result and how many bytes were written into the buffers.
struct receive_outcome {
    receive_result result = receive_result::error;
    std::uint32_t bytes_received = 0;

    /// True when bytes were received (result == ok).
    explicit constexpr operator bool() const noexcept { return result == receive_result::ok; }
    friend constexpr bool operator==(const receive_outcome&, const receive_outcome&) = default;
};

constexpr std::string_view to_string(open_result r) noexcept
{
    switch (r) {
    case open_result::ok: return "ok";
    case open_result::error: return "error";
    }
    return "invalid";
}

constexpr std::string_view to_string(timer_result r) noexcept
{
    switch (r) {
    case timer_result::expired: return "expired";
    case timer_result::cancelled: return "cancelled";
    }
    return "invalid";
}

constexpr std::string_view to_string(send_sync_result r) noexcept
{
    switch (r) {
    case send_sync_result::ok: return "ok";
    case send_sync_result::error: return "error";
    case send_sync_result::not_open: return "not_open";
    case send_sync_result::invalid_argument: return "invalid_argument";
    }
    return "invalid";
}

constexpr std::string_view to_string(send_result r) noexcept
{
    switch (r) {
    case send_result::ok: return "ok";
    case send_result::error: return "error";
    case send_result::abandoned: return "abandoned";
    case send_result::not_open: return "not_open";
    case send_result::cancelled: return "cancelled";
    case send_result::invalid_argument: return "invalid_argument";
    }
    return "invalid";
}

constexpr std::string_view to_string(receive_result r) noexcept
{
    switch (r) {
    case receive_result::ok: return "ok";
    case receive_result::error: return "error";
    case receive_result::abandoned: return "abandoned";
    case receive_result::not_open: return "not_open";
    case receive_result::cancelled: return "cancelled";
    case receive_result::invalid_argument: return "invalid_argument";
    }
    return "invalid";
}

constexpr std::string_view to_string(notify_io_type r) noexcept
{
    switch (r) {
    case notify_io_type::in: return "in";
    case notify_io_type::out: return "out";
    }
    return "invalid";
}

constexpr std::string_view to_string(notify_io_result r) noexcept
{
    switch (r) {
    case notify_io_result::in: return "in";
    case notify_io_result::out: return "out";
    case notify_io_result::abandoned: return "abandoned";
    case notify_io_result::error: return "error";
    case notify_io_result::not_open: return "not_open";
    case notify_io_result::cancelled: return "cancelled";
    case notify_io_result::invalid_argument: return "invalid_argument";
    }
    return "invalid";
}

constexpr std::string_view to_string(socket_state s) noexcept
{
    switch (s) {
    case socket_state::created: return "created";
    case socket_state::opening: return "opening";
    case socket_state::open: return "open";
    case socket_state::closing: return "closing";
    case socket_state::closed: return "closed";
    }
    return "invalid";
}

constexpr std::string_view to_string(shutdown_result r) noexcept
{
    switch (r) {
    case shutdown_result::ok: return "ok";
    case shutdown_result::not_open: return "not_open";
    case shutdown_result::error: return "error";
    case shutdown_result::unsupported: return "unsupported";
    }
    return "invalid";
}

constexpr std::string_view to_string(start_result r) noexcept
{
    switch (r) {
    case start_result::started: return "started";
    case start_result::invalid_argument: return "invalid_argument";
    case start_result::not_open: return "not_open";
    }
    return "invalid";
}

} // namespace asock
