// asock/c/detail/socket_transport_win32.hpp: the socket transport of asock's
// C API over Winsock TCP sockets. Part of implementation.hpp; include that.
//
// The same contract as the POSIX transport (socket_transport_posix.hpp, and
// docs/c_api.md), built from Winsock's portable calls only (socket, connect,
// accept, WSASend / WSARecv without OVERLAPPED, select), so it builds with
// MSVC and with mingw-w64 alike:
// - Every socket a transport holds is in non-blocking mode (FIONBIO), so the
//   transport's own calls never block in the kernel: send waits for
//   writability, accept and connect wait at most their timeout, and receive
//   never waits. async_socket_open_async switches the socket back to blocking
//   mode before the threadpool IO takes it over (see set_blocking), so the
//   overlapped WSASend / WSARecv of the async socket never depend on how a
//   Winsock provider treats overlapped calls on non-blocking sockets.
// - Waits use select() in slices of at most `wait_slice` and look at the
//   transport's `closing` flag between slices: on Windows, shutdown() does not
//   wake a select() on a listening socket, and closing a socket under a
//   waiting thread would let a reused handle value reach the wrong socket.
// - Each transport holds its own Winsock reference (WSAStartup in create,
//   WSACleanup in destroy; Winsock counts them), so a transport works whether
//   or not the caller called platform_init.
//
// Concurrency: as on POSIX. send, receive, accept and the queries may run
// concurrently on one transport; disconnect may run at any time, makes a
// waiting send or accept return, and closes the socket once they have left.
// connect, listen and destroy must not race with other calls on the same
// transport.
#pragma once

#include <asock/c/socket_transport.h>
#include <asock/win32/win32_api.hpp> // <winsock2.h>, <ws2tcpip.h>, <windows.h> in the right order

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <shared_mutex>

namespace asock::c_api::transport {

/// Holds one Winsock reference for the lifetime of a transport.
struct winsock_ref {
    bool started = false;
    winsock_ref() noexcept
    {
        WSADATA data;
        started = ::WSAStartup(MAKEWORD(2, 2), &data) == 0;
    }
    winsock_ref(const winsock_ref&) = delete;
    winsock_ref& operator=(const winsock_ref&) = delete;
    ~winsock_ref()
    {
        if (started) {
            ::WSACleanup();
        }
    }
};

} // namespace asock::c_api::transport

struct SOCKET_TRANSPORT_TAG {
    explicit SOCKET_TRANSPORT_TAG(SOCKET_TYPE t, SOCKET s = INVALID_SOCKET) noexcept : type(t), fd(s) {}

    asock::c_api::transport::winsock_ref winsock; ///< first member: started before, cleaned up after the socket
    const SOCKET_TYPE type;
    std::atomic<SOCKET> fd; ///< INVALID_SOCKET: no socket. Changed under `io` held exclusively.
    /// Held shared by every call that uses the socket, exclusively to install
    /// or retire it, so a socket is never closed under a user.
    std::shared_mutex io;
    std::mutex disconnect_mu;        ///< Serialises disconnects.
    std::atomic<bool> closing{false}; ///< A disconnect is waiting for the users to leave.
};

