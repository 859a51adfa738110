// asock/c/detail/socket_transport_win32.hpp: the OS layer of the C API's
// socket transport over Winsock TCP sockets. Part of socket_transport.hpp,
// which holds the logic and includes this; include implementation.hpp.
//
// Built from Winsock's portable calls only (socket, connect, accept, WSASend /
// WSARecv without OVERLAPPED, select), so it builds with MSVC and with
// mingw-w64 alike:
// - Every socket a transport holds is in non-blocking mode (FIONBIO), so the
//   transport's own calls never block in the kernel. async_socket_open_async
//   switches the socket back to blocking mode before the threadpool IO takes
//   it over (set_nonblocking(s, false)), so the overlapped WSASend / WSARecv
//   of the async socket never depend on how a Winsock provider treats
//   overlapped calls on non-blocking sockets.
// - Waits use select() in slices of at most `wait_slice` and look at the
//   transport's `closing` flag between slices: on Windows, shutdown() does not
//   wake a select() on a listening socket, and closing a socket under a
//   waiting thread would let a reused handle value reach the wrong socket.
// - Each transport holds its own Winsock reference (WSAStartup in create,
//   WSACleanup in destroy; Winsock counts them), so a transport works whether
//   or not the caller called platform_init.
// - Sockets are made non-inheritable by hand (POSIX: SOCK_CLOEXEC).
// - Names are resolved by asock/resolve.hpp over asock::win32::resolver_os
//   (asock/win32/tcp_win32.hpp), as the C++ TCP helpers resolve them.
#pragma once

#ifndef ASOCK_C_SOCKET_TRANSPORT_OS_LAYER
#error "include asock/c/implementation.hpp (socket_transport_win32.hpp is part of detail/socket_transport.hpp)"
#endif

#include <asock/win32/tcp_win32.hpp> // asock::win32::resolver_os
#include <asock/win32/win32_api.hpp> // <winsock2.h>, <ws2tcpip.h>, <windows.h> in the right order

#include <algorithm>

namespace asock::c_api::transport::os {

using native_socket = SOCKET;
inline constexpr native_socket invalid_socket = INVALID_SOCKET;

/// The OS layer of name resolution (asock/resolve.hpp).
using resolver = asock::win32::resolver_os;

/// Holds one Winsock reference for as long as it lives.
struct library_ref {
    bool started = false;
    library_ref() noexcept
    {
        WSADATA data;
        started = ::WSAStartup(MAKEWORD(2, 2), &data) == 0;
    }
    library_ref(const library_ref&) = delete;
    library_ref& operator=(const library_ref&) = delete;
    ~library_ref()
    {
        if (started) {
            ::WSACleanup();
        }
    }
    bool ok() const noexcept { return started; }
};

/// A Winsock SOCKET travels in a pointer-sized SOCKET_HANDLE.
inline native_socket to_socket(SOCKET_HANDLE h) noexcept
{
    return static_cast<SOCKET>(reinterpret_cast<std::uintptr_t>(h));
}
inline SOCKET_HANDLE to_socket_handle(native_socket s) noexcept
{
    return reinterpret_cast<SOCKET_HANDLE>(static_cast<std::uintptr_t>(s));
}

inline void close_socket(native_socket s) noexcept { ::closesocket(s); }
inline void shutdown_both(native_socket s) noexcept { ::shutdown(s, SD_BOTH); }

inline void set_nodelay(native_socket s) noexcept
{
    BOOL one = TRUE;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
}

inline bool set_nonblocking(native_socket s, bool on = true) noexcept
{
    u_long mode = on ? 1u : 0u;
    return ::ioctlsocket(s, FIONBIO, &mode) == 0;
}

/// The socket handle is not inherited by child processes (POSIX: SOCK_CLOEXEC).
inline void set_not_inherited(native_socket s) noexcept
{
    ::SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
}

inline bool is_socket(native_socket s) noexcept
{
    int type = 0;
    int len = sizeof type;
    return ::getsockopt(s, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) == 0;
}

inline bool is_listening(native_socket s) noexcept
{
    BOOL listening = FALSE;
    int len = sizeof listening;
    return ::getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, reinterpret_cast<char*>(&listening), &len) == 0 &&
           listening != FALSE;
}

