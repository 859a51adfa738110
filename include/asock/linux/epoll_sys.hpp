// asock/linux/epoll_sys.hpp: the system calls the epoll backend makes, in one place.
//
// Rationale: the epoll backend (engine + socket core) is a template over this
// "Sys" policy. The real one below calls the kernel; tests substitute a fake with
// the same static functions that returns scripted results and errno values, so
// every error branch of the backend is exercised deterministically with the
// production logic, not a copy of it. Every function reports failure as the
// kernel does: a negative return value and errno set.
#pragma once

#include <chrono>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace asock::linux_epoll {

/// Events the backend asks epoll for, once per socket, for the socket's lifetime.
/// Edge-triggered: an operation tries its system call first and waits for an
/// edge only after EAGAIN, so no epoll_ctl is needed per operation.
inline constexpr std::uint32_t socket_event_mask = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

/// The calls of the per-operation path (send, receive, epoll_wait) go to the
/// kernel through syscall(2) rather than through their libc wrappers. Those
/// wrappers are POSIX cancellation points: in a process with more than one
/// thread every call brackets the system call with
/// __pthread_enable_asynccancel / __pthread_disable_asynccancel, about 30
/// instructions a call, six calls per ping-pong round trip. asock never
/// relies on pthread_cancel: every function of the backend is noexcept, so a
/// cancellation acted upon inside one would terminate the program rather
/// than unwind it. syscall(2) is not a cancellation point, sets errno as the
/// wrappers do, and costs a handful of instructions; on x86_64 the call is
/// made inline (direct::call6). Under a sanitizer the wrappers stay: the
/// sanitizers model what they do (ThreadSanitizer the synchronisation
/// through descriptors, AddressSanitizer the buffers handed to the kernel).
/// A program that interposes on the libc socket calls (a kernel-bypass stack
/// loaded with LD_PRELOAD, a fault-injection library) defines
/// ASOCK_LIBC_SYSCALLS (CMake: -DASOCK_LIBC_SYSCALLS=ON) to keep the wrappers.
#if defined(ASOCK_LIBC_SYSCALLS) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ASOCK_DETAIL_LIBC_SYSCALLS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define ASOCK_DETAIL_LIBC_SYSCALLS 1
#endif
#endif

namespace direct {
#if defined(ASOCK_DETAIL_LIBC_SYSCALLS)
inline ssize_t sendto(int fd, const void* data, std::size_t length, int flags) noexcept
{
    return ::send(fd, data, length, flags);
}
inline ssize_t recvfrom(int fd, void* data, std::size_t length, int flags) noexcept
{
    return ::recv(fd, data, length, flags);
}
inline ssize_t sendmsg(int fd, const msghdr* msg, int flags) noexcept { return ::sendmsg(fd, msg, flags); }
inline ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept { return ::recvmsg(fd, msg, flags); }
inline int epoll_wait(int epfd, epoll_event* events, int max_events, int timeout_ms) noexcept
{
    return ::epoll_wait(epfd, events, max_events, timeout_ms);
}
#else
#if defined(__x86_64__)
// The syscall instruction itself (the kernel's x86_64 calling convention:
// number in rax, arguments in rdi, rsi, rdx, r10, r8, r9; rcx and r11 are
// clobbered), with errno set as syscall(2) sets it. Inline, this also saves
// syscall(2)'s call and argument shuffle, about 15 instructions a call.
inline long call6(long n, long a1, long a2, long a3, long a4, long a5, long a6) noexcept
{
    long r;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if (static_cast<unsigned long>(r) > static_cast<unsigned long>(-4096L)) {
        errno = static_cast<int>(-r);
        return -1;
    }
    return r;
}
#else
inline long call6(long n, long a1, long a2, long a3, long a4, long a5, long a6) noexcept
{
    return ::syscall(n, a1, a2, a3, a4, a5, a6);
}
#endif

inline long arg(const void* p) noexcept { return static_cast<long>(reinterpret_cast<std::uintptr_t>(p)); }

inline ssize_t sendto(int fd, const void* data, std::size_t length, int flags) noexcept
{
    return call6(SYS_sendto, fd, arg(data), static_cast<long>(length), flags, 0, 0);
}
inline ssize_t recvfrom(int fd, void* data, std::size_t length, int flags) noexcept
{
    return call6(SYS_recvfrom, fd, arg(data), static_cast<long>(length), flags, 0, 0);
}
inline ssize_t sendmsg(int fd, const msghdr* msg, int flags) noexcept
{
    return call6(SYS_sendmsg, fd, arg(msg), flags, 0, 0, 0);
}
inline ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept
{
    return call6(SYS_recvmsg, fd, arg(msg), flags, 0, 0, 0);
}
/// The call libc's epoll_wait makes: epoll_wait where the architecture has
/// it, else epoll_pwait with no signal mask (aarch64, among others).
inline int epoll_wait(int epfd, epoll_event* events, int max_events, int timeout_ms) noexcept
{
#if defined(SYS_epoll_wait)
    return static_cast<int>(call6(SYS_epoll_wait, epfd, arg(events), max_events, timeout_ms, 0, 0));
#else
    return static_cast<int>(call6(SYS_epoll_pwait, epfd, arg(events), max_events, timeout_ms, 0, 0));
#endif
}
#endif
} // namespace direct

struct epoll_sys {
    static int epoll_create() noexcept { return ::epoll_create1(EPOLL_CLOEXEC); }