namespace asock::c_api::transport {

using clock = std::chrono::steady_clock;

inline constexpr DWORD max_wsabuf = 64;
inline constexpr std::chrono::milliseconds wait_slice{50};

/// A transport with Winsock started, or nullptr (nothing leaked).
inline SOCKET_TRANSPORT_TAG* new_transport(SOCKET_TYPE type, SOCKET s = INVALID_SOCKET) noexcept
{
    auto* t = new (std::nothrow) SOCKET_TRANSPORT_TAG(type, s);
    if (t != nullptr && !t->winsock.started) {
        delete t;
        return nullptr;
    }
    return t;
}

inline void set_nodelay(SOCKET s) noexcept
{
    BOOL one = TRUE;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
}

inline bool set_nonblocking(SOCKET s, bool on) noexcept
{
    u_long mode = on ? 1u : 0u;
    return ::ioctlsocket(s, FIONBIO, &mode) == 0;
}

/// The socket handle is not inherited by child processes (POSIX: SOCK_CLOEXEC).
inline void set_not_inherited(SOCKET s) noexcept
{
    ::SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
}

/// A new TCP socket like the POSIX transport's: non-blocking, not inherited.
inline SOCKET new_socket(int family, int socktype, int protocol) noexcept
{
    const SOCKET s = ::socket(family, socktype, protocol); // overlapped-capable by default
    if (s == INVALID_SOCKET) {
        return s;
    }
    set_not_inherited(s);
    if (!set_nonblocking(s, true)) {
        ::closesocket(s);
        return INVALID_SOCKET;
    }
    return s;
}

enum class wait_status { ready, timed_out, closing, failed };

enum wait_events : unsigned { wait_read = 1, wait_write = 2, wait_except = 4 };

/// select() on `s` for `events` until `deadline` (clock::time_point::max():
/// no limit), in slices, returning early when `t` starts closing.
/// `exceptional` (may be null) is set when the socket reported an exception
/// (a failed non-blocking connect).
inline wait_status wait_for(SOCKET_TRANSPORT_TAG& t, SOCKET s, unsigned events, clock::time_point deadline,
                            bool* exceptional = nullptr) noexcept
{
    for (;;) {
        if (t.closing.load(std::memory_order_acquire)) {
            return wait_status::closing;
        }
        auto slice = std::chrono::duration_cast<std::chrono::microseconds>(wait_slice);
        if (deadline != clock::time_point::max()) {
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
        if ((events & wait_read) != 0) {
            FD_SET(s, &r);
        }
        if ((events & wait_write) != 0) {
            FD_SET(s, &w);
        }
        if ((events & wait_except) != 0) {
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
            if (exceptional != nullptr) {
                *exceptional = FD_ISSET(s, &x) != 0;
            }
            return wait_status::ready;
        }
    }
}

inline clock::time_point deadline_after(std::uint32_t ms) noexcept
{
    return clock::now() + std::chrono::milliseconds(ms);
}

/// Installs `s` as the transport's socket. Returns false (and leaves `s` to
/// the caller) when the transport already has one.
inline bool install(SOCKET_TRANSPORT_TAG& t, SOCKET s) noexcept
{
    std::unique_lock lk(t.io);
    SOCKET expected = INVALID_SOCKET;
    return t.fd.compare_exchange_strong(expected, s, std::memory_order_acq_rel);
}

struct addrinfo_list {
    addrinfo* head = nullptr;
    addrinfo_list() = default;
    addrinfo_list(const addrinfo_list&) = delete;
    addrinfo_list& operator=(const addrinfo_list&) = delete;
    ~addrinfo_list()
    {
        if (head != nullptr) {
            ::freeaddrinfo(head);
        }
    }
};

inline bool resolve(const char* host, std::uint16_t port, bool passive, addrinfo_list& out) noexcept
{
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    char service[8];
    std::snprintf(service, sizeof service, "%u", static_cast<unsigned>(port));
    return ::getaddrinfo(host, service, &hints, &out.head) == 0;
}

/// One non-blocking connect attempt to `ai`, waiting until `deadline`.
/// Returns the connected socket or INVALID_SOCKET.
inline SOCKET connect_one(SOCKET_TRANSPORT_TAG& t, const addrinfo& ai, clock::time_point deadline) noexcept
{
    const SOCKET s = new_socket(ai.ai_family, ai.ai_socktype, ai.ai_protocol);
    if (s == INVALID_SOCKET) {
        return s;
    }
    if (::connect(s, ai.ai_addr, static_cast<int>(ai.ai_addrlen)) != 0) {
        // A failed non-blocking connect shows in the exception set, not the write set.
        bool failed = false;
        if (::WSAGetLastError() != WSAEWOULDBLOCK ||
            wait_for(t, s, wait_write | wait_except, deadline, &failed) != wait_status::ready || failed) {
            ::closesocket(s);
            return INVALID_SOCKET;
        }
        int err = 0;
        int len = sizeof err;
        if (::getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len) != 0 || err != 0) {
            ::closesocket(s);
            return INVALID_SOCKET;
        }
    }
    set_nodelay(s);
    return s;
}

inline int listen_on(SOCKET_TRANSPORT_TAG* t, const char* address, std::uint16_t port) noexcept
{
    if (t == nullptr || t->type != SOCKET_BINDING || t->fd.load(std::memory_order_acquire) != INVALID_SOCKET) {
        return 1;
    }
    addrinfo_list addrs;
    sockaddr_in any{};
    addrinfo fallback{};
    const addrinfo* first;
    if (address == nullptr) {
        any.sin_family = AF_INET;
        any.sin_port = ::htons(port);
        any.sin_addr.s_addr = ::htonl(INADDR_ANY);
        fallback.ai_family = AF_INET;
        fallback.ai_socktype = SOCK_STREAM;
        fallback.ai_protocol = IPPROTO_TCP;
        fallback.ai_addr = reinterpret_cast<sockaddr*>(&any);
        fallback.ai_addrlen = sizeof any;
        first = &fallback;
    } else {
        if (!resolve(address, port, true, addrs)) {
            return 1;
        }
        first = addrs.head;
    }
    for (const addrinfo* ai = first; ai != nullptr; ai = ai->ai_next) {
        const SOCKET s = new_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (s == INVALID_SOCKET) {
            continue;
        }
        // No SO_REUSEADDR (the POSIX transport sets it): on Windows it would
        // let another socket bind a port that is in use, and Windows already
        // lets a listener bind a port whose old connections are in TIME_WAIT.
        if (::bind(s, ai->ai_addr, static_cast<int>(ai->ai_addrlen)) != 0 || ::listen(s, SOMAXCONN) != 0 ||
            !install(*t, s)) {
            ::closesocket(s);
            continue;
        }
        return 0;
    }
    return 1;
}

/// Sums a SOCKET_BUFFER array; false when it is not a valid payload.
inline bool payload_total(const SOCKET_BUFFER* payload, std::uint32_t count, std::uint32_t& total) noexcept
{
    if (payload == nullptr || count == 0) {
        return false;
    }
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (payload[i].buffer == nullptr && payload[i].length != 0) {
            return false;
        }
        sum += payload[i].length;
    }
    if (sum > std::numeric_limits<std::uint32_t>::max()) {
        return false;
    }
    total = static_cast<std::uint32_t>(sum);
    return true;
}

