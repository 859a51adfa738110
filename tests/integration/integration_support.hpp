// tests/integration/integration_support.hpp: shared helpers of the integration
// tests (real sockets over loopback and socketpair).
//
// - Every wait is bounded by `hang_limit`; a wait that runs out ends the
//   process (failure) with a message naming it: a hang guard, never a timing
//   assertion.
// - Catch2 assertions are only made on the test's main thread; engine threads
//   and helper threads record what they saw into atomics / locked state.
// - `tracker` + `start()` run asock::task coroutines detached and wait for them,
//   driving the engine's loop on this thread when it has no threads of its own.
// - `raw_peer` is the other end of a connection, driven with plain system calls.
// - A watchdog ends the run (failure) when a test section makes no progress for
//   `watchdog_limit` (a hang inside a library call, which no bounded wait in
//   the test itself can catch). Include this header from one source file per
//   executable: it registers the watchdog.
#pragma once

#include <asock/asock.hpp>

// For the watchdog listener below.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

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

// Readable names for asock's result values in Catch2 messages.
namespace Catch {
#define ASOCK_IT_STRING_MAKER(T)                                                                                       \
    template <>                                                                                                        \
    struct StringMaker<T> {                                                                                            \
        static std::string convert(T v) { return std::string(asock::to_string(v)); }                                  \
    };
ASOCK_IT_STRING_MAKER(asock::open_result)
ASOCK_IT_STRING_MAKER(asock::send_sync_result)
ASOCK_IT_STRING_MAKER(asock::send_result)
ASOCK_IT_STRING_MAKER(asock::receive_result)
ASOCK_IT_STRING_MAKER(asock::notify_io_result)
ASOCK_IT_STRING_MAKER(asock::start_result)
ASOCK_IT_STRING_MAKER(asock::socket_state)
#undef ASOCK_IT_STRING_MAKER
template <>
struct StringMaker<asock::receive_outcome> {
    static std::string convert(const asock::receive_outcome& r)
    {
        return std::string(asock::to_string(r.result)) + " (" + std::to_string(r.bytes_received) + " bytes)";
    }
};
} // namespace Catch

