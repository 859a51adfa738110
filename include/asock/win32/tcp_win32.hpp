// asock/win32/tcp_win32.hpp: TCP connect and listen/accept over Winsock.
//
// Same API as include/asock/posix/tcp_posix.hpp (tcp_connect<Platform>,
// tcp_listener<Platform>, connect_outcome / accept_outcome). Include
// <asock/tcp.hpp> rather than this file.
// A connected socket they return can be half-closed with
// async_socket::shutdown_send() (a FIN after the sends in flight; receiving goes on).
//
// Readiness notifications do not exist on Windows (spec 04_002), so instead of
// "non-blocking call + wait for readiness" the helpers use the overlapped
// Winsock extensions: ConnectEx for connect and AcceptEx for accept. Each runs
// as an overlapped_op through the threadpool IO of the socket it concerns (the
// connecting socket, or the listener), so it completes on a pool thread and
// is cancelled by a stop request (CancelIoEx) or by closing that socket, like
// any other operation. Needs an engine (Winsock is started by the engine).
//
// Errors the OS reports (Winsock WSAE* codes, and the Win32 ERROR_* codes a
// completion carries) are reported in asock::win32::system_error_category():
// its messages come from FormatMessageA, and it compares equal to the portable
// std::errc value where there is one (`ec == std::errc::connection_refused`
// holds for ERROR_CONNECTION_REFUSED and WSAECONNREFUSED alike). The
// libstdc++ of mingw-w64 knows neither: its generic_category() has no text
// for the socket errno values ("Unknown error"), and its system_category()
// maps few Windows codes to std::errc.
//
// Also the Winsock layer of name resolution (asock/resolve.hpp), which the C
// API's socket transport uses too.
#pragma once

#include <asock/async_socket.hpp>
#include <asock/engine_ref.hpp>
#include <asock/resolve.hpp>
#include <asock/results.hpp>
#include <asock/tcp_outcome.hpp>
#include <asock/task.hpp>
#include <asock/win32/overlapped_awaitable.hpp>
#include <asock/win32/win32_api.hpp>

#include <cstdint>
#include <cstdio>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>

namespace asock::win32 {

/// The system's text for a Windows error code (Win32 ERROR_* or Winsock
/// WSAE*), without the trailing period and line break; "Windows error <code>"
/// when the system has none (Wine lacks some).
inline std::string error_message(int code)
{
    char text[512];
    DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                               static_cast<DWORD>(code), MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), text,
                               static_cast<DWORD>(sizeof text), nullptr);
    while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '.')) {
        --n;
    }
    if (n == 0) {
        char fallback[32];
        std::snprintf(fallback, sizeof fallback, "Windows error %d", code);
        return fallback;
    }
    return std::string(text, n);
}

