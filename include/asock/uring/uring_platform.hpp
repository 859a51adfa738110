// asock/uring/uring_platform.hpp: the io_uring platform policy.
//
// `basic_uring_platform<Ring>` ties the io_uring engine and socket core to a
// ring: the kernel's (liburing_ring, asock/io_uring.hpp) or the unit tests'
// scripted fake (tests/support/fake_uring.hpp).
#pragma once

#include <asock/transport.hpp>
#include <asock/uring/uring_engine.hpp>
#include <asock/uring/uring_socket_core.hpp>

#include <cstdint>

namespace asock::uring {

template <class Ring>
struct basic_uring_platform {
    using ring_type = Ring;
    using engine_type = basic_uring_engine<Ring>;
    using core_type = uring_socket_core<Ring>;
    using native_handle_type = int;
    using engine_options = uring::engine_options;

    static constexpr native_handle_type invalid_handle = -1;

    // ---- traits (asock::platform_traits, asock/platform.hpp, says what each means) ----
    /// Not yet: readiness through IORING_OP_POLL_ADD is still to come (and
    /// with it the TCP helpers, which wait for readiness).
    static constexpr bool supports_notify_io = false;
    /// Not yet: the completion core has no custom-transport path.
    static constexpr bool supports_custom_transport = false;
    static constexpr bool accepts_null_engine = true;     ///< the C API's NULL engine: the default engine
    static constexpr bool wants_blocking_handles = false; ///< io_uring takes descriptors as they are

    static bool start_socket_library() noexcept { return true; }
    static void stop_socket_library() noexcept {}

    /// As epoll: a fixed pool of min_threads threads, at least one.
    static engine_options engine_options_for(std::uint32_t min_threads, std::uint32_t /*max_threads*/) noexcept
    {
        engine_options o;
        o.threads = min_threads == 0 ? 1u : static_cast<unsigned>(min_threads);
        return o;
    }

    /// Owner used by async_socket::open(handle): close() shuts the connection
    /// down (both directions), destroying the socket closes the descriptor.
    static basic_handle_owner<int> default_owner() noexcept
    {
        return {nullptr, [](void*, int fd) { Ring::shutdown(fd); }, [](void*, int fd) { Ring::close(fd); }};
    }

    static engine_type* acquire_default_engine() noexcept { return engine_type::acquire_default(); }
};

} // namespace asock::uring
