// asock/linux/epoll_socket_core.hpp: the epoll backend's socket core: the
// shared readiness core (include/asock/detail/readiness_core.hpp) over a
// small policy that binds each socket to one of the engine's loops, registers
// its descriptor with that loop's epoll instance, posts the core's work to
// that loop, and moves bytes with sendmsg / recvmsg (`Sys`: the real kernel,
// or the unit tests' scripted fake, tests/support/fake_sys.hpp).
#pragma once

#include <asock/buffer.hpp>
#include <asock/detail/readiness_core.hpp>
#include <asock/linux/epoll_sys.hpp>
#include <asock/results.hpp>

#include <cstddef>
#include <cstdint>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/uio.h>

namespace asock::linux_epoll {

template <class Sys>
class basic_epoll_engine;

/// The readiness policy of the epoll backend (asock::detail::readiness_io).
template <class Sys>
struct epoll_io {
    using engine_type = basic_epoll_engine<Sys>;

    /// Largest number of iovec entries passed to one system call; longer
    /// buffer lists are moved in several calls.
    static constexpr std::uint32_t max_iov = 64;

    static bool is_socket(int fd) noexcept { return Sys::is_socket(fd); }

    /// The loop of the engine that serves a socket (its index): where its
    /// descriptor is registered and where everything the core posts runs.
    using placement = unsigned;

    /// Binds the socket to one of the engine's loops (the least loaded) and
    /// registers `fd` with that loop's epoll instance.
    static int arm(engine_type& engine, int fd, std::uint64_t token, placement& loop) noexcept
    {
        loop = engine.bind_loop();
        const int r = Sys::epoll_add(engine.epoll_fd(loop), fd, socket_event_mask, token);
        if (r != 0) {
            engine.unbind_loop(loop);
        }
        return r;
    }

    /// Unregisters `fd` from its loop. `loop` keeps naming that loop: work
    /// the core posts after its close (an awaiter's resumption) still goes there.
    static void disarm(engine_type& engine, int fd, placement loop) noexcept
    {
        Sys::epoll_del(engine.epoll_fd(loop), fd);
        engine.unbind_loop(loop);
    }

    /// Runs `item` on the thread of the socket's loop.
    static void post(engine_type& engine, placement loop, asock::detail::work_item* item) noexcept
    {
        engine.post_to(loop, item);
    }

    /// Readiness bits of an epoll event mask: shifts and masks, no branch
    /// per bit (this runs for every event).
    static std::uint32_t readiness_of_events(std::uint32_t events) noexcept
    {
        namespace r = asock::detail::readiness;
        static_assert(EPOLLIN == r::in && (EPOLLOUT >> 1) == r::out && (EPOLLERR >> 1) == r::err &&
                      (EPOLLHUP >> 1) == r::hup && (EPOLLRDHUP >> 9) == r::rdhup);
        return (events & EPOLLIN) | ((events >> 1) & (r::out | r::err | r::hup)) | ((events >> 9) & r::rdhup);
    }

    static std::uint32_t readiness_now(int fd, notify_io_type type) noexcept
    {
        namespace r = asock::detail::readiness;
        const short revents = Sys::poll_now(fd, type == notify_io_type::in ? POLLIN : POLLOUT);
        std::uint32_t bits = 0;
        bits |= (revents & POLLIN) ? r::in : 0u;
        bits |= (revents & POLLOUT) ? r::out : 0u;
        bits |= (revents & POLLERR) ? r::err : 0u;
        bits |= (revents & POLLHUP) ? r::hup : 0u;
        bits |= (revents & POLLRDHUP) ? r::rdhup : 0u;
        return bits;
    }

    static long send_some(int fd, const const_buffer* bufs, std::uint32_t count, std::uint32_t offset,
                          std::size_t& asked) noexcept
    {
        if (count == 1) { // the common case, small enough to inline
            asked = bufs[0].size - offset;
            return Sys::send_one(fd, static_cast<const char*>(bufs[0].data) + offset, asked);
        }
        return send_gather(fd, bufs, count, offset, asked);
    }

    static long send_gather(int fd, const const_buffer* bufs, std::uint32_t count, std::uint32_t offset,
                            std::size_t& asked) noexcept
    {
        iovec iov[max_iov];
        std::uint32_t n = 0;
        asked = 0;
        for (; n < count && n < max_iov; ++n) {
            const std::uint32_t skip = n == 0 ? offset : 0;
            iov[n].iov_base = const_cast<char*>(static_cast<const char*>(bufs[n].data)) + skip;
            iov[n].iov_len = bufs[n].size - skip;
            asked += iov[n].iov_len;
        }
        return Sys::send_iov(fd, iov, static_cast<int>(n));
    }

    /// With `hinted`, one recvmsg that also reads the kernel's count of
    /// bytes left (TCP_INQ's control message): 0 is readiness::rest::none.
    static long receive_some(int fd, const mutable_buffer* bufs, std::uint32_t count, bool hinted,
                             std::uint32_t& covered, std::size_t& asked, asock::detail::readiness::rest& left) noexcept
    {
        left = asock::detail::readiness::rest::unknown;
        if (count == 1 && !hinted) { // the common case, small enough to inline
            covered = 1;
            asked = bufs[0].size;
            return Sys::recv_one(fd, bufs[0].data, asked);
        }
        return receive_scatter(fd, bufs, count, hinted, covered, asked, left);
    }

    static long receive_scatter(int fd, const mutable_buffer* bufs, std::uint32_t count, bool hinted,
                                std::uint32_t& covered, std::size_t& asked,
                                asock::detail::readiness::rest& left) noexcept
    {
        if (count == 1) {
            covered = 1;
            asked = bufs[0].size;
            iovec one{bufs[0].data, bufs[0].size};
            return receive_hinted(fd, &one, 1, left);
        }
        iovec iov[max_iov];
        std::uint32_t n = 0;
        asked = 0;
        for (; n < count && n < max_iov; ++n) {
            iov[n].iov_base = bufs[n].data;
            iov[n].iov_len = bufs[n].size;
            asked += bufs[n].size;
        }
        covered = n;
        return hinted ? receive_hinted(fd, iov, static_cast<int>(n), left)
                      : Sys::recv_iov(fd, iov, static_cast<int>(n));
    }

    static long receive_hinted(int fd, iovec* iov, int n, asock::detail::readiness::rest& left) noexcept
    {
        namespace r = asock::detail::readiness;
        int inq = -1;
        const long got = Sys::recv_iov_inq(fd, iov, n, inq);
        if (got > 0 && inq >= 0) {
            left = inq == 0 ? r::rest::none : r::rest::more;
        }
        return got;
    }

    /// TCP_INQ on `fd` (Linux 4.18+, TCP only; a Unix socket says no).
    static bool enable_receive_hint(int fd) noexcept { return Sys::enable_inq(fd) == 0; }

    /// Half-close: shutdown(fd, SHUT_WR).
    static int shutdown_send(int fd) noexcept { return Sys::shutdown_send(fd); }

    static void schedule_point(asock::detail::readiness::schedule_point p) noexcept
    {
        if constexpr (requires { Sys::schedule_point(p); }) {
            Sys::schedule_point(p);
        }
    }
};

template <class Sys>
using epoll_socket_core = asock::detail::readiness_core<epoll_io<Sys>>;

} // namespace asock::linux_epoll