/// The portable condition of a Windows error code: the std::errc value where
/// there is one, else {code, *fallback}.
inline std::error_condition error_condition_of(int code, const std::error_category& fallback) noexcept
{
    using std::errc;
    const auto portable = [](errc e) { return std::make_error_condition(e); };
    switch (code) {
    case ERROR_CONNECTION_REFUSED:
    case WSAECONNREFUSED: return portable(errc::connection_refused);
    case ERROR_NETWORK_UNREACHABLE:
    case WSAENETUNREACH: return portable(errc::network_unreachable);
    case ERROR_HOST_UNREACHABLE:
    case WSAEHOSTUNREACH: return portable(errc::host_unreachable);
    case ERROR_SEM_TIMEOUT:
    case WSAETIMEDOUT: return portable(errc::timed_out);
    case ERROR_OPERATION_ABORTED: return portable(errc::operation_canceled); // also WSA_OPERATION_ABORTED
    case ERROR_NETNAME_DELETED:
    case WSAECONNRESET: return portable(errc::connection_reset);
    case ERROR_CONNECTION_ABORTED:
    case WSAECONNABORTED: return portable(errc::connection_aborted);
    case WSAENETRESET: return portable(errc::network_reset);
    case WSAENETDOWN: return portable(errc::network_down);
    case WSAEADDRINUSE: return portable(errc::address_in_use);
    case WSAEADDRNOTAVAIL: return portable(errc::address_not_available);
    case WSAEAFNOSUPPORT: return portable(errc::address_family_not_supported);
    case WSAENOTCONN: return portable(errc::not_connected);
    case WSAEISCONN: return portable(errc::already_connected);
    case WSAENOTSOCK: return portable(errc::not_a_socket);
    case WSAEMFILE: return portable(errc::too_many_files_open);
    case WSAENOBUFS: return portable(errc::no_buffer_space);
    case WSAEWOULDBLOCK: return portable(errc::operation_would_block);
    case WSAEINPROGRESS: return portable(errc::operation_in_progress);
    case WSAEALREADY: return portable(errc::connection_already_in_progress);
    case WSAEINTR: return portable(errc::interrupted);
    case WSAEFAULT: return portable(errc::bad_address);
    case ERROR_INVALID_HANDLE:
    case WSAEBADF: return portable(errc::bad_file_descriptor);
    case ERROR_INVALID_PARAMETER:
    case WSAEINVAL: return portable(errc::invalid_argument);
    case ERROR_ACCESS_DENIED:
    case WSAEACCES: return portable(errc::permission_denied);
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY: return portable(errc::not_enough_memory);
    default: return std::error_condition(code, fallback);
    }
}

/// The category of the errors the Windows TCP helpers report from the OS
/// ("asock.win32"): Win32 ERROR_* and Winsock WSAE* codes, with the system's
/// messages and the std::errc conditions of error_condition_of.
inline const std::error_category& system_error_category() noexcept
{
    struct category final : std::error_category {
        const char* name() const noexcept override { return "asock.win32"; }
        std::string message(int code) const override { return error_message(code); }
        std::error_condition default_error_condition(int code) const noexcept override
        {
            return error_condition_of(code, *this);
        }
    };
    static const category c;
    return c;
}

/// The Winsock layer of asock/resolve.hpp: getaddrinfo and the WSA codes it returns.
struct resolver_os {
    using addrinfo_type = ::addrinfo;
    static constexpr int any_family = AF_UNSPEC;
    static constexpr int stream_type = SOCK_STREAM;
    static constexpr int tcp_protocol = IPPROTO_TCP;
    static constexpr int passive_flag = AI_PASSIVE;
    static constexpr int numeric_service_flag = AI_NUMERICSERV;
    static constexpr int numeric_host_flag = AI_NUMERICHOST;

    /// Held by a background lookup thread (net::resolve_async): Winsock stays
    /// started for it even when the engine that started it is destroyed
    /// while the lookup still runs (Winsock counts WSAStartup / WSACleanup pairs).
    struct thread_scope {
        bool started = false;
        thread_scope() noexcept
        {
            WSADATA data;
            started = ::WSAStartup(MAKEWORD(2, 2), &data) == 0;
        }
        thread_scope(const thread_scope&) = delete;
        thread_scope& operator=(const thread_scope&) = delete;
        ~thread_scope()
        {
            if (started) {
                ::WSACleanup();
            }
        }
    };

    static int getaddrinfo(const char* host, const char* service, const addrinfo_type* hints,
                           addrinfo_type** out) noexcept
    {
        return ::getaddrinfo(host, service, hints, out);
    }
    static void freeaddrinfo(addrinfo_type* list) noexcept { ::freeaddrinfo(list); }
    static std::error_code system_error(int) noexcept { return {}; }
    static std::string message(int code) { return error_message(code); }
    static std::error_condition condition(int code) noexcept
    {
        return error_condition_of(code, net::resolve_category<resolver_os>());
    }
};

using address_list = net::address_list<resolver_os>;

} // namespace asock::win32

