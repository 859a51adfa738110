// asock/posix/tcp_posix.hpp: TCP connect and listen/accept over POSIX sockets.
//
// Both are built on async_socket itself: the connecting or listening descriptor
// is opened as an async_socket and waited on with notify_io_async, so the
// helpers add no backend code and serve any backend whose handles are POSIX
// descriptors and that supports notify_io (epoll today). They use
// SOCK_NONBLOCK / SOCK_CLOEXEC and accept4 (POSIX.1-2024; Linux and the BSDs).
// A connected socket they return can be half-closed with
// async_socket::shutdown_send() (a FIN after the queued sends; receiving goes on).
// Include <asock/tcp.hpp> rather than this file.
//
// Also the POSIX layer of name resolution (asock/resolve.hpp), which the C
// API's socket transport uses too.
#pragma once

#include <asock/async_socket.hpp>
#include <asock/engine_ref.hpp>
#include <asock/resolve.hpp>
#include <asock/results.hpp>
#include <asock/tcp_outcome.hpp>
#include <asock/task.hpp>

#include <cerrno>
#include <cstdint>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace asock {

namespace posix {

/// The POSIX layer of asock/resolve.hpp: getaddrinfo and its EAI_* codes.
struct resolver_os {
    using addrinfo_type = ::addrinfo;
    static constexpr int any_family = AF_UNSPEC;
    static constexpr int stream_type = SOCK_STREAM;
    static constexpr int tcp_protocol = IPPROTO_TCP;
    static constexpr int passive_flag = AI_PASSIVE;
    static constexpr int numeric_service_flag = AI_NUMERICSERV;
    static constexpr int numeric_host_flag = AI_NUMERICHOST;

    static int getaddrinfo(const char* host, const char* service, const addrinfo_type* hints,
                           addrinfo_type** out) noexcept
    {
        return ::getaddrinfo(host, service, hints, out);
    }
    static void freeaddrinfo(addrinfo_type* list) noexcept { ::freeaddrinfo(list); }
    /// EAI_SYSTEM: the failure is errno's, reported in std::system_category().
    static std::error_code system_error(int code) noexcept
    {
        return code == EAI_SYSTEM ? std::error_code(errno, std::system_category()) : std::error_code();
    }
    static std::string message(int code) { return ::gai_strerror(code); }
};

using address_list = net::address_list<resolver_os>;

} // namespace posix

/// Errors of name resolution: getaddrinfo's EAI_* codes, in the category
/// "asock.resolve" (EAI_SYSTEM is reported as its errno in std::system_category()).
inline const std::error_category& resolve_category() noexcept { return net::resolve_category<posix::resolver_os>(); }

namespace detail {
inline void set_tcp_nodelay(int fd) noexcept
{
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
inline std::error_code last_error() noexcept { return {errno, std::system_category()}; }

/// host:port for connect (passive false) or bind (true); "" is no host.
inline posix::address_list resolve_tcp(const std::string& host, std::uint16_t port, bool passive,
                                       std::error_code& ec) noexcept
{
    return net::resolve<posix::resolver_os>(host.empty() ? nullptr : host.c_str(), port, passive, ec);
}
} // namespace detail

/// Connects to host:port over TCP (TCP_NODELAY set) and returns an OPEN socket
/// on `engine`. Tries each resolved address in turn.
///
/// Resolution never blocks the calling thread (which may be an engine
/// thread): a numeric host (IPv4 / IPv6 literal) or an empty one (loopback)
/// is resolved inline without a lookup (AI_NUMERICHOST); any other name is
/// looked up by getaddrinfo on a thread of its own, and the coroutine resumes
/// on an engine thread of `engine` when it ends (net::resolve_async,
/// asock/resolve.hpp, says exactly how). The connect itself is asynchronous
/// (non-blocking connect + notify_io_async). Resumes inline when neither had
/// to wait, else on an engine thread.
///
/// A stop request ends it with std::errc::operation_canceled, at once also
/// during a lookup (which then finishes on its own thread and is discarded).
/// Holds a reference on `engine` until it completes. `ResolverOs` is the OS
/// layer of the lookup (tests substitute one whose getaddrinfo they control).
template <class Platform, class ResolverOs = posix::resolver_os>
task<connect_outcome<Platform>> tcp_connect(typename Platform::engine_type& engine, std::string host,
                                            std::uint16_t port, std::stop_token token = {})
{
    engine.inc_ref();
    const engine_ref<typename Platform::engine_type> hold(&engine);
    net::resolve_outcome<ResolverOs> resolved =
        co_await net::resolve_async<ResolverOs>(engine, std::move(host), port, token);
    if (!resolved) {
        co_return connect_outcome<Platform>{resolved.error, {}};
    }
    std::error_code ec = std::make_error_code(std::errc::connection_refused);
    for (const addrinfo& ai : resolved.addresses) {
        const int fd = ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
        if (fd < 0) {
            ec = detail::last_error();
            continue;
        }
        detail::set_tcp_nodelay(fd);
        async_socket<Platform> s(engine);
        if (s.open(fd) != open_result::ok) {
            ::close(fd);
            ec = std::make_error_code(std::errc::not_enough_memory);
            continue;
        }
        if (::connect(fd, ai.ai_addr, ai.ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                ec = detail::last_error();
                continue; // `s` closes fd
            }
            const notify_io_result n = co_await s.notify_io_async(notify_io_type::out, token);
            if (n == notify_io_result::cancelled) {
                co_return connect_outcome<Platform>{std::make_error_code(std::errc::operation_canceled), {}};
            }
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                err = errno;
            }
            if (err != 0 || n != notify_io_result::out) {
                ec = std::error_code(err != 0 ? err : ECONNREFUSED, std::system_category());
                continue;
            }
        }
        co_return connect_outcome<Platform>{std::error_code{}, std::move(s)};
    }
    co_return connect_outcome<Platform>{ec, {}};
}