/// Fills `bufs` with the bytes of `payload` from byte `skip` on; returns the entry count.
inline DWORD gather(const SOCKET_BUFFER* payload, std::uint32_t count, std::uint32_t skip,
                    WSABUF (&bufs)[max_wsabuf]) noexcept
{
    DWORD n = 0;
    for (std::uint32_t i = 0; i < count && n < max_wsabuf; ++i) {
        if (skip >= payload[i].length) {
            skip -= payload[i].length;
            continue;
        }
        bufs[n].buf = reinterpret_cast<char*>(payload[i].buffer + skip);
        bufs[n].len = payload[i].length - skip;
        skip = 0;
        ++n;
    }
    return n;
}

inline bool is_connection_gone(int e) noexcept
{
    return e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAENOTCONN || e == WSAESHUTDOWN ||
           e == WSAENETRESET || e == WSAEDISCON;
}

inline SOCKET to_socket(SOCKET_HANDLE h) noexcept { return static_cast<SOCKET>(reinterpret_cast<std::uintptr_t>(h)); }
inline SOCKET_HANDLE to_socket_handle(SOCKET s) noexcept
{
    return reinterpret_cast<SOCKET_HANDLE>(static_cast<std::uintptr_t>(s));
}

} // namespace asock::c_api::transport

extern "C" {

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_client(void)
{
    return asock::c_api::transport::new_transport(SOCKET_CLIENT);
}

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_server(void)
{
    return asock::c_api::transport::new_transport(SOCKET_BINDING);
}

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_from_socket(SOCKET_HANDLE socket_handle)
{
    namespace tr = asock::c_api::transport;
    const SOCKET s = tr::to_socket(socket_handle);
    if (s == INVALID_SOCKET) {
        return nullptr;
    }
    // The Winsock reference comes first: the queries below need it.
    auto* t = tr::new_transport(SOCKET_CLIENT);
    if (t == nullptr) {
        return nullptr;
    }
    int type = 0;
    int len = sizeof type;
    BOOL listening = FALSE;
    int listening_len = sizeof listening;
    if (::getsockopt(s, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) != 0 ||
        !tr::set_nonblocking(s, true)) {
        delete t; // not a socket: ownership not taken
        return nullptr;
    }
    if (::getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, reinterpret_cast<char*>(&listening), &listening_len) != 0) {
        listening = FALSE;
    }
    if (listening) {
        auto* server = tr::new_transport(SOCKET_BINDING, s);
        delete t;
        return server;
    }
    t->fd.store(s, std::memory_order_release);
    return t;
}