namespace asock {

/// Errors of name resolution: the WSA codes getaddrinfo returns
/// (WSAHOST_NOT_FOUND, ...), in the category "asock.resolve".
inline const std::error_category& resolve_category() noexcept { return net::resolve_category<win32::resolver_os>(); }


namespace detail::win32_tcp {

/// Winsock's last error, in win32::system_error_category().
inline std::error_code last_error() noexcept { return {::WSAGetLastError(), win32::system_error_category()}; }

/// A completion's error code (Win32 ERROR_* or WSA code), in
/// win32::system_error_category(): compares equal to the portable std::errc
/// value where there is one (connection refused, unreachable, timed out,
/// cancelled, ...).
inline std::error_code io_error(DWORD code) noexcept
{
    return {static_cast<int>(code), win32::system_error_category()};
}

inline void set_tcp_nodelay(SOCKET s) noexcept
{
    BOOL one = TRUE;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
}

/// An overlapped (WSA_FLAG_OVERLAPPED) TCP socket, or INVALID_SOCKET.
inline SOCKET open_socket(int family) noexcept
{
    return ::WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED);
}

/// A Winsock extension function (ConnectEx, AcceptEx) for socket `s`, or null.
template <class Fn>
Fn extension(SOCKET s, GUID id) noexcept
{
    Fn fn = nullptr;
    DWORD bytes = 0;
    if (::WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &fn, sizeof fn, &bytes, nullptr,
                   nullptr) != 0) {
        return nullptr;
    }
    return fn;
}

/// host:port for connect (passive false) or bind (true); "" is no host.
inline win32::address_list resolve_tcp(const std::string& host, std::uint16_t port, bool passive,
                                       std::error_code& ec) noexcept
{
    return net::resolve<win32::resolver_os>(host.empty() ? nullptr : host.c_str(), port, passive, ec);
}

/// The ConnectEx call of one connect attempt (lives in the coroutine frame).
struct connect_call {
    LPFN_CONNECTEX connect_ex = nullptr;
    const sockaddr* address = nullptr;
    int address_length = 0;

    static int issue(void* context, SOCKET s, OVERLAPPED* overlapped) noexcept
    {
        auto* c = static_cast<connect_call*>(context);
        if (c->connect_ex(s, c->address, c->address_length, nullptr, 0, nullptr, overlapped)) {
            return 0;
        }
        return ::WSAGetLastError();
    }
};

/// The AcceptEx call of one accept (lives in the coroutine frame, with the
/// address block AcceptEx writes into).
struct accept_call {
    static constexpr DWORD address_room = sizeof(sockaddr_in6) + 16; // AcceptEx wants 16 bytes more than the largest address
    LPFN_ACCEPTEX accept_ex = nullptr;
    SOCKET accepted = INVALID_SOCKET;
    char addresses[2 * address_room] = {};
    DWORD received = 0;

    static int issue(void* context, SOCKET listener, OVERLAPPED* overlapped) noexcept
    {
        auto* c = static_cast<accept_call*>(context);
        if (c->accept_ex(listener, c->accepted, c->addresses, 0, address_room, address_room, &c->received,
                         overlapped)) {
            return 0;
        }
        return ::WSAGetLastError();
    }
};

} // namespace detail::win32_tcp