/// A listening TCP socket whose accept() is awaitable.
template <class Platform>
class tcp_listener {
public:
    using engine_type = typename Platform::engine_type;

    tcp_listener() noexcept = default;

    /// Binds host:port (host "" or "0.0.0.0": all IPv4 addresses; port 0: an
    /// ephemeral port, see port()) with SO_REUSEADDR and listens. Errors: a
    /// resolution error (asock::resolve_category()), the socket / bind / listen
    /// errno of the last address tried, or not_enough_memory.
    static listen_outcome<Platform> listen(engine_type& engine, const std::string& host, std::uint16_t port,
                                           int backlog = SOMAXCONN)
    {
        listen_outcome<Platform> out;
        out.error = listen_into(out.listener, engine, host, port, backlog);
        if (out.error) {
            out.listener = tcp_listener{};
        }
        return out;
    }

    bool valid() const noexcept { return socket_.valid() && socket_.state() == socket_state::open; }
    /// The bound port (the ephemeral one when listen() was given port 0).
    std::uint16_t port() const noexcept { return port_; }
    typename Platform::native_handle_type native_handle() const noexcept { return socket_.native_handle(); }

    /// Accepts one connection: an OPEN socket (TCP_NODELAY set) on the
    /// listener's engine. Resumes inline when a connection is already waiting,
    /// else on an engine thread. Errors: std::errc::operation_canceled after a
    /// stop request; bad_file_descriptor once the listener is closed; the
    /// accept errno otherwise (EMFILE, ENFILE, ENOBUFS, ...).
    task<accept_outcome<Platform>> accept(std::stop_token token = {})
    {
        for (;;) {
            // Closed (or never listening): the documented answer, whatever
            // accept4 on a shut-down descriptor would say (EINVAL).
            if (!valid()) {
                co_return accept_outcome<Platform>{std::make_error_code(std::errc::bad_file_descriptor), {}};
            }
            const int fd = ::accept4(socket_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                detail::set_tcp_nodelay(fd);
                async_socket<Platform> s(socket_.engine());
                if (s.open(fd) != open_result::ok) {
                    ::close(fd);
                    co_return accept_outcome<Platform>{std::make_error_code(std::errc::not_enough_memory), {}};
                }
                co_return accept_outcome<Platform>{std::error_code{}, std::move(s)};
            }
            const int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO) {
                continue;
            }
            if (e != EAGAIN && e != EWOULDBLOCK) {
                if (!valid()) {
                    continue; // closed meanwhile: answered at the top
                }
                co_return accept_outcome<Platform>{std::error_code(e, std::system_category()), {}};
            }
            const notify_io_result n = co_await socket_.notify_io_async(notify_io_type::in, token);
            if (n == notify_io_result::cancelled) {
                co_return accept_outcome<Platform>{std::make_error_code(std::errc::operation_canceled), {}};
            }
            if (n != notify_io_result::in) {
                co_return accept_outcome<Platform>{std::make_error_code(std::errc::bad_file_descriptor), {}};
            }
        }
    }

    /// Stops listening; a pending accept completes with bad_file_descriptor.
    void close() noexcept { socket_.close(); }

private:
    static std::error_code listen_into(tcp_listener& l, engine_type& engine, const std::string& host,
                                       std::uint16_t port, int backlog)
    {
        std::error_code ec;
        const posix::address_list addrs = detail::resolve_tcp(host, port, true, ec);
        if (ec) {
            return ec;
        }
        ec = std::make_error_code(std::errc::address_not_available); // an empty list: nothing to bind
        for (const addrinfo& ai : addrs) {
            const int fd = ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
            if (fd < 0) {
                ec = detail::last_error();
                continue;
            }
            int one = 1;
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (::bind(fd, ai.ai_addr, ai.ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
                ec = detail::last_error();
                ::close(fd);
                continue;
            }
            sockaddr_storage bound{};
            socklen_t len = sizeof bound;
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
            l.port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                                        : reinterpret_cast<sockaddr_in&>(bound).sin_port);
            l.socket_ = async_socket<Platform>(engine);
            if (l.socket_.open(fd) != open_result::ok) {
                ::close(fd);
                ec = std::make_error_code(std::errc::not_enough_memory);
                return ec;
            }
            return {};
        }
        return ec;
    }

    async_socket<Platform> socket_;
    std::uint16_t port_ = 0;
};

} // namespace asock

// tcp_connect with a deadline (written once for every backend).
#include <asock/tcp_deadline.hpp>