ASOCK_C_API void socket_transport_disconnect(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    if (socket_transport == nullptr) {
        return;
    }
    std::lock_guard dl(socket_transport->disconnect_mu);
    const SOCKET s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == INVALID_SOCKET) {
        return;
    }
    socket_transport->closing.store(true, std::memory_order_release); // ends waits within one slice
    ::shutdown(s, SD_BOTH);
    {
        std::unique_lock lk(socket_transport->io);
        socket_transport->fd.store(INVALID_SOCKET, std::memory_order_release);
        socket_transport->closing.store(false, std::memory_order_release);
    }
    ::closesocket(s);
}

ASOCK_C_API void socket_transport_destroy(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    if (socket_transport == nullptr) {
        return;
    }
    socket_transport_disconnect(socket_transport);
    delete socket_transport; // drops its Winsock reference last
}

ASOCK_C_API int socket_transport_connect(SOCKET_TRANSPORT_HANDLE socket_transport, const char* hostname, uint16_t port,
                                         uint32_t connection_timeout_ms)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr || hostname == nullptr || socket_transport->type != SOCKET_CLIENT ||
        socket_transport->fd.load(std::memory_order_acquire) != INVALID_SOCKET) {
        return 1;
    }
    tr::addrinfo_list addrs;
    if (!tr::resolve(hostname, port, false, addrs)) {
        return 1;
    }
    const auto deadline = tr::deadline_after(connection_timeout_ms);
    for (const addrinfo* ai = addrs.head; ai != nullptr; ai = ai->ai_next) {
        const SOCKET s = tr::connect_one(*socket_transport, *ai, deadline);
        if (s == INVALID_SOCKET) {
            continue;
        }
        if (!tr::install(*socket_transport, s)) {
            ::closesocket(s);
            return 1;
        }
        return 0;
    }
    return 1;
}

ASOCK_C_API int socket_transport_listen(SOCKET_TRANSPORT_HANDLE socket_transport, uint16_t port)
{
    return asock::c_api::transport::listen_on(socket_transport, nullptr, port);
}

ASOCK_C_API int socket_transport_listen_on(SOCKET_TRANSPORT_HANDLE socket_transport, const char* address, uint16_t port)
{
    return asock::c_api::transport::listen_on(socket_transport, address, port);
}

ASOCK_C_API SOCKET_ACCEPT_RESULT socket_transport_accept(SOCKET_TRANSPORT_HANDLE socket_transport,
                                                         SOCKET_TRANSPORT_HANDLE* accepted_socket,
                                                         uint32_t connection_timeout_ms)
{
    namespace tr = asock::c_api::transport;
    if (accepted_socket != nullptr) {
        *accepted_socket = nullptr;
    }
    if (socket_transport == nullptr || accepted_socket == nullptr || socket_transport->type != SOCKET_BINDING) {
        return SOCKET_ACCEPT_ERROR;
    }
    std::shared_lock lk(socket_transport->io);
    const SOCKET listener = socket_transport->fd.load(std::memory_order_acquire);
    if (listener == INVALID_SOCKET) {
        return SOCKET_ACCEPT_ERROR;
    }
    const auto deadline = tr::deadline_after(connection_timeout_ms);
    for (;;) {
        const SOCKET s = ::accept(listener, nullptr, nullptr);
        if (s != INVALID_SOCKET) {
            tr::set_not_inherited(s);
            if (!tr::set_nonblocking(s, true)) { // accepted sockets inherit the mode; make sure
                ::closesocket(s);
                return SOCKET_ACCEPT_ERROR;
            }
            tr::set_nodelay(s);
            auto* t = tr::new_transport(SOCKET_CLIENT, s);
            if (t == nullptr) {
                ::closesocket(s);
                return SOCKET_ACCEPT_ERROR;
            }
            *accepted_socket = t;
            return SOCKET_ACCEPT_OK;
        }
        const int e = ::WSAGetLastError();
        if (e == WSAECONNRESET || e == WSAEINTR) {
            continue; // the client gave up before we accepted: wait for the next one
        }
        if (e == WSAEMFILE || e == WSAENOBUFS) {
            return SOCKET_ACCEPT_PORT_EXHAUSTION;
        }
        if (e != WSAEWOULDBLOCK) {
            return SOCKET_ACCEPT_ERROR;
        }
        switch (tr::wait_for(*socket_transport, listener, tr::wait_read, deadline)) {
        case tr::wait_status::ready: break;
        case tr::wait_status::timed_out: return SOCKET_ACCEPT_NO_CONNECTION; // nothing arrived in time
        default: return SOCKET_ACCEPT_ERROR;                                   // disconnected, or failed
        }
    }
}

