// asock/c/detail/socket_transport.hpp: the socket transport of asock's C API
// (TCP clients and servers; docs/c_api.md). Part of implementation.hpp;
// include that.
//
// The logic is written once here, over a small layer of OS primitives in
// namespace `os`: socket_transport_posix.hpp (BSD sockets) or
// socket_transport_win32.hpp (Winsock), whichever the default backend names
// (ASOCK_DEFAULT_C_TRANSPORT_HEADER, asock/default_platform.hpp). Only those
// two include platform headers; the code below uses nothing but the names the
// two socket APIs share unchanged (addrinfo, sockaddr_in, inet_ntop,
// getsockname, ...) and calls `os` for everything else. Names are resolved
// by asock/resolve.hpp over the OS layer's `os::resolver`, as the C++ TCP
// helpers resolve them.
//
// Every socket a transport holds is non-blocking, so the transport's own calls
// never block in the kernel: send waits for room (unless the OS layer lets
// the caller ask it not to), receive never waits, and accept / connect wait
// at most their timeout.
//
// Concurrency: send, receive, accept and the queries may run concurrently on
// one transport; disconnect may run at any time, makes a send or accept that
// is waiting return, and closes the socket once they have left. connect,
// listen and destroy must not race with other calls on the same transport.
#pragma once

#include <asock/buffer.hpp>
#include <asock/c/socket_transport.h>
#include <asock/default_platform.hpp>
#include <asock/resolve.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <system_error>

// ---- the vocabulary of the OS layer ------------------------------------------

namespace asock::c_api::transport {

using clock = std::chrono::steady_clock;

/// A deadline that never comes: wait as long as it takes.
inline constexpr clock::time_point no_deadline = clock::time_point::max();

/// How many buffers one send or receive call passes to the OS at most.
inline constexpr std::size_t max_buffers = 64;

enum class wait_event { readable, writable };

enum class wait_status {
    ready,     ///< the event happened
    timed_out, ///< the deadline passed first
    closing,   ///< a disconnect started (only where the OS layer watches for it)
    failed     ///< the wait failed, or the socket reported an error instead
};

enum class connect_status { connected, pending, failed };

enum class io_status {
    done,        ///< `n` bytes moved (for a receive, 0 means the peer closed its side)
    would_block, ///< nothing can move now
    gone,        ///< the connection is gone (reset, aborted, shut down)
    failed       ///< any other error (the OS error value tells)
};

enum class accept_status {
    accepted,    ///< a connection, already non-blocking and not inherited
    retry,       ///< a transient failure: call again at once
    would_block, ///< no connection waits
    exhausted,   ///< out of descriptors or buffers
    failed
};

} // namespace asock::c_api::transport

#define ASOCK_C_SOCKET_TRANSPORT_OS_LAYER 1
#include ASOCK_DEFAULT_C_TRANSPORT_HEADER
#undef ASOCK_C_SOCKET_TRANSPORT_OS_LAYER

struct SOCKET_TRANSPORT_TAG {
    using native_socket = asock::c_api::transport::os::native_socket;

    explicit SOCKET_TRANSPORT_TAG(SOCKET_TYPE t, native_socket s = asock::c_api::transport::os::invalid_socket) noexcept
        : type(t), fd(s)
    {
    }

    /// First member: the OS's socket library (Winsock) is started before the
    /// socket is used and cleaned up after it is closed.
    asock::c_api::transport::os::library_ref library;
    const SOCKET_TYPE type;
    std::atomic<native_socket> fd; ///< os::invalid_socket: no socket. Changed under `io` held exclusively.
    /// Held shared by every call that uses the socket, exclusively to install
    /// or retire it, so a socket is never closed under a user.
    std::shared_mutex io;
    std::mutex disconnect_mu; ///< Serialises disconnects.
    /// A disconnect is waiting for the users to leave. Waits that a shutdown()
    /// does not end (Windows: select() on a listening socket) watch it.
    std::atomic<bool> closing{false};
};

