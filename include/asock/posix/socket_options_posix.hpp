// asock/posix/socket_options_posix.hpp: the socket options of
// asock/socket_options.hpp over POSIX setsockopt, for any backend whose
// handles are descriptors (epoll). Include <asock/socket_options.hpp> rather
// than this file; what each function does and reports is described there.
#pragma once

#include <asock/async_socket.hpp>
#include <asock/keep_alive_options.hpp>

#include <cerrno>
#include <limits>
#include <system_error>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace asock {

namespace detail::posix_options {

/// The descriptor of an OPEN socket, or -1 (then `ec` is bad_file_descriptor).
template <class Platform>
int open_handle(const async_socket<Platform>& socket, std::error_code& ec) noexcept
{
    if (!socket.valid() || socket.state() != socket_state::open || socket.native_handle() < 0) {
        ec = std::make_error_code(std::errc::bad_file_descriptor);
        return -1;
    }
    ec.clear();
    return socket.native_handle();
}

/// errno of a failed call: a descriptor that is no socket (a custom
/// transport's) is bad_file_descriptor, like no descriptor at all.
inline std::error_code last_error() noexcept
{
    const int e = errno;
    if (e == ENOTSOCK || e == EBADF) {
        return std::make_error_code(std::errc::bad_file_descriptor);
    }
    return {e, std::system_category()};
}

inline std::error_code set_int(int fd, int level, int name, int value) noexcept
{
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
        return last_error();
    }
    return {};
}

} // namespace detail::posix_options

/// TCP_NODELAY on or off.
template <class Platform>
std::error_code set_no_delay(async_socket<Platform>& socket, bool on) noexcept
{
    namespace po = detail::posix_options;
    std::error_code ec;
    const int fd = po::open_handle(socket, ec);
    return fd < 0 ? ec : po::set_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

/// SO_KEEPALIVE, and TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT for the
/// nonzero fields (set only when enabled).
template <class Platform>
std::error_code set_keep_alive(async_socket<Platform>& socket, const keep_alive_options& options) noexcept
{
    namespace po = detail::posix_options;
    if (options.idle.count() < 0 || options.interval.count() < 0 || options.count < 0 ||
        options.idle.count() > std::numeric_limits<int>::max() || options.interval.count() > std::numeric_limits<int>::max()) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::error_code ec;
    const int fd = po::open_handle(socket, ec);
    if (fd < 0) {
        return ec;
    }
    if ((ec = po::set_int(fd, SOL_SOCKET, SO_KEEPALIVE, options.enabled ? 1 : 0))) {
        return ec;
    }
    if (!options.enabled) {
        return {};
    }
    if (options.idle.count() > 0 &&
        (ec = po::set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(options.idle.count())))) {
        return ec;
    }
    if (options.interval.count() > 0 &&
        (ec = po::set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(options.interval.count())))) {
        return ec;
    }
    if (options.count > 0 && (ec = po::set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, options.count))) {
        return ec;
    }
    return {};
}

/// SO_SNDBUF (bytes > 0).
template <class Platform>
std::error_code set_send_buffer_size(async_socket<Platform>& socket, int bytes) noexcept
{
    namespace po = detail::posix_options;
    if (bytes <= 0) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::error_code ec;
    const int fd = po::open_handle(socket, ec);
    return fd < 0 ? ec : po::set_int(fd, SOL_SOCKET, SO_SNDBUF, bytes);
}

/// SO_RCVBUF (bytes > 0).
template <class Platform>
std::error_code set_receive_buffer_size(async_socket<Platform>& socket, int bytes) noexcept
{
    namespace po = detail::posix_options;
    if (bytes <= 0) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::error_code ec;
    const int fd = po::open_handle(socket, ec);
    return fd < 0 ? ec : po::set_int(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

/// SO_LINGER {on, 0}, the connection reset at once (connect to AF_UNSPEC
/// disconnects a TCP socket, sending a reset), then socket.close(). When
/// SO_LINGER cannot be set the socket is left as it was.
template <class Platform>
std::error_code close_abortive(async_socket<Platform>& socket) noexcept
{
    namespace po = detail::posix_options;
    std::error_code ec;
    const int fd = po::open_handle(socket, ec);
    if (fd < 0) {
        return ec;
    }
    const ::linger abort{1, 0};
    if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort) != 0) {
        return po::last_error();
    }
    // Without this, close()'s shutdown would send a FIN first (shutdown does
    // not look at SO_LINGER), and the reset would wait for the descriptor to
    // be closed when the socket is destroyed. A failure (the connection was
    // already reset) leaves nothing to abort.
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    (void)::connect(fd, &unspec, sizeof unspec);
    socket.close();
    return {};
}

} // namespace asock
