// asock/c/detail/socket_transport_posix.hpp: the OS layer of the C API's
// socket transport over POSIX (Linux) TCP sockets. Part of
// socket_transport.hpp, which holds the logic and includes this; include
// implementation.hpp.
//
// - Sockets are created non-blocking and close-on-exec in one call
//   (SOCK_NONBLOCK | SOCK_CLOEXEC, also for accept4), so no other thread's
//   fork + exec can inherit one half set up.
// - Waits use poll(). shutdown() wakes a poll() on any socket, a listening one
//   included, so the waits here need not watch the transport's `closing` flag:
//   a disconnect's shutdown ends them and the next call reports why.
// - Names are resolved by asock/resolve.hpp over asock::posix::resolver_os
//   (asock/posix/tcp_posix.hpp), as the C++ TCP helpers resolve them.
// - send passes MSG_NOSIGNAL (a vanished peer gives EPIPE, not SIGPIPE) and
//   MSG_DONTWAIT (the transport waits with poll() itself, or not at all when
//   the caller passed MSG_DONTWAIT).
#pragma once

#ifndef ASOCK_C_SOCKET_TRANSPORT_OS_LAYER
#error "include asock/c/implementation.hpp (socket_transport_posix.hpp is part of detail/socket_transport.hpp)"
#endif

