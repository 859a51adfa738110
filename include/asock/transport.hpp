// asock/transport.hpp: how an async_socket moves bytes and who owns its handle.
#pragma once

#include <cstddef>

namespace asock {

/// The spec's custom transport (ON_ASYNC_SOCKET_SEND / ON_ASYNC_SOCKET_RECV):
/// functions that behave like send() / recv(): they return the number of bytes
/// moved, or -1 with errno set (EAGAIN / EWOULDBLOCK when nothing can move now,
/// EINTR to be called again). Both or neither must be given. Without them the
/// socket uses the platform's own gathering / scattering calls on its handle.
struct custom_transport {
    int (*on_send)(void* context, const void* buffer, std::size_t length) = nullptr;
    void* on_send_context = nullptr;
    int (*on_recv)(void* context, void* buffer, std::size_t length) = nullptr;
    void* on_recv_context = nullptr;

    constexpr bool is_set() const noexcept { return on_send != nullptr || on_recv != nullptr; }
    constexpr bool is_valid() const noexcept { return on_send != nullptr && on_recv != nullptr; }
};

/// Who disconnects and destroys the native handle an async_socket was opened
/// with. async_socket::close() calls `disconnect` (the spec's
/// socket_transport_disconnect); destroying the async_socket calls `destroy`
/// (socket_transport_destroy). Either may be null. The default owner used by
/// async_socket::open(handle) shuts the connection down on close and closes
/// the handle on destroy.
template <class NativeHandle>
struct basic_handle_owner {
    void* context = nullptr;
    void (*disconnect)(void* context, NativeHandle handle) = nullptr;
    void (*destroy)(void* context, NativeHandle handle) = nullptr;
};

} // namespace asock
