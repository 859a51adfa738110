// asock/win32/socket_options_win32.hpp: the socket options of
// asock/socket_options.hpp over Winsock. Include <asock/socket_options.hpp>
// rather than this file; what each function does and reports is described
// there.
//
// Keep-alive timing goes through WSAIoctl(SIO_KEEPALIVE_VALS), which takes the
// idle time and the probe interval together: a zero field is sent as the
// Windows default (idle 2 hours, interval 1 second). Its probe count cannot be
// set (this toolchain's headers have no TCP_KEEPCNT): a nonzero
// keep_alive_options::count is std::errc::not_supported, and nothing is changed.
#pragma once

#include <asock/async_socket.hpp>
#include <asock/keep_alive_options.hpp>
#include <asock/win32/tcp_win32.hpp>
#include <asock/win32/win32_api.hpp>

#include <mstcpip.h>

#include <cstdint>
#include <system_error>

namespace asock {

namespace detail::win32_options {

/// The Windows defaults SIO_KEEPALIVE_VALS is given for a zero field.
inline constexpr ULONG default_idle_ms = 2 * 60 * 60 * 1000;
inline constexpr ULONG default_interval_ms = 1000;
/// The longest duration SIO_KEEPALIVE_VALS can carry (milliseconds in a ULONG).
inline constexpr std::int64_t max_seconds = 4294967;

/// The handle of an OPEN socket, or INVALID_SOCKET (then `ec` is bad_file_descriptor).
template <class Platform>
SOCKET open_handle(const async_socket<Platform>& socket, std::error_code& ec) noexcept
{
    if (!socket.valid() || socket.state() != socket_state::open || socket.native_handle() == INVALID_SOCKET) {
        ec = std::make_error_code(std::errc::bad_file_descriptor);
        return INVALID_SOCKET;
    }
    ec.clear();
    return socket.native_handle();
}

/// Winsock's last error: a handle that is no socket is bad_file_descriptor.
inline std::error_code last_error() noexcept
{
    const int e = ::WSAGetLastError();
    if (e == WSAENOTSOCK || e == WSAEBADF) {
        return std::make_error_code(std::errc::bad_file_descriptor);
    }
    return {e, win32::system_error_category()};
}

template <class T>
std::error_code set(SOCKET s, int level, int name, const T& value) noexcept
{
    if (::setsockopt(s, level, name, reinterpret_cast<const char*>(&value), static_cast<int>(sizeof value)) != 0) {
        return last_error();
    }
    return {};
}

} // namespace detail::win32_options

/// TCP_NODELAY on or off.
template <class Platform>
std::error_code set_no_delay(async_socket<Platform>& socket, bool on) noexcept
{
    namespace wo = detail::win32_options;
    std::error_code ec;
    const SOCKET s = wo::open_handle(socket, ec);
    return s == INVALID_SOCKET ? ec : wo::set(s, IPPROTO_TCP, TCP_NODELAY, BOOL{on ? TRUE : FALSE});
}

/// SO_KEEPALIVE, and SIO_KEEPALIVE_VALS when idle or interval is nonzero.
template <class Platform>
std::error_code set_keep_alive(async_socket<Platform>& socket, const keep_alive_options& options) noexcept
{
    namespace wo = detail::win32_options;
    if (options.idle.count() < 0 || options.interval.count() < 0 || options.count < 0 ||
        options.idle.count() > wo::max_seconds || options.interval.count() > wo::max_seconds) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::error_code ec;
    const SOCKET s = wo::open_handle(socket, ec);
    if (s == INVALID_SOCKET) {
        return ec;
    }
    if (options.enabled && options.count != 0) {
        return std::make_error_code(std::errc::not_supported);
    }
    if ((ec = wo::set(s, SOL_SOCKET, SO_KEEPALIVE, BOOL{options.enabled ? TRUE : FALSE}))) {
        return ec;
    }
    if (!options.enabled || (options.idle.count() == 0 && options.interval.count() == 0)) {
        return {};
    }
    tcp_keepalive values{};
    values.onoff = 1;
    values.keepalivetime =
        options.idle.count() > 0 ? static_cast<ULONG>(options.idle.count()) * 1000u : wo::default_idle_ms;
    values.keepaliveinterval = options.interval.count() > 0 ? static_cast<ULONG>(options.interval.count()) * 1000u
                                                            : wo::default_interval_ms;
    DWORD returned = 0;
    if (::WSAIoctl(s, SIO_KEEPALIVE_VALS, &values, sizeof values, nullptr, 0, &returned, nullptr, nullptr) != 0) {
        return wo::last_error();
    }
    return {};
}

/// SO_SNDBUF (bytes > 0).
template <class Platform>
std::error_code set_send_buffer_size(async_socket<Platform>& socket, int bytes) noexcept
{
    namespace wo = detail::win32_options;
    if (bytes <= 0) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::error_code ec;
    const SOCKET s = wo::open_handle(socket, ec);
    return s == INVALID_SOCKET ? ec : wo::set(s, SOL_SOCKET, SO_SNDBUF, bytes);
}

/// SO_RCVBUF (bytes > 0).
template <class Platform>
std::error_code set_receive_buffer_size(async_socket<Platform>& socket, int bytes) noexcept
{
    namespace wo = detail::win32_options;
    if (bytes <= 0) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::error_code ec;
    const SOCKET s = wo::open_handle(socket, ec);
    return s == INVALID_SOCKET ? ec : wo::set(s, SOL_SOCKET, SO_RCVBUF, bytes);
}

/// SO_LINGER {on, 0}, then socket.close(): the reset goes out when the handle
/// is closed (the async_socket destroyed), after the FIN of close()'s
/// shutdown. When SO_LINGER cannot be set the socket is left as it was.
template <class Platform>
std::error_code close_abortive(async_socket<Platform>& socket) noexcept
{
    namespace wo = detail::win32_options;
    std::error_code ec;
    const SOCKET s = wo::open_handle(socket, ec);
    if (s == INVALID_SOCKET) {
        return ec;
    }
    ::linger abort{};
    abort.l_onoff = 1;
    abort.l_linger = 0;
    if ((ec = wo::set(s, SOL_SOCKET, SO_LINGER, abort))) {
        return ec;
    }
    socket.close();
    return {};
}

} // namespace asock
