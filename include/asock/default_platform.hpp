// asock/default_platform.hpp: the backend of this build, chosen in this one place.
//
// Defines asock::default_platform, the platform policy that asock.hpp's names
// (asock::engine, asock::tcp_socket, asock::connect, ...), asock/tcp.hpp and
// the C API (asock/c/implementation.hpp) use, and includes its header. Every
// other header is either generic (a template over a platform policy) or
// belongs to one platform and is included from here; what differs between
// the backends beyond that is asked of the policy (asock::platform_traits in
// asock/platform.hpp), not of the preprocessor.
//
// The choice:
//   ASOCK_DEFAULT_BACKEND_EPOLL  defined: epoll (Linux only)
//   ASOCK_DEFAULT_BACKEND_WIN32  defined: threadpool IO (Windows only)
//   ASOCK_DEFAULT_BACKEND_URING  defined: io_uring (Linux with liburing; the
//                                io_uring integration tests build with it)
//   neither (auto):              epoll on Linux, threadpool IO on Windows
// The CMake cache option ASOCK_DEFAULT_BACKEND (auto | epoll | win32) defines
// one of them on the asock::asock target (and so for every target that links
// it, installed package included); without CMake, define one yourself or none.
//
// With the policy come the names of the backend's companion headers, which the
// headers that need them include by these macros (so that this header stays
// the only one that decides):
//   ASOCK_DEFAULT_TCP_HEADER          the TCP helpers (asock/tcp.hpp includes it)
//   ASOCK_DEFAULT_SOCKET_OPTIONS_HEADER  socket options (asock/socket_options.hpp includes it)
//   ASOCK_DEFAULT_C_TRANSPORT_HEADER  the OS layer of the C API's socket transport
#pragma once

#if defined(ASOCK_DEFAULT_BACKEND_EPOLL) && defined(ASOCK_DEFAULT_BACKEND_WIN32)
#error "asock: define at most one of ASOCK_DEFAULT_BACKEND_EPOLL and ASOCK_DEFAULT_BACKEND_WIN32"
#elif defined(ASOCK_DEFAULT_BACKEND_EPOLL) && !defined(__linux__)
#error "asock: ASOCK_DEFAULT_BACKEND_EPOLL (ASOCK_DEFAULT_BACKEND=epoll) needs a Linux target"
#elif defined(ASOCK_DEFAULT_BACKEND_WIN32) && !defined(_WIN32)
#error "asock: ASOCK_DEFAULT_BACKEND_WIN32 (ASOCK_DEFAULT_BACKEND=win32) needs a Windows target"
#elif !defined(ASOCK_DEFAULT_BACKEND_EPOLL) && !defined(ASOCK_DEFAULT_BACKEND_WIN32) && !defined(__linux__) && \
    !defined(_WIN32)
#error "asock: no backend for this platform yet (epoll on Linux, threadpool IO on Windows)"
#endif

#if defined(ASOCK_DEFAULT_BACKEND_URING)
#if !defined(__linux__) || defined(ASOCK_DEFAULT_BACKEND_EPOLL) || defined(ASOCK_DEFAULT_BACKEND_WIN32)
#error "asock: ASOCK_DEFAULT_BACKEND_URING needs a Linux target and excludes the other choices"
#endif
#include <asock/io_uring.hpp>
#define ASOCK_DEFAULT_TCP_HEADER <asock/posix/tcp_posix.hpp>
#define ASOCK_DEFAULT_SOCKET_OPTIONS_HEADER <asock/posix/socket_options_posix.hpp>
#define ASOCK_DEFAULT_C_TRANSPORT_HEADER <asock/c/detail/socket_transport_posix.hpp>

namespace asock {
/// The platform policy of this build: io_uring (needs liburing; no run-time
/// fallback to epoll yet).
using default_platform = uring::platform;
inline constexpr const char* default_backend_name = "uring";
} // namespace asock

#elif defined(ASOCK_DEFAULT_BACKEND_EPOLL) || (!defined(ASOCK_DEFAULT_BACKEND_WIN32) && defined(__linux__))
#include <asock/linux/epoll_platform.hpp>
#define ASOCK_DEFAULT_TCP_HEADER <asock/posix/tcp_posix.hpp>
#define ASOCK_DEFAULT_SOCKET_OPTIONS_HEADER <asock/posix/socket_options_posix.hpp>
#define ASOCK_DEFAULT_C_TRANSPORT_HEADER <asock/c/detail/socket_transport_posix.hpp>

namespace asock {
/// The platform policy of this build: epoll.
using default_platform = linux_epoll::epoll_platform;
/// Its name, as the CMake option ASOCK_DEFAULT_BACKEND spells it.
inline constexpr const char* default_backend_name = "epoll";
} // namespace asock

#else
#include <asock/win32/win32_platform.hpp>
#define ASOCK_DEFAULT_TCP_HEADER <asock/win32/tcp_win32.hpp>
#define ASOCK_DEFAULT_SOCKET_OPTIONS_HEADER <asock/win32/socket_options_win32.hpp>
#define ASOCK_DEFAULT_C_TRANSPORT_HEADER <asock/c/detail/socket_transport_win32.hpp>

namespace asock {
/// The platform policy of this build: threadpool IO.
using default_platform = win32::win32_platform;
/// Its name, as the CMake option ASOCK_DEFAULT_BACKEND spells it.
inline constexpr const char* default_backend_name = "win32";
} // namespace asock

#endif