#include <asock/posix/tcp_posix.hpp> // asock::posix::resolver_os

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace asock::c_api::transport::os {

using native_socket = int;
inline constexpr native_socket invalid_socket = -1;

/// The OS layer of name resolution (asock/resolve.hpp).
using resolver = asock::posix::resolver_os;

/// POSIX has no socket library to start.
struct library_ref {
    bool ok() const noexcept { return true; }
};

inline native_socket to_socket(SOCKET_HANDLE h) noexcept { return h < 0 ? invalid_socket : h; }
inline SOCKET_HANDLE to_socket_handle(native_socket s) noexcept { return s; }

inline void close_socket(native_socket s) noexcept { ::close(s); }
inline void shutdown_both(native_socket s) noexcept { ::shutdown(s, SHUT_RDWR); }

inline void set_nodelay(native_socket s) noexcept
{
    int one = 1;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// Puts `s` in non-blocking mode (`on`), or back in blocking mode.
inline bool set_nonblocking(native_socket s, bool on = true) noexcept
{
    const int flags = ::fcntl(s, F_GETFL, 0);
    return flags >= 0 && ::fcntl(s, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) == 0;
}

inline bool is_socket(native_socket s) noexcept
{
    int type = 0;
    socklen_t len = sizeof type;
    return ::getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

inline bool is_listening(native_socket s) noexcept
{
    int listening = 0;
    socklen_t len = sizeof listening;
    return ::getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0;
}

/// A new socket: non-blocking, close-on-exec.
inline native_socket open_socket(int family, int socktype, int protocol) noexcept
{
    return ::socket(family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
}

/// Milliseconds left until `deadline` for poll(); -1 (no limit) for no_deadline.
inline int remaining_ms(clock::time_point deadline) noexcept
{
    if (deadline == no_deadline) {
        return -1;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
        return 0;
    }
    return left > std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(left);
}

/// poll() `s` for `event` until `deadline`; EINTR restarts with the time left.
/// `ready` only when the event itself is reported; an error or hang-up alone
/// is `failed`. Never `closing` (see the top of this file).
inline wait_status wait_for(const std::atomic<bool>& /*closing*/, native_socket s, wait_event event,
                            clock::time_point deadline) noexcept
{
    const short wanted = event == wait_event::readable ? POLLIN : POLLOUT;
    for (;;) {
        pollfd p{s, wanted, 0};
        const int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r > 0) {
            return (p.revents & wanted) != 0 ? wait_status::ready : wait_status::failed;
        }
        if (r == 0) {
            return wait_status::timed_out;
        }
        if (errno != EINTR) {
            return wait_status::failed;
        }
    }
}

inline connect_status start_connect(native_socket s, const addrinfo& ai) noexcept
{
    int rc;
    do {
        rc = ::connect(s, ai.ai_addr, ai.ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
        return connect_status::connected;
    }
    return errno == EINPROGRESS ? connect_status::pending : connect_status::failed;
}

/// After a pending connect's socket became writable: whether it connected.
inline bool connect_succeeded(native_socket s) noexcept
{
    int err = 0;
    socklen_t len = sizeof err;
    return ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

inline bool bind_and_listen(native_socket s, const addrinfo& ai) noexcept
{
    // Lets a restarted server bind its port while the old connections linger
    // in TIME_WAIT (Linux refuses that without it).
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return ::bind(s, ai.ai_addr, ai.ai_addrlen) == 0 && ::listen(s, SOMAXCONN) == 0;
}

inline accept_status accept_one(native_socket listener, native_socket& accepted) noexcept
{
    accepted = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (accepted >= 0) {
        return accept_status::accepted;
    }
    accepted = invalid_socket;
    const int e = errno;
    if (e == EINTR || e == ECONNABORTED || e == EPROTO) {
        return accept_status::retry; // interrupted, or the client gave up before we accepted
    }
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        return accept_status::exhausted;
    }
    return e == EAGAIN || e == EWOULDBLOCK ? accept_status::would_block : accept_status::failed;
}

// ---- send and receive -------------------------------------------------------

using io_buffer = iovec;

inline void point(io_buffer& b, unsigned char* data, std::uint32_t length) noexcept
{
    b.iov_base = data;
    b.iov_len = length;
}

/// With MSG_DONTWAIT a send returns as soon as the socket takes no more.
inline bool send_returns_when_full(std::uint32_t flags) noexcept { return (flags & MSG_DONTWAIT) != 0; }

inline bool is_connection_gone(int e) noexcept
{
    return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ESHUTDOWN || e == ECONNABORTED;
}

/// would_block, gone or failed for the error `e` of a send or receive (errno keeps it).
inline io_status classify(int e) noexcept
{
    if (e == EAGAIN || e == EWOULDBLOCK) {
        return io_status::would_block;
    }
    return is_connection_gone(e) ? io_status::gone : io_status::failed;
}

/// Runs `call` (a sendmsg / recvmsg over `bufs`) again while it is
/// interrupted; a byte count is `done`, a failure is classified.
template <class Call>
io_status transfer(io_buffer* bufs, std::uint32_t count, std::uint32_t& n, Call call) noexcept
{
    msghdr msg{};
    msg.msg_iov = bufs;
    msg.msg_iovlen = count;
    ssize_t r;
    do {
        r = call(msg);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return classify(errno);
    }
    n = static_cast<std::uint32_t>(r);
    return io_status::done;
}

inline io_status send_some(native_socket s, io_buffer* bufs, std::uint32_t count, std::uint32_t flags,
                           std::uint32_t& n) noexcept
{
    const io_status status = transfer(bufs, count, n, [&](const msghdr& msg) {
        return ::sendmsg(s, &msg, static_cast<int>(flags) | MSG_NOSIGNAL | MSG_DONTWAIT);
    });
    if (status == io_status::done && n == 0) {
        errno = EIO; // took nothing of a non-empty payload without saying why
        return io_status::failed;
    }
    return status;
}

inline io_status receive_some(native_socket s, io_buffer* bufs, std::uint32_t count, std::uint32_t flags,
                              std::uint32_t& n) noexcept
{
    return transfer(bufs, count, n,
                    [&](msghdr& msg) { return ::recvmsg(s, &msg, static_cast<int>(flags) | MSG_DONTWAIT); });
}

// ---- local addresses ----------------------------------------------------------

/// Every interface address is listed as getifaddrs() reports it, even when
/// two interfaces show the same text (a link-local IPv6 address, say).
inline constexpr bool list_each_address_once = false;

/// Calls `use(for_each_address)` with the addresses of the host's interfaces;
/// `for_each_address(visit)` calls `visit(const sockaddr&)` for each. Returns
/// what `use` returns, or false when they cannot be listed.
template <class Use>
bool with_local_addresses(const char* /*hostname*/, Use&& use) noexcept
{
    ifaddrs* ifs = nullptr;
    if (::getifaddrs(&ifs) != 0) {
        return false;
    }
    const auto for_each_address = [ifs](auto&& visit) {
        for (const ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
            if (i->ifa_addr != nullptr) {
                visit(*i->ifa_addr);
            }
        }
    };
    const bool ok = use(for_each_address);
    ::freeifaddrs(ifs);
    return ok;
}

} // namespace asock::c_api::transport::os
