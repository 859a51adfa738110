// asock/io_uring.hpp: the io_uring backend (Linux, liburing), beside the
// default one: asock::uring::platform, engine, engine_options, make_engine,
// socket, available().
//
//   auto e = asock::uring::make_engine({});   // empty when io_uring is unavailable
//   if (!e) { puts(asock::uring::unavailable_reason()); }
//   asock::uring::socket s(*e);
//
// Needs liburing (CMake: ASOCK_WITH_URING, the asock::uring target).
#pragma once

#include <asock/async_socket.hpp>
#include <asock/engine_ref.hpp>
#include <asock/uring/liburing_ring.hpp>
#include <asock/uring/uring_platform.hpp>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace asock::uring {

using platform = basic_uring_platform<liburing_ring>;
using engine = platform::engine_type;
using socket = async_socket<platform>;

static_assert(asock::platform_policy<platform>);
static_assert(asock::detail::completion_io<uring_io<liburing_ring>>);

namespace detail {
struct probe_result {
    int error = 0; // 0: a ring could be set up
};

inline const probe_result& probe() noexcept
{
    static const probe_result r = [] {
        probe_result p;
        liburing_ring ring;
        p.error = -ring.init(4);
        return p;
    }();
    return r;
}
} // namespace detail

/// True when this process can set up an io_uring ring with what the backend
/// needs (Linux 5.11 or later, not refused by the io_uring_disabled sysctl
/// or a seccomp filter). Asked once.
inline bool available() noexcept { return detail::probe().error == 0; }

/// Why available() is false ("" when it is true).
inline const char* unavailable_reason() noexcept
{
    switch (detail::probe().error) {
    case 0: return "";
    case ENOSYS: return "io_uring is not available: the kernel lacks it or the features the backend needs (Linux 5.11)";
    case EPERM:
    case EACCES: return "io_uring is not available: refused (the io_uring_disabled sysctl, or a seccomp filter)";
    case ENOMEM: return "io_uring is not available: no memory for a ring (RLIMIT_MEMLOCK?)";
    default: return "io_uring is not available: the kernel refused to set up a ring";
    }
}

/// Creates an io_uring engine; empty when io_uring is unavailable (see
/// unavailable_reason()) or the engine's threads cannot be started.
inline engine_ref<engine> make_engine(const engine_options& options = {})
{
    return engine_ref<engine>::create(options);
}

} // namespace asock::uring
