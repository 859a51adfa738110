// tests/integration/integration_support.hpp: what the Linux integration tests
// (real sockets over loopback and socketpair) add to the shared scenario
// helpers of tests/support/scenarios.hpp.
//
// - The helpers shared with the Windows tests (bounded waits, `tracker` +
//   `start()` / `run()` for detached coroutines, the data pattern, `rng`, the
//   coroutine building blocks, Catch2 names for asock's result values) live in
//   tests/support/scenarios.hpp and are visible here in namespace `it`.
// - Every wait is bounded by `hang_limit`; a wait that runs out ends the
//   process (failure) with a message naming it: a hang guard, never a timing
//   assertion.
// - Catch2 assertions are only made on the test's main thread; engine threads
//   and helper threads record what they saw into atomics / locked state.
// - `raw_peer` is the other end of a connection, driven with plain system calls.
// - A watchdog ends the run (failure) when a test section makes no progress for
//   `watchdog_limit` (a hang inside a library call, which no bounded wait in
//   the test itself can catch). Include this header from one source file per
//   executable: it registers the watchdog.
// - tests/integration/posix_harness.hpp builds the scenarios' harness on these.
#pragma once

#include <asock/asock.hpp>

// For the watchdog listener below (before anything includes Catch2).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "support/scenarios.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace it {

// The helpers shared with the Windows tests.
using asock_scenarios::check_pattern;
using asock_scenarios::clock;
using asock_scenarios::drain;
using asock_scenarios::drive_until;
using asock_scenarios::fill_pattern;
using asock_scenarios::hang;
using asock_scenarios::hang_limit;
using asock_scenarios::open_socket;
using asock_scenarios::pattern_byte;
using asock_scenarios::pattern_string;
using asock_scenarios::receive_exact;
using asock_scenarios::receive_into;
using asock_scenarios::rng;
using asock_scenarios::run;
using asock_scenarios::send_string;
using asock_scenarios::start;
using asock_scenarios::this_thread_id;
using asock_scenarios::tracker;
using asock_scenarios::wait_until;
using namespace std::chrono_literals;

/// The id of one of the engine's threads: the thread that runs a posted item.
inline std::thread::id engine_thread_id(asock::engine& e)
{
    struct probe : asock::detail::work_item {
        std::atomic<bool> ran{false};
        std::thread::id id;
    } p;
    p.run = [](asock::detail::work_item* w) {
        auto* self = static_cast<probe*>(w);
        self->id = std::this_thread::get_id();
        self->ran.store(true, std::memory_order_release);
    };
    e.post(&p);
    drive_until(e, "engine_thread_id", [&] { return p.ran.load(std::memory_order_acquire); });
    return p.id;
}

// ---- watchdog ----------------------------------------------------------------

/// How long one test section may go without finishing before the run is failed.
#ifndef ASOCK_IT_WATCHDOG_SECONDS
#define ASOCK_IT_WATCHDOG_SECONDS 180
#endif
inline constexpr std::chrono::seconds watchdog_limit{ASOCK_IT_WATCHDOG_SECONDS};

class watchdog_listener : public Catch::TestEventListenerBase {
public:
    using TestEventListenerBase::TestEventListenerBase;

    void testRunStarting(const Catch::TestRunInfo& info) override
    {
        TestEventListenerBase::testRunStarting(info);
        kick("(start)");
        thread_ = std::thread([this] { watch(); });
    }
    void sectionStarting(const Catch::SectionInfo& info) override
    {
        TestEventListenerBase::sectionStarting(info);
        kick(info.name);
    }
    void sectionEnded(const Catch::SectionStats& stats) override
    {
        TestEventListenerBase::sectionEnded(stats);
        kick(stats.sectionInfo.name + " (ended)");
    }
    void testRunEnded(const Catch::TestRunStats& stats) override
    {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) {
            thread_.join();
        }
        TestEventListenerBase::testRunEnded(stats);
    }

