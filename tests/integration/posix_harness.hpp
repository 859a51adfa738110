// tests/integration/posix_harness.hpp: the Linux side of the shared integration
// scenarios (tests/support/scenarios.hpp; tests/win32/win32_harness.hpp is the
// Windows side). Two harnesses, one per kind of connection the Linux tests run
// a scenario over:
//
//   it::posix_harness        TCP over 127.0.0.1 (TCP_NODELAY on both ends)
//   it::posix_local_harness  an AF_UNIX stream socketpair
//
// Both ends are non-blocking descriptors; the peer is it::raw_peer. A test
// that runs a scenario over both picks the harness with it::with_harness().
#pragma once

#include "integration_support.hpp"

#include <cstddef>
#include <utility>

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace it {

enum class connection { tcp, local };

template <connection Kind>
struct basic_posix_harness {
    using native = int;
    using peer = raw_peer;

    static std::pair<int, int> native_pair() { return Kind == connection::tcp ? make_tcp_pair() : make_socketpair(); }

    static void small_buffers(int fd, int bytes)
    {
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }

    /// Bytes waiting to be read on `fd` now (FIONREAD).
    static std::size_t bytes_readable(int fd)
    {
        int n = 0;
        if (::ioctl(fd, FIONREAD, &n) != 0 || n < 0) {
            return 0;
        }
        return static_cast<std::size_t>(n);
    }

    /// Waits (bounded) until `bytes` bytes and the peer's hang-up wait on `fd`.
    static void wait_until_end_queued(int fd, std::size_t bytes)
    {
        wait_until("the peer's bytes and hang-up queued", [&] {
            pollfd p{fd, POLLRDHUP, 0};
            return ::poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP) != 0 && bytes_readable(fd) >= bytes;
        });
    }
};

using posix_harness = basic_posix_harness<connection::tcp>;
using posix_local_harness = basic_posix_harness<connection::local>;

/// Calls `f.template operator()<H>()` with the TCP harness when `tcp`, else
/// with the AF_UNIX one: `with_harness(tcp, [&]<class H>() { sc::x<H>(e); })`.
template <class F>
void with_harness(bool tcp, F&& f)
{
    if (tcp) {
        f.template operator()<posix_harness>();
    } else {
        f.template operator()<posix_local_harness>();
    }
}

} // namespace it