/// A new socket like the POSIX transport's: non-blocking, not inherited.
inline native_socket open_socket(int family, int socktype, int protocol) noexcept
{
    const SOCKET s = ::socket(family, socktype, protocol); // overlapped-capable by default
    if (s == INVALID_SOCKET) {
        return s;
    }
    set_not_inherited(s);
    if (!set_nonblocking(s)) {
        ::closesocket(s);
        return INVALID_SOCKET;
    }
    return s;
}

inline constexpr std::chrono::milliseconds wait_slice{50};

/// select() on `s` for `event` until `deadline`, in slices, returning
/// `closing` early when `closing` is set. A writable wait also watches the
/// exception set, where a failed non-blocking connect shows (not in the write
/// set); an exception is `failed`.
inline wait_status wait_for(const std::atomic<bool>& closing, native_socket s, wait_event event,
                            clock::time_point deadline) noexcept
{
    for (;;) {
        if (closing.load(std::memory_order_acquire)) {
            return wait_status::closing;
        }
        auto slice = std::chrono::duration_cast<std::chrono::microseconds>(wait_slice);
        if (deadline != no_deadline) {
            const auto left = std::chrono::ceil<std::chrono::microseconds>(deadline - clock::now());
            if (left.count() <= 0) {
                return wait_status::timed_out;
            }
            slice = std::min(slice, left);
        }
        fd_set r;
        fd_set w;
        fd_set x;
        FD_ZERO(&r);
        FD_ZERO(&w);
        FD_ZERO(&x);
        if (event == wait_event::readable) {
            FD_SET(s, &r);
        } else {
            FD_SET(s, &w);
            FD_SET(s, &x);
        }
        timeval tv;
        tv.tv_sec = static_cast<long>(slice.count() / 1000000);
        tv.tv_usec = static_cast<long>(slice.count() % 1000000);
        const int n = ::select(0, &r, &w, &x, &tv); // the first argument is ignored on Windows
        if (n == SOCKET_ERROR) {
            return wait_status::failed;
        }
        if (n > 0) {
            return FD_ISSET(s, &x) != 0 ? wait_status::failed : wait_status::ready;
        }
    }
}

inline connect_status start_connect(native_socket s, const addrinfo& ai) noexcept
{
    if (::connect(s, ai.ai_addr, static_cast<int>(ai.ai_addrlen)) == 0) {
        return connect_status::connected;
    }
    return ::WSAGetLastError() == WSAEWOULDBLOCK ? connect_status::pending : connect_status::failed;
}

/// After a pending connect's socket became writable: whether it connected.
inline bool connect_succeeded(native_socket s) noexcept
{
    int err = 0;
    int len = sizeof err;
    return ::getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len) == 0 && err == 0;
}

inline bool bind_and_listen(native_socket s, const addrinfo& ai) noexcept
{
    // No SO_REUSEADDR (the POSIX transport sets it): on Windows it would let
    // another socket bind a port that is in use, and Windows already lets a
    // listener bind a port whose old connections are in TIME_WAIT.
    return ::bind(s, ai.ai_addr, static_cast<int>(ai.ai_addrlen)) == 0 && ::listen(s, SOMAXCONN) == 0;
}

