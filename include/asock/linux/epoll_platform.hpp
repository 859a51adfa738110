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

#include <cstdint>

namespace asock::linux_epoll {

template <class Sys>
struct basic_epoll_platform {
    using sys_type = Sys;
    using engine_type = basic_epoll_engine<Sys>;
    using core_type = epoll_socket_core<Sys>;
    using native_handle_type = int;
    using engine_options = linux_epoll::engine_options;

    static constexpr native_handle_type invalid_handle = -1;

    // ---- traits (asock::platform_traits, asock/platform.hpp, says what each means) ----
    static constexpr bool supports_notify_io = true;        ///< readiness is what epoll reports
    static constexpr bool supports_custom_transport = true; ///< the spec's custom transports
    static constexpr bool accepts_null_engine = true;       ///< the C API's NULL engine: the default engine (11_002)
    static constexpr bool wants_blocking_handles = false;   ///< descriptors stay non-blocking

    /// No socket library to start on Linux.
    static bool start_socket_library() noexcept { return true; }
    static void stop_socket_library() noexcept {}

    /// A fixed pool: min_threads threads (at least one, since C callers cannot
    /// run the loop themselves); the engine does not grow, so max_threads
    /// only bounds min_threads (checked by the caller).
    static engine_options engine_options_for(std::uint32_t min_threads, std::uint32_t /*max_threads*/) noexcept
    {
        return engine_options{min_threads == 0 ? 1u : static_cast<unsigned>(min_threads)};
    }

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