/// Connects to host:port over TCP (TCP_NODELAY set) and returns an OPEN socket
/// on `engine`. Tries each resolved address in turn.
///
/// Resolution never blocks the calling thread (which may be an engine
/// thread): a numeric host (IPv4 / IPv6 literal) or an empty one (loopback)
/// is resolved inline without a lookup (AI_NUMERICHOST); any other name is
/// looked up by getaddrinfo on a thread of its own, and the coroutine resumes
/// on an engine thread of `engine` when it ends (net::resolve_async,
/// asock/resolve.hpp, says exactly how). The connect itself is a ConnectEx
/// completing on a pool thread (or in the caller's loop with `threads = 0`).
///
/// A stop request ends it with std::errc::operation_canceled, at once also
/// during a lookup (which then finishes on its own thread and is discarded).
/// Holds a reference on `engine` until it completes. `ResolverOs` is the OS
/// layer of the lookup (tests substitute one whose getaddrinfo they control).
template <class Platform, class ResolverOs = win32::resolver_os>
task<connect_outcome<Platform>> tcp_connect(typename Platform::engine_type& engine, std::string host,
                                            std::uint16_t port, std::stop_token token = {})
{
    namespace wt = detail::win32_tcp;
    using core_type = typename Platform::core_type;
    engine.inc_ref();
    const engine_ref<typename Platform::engine_type> hold(&engine);
    net::resolve_outcome<ResolverOs> resolved =
        co_await net::resolve_async<ResolverOs>(engine, std::move(host), port, token);
    if (!resolved) {
        co_return connect_outcome<Platform>{resolved.error, {}};
    }
    std::error_code ec = wt::io_error(WSAECONNREFUSED); // an empty list: nothing to connect to
    for (const addrinfo& ai : resolved.addresses) {
        if (token.stop_requested()) {
            co_return connect_outcome<Platform>{std::make_error_code(std::errc::operation_canceled), {}};
        }
        const SOCKET s = wt::open_socket(ai.ai_family);
        if (s == INVALID_SOCKET) {
            ec = wt::last_error();
            continue;
        }
        // ConnectEx needs a bound socket: any local address of the family.
        sockaddr_storage local{};
        local.ss_family = static_cast<decltype(local.ss_family)>(ai.ai_family);
        const int local_length = ai.ai_family == AF_INET6 ? static_cast<int>(sizeof(sockaddr_in6))
                                                           : static_cast<int>(sizeof(sockaddr_in));
        const auto connect_ex = wt::extension<LPFN_CONNECTEX>(s, WSAID_CONNECTEX);
        if (connect_ex == nullptr || ::bind(s, reinterpret_cast<const sockaddr*>(&local), local_length) != 0) {
            ec = wt::last_error();
            ::closesocket(s);
            continue;
        }
        wt::set_tcp_nodelay(s);
        async_socket<Platform> sock(engine);
        if (sock.open(s) != open_result::ok) {
            ::closesocket(s);
            ec = std::make_error_code(std::errc::not_enough_memory);
            continue;
        }
        wt::connect_call call{connect_ex, ai.ai_addr, static_cast<int>(ai.ai_addrlen)};
        const win32::overlapped_outcome r =
            co_await win32::overlapped_awaitable<core_type>(sock.core(), &wt::connect_call::issue, &call, token);
        if (r.result == notify_io_result::cancelled) {
            co_return connect_outcome<Platform>{std::make_error_code(std::errc::operation_canceled), {}};
        }
        if (r.result != notify_io_result::in) {
            ec = r.result == notify_io_result::error ? wt::io_error(r.io_result)
                                                     : wt::io_error(WSAECONNABORTED);
            continue; // `sock` closes s
        }
        // Makes getpeername, shutdown and the like work on the connected socket.
        if (::setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0) {
            ec = wt::last_error();
            continue;
        }
        co_return connect_outcome<Platform>{std::error_code{}, std::move(sock)};
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
    /// ephemeral port, see port()) and listens. SO_EXCLUSIVEADDRUSE is set
    /// (on Windows SO_REUSEADDR would let another socket take the port).
    /// Errors: a resolution error, the socket / bind / listen error of the
    /// last address tried, or not_enough_memory.
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
    /// listener's engine; resumes on a pool thread. Several accepts may be
    /// outstanding at once. Errors: std::errc::operation_canceled after a stop
    /// request; bad_file_descriptor once the listener is closed; the socket or
    /// AcceptEx error otherwise. A client that resets before it is accepted is
    /// skipped.
    task<accept_outcome<Platform>> accept(std::stop_token token = {})
    {
        namespace wt = detail::win32_tcp;
        using core_type = typename Platform::core_type;
        for (;;) {
            if (!valid()) {
                co_return accept_outcome<Platform>{std::make_error_code(std::errc::bad_file_descriptor), {}};
            }
            wt::accept_call call;
            call.accept_ex = accept_ex_;
            call.accepted = wt::open_socket(family_);
            if (call.accepted == INVALID_SOCKET) {
                co_return accept_outcome<Platform>{wt::last_error(), {}};
            }
            const win32::overlapped_outcome r = co_await win32::overlapped_awaitable<core_type>(
                socket_.core(), &wt::accept_call::issue, &call, token);
            if (r.result == notify_io_result::in) {
                SOCKET listening = socket_.native_handle();
                if (::setsockopt(call.accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                                 reinterpret_cast<const char*>(&listening), sizeof listening) != 0) {
                    const std::error_code e = wt::last_error();
                    ::closesocket(call.accepted);
                    co_return accept_outcome<Platform>{e, {}};
                }
                wt::set_tcp_nodelay(call.accepted);
                async_socket<Platform> s(socket_.engine());
                if (s.open(call.accepted) != open_result::ok) {
                    ::closesocket(call.accepted);
                    co_return accept_outcome<Platform>{std::make_error_code(std::errc::not_enough_memory), {}};
                }
                co_return accept_outcome<Platform>{std::error_code{}, std::move(s)};
            }
            ::closesocket(call.accepted);
            if (r.result == notify_io_result::cancelled) {
                co_return accept_outcome<Platform>{std::make_error_code(std::errc::operation_canceled), {}};
            }
            if (r.result != notify_io_result::error) {
                co_return accept_outcome<Platform>{std::make_error_code(std::errc::bad_file_descriptor), {}};
            }
            if (r.io_result == ERROR_NETNAME_DELETED || r.io_result == ERROR_CONNECTION_ABORTED ||
                r.io_result == WSAECONNRESET) {
                continue; // the client went away before it was accepted
            }
            co_return accept_outcome<Platform>{wt::io_error(r.io_result), {}};
        }
    }

    /// Stops listening; a pending accept completes with bad_file_descriptor.
    void close() noexcept { socket_.close(); }

private:
    static std::error_code listen_into(tcp_listener& l, engine_type& engine, const std::string& host,
                                       std::uint16_t port, int backlog)
    {
        namespace wt = detail::win32_tcp;
        std::error_code ec;
        const win32::address_list addrs = wt::resolve_tcp(host, port, true, ec);
        if (ec) {
            return ec;
        }
        ec = wt::io_error(WSAEADDRNOTAVAIL); // an empty list: nothing to bind
        for (const addrinfo& ai : addrs) {
            const SOCKET s = wt::open_socket(ai.ai_family);
            if (s == INVALID_SOCKET) {
                ec = wt::last_error();
                continue;
            }
            BOOL one = TRUE;
            ::setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&one), sizeof one);
            const auto accept_ex = wt::extension<LPFN_ACCEPTEX>(s, WSAID_ACCEPTEX);
            if (accept_ex == nullptr || ::bind(s, ai.ai_addr, static_cast<int>(ai.ai_addrlen)) != 0 ||
                ::listen(s, backlog) != 0) {
                ec = wt::last_error();
                ::closesocket(s);
                continue;
            }
            sockaddr_storage bound{};
            int len = sizeof bound;
            ::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &len);
            l.port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                                        : reinterpret_cast<sockaddr_in&>(bound).sin_port);
            l.family_ = ai.ai_family;
            l.accept_ex_ = accept_ex;
            l.socket_ = async_socket<Platform>(engine);
            if (l.socket_.open(s) != open_result::ok) {
                ::closesocket(s);
                ec = std::make_error_code(std::errc::not_enough_memory);
                return ec;
            }
            return {};
        }
        return ec;
    }

    async_socket<Platform> socket_;
    std::uint16_t port_ = 0;
    int family_ = AF_INET;
    LPFN_ACCEPTEX accept_ex_ = nullptr;
};

} // namespace asock

// tcp_connect with a deadline (written once for every backend).
#include <asock/tcp_deadline.hpp>