namespace asock::c_api::transport {

using native_socket = os::native_socket;

/// A transport with its socket library started, or nullptr (nothing leaked;
/// a socket `s` stays the caller's).
inline SOCKET_TRANSPORT_TAG* new_transport(SOCKET_TYPE type, native_socket s = os::invalid_socket) noexcept
{
    auto* t = new (std::nothrow) SOCKET_TRANSPORT_TAG(type, s);
    if (t != nullptr && !t->library.ok()) {
        delete t;
        return nullptr;
    }
    return t;
}

inline clock::time_point deadline_after(std::uint32_t ms) noexcept
{
    return clock::now() + std::chrono::milliseconds(ms);
}

/// Installs `s` as the transport's socket. Returns false (and leaves `s` to
/// the caller) when the transport already has one.
inline bool install(SOCKET_TRANSPORT_TAG& t, native_socket s) noexcept
{
    std::unique_lock lk(t.io);
    native_socket expected = os::invalid_socket;
    return t.fd.compare_exchange_strong(expected, s, std::memory_order_acq_rel);
}

inline bool has_socket(const SOCKET_TRANSPORT_TAG& t) noexcept
{
    return t.fd.load(std::memory_order_acquire) != os::invalid_socket;
}

using address_list = asock::net::address_list<os::resolver>;

/// The TCP endpoints of host:port (asock/resolve.hpp); empty when the name
/// does not resolve (the C API reports only that it failed).
inline address_list resolve(const char* host, std::uint16_t port, bool passive) noexcept
{
    std::error_code ec;
    return asock::net::resolve<os::resolver>(host, port, passive, ec);
}

/// One connect attempt to `ai`, waiting until `deadline`. Returns the
/// connected socket (TCP_NODELAY set) or os::invalid_socket.
inline native_socket connect_one(SOCKET_TRANSPORT_TAG& t, const addrinfo& ai, clock::time_point deadline) noexcept
{
    const native_socket s = os::open_socket(ai.ai_family, ai.ai_socktype, ai.ai_protocol);
    if (s == os::invalid_socket) {
        return s;
    }
    const connect_status started = os::start_connect(s, ai);
    const bool connected =
        started == connect_status::connected ||
        (started == connect_status::pending &&
         os::wait_for(t.closing, s, wait_event::writable, deadline) == wait_status::ready && os::connect_succeeded(s));
    if (!connected) {
        os::close_socket(s);
        return os::invalid_socket;
    }
    os::set_nodelay(s);
    return s;
}

inline int listen_on(SOCKET_TRANSPORT_TAG* t, const char* address, std::uint16_t port) noexcept
{
    if (t == nullptr || t->type != SOCKET_BINDING || has_socket(*t)) {
        return 1;
    }
    address_list addrs;
    sockaddr_in any{};
    addrinfo fallback{};
    const addrinfo* first;
    if (address == nullptr) {
        any.sin_family = AF_INET;
        any.sin_port = htons(port);
        any.sin_addr.s_addr = htonl(INADDR_ANY);
        fallback.ai_family = AF_INET;
        fallback.ai_socktype = SOCK_STREAM;
        fallback.ai_protocol = IPPROTO_TCP;
        fallback.ai_addr = reinterpret_cast<sockaddr*>(&any);
        fallback.ai_addrlen = sizeof any;
        first = &fallback;
    } else {
        addrs = resolve(address, port, true);
        if (addrs.empty()) {
            return 1;
        }
        first = addrs.get();
    }
    for (const addrinfo* ai = first; ai != nullptr; ai = ai->ai_next) {
        const native_socket s = os::open_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (s == os::invalid_socket) {
            continue;
        }
        if (!os::bind_and_listen(s, *ai) || !install(*t, s)) {
            os::close_socket(s);
            continue;
        }
        return 0;
    }
    return 1;
}

/// Sums a SOCKET_BUFFER array; false when it is not a valid payload.
inline bool payload_total(const SOCKET_BUFFER* payload, std::uint32_t count, std::uint32_t& total) noexcept
{
    // Entries of length 0 are allowed here (and may have a null pointer).
    return asock::detail::validate_buffer_list(
        payload, count, [](const SOCKET_BUFFER& b) { return b.buffer; }, [](const SOCKET_BUFFER& b) { return b.length; },
        asock::detail::empty_entries::allowed, total);
}

/// Fills `bufs` with the bytes of `payload` from byte `skip` on; returns the entry count.
inline std::uint32_t gather(const SOCKET_BUFFER* payload, std::uint32_t count, std::uint32_t skip,
                            os::io_buffer (&bufs)[max_buffers]) noexcept
{
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < count && n < max_buffers; ++i) {
        if (skip >= payload[i].length) {
            skip -= payload[i].length;
            continue;
        }
        os::point(bufs[n], payload[i].buffer + skip, payload[i].length - skip);
        skip = 0;
        ++n;
    }
    return n;
}

/// The port of an IPv4 / IPv6 socket address; false for other families.
inline bool port_of(const sockaddr_storage& address, std::uint16_t& port) noexcept
{
    if (address.ss_family == AF_INET) {
        sockaddr_in v4;
        std::memcpy(&v4, &address, sizeof v4);
        port = ntohs(v4.sin_port);
    } else if (address.ss_family == AF_INET6) {
        sockaddr_in6 v6;
        std::memcpy(&v6, &address, sizeof v6);
        port = ntohs(v6.sin6_port);
    } else {
        return false;
    }
    return true;
}

