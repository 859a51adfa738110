// tests/win32/win32_harness.hpp: the Windows side of the shared integration
// scenarios (tests/support/scenarios.hpp; tests/integration/posix_harness.hpp
// is the Linux side): native TCP pairs over 127.0.0.1 and a plain Winsock peer
// whose every wait is bounded (non-blocking calls + select).
#pragma once

#include "support/scenarios.hpp"

#include <asock/win32/win32_api.hpp>

#include <cstddef>
#include <string>
#include <utility>

namespace asock_wtest {

struct win32_harness {
    using native = SOCKET;

    /// Winsock for the harness's own calls (engines start it too; calls pair up).
    struct winsock {
        winsock()
        {
            WSADATA d;
            ::WSAStartup(MAKEWORD(2, 2), &d);
        }
        ~winsock() { ::WSACleanup(); }
    };
    static void ensure_winsock()
    {
        static winsock w;
    }

    static void nodelay(SOCKET s)
    {
        BOOL one = TRUE;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
    }

    /// A connected TCP pair over 127.0.0.1 (TCP_NODELAY on both).
    static std::pair<SOCKET, SOCKET> native_pair()
    {
        ensure_winsock();
        const SOCKET l = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        REQUIRE(l != INVALID_SOCKET);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(l, 4) == 0);
        int len = sizeof addr;
        REQUIRE(::getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        const SOCKET c = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        REQUIRE(c != INVALID_SOCKET);
        REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        const SOCKET a = ::accept(l, nullptr, nullptr);
        REQUIRE(a != INVALID_SOCKET);
        ::closesocket(l);
        nodelay(c);
        nodelay(a);
        return {c, a};
    }

    static void small_buffers(SOCKET s, int bytes)
    {
        ::setsockopt(s, SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&bytes), sizeof bytes);
        ::setsockopt(s, SOL_SOCKET, SO_SNDBUF, reinterpret_cast<const char*>(&bytes), sizeof bytes);
    }

    /// Bytes waiting to be read on `s` now (FIONREAD).
    static std::size_t bytes_readable(SOCKET s)
    {
        u_long n = 0;
        if (::ioctlsocket(s, FIONREAD, &n) != 0) {
            return 0;
        }
        return static_cast<std::size_t>(n);
    }

    /// Waits (bounded) until `bytes` bytes wait on `s`. Winsock does not show
    /// a queued end of stream without reading it, so only the bytes are waited for.
    static void wait_until_end_queued(SOCKET s, std::size_t bytes)
    {
        asock_scenarios::wait_until("the peer's bytes queued", [&] { return bytes_readable(s) >= bytes; });
    }

    /// The far end of a connection, driven with plain non-blocking Winsock
    /// calls and select(); never asserts (reports with bools), so it may run
    /// on helper threads.
    class peer {
    public:
        peer() = default;
        explicit peer(SOCKET s) : s_(s)
        {
            u_long one = 1;
            ::ioctlsocket(s_, FIONBIO, &one);
        }
        peer(const peer&) = delete;
        peer& operator=(const peer&) = delete;
        peer(peer&& o) noexcept : s_(std::exchange(o.s_, INVALID_SOCKET)) {}
        peer& operator=(peer&& o) noexcept
        {
            if (this != &o) {
                close();
                s_ = std::exchange(o.s_, INVALID_SOCKET);
            }
            return *this;
        }
        ~peer() { close(); }

        bool write_all(const void* data, std::size_t n)
        {
            const char* p = static_cast<const char*>(data);
            const auto deadline = asock_scenarios::clock::now() + asock_scenarios::hang_limit;
            while (n > 0) {
                const int chunk = n > (1u << 20) ? (1 << 20) : static_cast<int>(n);
                const int w = ::send(s_, p, chunk, 0);
                if (w > 0) {
                    p += w;
                    n -= static_cast<std::size_t>(w);
                    continue;
                }
                if (w == SOCKET_ERROR && ::WSAGetLastError() != WSAEWOULDBLOCK) {
                    return false;
                }
                if (!wait(false, deadline)) {
                    return false;
                }
            }
            return true;
        }

        /// What is there once something is (at most n bytes): the count, 0 at
        /// the end of the stream, -1 on error or when the wait ran out.
        long read_some(void* data, std::size_t n)
        {
            const auto deadline = asock_scenarios::clock::now() + asock_scenarios::hang_limit;
            const int want = n > (1u << 20) ? (1 << 20) : static_cast<int>(n);
            for (;;) {
                const int r = ::recv(s_, static_cast<char*>(data), want, 0);
                if (r >= 0) {
                    return r;
                }
                if (::WSAGetLastError() != WSAEWOULDBLOCK) {
                    return -1;
                }
                if (!wait(true, deadline)) {
                    return -1;
                }
            }
        }

        bool read_exact(void* data, std::size_t n)
        {
            char* p = static_cast<char*>(data);
            while (n > 0) {
                const long r = read_some(p, n);
                if (r <= 0) {
                    return false;
                }
                p += r;
                n -= static_cast<std::size_t>(r);
            }
            return true;
        }

        bool read_eof()
        {
            char c;
            return read_some(&c, 1) == 0;
        }

        /// Appends what is readable right now to `out`, without waiting; the count.
        std::size_t read_available(std::string& out)
        {
            char buf[4096];
            std::size_t total = 0;
            for (;;) {
                const int r = ::recv(s_, buf, static_cast<int>(sizeof buf), 0);
                if (r <= 0) {
                    return total; // end of stream, error, or WSAEWOULDBLOCK: nothing more now
                }
                out.append(buf, static_cast<std::size_t>(r));
                total += static_cast<std::size_t>(r);
            }
        }

        void small_buffers(int bytes) { win32_harness::small_buffers(s_, bytes); }
        void shutdown_write() { ::shutdown(s_, SD_SEND); }

        /// Closes so that the other end sees a reset (SO_LINGER {1, 0}).
        void reset()
        {
            linger lg{1, 0};
            ::setsockopt(s_, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg), sizeof lg);
            close();
        }

        void close()
        {
            if (s_ != INVALID_SOCKET) {
                ::closesocket(s_);
                s_ = INVALID_SOCKET;
            }
        }

        SOCKET handle() const { return s_; }

    private:
        bool wait(bool readable, asock_scenarios::clock::time_point deadline)
        {
            while (asock_scenarios::clock::now() < deadline) {
                fd_set set;
                FD_ZERO(&set);
                FD_SET(s_, &set);
                timeval tv{1, 0};
                const int r = ::select(0, readable ? &set : nullptr, readable ? nullptr : &set, nullptr, &tv);
                if (r != 0) {
                    return r > 0;
                }
            }
            return false;
        }

        SOCKET s_ = INVALID_SOCKET;
    };
};

} // namespace asock_wtest