private:
    void kick(const std::string& where)
    {
        std::lock_guard lk(mu_);
        where_ = where;
        last_ = clock::now();
    }
    void watch()
    {
        std::unique_lock lk(mu_);
        while (!stop_) {
            cv_.wait_for(lk, std::chrono::seconds(1));
            if (!stop_ && clock::now() - last_ > watchdog_limit) {
                // _Exit, not abort: Catch's signal handler would call back into
                // this listener (and the hung test) while reporting.
                std::fprintf(stderr, "\nintegration watchdog: section \"%s\" made no progress for %lld s; failing\n",
                             where_.c_str(), static_cast<long long>(watchdog_limit.count()));
                std::fflush(nullptr);
                std::_Exit(EXIT_FAILURE);
            }
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::string where_;
    clock::time_point last_ = clock::now();
    std::thread thread_;
};

CATCH_REGISTER_LISTENER(watchdog_listener)

// ---- sockets ----------------------------------------------------------------

inline void set_nonblocking(int fd)
{
    const int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/// A connected AF_UNIX stream pair; both ends non-blocking.
inline std::pair<int, int> make_socketpair()
{
    int sv[2] = {-1, -1};
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    return {sv[0], sv[1]};
}

/// A connected TCP pair over 127.0.0.1 (TCP_NODELAY on both); both ends non-blocking.
inline std::pair<int, int> make_tcp_pair()
{
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(lfd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(lfd, 4) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const int cfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(cfd >= 0);
    REQUIRE(::connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const int afd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(afd >= 0);
    ::close(lfd);
    int one = 1;
    ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblocking(cfd);
    set_nonblocking(afd);
    return {cfd, afd};
}

/// Writes raw bytes into `fd` (no asock operation in flight) until the kernel
/// has no room left; returns how many.
inline std::size_t fill_send_buffer(int fd)
{
    std::vector<char> junk(64 * 1024, 'j');
    std::size_t total = 0;
    for (int i = 0; i < 100000; ++i) {
        const ssize_t w = ::send(fd, junk.data(), junk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0) {
            break;
        }
        total += static_cast<std::size_t>(w);
    }
    return total;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
inline rlim_t raise_fd_limit()
{
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            return raised.rlim_cur;
        }
    }
    return rl.rlim_cur;
}

/// The far end of a connection, driven with plain non-blocking system calls
/// and poll(); every wait is bounded. Never asserts: it reports with bools, so
/// it may run on helper threads.
class raw_peer {
public:
    raw_peer() = default;
    explicit raw_peer(int fd) : fd_(fd) {}
    raw_peer(const raw_peer&) = delete;
    raw_peer& operator=(const raw_peer&) = delete;
    raw_peer(raw_peer&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    raw_peer& operator=(raw_peer&& o) noexcept
    {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~raw_peer() { close(); }

    int fd() const noexcept { return fd_; }

    /// Writes every byte (waiting for room as needed).
    bool write_all(const void* data, std::size_t n)
    {
        const char* p = static_cast<const char*>(data);
        const auto deadline = clock::now() + hang_limit;
        while (n > 0) {
            const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                p += w;
                n -= static_cast<std::size_t>(w);
                continue;
            }
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return false;
            }
            if (!wait_for(POLLOUT, deadline)) {
                return false;
            }
        }
        return true;
    }
    bool write_all(const std::string& s) { return write_all(s.data(), s.size()); }

    /// Reads what is available once something is (at most n bytes). Returns
    /// the count, 0 at end of stream, -1 on error or when the wait ran out.
    long read_some(void* data, std::size_t n)
    {
        const auto deadline = clock::now() + hang_limit;
        for (;;) {
            const ssize_t r = ::recv(fd_, data, n, MSG_DONTWAIT);
            if (r >= 0) {
                return static_cast<long>(r);
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return -1;
            }
            if (!wait_for(POLLIN, deadline)) {
                return -1;
            }
        }
    }

    /// Reads exactly n bytes; false on end of stream, error or hang.
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
    std::string read_string(std::size_t n)
    {
        std::string s(n, '\0');
        if (!read_exact(s.data(), n)) {
            s.clear();
        }
        return s;
    }

    /// True when the stream ends (the next read returns 0) with no byte left.
    bool read_eof()
    {
        char c;
        return read_some(&c, 1) == 0;
    }

    /// Bytes readable right now, without waiting (drains them into `out`).
    std::size_t read_available(std::string& out)
    {
        char buf[4096];
        std::size_t total = 0;
        for (;;) {
            const ssize_t r = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
            if (r <= 0) {
                return total;
            }
            out.append(buf, static_cast<std::size_t>(r));
            total += static_cast<std::size_t>(r);
        }
    }

    /// Shrinks the kernel buffers so that a few hundred KiB fill them.
    void small_buffers(int bytes = 4096)
    {
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }

    /// close() that makes a TCP peer see a reset (SO_LINGER {1, 0}).
    void reset()
    {
        linger lg{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close();
    }

    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    void close()
    {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    bool wait_for(short events, clock::time_point deadline)
    {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) {
            return false;
        }
        pollfd p{fd_, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        return r >= 0; // timeouts of one poll are retried until the deadline
    }

    int fd_ = -1;
};

} // namespace it
