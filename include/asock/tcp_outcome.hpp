// asock/tcp_outcome.hpp: what the TCP helpers produce, on every platform.
//
// connect() and listener.accept() give a connect_outcome / accept_outcome (an
// error, or an OPEN socket); tcp_listener::listen() gives a listen_outcome (an
// error, or a listening listener). One definition for every backend, so a
// program reads the same shapes on Linux and on Windows. Include
// <asock/tcp.hpp>, which brings the platform's helpers along.
#pragma once

#include <asock/async_socket.hpp>

#include <system_error>

namespace asock {

template <class Platform>
class tcp_listener;

/// What tcp_connect / tcp_listener::accept produce: an error, or an OPEN socket.
template <class Platform>
struct connect_outcome {
    std::error_code error;
    async_socket<Platform> socket;
    explicit operator bool() const noexcept { return !error; }
};

template <class Platform>
using accept_outcome = connect_outcome<Platform>;

/// What tcp_listener::listen produces: an error, or a listening tcp_listener.
template <class Platform>
struct listen_outcome {
    std::error_code error;
    tcp_listener<Platform> listener;
    explicit operator bool() const noexcept { return !error; }
};

} // namespace asock