ASOCK_C_API SOCKET_SEND_RESULT socket_transport_send(SOCKET_TRANSPORT_HANDLE socket_transport,
                                                     const SOCKET_BUFFER* payload, uint32_t buffer_count,
                                                     uint32_t* bytes_sent, uint32_t flags, void* data)
{
    namespace tr = asock::c_api::transport;
    (void)data; // the reference implementation's OVERLAPPED; the async socket makes its own calls
    if (bytes_sent != nullptr) {
        *bytes_sent = 0;
    }
    std::uint32_t total = 0;
    if (socket_transport == nullptr || !tr::payload_total(payload, buffer_count, total)) {
        return SOCKET_SEND_INVALID_ARG;
    }
    std::shared_lock lk(socket_transport->io);
    const SOCKET s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == INVALID_SOCKET) {
        return SOCKET_SEND_FAILED;
    }
    std::uint32_t sent = 0;
    SOCKET_SEND_RESULT result = SOCKET_SEND_OK;
    while (sent < total) {
        WSABUF bufs[tr::max_wsabuf];
        const DWORD count = tr::gather(payload, buffer_count, sent, bufs);
        DWORD n = 0;
        if (::WSASend(s, bufs, count, &n, static_cast<DWORD>(flags), nullptr, nullptr) == 0) {
            sent += static_cast<std::uint32_t>(n);
            continue;
        }
        const int e = ::WSAGetLastError();
        if (e == WSAEINTR) {
            continue;
        }
        if (e == WSAEWOULDBLOCK) {
            const tr::wait_status w =
                tr::wait_for(*socket_transport, s, tr::wait_write | tr::wait_except, tr::clock::time_point::max());
            if (w == tr::wait_status::closing) {
                result = SOCKET_SEND_SHUTDOWN; // disconnected while waiting
                break;
            }
            continue; // ready, or failed: the next WSASend reports why
        }
        ::WSASetLastError(e);
        result = tr::is_connection_gone(e) ? SOCKET_SEND_SHUTDOWN : SOCKET_SEND_ERROR;
        break;
    }
    if (bytes_sent != nullptr) {
        *bytes_sent = sent;
    }
    return result;
}

ASOCK_C_API SOCKET_RECEIVE_RESULT socket_transport_receive(SOCKET_TRANSPORT_HANDLE socket_transport,
                                                           SOCKET_BUFFER* payload, uint32_t buffer_count,
                                                           uint32_t* bytes_recv, uint32_t flags, void* data)
{
    namespace tr = asock::c_api::transport;
    (void)data; // the reference implementation's OVERLAPPED; the async socket makes its own calls
    if (bytes_recv != nullptr) {
        *bytes_recv = 0;
    }
    std::uint32_t total = 0;
    if (socket_transport == nullptr || !tr::payload_total(payload, buffer_count, total) || total == 0) {
        return SOCKET_RECEIVE_INVALID_ARG;
    }
    std::shared_lock lk(socket_transport->io);
    const SOCKET s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == INVALID_SOCKET) {
        return SOCKET_RECEIVE_ERROR;
    }
    WSABUF bufs[tr::max_wsabuf];
    const DWORD count = tr::gather(payload, buffer_count, 0, bufs);
    DWORD n = 0;
    DWORD in_out_flags = static_cast<DWORD>(flags);
    int rc;
    do {
        rc = ::WSARecv(s, bufs, count, &n, &in_out_flags, nullptr, nullptr);
    } while (rc != 0 && ::WSAGetLastError() == WSAEINTR);
    if (rc == 0) {
        if (n == 0) {
            return SOCKET_RECEIVE_SHUTDOWN; // the peer closed its side
        }
        if (bytes_recv != nullptr) {
            *bytes_recv = static_cast<std::uint32_t>(n);
        }
        return SOCKET_RECEIVE_OK;
    }
    const int e = ::WSAGetLastError();
    if (e == WSAEWOULDBLOCK) {
        return SOCKET_RECEIVE_WOULD_BLOCK;
    }
    return tr::is_connection_gone(e) ? SOCKET_RECEIVE_SHUTDOWN : SOCKET_RECEIVE_ERROR;
}

