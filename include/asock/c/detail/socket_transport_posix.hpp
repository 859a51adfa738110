// asock/c/detail/socket_transport_posix.hpp: the socket transport of asock's
// C API over POSIX TCP sockets. Part of implementation.hpp; include that.
//
// Every descriptor a transport holds is non-blocking (the async socket and the
// transport's own calls never block in the kernel); the transport's send
// waits for writability with poll() unless MSG_DONTWAIT is passed, its receive
// never waits, and accept / connect wait at most their timeout.
//
// Concurrency: send, receive, accept and the queries may run concurrently on
// one transport; disconnect may run at any time, wakes a send or accept that
// is waiting, and closes the descriptor once they have left. connect, listen
// and destroy must not race with other calls on the same transport.
#pragma once

#include <asock/c/socket_transport.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <shared_mutex>

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

struct SOCKET_TRANSPORT_TAG {
    explicit SOCKET_TRANSPORT_TAG(SOCKET_TYPE t, int descriptor = -1) noexcept : type(t), fd(descriptor) {}

    const SOCKET_TYPE type;
    std::atomic<int> fd; ///< -1: no socket. Changed under `io` held exclusively.
    /// Held shared by every call that uses the descriptor, exclusively to
    /// install or retire it, so a descriptor is never closed under a user.
    std::shared_mutex io;
    std::mutex disconnect_mu; ///< Serialises disconnects.
};

namespace asock::c_api::transport {

using clock = std::chrono::steady_clock;

inline constexpr int max_iov = 64;

inline void set_nodelay(int fd) noexcept
{
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

inline bool set_nonblocking(int fd) noexcept
{
    const int flags = ::fcntl(fd, F_GETFL, 0);
    return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

/// Milliseconds left until `deadline`, for poll().
inline int remaining_ms(clock::time_point deadline) noexcept
{
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
        return 0;
    }
    return left > std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(left);
}

/// poll() for `events` until `deadline`; EINTR restarts with the time left.
/// Returns the revents, or 0 on timeout.
inline short wait_for(int fd, short events, clock::time_point deadline) noexcept
{
    for (;;) {
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r > 0) {
            return p.revents;
        }
        if (r == 0 || errno != EINTR) {
            return 0;
        }
    }
}

/// poll() for `events` with no time limit.
inline short wait_for(int fd, short events) noexcept
{
    for (;;) {
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, -1);
        if (r > 0) {
            return p.revents;
        }
        if (r < 0 && errno != EINTR) {
            return POLLERR;
        }
    }
}

inline clock::time_point deadline_after(std::uint32_t ms) noexcept
{
    return clock::now() + std::chrono::milliseconds(ms);
}

/// Installs `fd` as the transport's descriptor. Returns false (and leaves
/// `fd` to the caller) when the transport already has one.
inline bool install(SOCKET_TRANSPORT_TAG& t, int fd) noexcept
{
    std::unique_lock lk(t.io);
    int expected = -1;
    return t.fd.compare_exchange_strong(expected, fd, std::memory_order_acq_rel);
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
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    char service[8];
    std::snprintf(service, sizeof service, "%u", static_cast<unsigned>(port));
    return ::getaddrinfo(host, service, &hints, &out.head) == 0;
}