inline accept_status accept_one(native_socket listener, native_socket& accepted) noexcept
{
    accepted = ::accept(listener, nullptr, nullptr);
    if (accepted != INVALID_SOCKET) {
        set_not_inherited(accepted);
        if (!set_nonblocking(accepted)) { // accepted sockets inherit the mode; make sure
            ::closesocket(accepted);
            accepted = INVALID_SOCKET;
            return accept_status::failed;
        }
        return accept_status::accepted;
    }
    const int e = ::WSAGetLastError();
    if (e == WSAECONNRESET || e == WSAEINTR) {
        return accept_status::retry; // the client gave up before we accepted: wait for the next one
    }
    if (e == WSAEMFILE || e == WSAENOBUFS) {
        return accept_status::exhausted;
    }
    return e == WSAEWOULDBLOCK ? accept_status::would_block : accept_status::failed;
}

// ---- send and receive -------------------------------------------------------

using io_buffer = WSABUF;

inline void point(io_buffer& b, unsigned char* data, std::uint32_t length) noexcept
{
    b.buf = reinterpret_cast<char*>(data);
    b.len = length;
}

/// `flags` go to WSASend unchanged: Winsock has no MSG_DONTWAIT (nor
/// MSG_NOSIGNAL: it never raises SIGPIPE), so a send always waits for room.
inline bool send_returns_when_full(std::uint32_t /*flags*/) noexcept { return false; }

inline bool is_connection_gone(int e) noexcept
{
    return e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAENOTCONN || e == WSAESHUTDOWN ||
           e == WSAENETRESET || e == WSAEDISCON;
}

/// would_block, gone or failed for the error `e` of a send or receive
/// (WSAGetLastError keeps it).
inline io_status classify(int e) noexcept
{
    if (e == WSAEWOULDBLOCK) {
        return io_status::would_block;
    }
    return is_connection_gone(e) ? io_status::gone : io_status::failed;
}

/// Runs `call` (a WSASend / WSARecv without OVERLAPPED) again while it is
/// interrupted; success is `done`, a failure is classified.
template <class Call>
io_status transfer(std::uint32_t& n, Call call) noexcept
{
    DWORD moved = 0;
    int rc;
    do {
        rc = call(moved);
    } while (rc != 0 && ::WSAGetLastError() == WSAEINTR);
    if (rc != 0) {
        return classify(::WSAGetLastError());
    }
    n = static_cast<std::uint32_t>(moved);
    return io_status::done;
}

inline io_status send_some(native_socket s, io_buffer* bufs, std::uint32_t count, std::uint32_t flags,
                           std::uint32_t& n) noexcept
{
    return transfer(n, [&](DWORD& moved) {
        return ::WSASend(s, bufs, count, &moved, static_cast<DWORD>(flags), nullptr, nullptr);
    });
}

inline io_status receive_some(native_socket s, io_buffer* bufs, std::uint32_t count, std::uint32_t flags,
                              std::uint32_t& n) noexcept
{
    DWORD in_out_flags = static_cast<DWORD>(flags);
    return transfer(n, [&](DWORD& moved) {
        return ::WSARecv(s, bufs, count, &moved, &in_out_flags, nullptr, nullptr);
    });
}

// ---- local addresses ----------------------------------------------------------

/// The host name's resolution is a list of answers, not of interfaces, and may
/// give an address more than once: each is listed once.
inline constexpr bool list_each_address_once = true;

/// Calls `use(for_each_address)` with the addresses the host's own name
/// resolves to (no IP Helper dependency); `for_each_address(visit)` calls
/// `visit(const sockaddr&)` for each. When the name does not resolve the list
/// is empty. Returns what `use` returns.
template <class Use>
bool with_local_addresses(const char* hostname, Use&& use) noexcept
{
    std::error_code ec;
    const asock::net::address_list<resolver> addrs = asock::net::resolve_host<resolver>(hostname, ec);
    const auto for_each_address = [&addrs](auto&& visit) {
        for (const addrinfo& ai : addrs) {
            if (ai.ai_addr != nullptr) {
                visit(*ai.ai_addr);
            }
        }
    };
    return use(for_each_address);
}

} // namespace asock::c_api::transport::os