/// Writes the text of an IPv4 / IPv6 address to `a`; false for other
/// families and for addresses whose text does not fit MAX_LOCAL_ADDRESS_LEN.
inline bool describe(const sockaddr& address, LOCAL_ADDRESS& a) noexcept
{
    if (address.sa_family == AF_INET) {
        sockaddr_in v4;
        std::memcpy(&v4, &address, sizeof v4);
        a.address_type = ADDRESS_INET;
        return ::inet_ntop(AF_INET, &v4.sin_addr, a.address, sizeof a.address) != nullptr;
    }
    if (address.sa_family == AF_INET6) {
        sockaddr_in6 v6;
        std::memcpy(&v6, &address, sizeof v6);
        a.address_type = ADDRESS_INET_6;
        return ::inet_ntop(AF_INET6, &v6.sin6_addr, a.address, sizeof a.address) != nullptr;
    }
    return false;
}

inline bool listed(const LOCAL_ADDRESS* list, std::uint32_t count, const LOCAL_ADDRESS& a) noexcept
{
    for (std::uint32_t i = 0; i < count; ++i) {
        if (list[i].address_type == a.address_type && std::strcmp(list[i].address, a.address) == 0) {
            return true;
        }
    }
    return false;
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
    const tr::native_socket s = tr::os::to_socket(socket_handle);
    if (s == tr::os::invalid_socket) {
        return nullptr;
    }
    const tr::os::library_ref library; // the queries below need the socket library started
    if (!library.ok()) {
        return nullptr;
    }
    if (!tr::os::is_socket(s)) {
        return nullptr; // not a socket: ownership not taken
    }
    const bool listening = tr::os::is_listening(s);
    if (!tr::os::set_nonblocking(s)) {
        return nullptr;
    }
    return tr::new_transport(listening ? SOCKET_BINDING : SOCKET_CLIENT, s);
}

ASOCK_C_API void socket_transport_disconnect(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr) {
        return;
    }
    std::lock_guard dl(socket_transport->disconnect_mu);
    const tr::native_socket s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == tr::os::invalid_socket) {
        return;
    }
    socket_transport->closing.store(true, std::memory_order_release); // ends the waits that watch for it
    tr::os::shutdown_both(s); // wakes the waits that the OS ends on a shutdown
    {
        std::unique_lock lk(socket_transport->io);
        socket_transport->fd.store(tr::os::invalid_socket, std::memory_order_release);
        socket_transport->closing.store(false, std::memory_order_release);
    }
    tr::os::close_socket(s);
}

ASOCK_C_API void socket_transport_destroy(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    if (socket_transport == nullptr) {
        return;
    }
    socket_transport_disconnect(socket_transport);
    delete socket_transport; // drops its socket library reference last
}