ASOCK_C_API SOCKET_HANDLE socket_transport_get_underlying_socket(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr) {
        return tr::to_socket_handle(INVALID_SOCKET);
    }
    return tr::to_socket_handle(socket_transport->fd.load(std::memory_order_acquire));
}

ASOCK_C_API bool socket_transport_is_valid_socket(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    return socket_transport != nullptr && socket_transport->fd.load(std::memory_order_acquire) != INVALID_SOCKET;
}

ASOCK_C_API int socket_transport_get_local_port(SOCKET_TRANSPORT_HANDLE socket_transport, uint16_t* port)
{
    if (socket_transport == nullptr || port == nullptr) {
        return 1;
    }
    std::shared_lock lk(socket_transport->io);
    const SOCKET s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == INVALID_SOCKET) {
        return 1;
    }
    sockaddr_storage bound{};
    int len = sizeof bound;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
        return 1;
    }
    if (bound.ss_family == AF_INET) {
        sockaddr_in v4;
        std::memcpy(&v4, &bound, sizeof v4);
        *port = ::ntohs(v4.sin_port);
    } else if (bound.ss_family == AF_INET6) {
        sockaddr_in6 v6;
        std::memcpy(&v6, &bound, sizeof v6);
        *port = ::ntohs(v6.sin6_port);
    } else {
        return 1;
    }
    return 0;
}

ASOCK_C_API int socket_transport_get_local_address(SOCKET_TRANSPORT_HANDLE socket_transport,
                                                   char hostname[MAX_GET_HOST_NAME_LEN],
                                                   LOCAL_ADDRESS** local_address_list, uint32_t* address_count)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr || hostname == nullptr || local_address_list == nullptr ||
        address_count == nullptr) {
        return 1;
    }
    if (::gethostname(hostname, MAX_GET_HOST_NAME_LEN) != 0) {
        return 1;
    }
    hostname[MAX_GET_HOST_NAME_LEN - 1] = '\0';
    // The host's addresses, as its own name resolves them (no IP Helper
    // dependency): each IPv4 / IPv6 address once.
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    tr::addrinfo_list addrs;
    if (::getaddrinfo(hostname, nullptr, &hints, &addrs.head) != 0) {
        addrs.head = nullptr;
    }
    std::uint32_t n = 0;
    for (const addrinfo* ai = addrs.head; ai != nullptr; ai = ai->ai_next) {
        ++n;
    }
    auto* list = static_cast<LOCAL_ADDRESS*>(std::malloc(sizeof(LOCAL_ADDRESS) * (n == 0 ? 1 : n)));
    if (list == nullptr) {
        return 1;
    }
    std::uint32_t used = 0;
    for (const addrinfo* ai = addrs.head; ai != nullptr && used < n; ai = ai->ai_next) {
        LOCAL_ADDRESS& a = list[used];
        const char* text = nullptr;
        if (ai->ai_family == AF_INET) {
            sockaddr_in v4;
            std::memcpy(&v4, ai->ai_addr, sizeof v4);
            text = ::inet_ntop(AF_INET, &v4.sin_addr, a.address, sizeof a.address);
            a.address_type = ADDRESS_INET;
        } else if (ai->ai_family == AF_INET6) {
            sockaddr_in6 v6;
            std::memcpy(&v6, ai->ai_addr, sizeof v6);
            // Only addresses whose text fits MAX_LOCAL_ADDRESS_LEN are listed.
            text = ::inet_ntop(AF_INET6, &v6.sin6_addr, a.address, sizeof a.address);
            a.address_type = ADDRESS_INET_6;
        }
        if (text == nullptr) {
            continue;
        }
        bool duplicate = false;
        for (std::uint32_t i = 0; i < used && !duplicate; ++i) {
            duplicate = list[i].address_type == a.address_type && std::strcmp(list[i].address, a.address) == 0;
        }
        if (!duplicate) {
            ++used;
        }
    }
    *local_address_list = list;
    *address_count = used;
    return 0;
}

} // extern "C"
