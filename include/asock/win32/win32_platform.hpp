// asock/win32/win32_platform.hpp: the Windows threadpool-IO platform policy.
//
// `basic_win32_platform<Api>` ties the threadpool engine and socket core to a
// Win32 layer. `win32_platform` uses the real OS (win32_api); the unit tests
// use the same engine and core over a scripted fake (tests/win32/fake_win32.hpp).
#pragma once

#include <asock/transport.hpp>
#include <asock/win32/threadpool_engine.hpp>
#include <asock/win32/threadpool_socket_core.hpp>
#include <asock/win32/win32_api.hpp>

#include <cstdint>

namespace asock::win32 {

template <class Api>
struct basic_win32_platform {
    using api_type = Api;
    using engine_type = basic_threadpool_engine<Api>;
    using core_type = threadpool_socket_core<Api>;
    using native_handle_type = SOCKET;
    using engine_options = win32::engine_options;

    static constexpr native_handle_type invalid_handle = INVALID_SOCKET;

    // ---- traits (asock::platform_traits, asock/platform.hpp, says what each means) ----

    /// Readiness notifications do not exist on Windows (04_002): IO completes.
    static constexpr bool supports_notify_io = false;
    /// Custom transports (the spec's async_socket_create_with_transport) are
    /// not implemented on Windows (04_001): async_socket's constructor taking
    /// one yields an invalid socket.
    static constexpr bool supports_custom_transport = false;
    /// The C API refuses a NULL execution engine (01_002: the engine supplies
    /// the PTP_POOL).
    static constexpr bool accepts_null_engine = false;
    /// The threadpool IO takes sockets in blocking mode, so its overlapped
    /// WSASend / WSARecv never depend on how a Winsock provider treats
    /// overlapped calls on non-blocking sockets.
    static constexpr bool wants_blocking_handles = true;

    /// Winsock (WSAStartup 2.2; counted by Winsock, one WSACleanup each).
    static bool start_socket_library() noexcept { return Api::wsa_startup() == 0; }
    static void stop_socket_library() noexcept { Api::wsa_cleanup(); }

    /// The thread pool's own minimum and maximum (SetThreadpoolThreadMinimum /
    /// Maximum; 0 as maximum: the system's); the pool grows between them as
    /// work arrives.
    static engine_options engine_options_for(std::uint32_t min_threads, std::uint32_t max_threads) noexcept
    {
        engine_options options; // threads not given: a pool between these two
        options.min_threads = static_cast<unsigned>(min_threads);
        options.max_threads = static_cast<unsigned>(max_threads);
        return options;
    }

    /// Owner used by async_socket::open(handle): close() shuts the connection
    /// down (both directions), destroying the socket closes the SOCKET.
    static basic_handle_owner<SOCKET> default_owner() noexcept
    {
        return {nullptr, [](void*, SOCKET s) { Api::shutdown(s); }, [](void*, SOCKET s) { Api::closesocket(s); }};
    }

    /// The process-wide engine (default options), used by async_socket::on_default_engine.
    static engine_type* acquire_default_engine() noexcept { return engine_type::acquire_default(); }
};

using win32_platform = basic_win32_platform<win32_api>;

static_assert(asock::detail::completion_io<threadpool_io<win32_api>>);

} // namespace asock::win32