/// One non-blocking connect attempt to `ai`, waiting until `deadline`.
/// Returns the connected descriptor or -1.
inline int connect_one(const addrinfo& ai, clock::time_point deadline) noexcept
{
    const int fd = ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
    if (fd < 0) {
        return -1;
    }
    int rc;
    do {
        rc = ::connect(fd, ai.ai_addr, ai.ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        if (errno != EINPROGRESS || wait_for(fd, POLLOUT, deadline) == 0) {
            ::close(fd);
            return -1;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            ::close(fd);
            return -1;
        }
    }
    set_nodelay(fd);
    return fd;
}

inline int listen_on(SOCKET_TRANSPORT_TAG* t, const char* address, std::uint16_t port) noexcept
{
    if (t == nullptr || t->type != SOCKET_BINDING || t->fd.load(std::memory_order_acquire) >= 0) {
        return 1;
    }
    addrinfo_list addrs;
    sockaddr_in any{};
    addrinfo fallback{};
    const addrinfo* first;
    if (address == nullptr) {
        any.sin_family = AF_INET;
        any.sin_port = htons(port);
        any.sin_addr.s_addr = htonl(INADDR_ANY);
        fallback.ai_family = AF_INET;
        fallback.ai_socktype = SOCK_STREAM;
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
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0 || !install(*t, fd)) {
            ::close(fd);
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

/// Fills `iov` with the bytes of `payload` from byte `skip` on; returns the entry count.
inline int gather(const SOCKET_BUFFER* payload, std::uint32_t count, std::uint32_t skip, iovec (&iov)[max_iov]) noexcept
{
    int n = 0;
    for (std::uint32_t i = 0; i < count && n < max_iov; ++i) {
        if (skip >= payload[i].length) {
            skip -= payload[i].length;
            continue;
        }
        iov[n].iov_base = payload[i].buffer + skip;
        iov[n].iov_len = payload[i].length - skip;
        skip = 0;
        ++n;
    }
    return n;
}

inline bool is_connection_gone(int e) noexcept
{
    return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ESHUTDOWN || e == ECONNABORTED;
}

} // namespace asock::c_api::transport

extern "C" {

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_client(void)
{
    return new (std::nothrow) SOCKET_TRANSPORT_TAG(SOCKET_CLIENT);
}

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_server(void)
{
    return new (std::nothrow) SOCKET_TRANSPORT_TAG(SOCKET_BINDING);
}

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_from_socket(SOCKET_HANDLE socket_handle)
{
    if (socket_handle < 0) {
        return nullptr;
    }
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(socket_handle, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        return nullptr; // not a socket: ownership not taken
    }
    int listening = 0;
    len = sizeof listening;
    if (::getsockopt(socket_handle, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
        listening = 0;
    }
    if (!asock::c_api::transport::set_nonblocking(socket_handle)) {
        return nullptr;
    }
    return new (std::nothrow) SOCKET_TRANSPORT_TAG(listening != 0 ? SOCKET_BINDING : SOCKET_CLIENT, socket_handle);
}

ASOCK_C_API void socket_transport_disconnect(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    if (socket_transport == nullptr) {
        return;
    }
    std::lock_guard dl(socket_transport->disconnect_mu);
    const int fd = socket_transport->fd.load(std::memory_order_acquire);
    if (fd < 0) {
        return;
    }
    ::shutdown(fd, SHUT_RDWR); // wakes a send or accept waiting in poll()
    {
        std::unique_lock lk(socket_transport->io);
        socket_transport->fd.store(-1, std::memory_order_release);
    }
    ::close(fd);
}

ASOCK_C_API void socket_transport_destroy(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    if (socket_transport == nullptr) {
        return;
    }
    socket_transport_disconnect(socket_transport);
    delete socket_transport;
}

ASOCK_C_API int socket_transport_connect(SOCKET_TRANSPORT_HANDLE socket_transport, const char* hostname, uint16_t port,
                                         uint32_t connection_timeout_ms)
{
    namespace tr = asock::c_api::transport;
    if (socket_transport == nullptr || hostname == nullptr || socket_transport->type != SOCKET_CLIENT ||
        socket_transport->fd.load(std::memory_order_acquire) >= 0) {
        return 1;
    }
    tr::addrinfo_list addrs;
    if (!tr::resolve(hostname, port, false, addrs)) {
        return 1;
    }
    const auto deadline = tr::deadline_after(connection_timeout_ms);
    for (const addrinfo* ai = addrs.head; ai != nullptr; ai = ai->ai_next) {
        const int fd = tr::connect_one(*ai, deadline);
        if (fd < 0) {
            continue;
        }
        if (!tr::install(*socket_transport, fd)) {
            ::close(fd);
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
    const int listener = socket_transport->fd.load(std::memory_order_acquire);
    if (listener < 0) {
        return SOCKET_ACCEPT_ERROR;
    }
    const auto deadline = tr::deadline_after(connection_timeout_ms);
    for (;;) {
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            tr::set_nodelay(fd);
            auto* t = new (std::nothrow) SOCKET_TRANSPORT_TAG(SOCKET_CLIENT, fd);
            if (t == nullptr) {
                ::close(fd);
                return SOCKET_ACCEPT_ERROR;
            }
            *accepted_socket = t;
            return SOCKET_ACCEPT_OK;
        }
        const int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) {
            continue;
        }
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            return SOCKET_ACCEPT_PORT_EXHAUSTION;
        }
        if (e != EAGAIN && e != EWOULDBLOCK) {
            return SOCKET_ACCEPT_ERROR;
        }
        const short revents = tr::wait_for(listener, POLLIN, deadline);
        if (revents == 0) {
            return SOCKET_ACCEPT_NO_CONNECTION; // nothing arrived in time
        }
        if ((revents & POLLIN) == 0) {
            return SOCKET_ACCEPT_ERROR; // shut down (disconnect) or failed
        }
    }
}

ASOCK_C_API SOCKET_SEND_RESULT socket_transport_send(SOCKET_TRANSPORT_HANDLE socket_transport,
                                                     const SOCKET_BUFFER* payload, uint32_t buffer_count,
                                                     uint32_t* bytes_sent, uint32_t flags, void* data)
{
    namespace tr = asock::c_api::transport;
    (void)data; // Windows: the OVERLAPPED of an asynchronous send. Unused here.
    if (bytes_sent != nullptr) {
        *bytes_sent = 0;
    }
    std::uint32_t total = 0;
    if (socket_transport == nullptr || !tr::payload_total(payload, buffer_count, total)) {
        return SOCKET_SEND_INVALID_ARG;
    }
    std::shared_lock lk(socket_transport->io);
    const int fd = socket_transport->fd.load(std::memory_order_acquire);
    if (fd < 0) {
        return SOCKET_SEND_FAILED;
    }
    const bool dont_wait = (flags & MSG_DONTWAIT) != 0;
    std::uint32_t sent = 0;
    SOCKET_SEND_RESULT result = SOCKET_SEND_OK;
    while (sent < total) {
        iovec iov[tr::max_iov];
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(tr::gather(payload, buffer_count, sent, iov));
        const ssize_t n = ::sendmsg(fd, &msg, static_cast<int>(flags) | MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::uint32_t>(n);
            continue;
        }
        const int e = n < 0 ? errno : EIO;
        if (e == EINTR) {
            continue;
        }
        if (e == EAGAIN || e == EWOULDBLOCK) {
            if (dont_wait) {
                break;
            }
            tr::wait_for(fd, POLLOUT); // a disconnect wakes it; the next sendmsg reports why
            continue;
        }
        errno = e;
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
    (void)data; // Windows: the OVERLAPPED of an asynchronous receive. Unused here.
    if (bytes_recv != nullptr) {
        *bytes_recv = 0;
    }
    std::uint32_t total = 0;
    if (socket_transport == nullptr || !tr::payload_total(payload, buffer_count, total) || total == 0) {
        return SOCKET_RECEIVE_INVALID_ARG;
    }
    std::shared_lock lk(socket_transport->io);
    const int fd = socket_transport->fd.load(std::memory_order_acquire);
    if (fd < 0) {
        return SOCKET_RECEIVE_ERROR;
    }
    iovec iov[tr::max_iov];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(tr::gather(payload, buffer_count, 0, iov));
    ssize_t n;
    do {
        n = ::recvmsg(fd, &msg, static_cast<int>(flags) | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (bytes_recv != nullptr) {
            *bytes_recv = static_cast<std::uint32_t>(n);
        }
        return SOCKET_RECEIVE_OK;
    }
    if (n == 0) {
        return SOCKET_RECEIVE_SHUTDOWN; // the peer closed its side
    }
    const int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) {
        return SOCKET_RECEIVE_WOULD_BLOCK;
    }
    return tr::is_connection_gone(e) ? SOCKET_RECEIVE_SHUTDOWN : SOCKET_RECEIVE_ERROR;
}

ASOCK_C_API SOCKET_HANDLE socket_transport_get_underlying_socket(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    if (socket_transport == nullptr) {
        return INVALID_SOCKET;
    }
    const int fd = socket_transport->fd.load(std::memory_order_acquire);
    return fd >= 0 ? fd : INVALID_SOCKET;
}

ASOCK_C_API bool socket_transport_is_valid_socket(SOCKET_TRANSPORT_HANDLE socket_transport)
{
    return socket_transport != nullptr && socket_transport->fd.load(std::memory_order_acquire) >= 0;
}

ASOCK_C_API int socket_transport_get_local_port(SOCKET_TRANSPORT_HANDLE socket_transport, uint16_t* port)
{
    if (socket_transport == nullptr || port == nullptr) {
        return 1;
    }
    std::shared_lock lk(socket_transport->io);
    const int fd = socket_transport->fd.load(std::memory_order_acquire);
    if (fd < 0) {
        return 1;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
        return 1;
    }
    if (bound.ss_family == AF_INET) {
        sockaddr_in v4;
        std::memcpy(&v4, &bound, sizeof v4);
        *port = ntohs(v4.sin_port);
    } else if (bound.ss_family == AF_INET6) {
        sockaddr_in6 v6;
        std::memcpy(&v6, &bound, sizeof v6);
        *port = ntohs(v6.sin6_port);
    } else {
        return 1;
    }
    return 0;
}

ASOCK_C_API int socket_transport_get_local_address(SOCKET_TRANSPORT_HANDLE socket_transport,
                                                   char hostname[MAX_GET_HOST_NAME_LEN],
                                                   LOCAL_ADDRESS** local_address_list, uint32_t* address_count)
{
    if (socket_transport == nullptr || hostname == nullptr || local_address_list == nullptr ||
        address_count == nullptr) {
        return 1;
    }
    if (::gethostname(hostname, MAX_GET_HOST_NAME_LEN) != 0) {
        return 1;
    }
    hostname[MAX_GET_HOST_NAME_LEN - 1] = '\0';
    ifaddrs* ifs = nullptr;
    if (::getifaddrs(&ifs) != 0) {
        return 1;
    }
    std::uint32_t n = 0;
    for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr != nullptr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6)) {
            ++n;
        }
    }
    auto* list = static_cast<LOCAL_ADDRESS*>(std::malloc(sizeof(LOCAL_ADDRESS) * (n == 0 ? 1 : n)));
    if (list == nullptr) {
        ::freeifaddrs(ifs);
        return 1;
    }
    std::uint32_t used = 0;
    for (ifaddrs* i = ifs; i != nullptr && used < n; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) {
            continue;
        }
        LOCAL_ADDRESS& a = list[used];
        if (i->ifa_addr->sa_family == AF_INET) {
            sockaddr_in v4;
            std::memcpy(&v4, i->ifa_addr, sizeof v4);
            if (::inet_ntop(AF_INET, &v4.sin_addr, a.address, sizeof a.address) != nullptr) {
                a.address_type = ADDRESS_INET;
                ++used;
            }
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            sockaddr_in6 v6;
            std::memcpy(&v6, i->ifa_addr, sizeof v6);
            // Only addresses whose text fits MAX_LOCAL_ADDRESS_LEN are listed.
            if (::inet_ntop(AF_INET6, &v6.sin6_addr, a.address, sizeof a.address) != nullptr) {
                a.address_type = ADDRESS_INET_6;
                ++used;
            }
        }
    }
    ::freeifaddrs(ifs);
    *local_address_list = list;
    *address_count = used;
    return 0;
}

} // extern "C"
