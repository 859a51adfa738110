// asock/linux/epoll_platform.hpp: the Linux epoll platform policy.
//
// `basic_epoll_platform<Sys>` ties the epoll engine and socket core to an
// OS-call layer. `epoll_platform` uses the real kernel; the unit tests use the
// same engine and core over a scripted fake (tests/support/fake_sys.hpp).
#pragma once

#include <asock/linux/epoll_engine.hpp>
#include <asock/linux/epoll_socket_core.hpp>
#include <asock/linux/epoll_sys.hpp>
#include <asock/transport.hpp>

namespace asock::linux_epoll {

template <class Sys>
struct basic_epoll_platform {
    using sys_type = Sys;
    using engine_type = basic_epoll_engine<Sys>;
    using core_type = epoll_socket_core<Sys>;
    using native_handle_type = int;
    using engine_options = linux_epoll::engine_options;

    static constexpr native_handle_type invalid_handle = -1;

    /// Owner used by async_socket::open(handle): close() shuts the connection
    /// down (both directions), destroying the socket closes the descriptor.
    static basic_handle_owner<int> default_owner() noexcept
    {
        return {nullptr, [](void*, int fd) { Sys::shutdown(fd); }, [](void*, int fd) { Sys::close(fd); }};
    }

    /// The engine used where the spec allows a NULL execution engine (11_002).
    static engine_type* acquire_default_engine() noexcept { return engine_type::acquire_default(); }
};

using epoll_platform = basic_epoll_platform<epoll_sys>;

static_assert(asock::detail::readiness_io<epoll_io<epoll_sys>>);

} // namespace asock::linux_epoll
