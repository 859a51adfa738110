// asock/socket_options.hpp: the socket options an application sets every day,
// portable, without native_handle().
//
// Free functions over async_socket<Platform> of the default backend
// (asock/default_platform.hpp picks the implementation:
// asock/posix/socket_options_posix.hpp for epoll,
// asock/win32/socket_options_win32.hpp on Windows). Each returns a
// std::error_code, empty on success:
//
//   set_no_delay(socket, bool)                 TCP_NODELAY (the TCP helpers set it on)
//   set_keep_alive(socket, keep_alive_options) SO_KEEPALIVE and its timing
//   set_send_buffer_size(socket, int bytes)    SO_SNDBUF
//   set_receive_buffer_size(socket, int bytes) SO_RCVBUF
//   close_abortive(socket)                     SO_LINGER {on, 0}, then close():
//                                              the peer sees a reset, not a FIN
//
// Errors, the same on every platform:
// - std::errc::bad_file_descriptor: the socket is empty, not OPEN (never
//   opened, closing, closed), or its handle is not a socket (a custom
//   transport's descriptor; on Windows custom transports do not exist);
// - std::errc::invalid_argument: a negative duration or count, a buffer size
//   not above 0;
// - std::errc::not_supported: keep_alive_options::count nonzero on Windows;
// - otherwise the OS's error (Linux: errno in std::system_category();
//   Windows: asock::win32::system_error_category()).
//
// The OS may adjust a value: Linux doubles a buffer size (for its own
// bookkeeping) and caps it at net.core.wmem_max / rmem_max, so reading
// SO_SNDBUF back gives at least what was asked within those limits.
//
// close_abortive: pending operations complete as for close() (`abandoned`),
// and the socket is CLOSED afterwards. Linux: the connection is reset at once
// (the socket is disconnected with connect(AF_UNSPEC) after SO_LINGER {on, 0}),
// so the peer's next receive fails with ECONNRESET (asock: `abandoned`), with no
// FIN before it. Windows: close() shuts the connection down (the handle
// owner's shutdown sends a FIN) and the reset goes out when the handle is
// closed, i.e. when the async_socket is destroyed.
//
// Options on a custom transport that was given a real socket as its
// descriptor apply to that socket.
#pragma once

#include <asock/default_platform.hpp>
#include <asock/keep_alive_options.hpp>

#include ASOCK_DEFAULT_SOCKET_OPTIONS_HEADER