namespace it {

/// The calling thread's id, read so that the optimiser cannot reuse a value
/// read before a co_await after it: glibc declares pthread_self() `const`, and
/// clang at -O1 and above may fold the two reads of a coroutine into one,
/// which made "resumed on another thread" checks see the awaiting thread.
[[gnu::noinline]] inline std::thread::id this_thread_id() noexcept
{
    asm volatile("" ::: "memory");
    return std::this_thread::get_id();
}

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// Bound of every wait in these tests. Only a hang guard: nothing is asserted
/// about how long anything takes.
inline constexpr std::chrono::seconds hang_limit{60};

[[noreturn]] inline void hang(const char* what)
{
    std::fprintf(stderr, "\nintegration hang guard: \"%s\" did not finish within %lld s; failing\n", what,
                 static_cast<long long>(hang_limit.count()));
    std::fflush(nullptr);
    // Not abort(): Catch's signal handler would report through listeners while
    // the hung operation still holds whatever it holds.
    std::_Exit(EXIT_FAILURE);
}

/// Sleeps in 1 ms steps until `pred()` holds; fails the run after hang_limit.
template <class Pred>
void wait_until(const char* what, Pred pred)
{
    const auto deadline = clock::now() + hang_limit;
    while (!pred()) {
        if (clock::now() > deadline) {
            hang(what);
        }
        std::this_thread::sleep_for(1ms);
    }
}

/// Like wait_until, but runs the engine's loop on this thread while waiting
/// when the engine has no threads of its own.
template <class Pred>
void drive_until(asock::engine& e, const char* what, Pred pred)
{
    const auto deadline = clock::now() + hang_limit;
    while (!pred()) {
        if (clock::now() > deadline) {
            hang(what);
        }
        if (e.thread_count() == 0) {
            e.run_one(10);
        } else {
            std::this_thread::sleep_for(1ms);
        }
    }
}

/// Runs whatever work is already queued on a thread-less engine.
inline void drain(asock::engine& e)
{
    if (e.thread_count() == 0) {
        for (int i = 0; i < 1000 && e.poll() != 0; ++i) {
        }
    }
}

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

// ---- running coroutines ---------------------------------------------------

/// Counts coroutines still running; wait() blocks (bounded) until none is.
class tracker {
public:
    void add()
    {
        std::lock_guard lk(mu_);
        ++pending_;
    }
    void done()
    {
        std::lock_guard lk(mu_);
        --pending_;
        cv_.notify_all();
    }
    int pending()
    {
        std::lock_guard lk(mu_);
        return pending_;
    }
    void wait(asock::engine& e, const char* what = "tracked coroutines")
    {
        if (e.thread_count() == 0) {
            drive_until(e, what, [&] { return pending() == 0; });
            return;
        }
        std::unique_lock lk(mu_);
        if (!cv_.wait_for(lk, hang_limit, [&] { return pending_ == 0; })) {
            hang(what);
        }
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    int pending_ = 0;
};

namespace detail {
struct fire_and_forget {
    struct promise_type {
        fire_and_forget get_return_object() const noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
    };
};

template <class T>
fire_and_forget run_tracked(asock::task<T> t, std::optional<T>* out, tracker* tr)
{
    {
        // The task (and whatever its frame owns) is gone before done() is signalled.
        asock::task<T> local = std::move(t);
        out->emplace(co_await std::move(local));
    }
    tr->done();
}

inline fire_and_forget run_tracked_void(asock::task<void> t, tracker* tr)
{
    {
        asock::task<void> local = std::move(t);
        co_await std::move(local);
    }
    tr->done();
}
} // namespace detail

/// Starts `t` on this thread; it runs until its first suspension, then this
/// returns. Its result lands in `out`; `tr` counts it until it finished.
template <class T>
void start(tracker& tr, asock::task<T> t, std::optional<T>& out)
{
    tr.add();
    detail::run_tracked(std::move(t), &out, &tr);
}
inline void start(tracker& tr, asock::task<void> t)
{
    tr.add();
    detail::run_tracked_void(std::move(t), &tr);
}

/// Runs `t` to completion (bounded) and returns its result.
template <class T>
T run(asock::engine& e, asock::task<T> t, const char* what = "run")
{
    tracker tr;
    std::optional<T> out;
    start(tr, std::move(t), out);
    tr.wait(e, what);
    return std::move(*out);
}
inline void run(asock::engine& e, asock::task<void> t, const char* what = "run")
{
    tracker tr;
    start(tr, std::move(t));
    tr.wait(e, what);
}

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

/// An OPEN async socket on `e` that owns `fd`.
inline asock::tcp_socket open_socket(asock::engine& e, int fd)
{
    asock::tcp_socket s(e);
    REQUIRE(s.valid());
    REQUIRE(s.open(fd) == asock::open_result::ok);
    REQUIRE(s.state() == asock::socket_state::open);
    return s;
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

// ---- data -----------------------------------------------------------------

/// The deterministic byte at `index` of test stream `seed`.
inline std::uint8_t pattern_byte(std::uint64_t index, std::uint32_t seed = 0)
{
    std::uint64_t x = index * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return static_cast<std::uint8_t>(x ^ (x >> 8));
}

inline void fill_pattern(void* data, std::size_t n, std::uint64_t first_index, std::uint32_t seed = 0)
{
    auto* p = static_cast<std::uint8_t*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = pattern_byte(first_index + i, seed);
    }
}

/// Index of the first byte of `data` that differs from the pattern, or n.
inline std::size_t check_pattern(const void* data, std::size_t n, std::uint64_t first_index, std::uint32_t seed = 0)
{
    const auto* p = static_cast<const std::uint8_t*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != pattern_byte(first_index + i, seed)) {
            return i;
        }
    }
    return n;
}

inline std::string pattern_string(std::size_t n, std::uint64_t first_index = 0, std::uint32_t seed = 0)
{
    std::string s(n, '\0');
    fill_pattern(s.data(), n, first_index, seed);
    return s;
}

/// A small deterministic generator (xorshift) for sizes and choices.
struct rng {
    std::uint64_t s;
    explicit rng(std::uint64_t seed) : s(seed * 2654435761u + 0x1234567u) {}
    std::uint32_t next()
    {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return static_cast<std::uint32_t>(s >> 11);
    }
    std::uint32_t between(std::uint32_t lo, std::uint32_t hi) { return lo + next() % (hi - lo + 1); }
};

// ---- coroutine building blocks --------------------------------------------

/// Receives exactly `n` bytes into `out` (appending); returns the result of the
/// receive that stopped it (ok when all n bytes arrived).
inline asock::task<asock::receive_result> receive_exact(asock::tcp_socket& s, std::string& out, std::size_t n)
{
    std::vector<char> buf(64 * 1024);
    while (n > 0) {
        const std::size_t want = std::min(n, buf.size());
        const asock::receive_outcome r = co_await s.receive_async(asock::buffer(buf.data(), want));
        if (!r) {
            co_return r.result;
        }
        out.append(buf.data(), r.bytes_received);
        n -= r.bytes_received;
    }
    co_return asock::receive_result::ok;
}

inline asock::task<asock::send_result> send_string(asock::tcp_socket& s, std::string data)
{
    co_return co_await s.send_async(asock::buffer(std::string_view(data)));
}

inline asock::task<asock::receive_outcome> receive_into(asock::tcp_socket& s, void* data, std::size_t n,
                                                        std::stop_token token = {})
{
    co_return co_await s.receive_async(asock::buffer(data, n), std::move(token));
}

} // namespace it