    /// Registers `fd`; its events carry `token` (epoll_event::data.u64).
    static int epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t token) noexcept
    {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = token;
        return ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }

    /// True when `fd` is a socket (a pipe, a regular file or a closed
    /// descriptor is not: open() rejects those at once instead of failing at
    /// the first I/O).
    static bool is_socket(int fd) noexcept
    {
        struct stat st{};
        return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    }

    static int epoll_del(int epfd, int fd) noexcept
    {
        epoll_event ev{}; // non-null for kernels before 2.6.9
        return ::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
    }

    static int epoll_wait(int epfd, epoll_event* events, int max_events, int timeout_ms) noexcept
    {
        return direct::epoll_wait(epfd, events, max_events, timeout_ms);
    }

    static int eventfd_create() noexcept { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

    static void eventfd_signal(int fd) noexcept
    {
        std::uint64_t one = 1;
        ssize_t r;
        do {
            r = ::write(fd, &one, sizeof one);
        } while (r < 0 && errno == EINTR);
    }

    static void eventfd_drain(int fd) noexcept
    {
        std::uint64_t value;
        ssize_t r;
        do {
            r = ::read(fd, &value, sizeof value);
        } while (r < 0 && errno == EINTR);
    }

    /// The engine's clock (CLOCK_MONOTONIC, which std::chrono::steady_clock
    /// reads on Linux, and which the timerfd below counts in).
    static std::chrono::steady_clock::time_point now() noexcept { return std::chrono::steady_clock::now(); }

    /// A non-blocking timer descriptor on CLOCK_MONOTONIC, for the engine's timers.
    static int timerfd_create() noexcept { return ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK); }

    /// Arms `fd` to become readable at `deadline` (absolute; a deadline in the
    /// past fires at once).
    static void timerfd_arm(int fd, std::chrono::steady_clock::time_point deadline) noexcept
    {
        using namespace std::chrono;
        auto ns = duration_cast<nanoseconds>(deadline.time_since_epoch()).count();
        if (ns <= 0) {
            ns = 1; // an all-zero it_value would disarm
        }
        constexpr long long far = 1'000'000'000'000'000'000LL; // ~31 years of uptime: the kernel's range
        if (ns > far) {
            ns = far;
        }
        itimerspec spec{};
        spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        ::timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, nullptr);
    }

    /// Consumes an expiry of `fd` (nothing when another thread already did).
    static void timerfd_drain(int fd) noexcept
    {
        std::uint64_t expiries;
        ssize_t r;
        do {
            r = ::read(fd, &expiries, sizeof expiries);
        } while (r < 0 && errno == EINTR);
    }

    /// Gathering send that never raises SIGPIPE and never blocks.
    static ssize_t send_iov(int fd, const iovec* iov, int count) noexcept
    {
        msghdr msg{};
        msg.msg_iov = const_cast<iovec*>(iov);
        msg.msg_iovlen = static_cast<std::size_t>(count);
        return direct::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    }

    /// send() of one buffer: the single-buffer fast path of send_iov.
    static ssize_t send_one(int fd, const void* data, std::size_t length) noexcept
    {
        return direct::sendto(fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    }

    /// recv() into one buffer: the single-buffer fast path of recv_iov.
    static ssize_t recv_one(int fd, void* data, std::size_t length) noexcept
    {
        return direct::recvfrom(fd, data, length, MSG_DONTWAIT);
    }

    /// Scattering receive that never blocks; fills the buffers in order.
    static ssize_t recv_iov(int fd, iovec* iov, int count) noexcept
    {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(count);
        return direct::recvmsg(fd, &msg, MSG_DONTWAIT);
    }

    /// Asks the kernel to attach the count of bytes left in the receive
    /// queue to every recvmsg with room for it (TCP_INQ; fails on a non-TCP
    /// socket or a kernel before 4.18). 0, or -1 with errno set.
    static int enable_inq(int fd) noexcept
    {
        const int one = 1;
        return ::setsockopt(fd, IPPROTO_TCP, TCP_INQ, &one, sizeof one);
    }

    /// recv_iov that also reads TCP_INQ's control message: `inq` is set to
    /// the bytes left after the call (non-zero, too, when only the end of
    /// the stream is left), or -1 when the message did not come.
    static ssize_t recv_iov_inq(int fd, iovec* iov, int count, int& inq) noexcept
    {
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(count);
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t r = direct::recvmsg(fd, &msg, MSG_DONTWAIT);
        inq = -1;
        // The control buffer has room for one message, and TCP_INQ's is the
        // only one this socket asked for.
        const cmsghdr* c = CMSG_FIRSTHDR(&msg);
        if (r > 0 && c != nullptr && c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            std::memcpy(&inq, CMSG_DATA(c), sizeof inq);
        }
        return r;
    }

    /// Current readiness of `fd` (a zero-timeout poll): POLLIN / POLLOUT / POLLERR / POLLHUP / POLLRDHUP bits.
    static short poll_now(int fd, short events) noexcept
    {
        pollfd p{fd, static_cast<short>(events | POLLRDHUP), 0};
        int r;
        do {
            r = ::poll(&p, 1, 0);
        } while (r < 0 && errno == EINTR);
        return r > 0 ? p.revents : 0;
    }

    static int shutdown(int fd) noexcept { return ::shutdown(fd, SHUT_RDWR); }
    /// Half-close: the FIN goes after the bytes already in the send buffer;
    /// receiving goes on (async_socket::shutdown_send).
    static int shutdown_send(int fd) noexcept { return ::shutdown(fd, SHUT_WR); }
    static int close(int fd) noexcept { return ::close(fd); }
};

} // namespace asock::linux_epoll