ASOCK_C_API int socket_transport_connect(SOCKET_TRANSPORT_HANDLE socket_transport, const char* hostname, uint16_t port,
                                         uint32_t connection_timeout_ms)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr || hostname == nullptr || socket_transport->type != SOCKET_CLIENT ||
        tr::has_socket(*socket_transport)) {
        return 1;
    }
    const tr::address_list addrs = tr::resolve(hostname, port, false);
    if (addrs.empty()) {
        return 1;
    }
    const auto deadline = tr::deadline_after(connection_timeout_ms);
    for (const addrinfo& ai : addrs) {
        const tr::native_socket s = tr::connect_one(*socket_transport, ai, deadline);
        if (s == tr::os::invalid_socket) {
            continue;
        }
        if (!tr::install(*socket_transport, s)) {
            tr::os::close_socket(s);
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
    const tr::native_socket listener = socket_transport->fd.load(std::memory_order_acquire);
    if (listener == tr::os::invalid_socket) {
        return SOCKET_ACCEPT_ERROR;
    }
    const auto deadline = tr::deadline_after(connection_timeout_ms);
    for (;;) {
        tr::native_socket s = tr::os::invalid_socket;
        switch (tr::os::accept_one(listener, s)) {
        case tr::accept_status::accepted: {
            tr::os::set_nodelay(s);
            auto* t = tr::new_transport(SOCKET_CLIENT, s);
            if (t == nullptr) {
                tr::os::close_socket(s);
                return SOCKET_ACCEPT_ERROR;
            }
            *accepted_socket = t;
            return SOCKET_ACCEPT_OK;
        }
        case tr::accept_status::retry: continue;
        case tr::accept_status::exhausted: return SOCKET_ACCEPT_PORT_EXHAUSTION;
        case tr::accept_status::would_block: break;
        default: return SOCKET_ACCEPT_ERROR;
        }
        switch (tr::os::wait_for(socket_transport->closing, listener, tr::wait_event::readable, deadline)) {
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
    (void)data; // unused (Windows: the reference implementation's OVERLAPPED; the async socket makes its own calls)
    if (bytes_sent != nullptr) {
        *bytes_sent = 0;
    }
    std::uint32_t total = 0;
    if (socket_transport == nullptr || !tr::payload_total(payload, buffer_count, total)) {
        return SOCKET_SEND_INVALID_ARG;
    }
    std::shared_lock lk(socket_transport->io);
    const tr::native_socket s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == tr::os::invalid_socket) {
        return SOCKET_SEND_FAILED;
    }
    const bool return_when_full = tr::os::send_returns_when_full(flags);
    std::uint32_t sent = 0;
    SOCKET_SEND_RESULT result = SOCKET_SEND_OK;
    while (sent < total) {
        tr::os::io_buffer bufs[tr::max_buffers];
        const std::uint32_t count = tr::gather(payload, buffer_count, sent, bufs);
        std::uint32_t n = 0;
        const tr::io_status status = tr::os::send_some(s, bufs, count, flags, n);
        if (status == tr::io_status::done) {
            sent += n;
            continue;
        }
        if (status == tr::io_status::would_block) {
            if (return_when_full) {
                break;
            }
            if (tr::os::wait_for(socket_transport->closing, s, tr::wait_event::writable, tr::no_deadline) ==
                tr::wait_status::closing) {
                result = SOCKET_SEND_SHUTDOWN; // disconnected while waiting
                break;
            }
            continue; // ready, or failed: the next send reports why
        }
        result = status == tr::io_status::gone ? SOCKET_SEND_SHUTDOWN : SOCKET_SEND_ERROR;
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
    (void)data; // unused (Windows: the reference implementation's OVERLAPPED; the async socket makes its own calls)
    if (bytes_recv != nullptr) {
        *bytes_recv = 0;
    }
    std::uint32_t total = 0;
    if (socket_transport == nullptr || !tr::payload_total(payload, buffer_count, total) || total == 0) {
        return SOCKET_RECEIVE_INVALID_ARG;
    }
    std::shared_lock lk(socket_transport->io);
    const tr::native_socket s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == tr::os::invalid_socket) {
        return SOCKET_RECEIVE_ERROR;
    }
    tr::os::io_buffer bufs[tr::max_buffers];
    const std::uint32_t count = tr::gather(payload, buffer_count, 0, bufs);
    std::uint32_t n = 0;
    switch (tr::os::receive_some(s, bufs, count, flags, n)) {
    case tr::io_status::done:
        if (n == 0) {
            return SOCKET_RECEIVE_SHUTDOWN; // the peer closed its side
        }
        if (bytes_recv != nullptr) {
            *bytes_recv = n;
        }
        return SOCKET_RECEIVE_OK;
    case tr::io_status::would_block: return SOCKET_RECEIVE_WOULD_BLOCK;
    case tr::io_status::gone: return SOCKET_RECEIVE_SHUTDOWN;
    default: return SOCKET_RECEIVE_ERROR;
    }
}

ASOCK_C_API SOCKET_HANDLE socket_transport_get_underlying_socket(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr) {
        return tr::os::to_socket_handle(tr::os::invalid_socket);
    }
    return tr::os::to_socket_handle(socket_transport->fd.load(std::memory_order_acquire));
}

ASOCK_C_API bool socket_transport_is_valid_socket(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    return socket_transport != nullptr && asock::c_api::transport::has_socket(*socket_transport);
}

ASOCK_C_API int socket_transport_get_local_port(SOCKET_TRANSPORT_HANDLE socket_transport, uint16_t* port)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr || port == nullptr) {
        return 1;
    }
    std::shared_lock lk(socket_transport->io);
    const tr::native_socket s = socket_transport->fd.load(std::memory_order_acquire);
    if (s == tr::os::invalid_socket) {
        return 1;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
        return 1;
    }
    return tr::port_of(bound, *port) ? 0 : 1;
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
    const bool ok = tr::os::with_local_addresses(hostname, [&](const auto& for_each_address) {
        std::uint32_t n = 0;
        for_each_address([&](const sockaddr& address) {
            if (address.sa_family == AF_INET || address.sa_family == AF_INET6) {
                ++n;
            }
        });
        auto* list = static_cast<LOCAL_ADDRESS*>(std::malloc(sizeof(LOCAL_ADDRESS) * (n == 0 ? 1 : n)));
        if (list == nullptr) {
            return false;
        }
        std::uint32_t used = 0;
        for_each_address([&](const sockaddr& address) {
            // Only addresses whose text fits MAX_LOCAL_ADDRESS_LEN are listed.
            if (used < n && tr::describe(address, list[used]) &&
                !(tr::os::list_each_address_once && tr::listed(list, used, list[used]))) {
                ++used;
            }
        });
        *local_address_list = list;
        *address_count = used;
        return true;
    });
    return ok ? 0 : 1;
}

} // extern "C"
