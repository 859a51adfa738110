// tests/support/scenarios.hpp: platform-neutral integration scenarios over real
// sockets, shared by the Linux integration tests (tests/integration/) and the
// Windows ones (tests/win32/integration_io.cpp), so that a scenario whose
// behaviour is the same on both is written once.
//
// Written against asock's public API only (asock/asock.hpp) and a harness `H`
// that supplies what differs per OS (tests/integration/posix_harness.hpp,
// tests/win32/win32_harness.hpp):
//
//   H::native                 the OS's socket handle
//   H::native_pair()          -> std::pair<native, native>: a connected stream pair
//                                (TCP over 127.0.0.1; on Linux also AF_UNIX), each
//                                end as asock's open() and H::peer take it
//   H::small_buffers(native, bytes)   shrinks an async end's kernel buffers
//   H::bytes_readable(native) bytes waiting to be read on an async end, now
//   H::wait_until_end_queued(native, bytes)
//                             waits (bounded) until `bytes` bytes and, where the
//                                OS shows it, the end of the stream wait there
//   H::peer                   owns one native end, driven with plain calls; never
//                                asserts (so it may run on helper threads); every
//                                wait bounded: write_all(p, n), read_some(p, n)
//                                (-1 error or hang, 0 end of stream), read_exact(p, n),
//                                read_eof(), read_available(out) (appends what is
//                                there now, without waiting; returns the count),
//                                shutdown_write(), reset() (close with SO_LINGER
//                                {1, 0}), close(), small_buffers(bytes)
//
// Engines: a scenario runs on any engine unless it says it needs threads. On
// an engine without threads of its own (Linux can make one) every wait below
// runs the engine's loop on the test thread, and peer I/O that must overlap
// asock's runs on a helper thread.
//
// Where the platforms' results differ, the scenario checks what they share and
// returns what a platform's test needs to check the rest (or takes an `Extra`
// with operations only one platform has). Those checks stay in the platform's
// test file.
//
// Rules: Catch2 assertions only on the test's thread; coroutines, callbacks and
// helper threads record what they see; every wait is bounded by `hang_limit` (a
// hang guard that ends the run, never a timing assertion); loops are bounded.
#pragma once

#include <asock/asock.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// Readable names for asock's result values in Catch2 messages.
namespace Catch {
#define ASOCK_SC_STRING_MAKER(T)                                                                                       \
    template <>                                                                                                        \
    struct StringMaker<T> {                                                                                            \
        static std::string convert(T v) { return std::string(asock::to_string(v)); }                                  \
    };
ASOCK_SC_STRING_MAKER(asock::open_result)
ASOCK_SC_STRING_MAKER(asock::send_sync_result)
ASOCK_SC_STRING_MAKER(asock::send_result)
ASOCK_SC_STRING_MAKER(asock::receive_result)
ASOCK_SC_STRING_MAKER(asock::notify_io_result)
ASOCK_SC_STRING_MAKER(asock::start_result)
ASOCK_SC_STRING_MAKER(asock::socket_state)
ASOCK_SC_STRING_MAKER(asock::shutdown_result)
#undef ASOCK_SC_STRING_MAKER
template <>
struct StringMaker<asock::receive_outcome> {
    static std::string convert(const asock::receive_outcome& r)
    {
        return std::string(asock::to_string(r.result)) + " (" + std::to_string(r.bytes_received) + " bytes)";
    }
};
} // namespace Catch

namespace asock_scenarios {

using asock::receive_outcome;
using asock::receive_result;
using asock::send_result;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// Bound of every wait. Only a hang guard: nothing is asserted about how long
/// anything takes.
inline constexpr std::chrono::seconds hang_limit{60};

[[noreturn]] inline void hang(const char* what)
{
    std::fprintf(stderr, "\nscenario hang guard: \"%s\" did not finish within %lld s; failing\n", what,
                 static_cast<long long>(hang_limit.count()));
    std::fflush(nullptr);
    // Not abort(): Catch's signal handler would report through listeners while
    // the hung operation still holds whatever it holds.
    std::_Exit(EXIT_FAILURE);
}

/// The calling thread's id, read so that the optimiser cannot reuse a value
/// read before a co_await after it: glibc declares pthread_self() `const`, and
/// clang at -O1 and above may fold the two reads of a coroutine into one,
/// which made "resumed on another thread" checks see the awaiting thread.
#if defined(__GNUC__)
[[gnu::noinline]]
#endif
inline std::thread::id this_thread_id() noexcept
{
#if defined(__GNUC__)
    asm volatile("" ::: "memory");
#endif
    return std::this_thread::get_id();
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

/// Runs whatever work is already queued on an engine without threads.
inline void drain(asock::engine& e)
{
    if (e.thread_count() == 0) {
        for (int i = 0; i < 1000 && e.poll() != 0; ++i) {
        }
    }
}

// ---- running coroutines ------------------------------------------------------

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
template <class T>
asock::task<void> run_tracked(asock::task<T> t, std::optional<T>* out, tracker* tr)
{
    {
        // The task (and whatever its frame owns) is gone before done() is signalled.
        asock::task<T> local = std::move(t);
        out->emplace(co_await std::move(local));
    }
    tr->done();
}

inline asock::task<void> run_tracked_void(asock::task<void> t, tracker* tr)
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
    asock::spawn(detail::run_tracked(std::move(t), &out, &tr));
}
inline void start(tracker& tr, asock::task<void> t)
{
    tr.add();
    asock::spawn(detail::run_tracked_void(std::move(t), &tr));
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

// ---- data ----------------------------------------------------------------------

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

// ---- coroutine building blocks ---------------------------------------------------

/// Receives exactly `n` bytes into `out` (appending); returns the result of the
/// receive that stopped it (ok when all n bytes arrived).
inline asock::task<receive_result> receive_exact(asock::tcp_socket& s, std::string& out, std::size_t n)
{
    std::vector<char> buf(64 * 1024);
    while (n > 0) {
        const std::size_t want = std::min(n, buf.size());
        const receive_outcome r = co_await s.receive_async(asock::buffer(buf.data(), want));
        if (!r) {
            co_return r.result;
        }
        out.append(buf.data(), r.bytes_received);
        n -= r.bytes_received;
    }
    co_return receive_result::ok;
}

/// Sends a copy of `data` (the frame owns it, so a temporary may be passed to
/// a coroutine that outlives the call).
inline asock::task<send_result> send_string(asock::tcp_socket& s, std::string data, std::stop_token token = {})
{
    co_return co_await s.send_async(asock::buffer(std::string_view(data)), std::move(token));
}

inline asock::task<receive_outcome> receive_into(asock::tcp_socket& s, void* data, std::size_t n,
                                                 std::stop_token token = {})
{
    co_return co_await s.receive_async(asock::buffer(data, n), std::move(token));
}

inline asock::task<send_result> send_buffers(asock::tcp_socket& s, std::span<const asock::const_buffer> bufs)
{
    co_return co_await s.send_async(bufs);
}

inline asock::task<receive_outcome> receive_buffers(asock::tcp_socket& s, std::span<const asock::mutable_buffer> bufs)
{
    co_return co_await s.receive_async(bufs);
}

/// A result and the threads its coroutine ran on before and after its one co_await.
template <class R>
struct with_threads {
    R result{};
    std::thread::id before;
    std::thread::id after;
};

inline asock::task<with_threads<receive_outcome>> receive_t(asock::tcp_socket& s, char* buf, std::size_t n,
                                                            std::stop_token token = {})
{
    with_threads<receive_outcome> out;
    out.before = this_thread_id();
    out.result = co_await s.receive_async(asock::buffer(buf, n), std::move(token));
    out.after = this_thread_id();
    co_return out;
}

inline asock::task<with_threads<send_result>> send_t(asock::tcp_socket& s, const void* data, std::size_t n,
                                                     std::stop_token token = {})
{
    with_threads<send_result> out;
    out.before = this_thread_id();
    out.result = co_await s.send_async(asock::buffer(data, n), std::move(token));
    out.after = this_thread_id();
    co_return out;
}

// ---- completion records --------------------------------------------------------

/// What a callback-form completion recorded. `calls` is written last (release),
/// so the other fields may be read once count() says it was called (acquire).
struct op_record {
    std::atomic<int> calls{0};
    int result = -1;
    bool abandoned = false;
    /// Set by a test: the operation may legitimately have finished before the
    /// close (a notify(out) whose socket had room for a moment while the
    /// engine had not yet refilled it); check_abandoned_once accepts it.
    bool ready_before_close = false;
    bool may_be_ready_before_close = false;
    std::string_view name; // of the result, for messages
    std::uint32_t bytes = 0;
    int order = -1;
    std::thread::id thread;
    std::atomic<int>* sequence = nullptr; // shared completion counter, for ordering

    template <class R>
    void record(R r, std::uint32_t n)
    {
        result = static_cast<int>(r);
        abandoned = r == R::abandoned;
        if constexpr (std::is_same_v<R, asock::notify_io_result>) {
            ready_before_close = r == R::out || r == R::in;
        }
        name = asock::to_string(r);
        bytes = n;
        order = sequence != nullptr ? sequence->fetch_add(1) : -1;
        thread = this_thread_id();
        calls.fetch_add(1, std::memory_order_release);
    }
    int count() const { return calls.load(std::memory_order_acquire); }
};

template <class E>
E result_of(const op_record& r)
{
    return static_cast<E>(r.result);
}

inline void on_send_rec(void* c, send_result r) { static_cast<op_record*>(c)->record(r, 0); }
inline void on_receive_rec(void* c, receive_result r, std::uint32_t n) { static_cast<op_record*>(c)->record(r, n); }

/// Checks that `r` was called exactly once, abandoned, with no bytes.
inline void check_abandoned_once(const op_record& r)
{
    CHECK(r.count() == 1);
    if (r.count() != 0) { // the other fields are only read once the count says they were written
        INFO("result " << r.name);
        CHECK((r.abandoned || (r.may_be_ready_before_close && r.ready_before_close)));
        CHECK(r.bytes == 0);
    }
}

/// What an awaiting coroutine saw when it resumed; `resumed` is written last.
struct awaited_record {
    std::atomic<int> resumed{0};
    bool abandoned = false;
    bool ready_before_close = false;        ///< as op_record's
    bool may_be_ready_before_close = false; ///< as op_record's
    /// Abandoned, or (when the test allows it) ready before the close.
    bool abandoned_or_allowed() const { return abandoned || (may_be_ready_before_close && ready_before_close); }
    std::string_view name;
    std::uint32_t bytes = 0;
    std::thread::id thread;

    template <class R>
    void record(R r, std::uint32_t n)
    {
        abandoned = r == R::abandoned;
        if constexpr (std::is_same_v<R, asock::notify_io_result>) {
            ready_before_close = r == R::out || r == R::in;
        }
        name = asock::to_string(r);
        bytes = n;
        thread = this_thread_id();
        resumed.fetch_add(1, std::memory_order_release);
    }
    int count() const { return resumed.load(std::memory_order_acquire); }
};

inline asock::task<void> await_receive_rec(asock::tcp_socket& s, awaited_record* rec)
{
    char buf[16];
    const receive_outcome r = co_await s.receive_async(asock::buffer(buf));
    rec->record(r.result, r.bytes_received);
}

inline asock::task<void> await_send_rec(asock::tcp_socket& s, const std::vector<char>* data, awaited_record* rec)
{
    rec->record(co_await s.send_async(asock::buffer(static_cast<const void*>(data->data()), data->size())), 0);
}

// ---- connections ----------------------------------------------------------------------

/// An OPEN async socket on `e` that owns `handle`.
template <class Handle>
asock::tcp_socket open_socket(asock::engine& e, Handle handle)
{
    asock::tcp_socket s(e);
    REQUIRE(s.valid());
    REQUIRE(s.open(handle) == asock::open_result::ok);
    REQUIRE(s.state() == asock::socket_state::open);
    return s;
}

/// An async socket and the raw peer at the other end of its connection.
template <class H>
struct async_and_peer {
    asock::tcp_socket socket;
    typename H::peer peer;
};

template <class H>
async_and_peer<H> make_async_and_peer(asock::engine& e)
{
    auto [a, b] = H::native_pair();
    return {open_socket(e, a), typename H::peer(b)};
}

/// make_async_and_peer with both ends' kernel buffers made small (8 KiB asked),
/// so that a send of a few hundred KiB waits for the peer to read.
template <class H>
async_and_peer<H> make_small_buffered(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    H::small_buffers(c.socket.native_handle(), 8192);
    c.peer.small_buffers(8192);
    return c;
}

/// Both ends of a connection as async sockets.
template <class H>
std::pair<asock::tcp_socket, asock::tcp_socket> async_pair(asock::engine& e)
{
    auto [a, b] = H::native_pair();
    asock::tcp_socket sa = open_socket(e, a);
    return {std::move(sa), open_socket(e, b)};
}

/// A connected pair of OPEN async sockets, made with asock's own TCP helpers
/// (tcp_listener_t::listen / accept and asock::connect).
inline std::pair<asock::tcp_socket, asock::tcp_socket> connected_pair(asock::engine& e)
{
    using outcome = asock::connect_outcome<asock::default_platform>;
    auto listened = asock::tcp_listener_t::listen(e, "127.0.0.1", 0);
    const std::error_code ec = listened.error;
    auto& listener = listened.listener;
    REQUIRE_FALSE(ec);
    REQUIRE(listener.valid());
    tracker tr;
    std::optional<outcome> accepted;
    std::optional<outcome> connected;
    start(tr, listener.accept(), accepted);
    start(tr, asock::connect(e, "127.0.0.1", listener.port()), connected);
    tr.wait(e, "connected pair");
    INFO("accept: " << accepted->error.message() << ", connect: " << connected->error.message());
    REQUIRE(static_cast<bool>(*accepted));
    REQUIRE(static_cast<bool>(*connected));
    return {std::move(connected->socket), std::move(accepted->socket)};
}

// ==== echo ==============================================================================

struct echo_options {
    std::string host = "127.0.0.1";
    int clients = 8;
    int messages = 40;
};

namespace detail {

/// Echoes until the stream ends; counts how it ended.
inline asock::task<void> echo_session(asock::tcp_socket socket, std::atomic<int>* ended, std::atomic<int>* abandoned)
{
    std::vector<char> data(16 * 1024);
    for (;;) {
        const receive_outcome r = co_await socket.receive_async(asock::buffer(data.data(), data.size()));
        if (!r) {
            if (r.result == receive_result::abandoned) {
                abandoned->fetch_add(1); // the client hung up
            }
            break;
        }
        if (co_await socket.send_async(asock::buffer(static_cast<const void*>(data.data()), r.bytes_received)) !=
            send_result::ok) {
            break;
        }
    }
    ended->fetch_add(1);
}

struct echo_counts {
    std::atomic<int> ended{0};
    std::atomic<int> abandoned{0};
    std::atomic<int> accept_errors{0};
};

inline asock::task<void> echo_serve(asock::tcp_listener_t& listener, int clients, tracker* sessions, echo_counts* n)
{
    for (int i = 0; i < clients; ++i) {
        auto accepted = co_await listener.accept();
        if (!accepted) {
            n->accept_errors.fetch_add(1);
            co_return;
        }
        start(*sessions, echo_session(std::move(accepted.socket), &n->ended, &n->abandoned));
    }
}

/// Sends `messages` messages of random sizes (up to 64 KiB) and checks each
/// echo; returns "" on success, else what went wrong. Its socket is destroyed
/// when it ends, which the session sees as the end of the stream.
inline asock::task<std::string> echo_client(asock::engine& e, std::string host, std::uint16_t port, std::uint32_t seed,
                                            int messages)
{
    auto connected = co_await asock::connect(e, host, port);
    if (!connected) {
        co_return "connect: " + connected.error.message();
    }
    asock::tcp_socket& s = connected.socket;
    rng r(seed);
    std::uint64_t offset = 0;
    for (int m = 0; m < messages; ++m) {
        const std::size_t size = r.between(1, 64 * 1024);
        const std::string msg = pattern_string(size, offset, seed);
        offset += size;
        const send_result sr = co_await s.send_async(asock::buffer(std::string_view(msg)));
        if (sr != send_result::ok) {
            co_return "send: " + std::string(asock::to_string(sr));
        }
        std::string echo;
        const receive_result rr = co_await receive_exact(s, echo, size);
        if (rr != receive_result::ok) {
            co_return "receive: " + std::string(asock::to_string(rr));
        }
        if (echo != msg) {
            co_return "echo mismatch in message " + std::to_string(m);
        }
    }
    co_return std::string();
}

} // namespace detail

/// Echo through asock's TCP helpers: a listener accepts `clients` connections
/// made with asock::connect, a session echoes each; every client sends
/// messages of random sizes and checks each echo, then hangs up, which ends
/// its session with ABANDONED. An IPv6 host that the machine lacks is skipped
/// with a warning.
inline void echo(asock::engine& e, const echo_options& o = {})
{
    auto listened = asock::tcp_listener_t::listen(e, o.host, 0);
    const std::error_code ec = listened.error;
    auto& listener = listened.listener;
    if (ec && o.host == "::1") {
        WARN("IPv6 loopback unavailable (" << ec.message() << "): ::1 echo skipped");
        return;
    }
    REQUIRE_FALSE(ec);
    REQUIRE(listener.valid());
    REQUIRE(listener.port() != 0);

    tracker sessions;
    detail::echo_counts counts;
    tracker server;
    start(server, detail::echo_serve(listener, o.clients, &sessions, &counts));

    tracker client_tracker;
    std::vector<std::optional<std::string>> results(static_cast<std::size_t>(o.clients));
    for (int c = 0; c < o.clients; ++c) {
        start(client_tracker,
              detail::echo_client(e, o.host, listener.port(), 100u + static_cast<std::uint32_t>(c), o.messages),
              results[static_cast<std::size_t>(c)]);
    }
    client_tracker.wait(e, "echo clients");
    server.wait(e, "echo server accept loop");
    sessions.wait(e, "echo sessions");
    for (auto& r : results) {
        REQUIRE(r.has_value());
        CHECK(*r == "");
    }
    CHECK(counts.ended.load() == o.clients);
    CHECK(counts.abandoned.load() == o.clients);
    CHECK(counts.accept_errors.load() == 0);
    listener.close();
    drain(e);
}

// ==== scatter / gather ======================================================================

/// `count` sizes between 1 and 50000 that add up to `total` (the last takes the rest).
inline std::vector<std::size_t> odd_sizes(int count, std::size_t total, std::uint64_t seed)
{
    rng r(seed);
    std::vector<std::size_t> sizes;
    std::size_t sum = 0;
    for (int i = 0; i < count; ++i) {
        const std::size_t n = i + 1 == count ? total - sum : r.between(1, 50000);
        sizes.push_back(n);
        sum += n;
    }
    return sizes;
}

/// A multi-buffer send (gather) of buffers of the given sizes arrives complete,
/// in order, and nothing else arrives.
template <class H>
void gather_send(asock::engine& e, const std::vector<std::size_t>& sizes, std::uint32_t seed)
{
    auto c = make_async_and_peer<H>(e);
    std::size_t total = 0;
    for (std::size_t n : sizes) {
        total += n;
    }
    const std::string data = pattern_string(total, 0, seed);
    std::vector<asock::const_buffer> bufs;
    std::size_t off = 0;
    for (std::size_t n : sizes) {
        bufs.push_back(asock::buffer(data.data() + off, n));
        off += n;
    }
    tracker tr;
    std::optional<send_result> sr;
    start(tr, send_buffers(c.socket, bufs), sr);
    // The reader is a helper thread: on an engine without threads the loop runs on this one.
    std::string got(total, '\0');
    std::atomic<bool> read_ok{false};
    std::thread reader([&] { read_ok = c.peer.read_exact(got.data(), total); });
    tr.wait(e, "gather send");
    reader.join();
    REQUIRE(sr.has_value());
    CHECK(*sr == send_result::ok);
    REQUIRE(read_ok.load());
    CHECK(check_pattern(got.data(), total, 0, seed) == total);
    std::string extra;
    CHECK(c.peer.read_available(extra) == 0);
    drain(e);
}

/// Receive buffers of the given sizes, each followed by 16 sentinel bytes that
/// must stay untouched.
class scatter_buffers {
public:
    explicit scatter_buffers(std::vector<std::size_t> sizes) : sizes_(std::move(sizes))
    {
        for (std::size_t n : sizes_) {
            storage_.emplace_back(n + 16, '\xEE');
        }
        for (std::size_t i = 0; i < sizes_.size(); ++i) {
            bufs_.push_back(asock::buffer(storage_[i].data(), sizes_[i]));
        }
    }
    scatter_buffers(const scatter_buffers&) = delete;
    scatter_buffers& operator=(const scatter_buffers&) = delete;

    std::span<const asock::mutable_buffer> list() const { return bufs_; }
    std::size_t room() const
    {
        std::size_t n = 0;
        for (std::size_t s : sizes_) {
            n += s;
        }
        return n;
    }

    /// Checks that the buffers hold exactly `got` bytes of stream `seed`, in
    /// order, and that nothing was written past what was received.
    void check(std::size_t got, std::uint32_t seed) const
    {
        std::size_t index = 0;
        for (std::size_t i = 0; i < sizes_.size(); ++i) {
            const std::size_t filled = std::min(sizes_[i], got > index ? got - index : 0);
            CAPTURE(i, sizes_[i], filled);
            CHECK(check_pattern(storage_[i].data(), filled, index, seed) == filled);
            for (std::size_t k = filled; k < storage_[i].size(); ++k) {
                if (storage_[i][k] != '\xEE') {
                    FAIL_CHECK("byte " << k << " of buffer " << i << " was written past the received data");
                    break;
                }
            }
            index += sizes_[i];
        }
    }

private:
    std::vector<std::size_t> sizes_;
    std::vector<std::vector<char>> storage_;
    std::vector<asock::mutable_buffer> bufs_;
};

/// `count` buffers of sizes 1, 2, ..., count.
inline std::vector<std::size_t> ascending_sizes(std::size_t count)
{
    std::vector<std::size_t> sizes;
    for (std::size_t i = 1; i <= count; ++i) {
        sizes.push_back(i);
    }
    return sizes;
}

/// A multi-buffer receive (scatter) started when `sent` bytes already wait
/// fills the buffers in order, every one of them and not only the first: one
/// receive takes what is there, up to the buffers' room, past the 64
/// buffers one system call takes on either backend.
template <class H>
void scatter_receive_waiting(asock::engine& e, const std::vector<std::size_t>& sizes, std::size_t sent,
                             std::uint32_t seed)
{
    auto c = make_async_and_peer<H>(e);
    scatter_buffers b(sizes);
    const std::string data = pattern_string(sent, 0, seed);
    REQUIRE(c.peer.write_all(data.data(), data.size()));
    // Every byte is in the kernel before the receive starts.
    wait_until("bytes readable", [&] { return H::bytes_readable(c.socket.native_handle()) >= sent; });
    const receive_outcome r = run(e, receive_buffers(c.socket, b.list()), "scatter receive");
    REQUIRE(r.result == receive_result::ok);
    CHECK(r.bytes_received == std::min(sent, b.room()));
    b.check(r.bytes_received, seed);
    drain(e);
}

/// A multi-buffer receive started before anything arrives, then one write that
/// fills the buffers exactly: it gets all of it, in order.
template <class H>
void scatter_receive_pending(asock::engine& e, const std::vector<std::size_t>& sizes, std::uint32_t seed)
{
    auto c = make_async_and_peer<H>(e);
    scatter_buffers b(sizes);
    tracker tr;
    std::optional<receive_outcome> r;
    start(tr, receive_buffers(c.socket, b.list()), r);
    const std::string data = pattern_string(b.room(), 0, seed);
    REQUIRE(c.peer.write_all(data.data(), data.size()));
    tr.wait(e, "pending scatter receive");
    REQUIRE(r.has_value());
    REQUIRE(r->result == receive_result::ok);
    CHECK(r->bytes_received == b.room());
    b.check(r->bytes_received, seed);
    drain(e);
}

/// Gather sends and scatter receives, every case (buffer lists up to 64 long
/// for the receives, which both platforms fill completely).
template <class H>
void multi_buffer(asock::engine& e)
{
    gather_send<H>(e, {3, 1000, 1, 7000, 5}, 5);
    gather_send<H>(e, odd_sizes(150, 4u << 20, 9), 5);
    scatter_receive_waiting<H>(e, {1, 7, 100, 3, 4096}, 4207, 1);
    scatter_receive_pending<H>(e, {2, 5, 1, 1000, 33}, 2);
    scatter_receive_waiting<H>(e, {1, 7, 100, 3, 4096}, 50, 3);
    scatter_receive_waiting<H>(e, ascending_sizes(64), 64 * 65 / 2, 4);
}

// ==== peer close =================================================================================

struct received_stream {
    std::string bytes;
    receive_result last = receive_result::ok;
    receive_result after_last = receive_result::ok;
};

/// Receives (through a few small scattered buffers) until a receive fails,
/// then tries once more.
inline asock::task<received_stream> receive_until_end(asock::tcp_socket& s)
{
    received_stream out;
    char a[3];
    char b[700];
    char c[5000];
    const std::array<asock::mutable_buffer, 3> bufs{asock::buffer(a), asock::buffer(b), asock::buffer(c)};
    for (;;) {
        const receive_outcome r = co_await s.receive_async(bufs);
        if (!r) {
            out.last = r.result;
            if (r.bytes_received != 0) {
                out.last = receive_result::error; // a failed receive must report 0 bytes
            }
            break;
        }
        std::size_t left = r.bytes_received;
        for (const auto& bf : bufs) {
            const std::size_t take = std::min<std::size_t>(left, bf.size);
            out.bytes.append(static_cast<const char*>(bf.data), take);
            left -= take;
        }
    }
    char one;
    out.after_last = (co_await s.receive_async(asock::buffer(&one, 1))).result;
    co_return out;
}

/// A receive is pending when the peer's bytes and its close arrive: every
/// byte is received, then ABANDONED, and again ABANDONED.
template <class H>
void peer_close_receive_pending(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    tracker tr;
    std::optional<received_stream> got;
    start(tr, receive_until_end(c.socket), got);
    const std::string data = pattern_string(20000, 0, 6);
    REQUIRE(c.peer.write_all(data.data(), data.size()));
    c.peer.close();
    tr.wait(e, "receive until end");
    REQUIRE(got.has_value());
    CHECK(got->bytes.size() == data.size());
    CHECK(got->bytes == data);
    CHECK(got->last == receive_result::abandoned);
    CHECK(got->after_last == receive_result::abandoned);
    drain(e);
}

/// Nothing is pending when the peer's bytes and close arrive; the receives come later.
template <class H>
void peer_close_before_receive(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    const std::string data = pattern_string(3000, 0, 7);
    REQUIRE(c.peer.write_all(data.data(), data.size()));
    c.peer.close();
    H::wait_until_end_queued(c.socket.native_handle(), data.size());
    drain(e); // a loop on this thread sees the hang-up before any receive starts
    const received_stream got = run(e, receive_until_end(c.socket), "receive until end");
    CHECK(got.bytes == data);
    CHECK(got.last == receive_result::abandoned);
    CHECK(got.after_last == receive_result::abandoned);
    drain(e);
}

/// Rounds of: a helper thread writes a stream in pieces and closes while the
/// socket receives (round 0 writes 100000 bytes, the others up to 30000).
template <class H>
void peer_close_rounds(asock::engine& e, std::uint32_t rounds = 100)
{
    for (std::uint32_t round = 0; round < rounds; ++round) {
        CAPTURE(round);
        auto c = make_async_and_peer<H>(e);
        rng r(round);
        const std::string data = pattern_string(round == 0 ? 100000 : r.between(1, 30000), 0, round);
        const std::uint32_t pieces = r.between(1, 5);
        tracker tr;
        std::optional<received_stream> got;
        std::atomic<bool> wrote_all{true};
        std::thread writer([&] {
            std::size_t off = 0;
            for (std::uint32_t p = 0; p < pieces; ++p) {
                const std::size_t n = p + 1 == pieces ? data.size() - off : (data.size() - off) / 2;
                if (!c.peer.write_all(data.data() + off, n)) {
                    wrote_all = false;
                }
                off += n;
            }
            c.peer.close();
        });
        start(tr, receive_until_end(c.socket), got);
        tr.wait(e, "receive until end (rounds)");
        writer.join();
        REQUIRE(wrote_all.load());
        REQUIRE(got.has_value());
        REQUIRE(got->bytes.size() == data.size());
        REQUIRE(got->bytes == data);
        REQUIRE(got->last == receive_result::abandoned);
        REQUIRE(got->after_last == receive_result::abandoned);
    }
    drain(e);
}

/// The peer sends, then closes: every byte arrives, then ABANDONED (all cases).
template <class H>
void peer_close(asock::engine& e)
{
    peer_close_receive_pending<H>(e);
    peer_close_before_receive<H>(e);
    peer_close_rounds<H>(e);
}

// ==== half-close ===================================================================================

/// Half-close (async_socket::shutdown_send): socket `a` starts `pieces` sends
/// of `piece` bytes each (1 MiB in all by default), calls shutdown_send while
/// they are still queued or in flight, and the FIN follows them: the peer `b`
/// receives every byte in order, then ABANDONED. A send on `a` afterwards is
/// rejected not_open, while `b` can still send a reply that `a` receives; when
/// `b` closes, `a`'s next receive is ABANDONED.
template <class H>
void half_close(asock::engine& e, std::size_t pieces = 16, std::size_t piece = 64 * 1024)
{
    auto [a, b] = async_pair<H>(e);
    H::small_buffers(a.native_handle(), 8192); // the sends cannot all go at once: the FIN has to wait
    const std::string data = pattern_string(pieces * piece, 0, 11);
    tracker tr;
    std::optional<received_stream> got;
    start(tr, receive_until_end(b), got);
    std::vector<std::optional<send_result>> sent(pieces);
    for (std::size_t i = 0; i < pieces; ++i) {
        start(tr, send_string(a, data.substr(i * piece, piece)), sent[i]);
    }
    CHECK(a.shutdown_send() == asock::shutdown_result::ok);
    CHECK(a.shutdown_send() == asock::shutdown_result::ok); // a repeated call changes nothing
    tr.wait(e, "half-close: the sends and the peer's receives");
    for (std::size_t i = 0; i < pieces; ++i) {
        CAPTURE(i);
        CHECK(sent[i] == send_result::ok);
    }
    REQUIRE(got.has_value());
    CHECK(got->bytes.size() == data.size());
    CHECK(got->bytes == data);
    CHECK(got->last == receive_result::abandoned); // the FIN
    CHECK(got->after_last == receive_result::abandoned);

    CHECK(run(e, send_string(a, "late"), "half-close: a send after it") == send_result::not_open);
    CHECK(a.state() == asock::socket_state::open);

    const std::string reply = "a reply after the FIN";
    CHECK(run(e, send_string(b, reply), "half-close: the peer's reply") == send_result::ok);
    std::string back;
    CHECK(run(e, receive_exact(a, back, reply.size()), "half-close: the reply") == receive_result::ok);
    CHECK(back == reply);

    b.close();
    char one;
    CHECK(run(e, receive_into(a, &one, 1), "half-close: the peer's close").result == receive_result::abandoned);
    a.close();
    CHECK(a.state() == asock::socket_state::closed);
    drain(e);
}

// ==== peer reset ====================================================================================

/// A TCP peer resets the connection while a receive is pending: the receive
/// completes ABANDONED with 0 bytes; a send afterwards reports not_open, and in
/// callback form is rejected with not_open and never calls back. Returns the
/// socket for the platform's own checks of what follows.
template <class H>
asock::tcp_socket peer_reset_pending_receive(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    tracker tr;
    std::optional<receive_outcome> r;
    char buf[100];
    start(tr, receive_into(c.socket, buf, sizeof buf), r);
    CHECK(tr.pending() == 1);
    c.peer.reset();
    tr.wait(e, "receive pending at reset");
    REQUIRE(r.has_value());
    CHECK(r->result == receive_result::abandoned);
    CHECK(r->bytes_received == 0);

    // The connection is known to be reset now (ECONNRESET / EPIPE, WSAECONNRESET).
    CHECK(run(e, send_string(c.socket, "after reset"), "send after reset") == send_result::not_open);
    asock::send_operation op;
    const std::string msg = "again";
    const asock::const_buffer cb = asock::buffer(std::string_view(msg));
    std::atomic<int> calls{0};
    const asock::send_sync_result sync = c.socket.send_async(
        op, std::span<const asock::const_buffer>(&cb, 1),
        [](void* ctx, send_result) { static_cast<std::atomic<int>*>(ctx)->fetch_add(1); }, &calls);
    CHECK(sync == asock::send_sync_result::not_open);
    drain(e);
    CHECK(calls.load() == 0);
    return std::move(c.socket);
}

// ==== many sockets ===============================================================================

namespace detail {

/// Receives the client's message, echoes it, then waits for the client's hang-up.
inline asock::task<void> many_server(asock::tcp_socket& s, std::size_t size, std::atomic<int>* ok)
{
    std::string msg;
    if (co_await receive_exact(s, msg, size) != receive_result::ok ||
        co_await s.send_async(asock::buffer(std::string_view(msg))) != send_result::ok) {
        co_return;
    }
    char end;
    if ((co_await s.receive_async(asock::buffer(&end, 1))).result == receive_result::abandoned) {
        ok->fetch_add(1);
    }
}

inline asock::task<void> many_client(asock::tcp_socket& s, std::size_t size, std::uint32_t index, std::atomic<int>* ok)
{
    const std::string msg = pattern_string(size, 0, index);
    if (co_await s.send_async(asock::buffer(std::string_view(msg))) != send_result::ok) {
        co_return;
    }
    std::string echo;
    if (co_await receive_exact(s, echo, size) != receive_result::ok) {
        co_return;
    }
    if (echo == msg) {
        ok->fetch_add(1);
    }
    s.close(); // the server's last receive sees the hang-up
}

} // namespace detail

/// `count` connections open at once (both ends async sockets), each echoing
/// its own message; each server end then sees its client's hang-up.
template <class H>
void many_sockets(asock::engine& e, int count)
{
    std::vector<asock::tcp_socket> servers;
    std::vector<asock::tcp_socket> clients;
    servers.reserve(static_cast<std::size_t>(count));
    clients.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        auto [a, b] = async_pair<H>(e);
        servers.push_back(std::move(a));
        clients.push_back(std::move(b));
    }
    std::atomic<int> server_ok{0};
    std::atomic<int> client_ok{0};
    tracker tr;
    auto size_of = [](int i) { return static_cast<std::size_t>(100 + (i * 37) % 2000); };
    for (int i = 0; i < count; ++i) {
        start(tr, detail::many_server(servers[static_cast<std::size_t>(i)], size_of(i), &server_ok));
    }
    for (int i = 0; i < count; ++i) {
        start(tr, detail::many_client(clients[static_cast<std::size_t>(i)], size_of(i), static_cast<std::uint32_t>(i),
                                      &client_ok));
    }
    tr.wait(e, "many sockets");
    CHECK(client_ok.load() == count);
    CHECK(server_ok.load() == count);
    clients.clear();
    servers.clear();
    drain(e);
}

// ==== a large send to a late reader ===================================================================

namespace detail {

inline constexpr std::size_t big_size = 64u << 20;
inline constexpr std::size_t big_pieces = 97;

/// Sends 64 MiB whose bytes and buffer list live in this coroutine's frame
/// (the bytes in a vector the frame owns). Everything is freed as soon as the
/// send completes and the coroutine ends, so a backend that touched them after
/// the completion (or kept a pointer to a copy that is gone) reads freed memory.
inline asock::task<send_result> send_big_from_frame(asock::tcp_socket& s, std::atomic<bool>* resumed_elsewhere)
{
    std::vector<std::uint8_t> data(big_size);
    fill_pattern(data.data(), data.size(), 0, 64);
    std::array<asock::const_buffer, big_pieces> list{};
    std::size_t off = 0;
    rng r(64);
    for (std::size_t i = 0; i < big_pieces; ++i) {
        const std::size_t n = i + 1 == big_pieces ? big_size - off : r.between(1, 1200000);
        list[i] = asock::buffer(static_cast<const void*>(data.data() + off), n);
        off += n;
    }
    const auto before = this_thread_id();
    const send_result res = co_await s.send_async(std::span<const asock::const_buffer>(list));
    resumed_elsewhere->store(this_thread_id() != before);
    co_return res;
}

/// Same, but the buffer list is a temporary inside the co_await expression.
inline asock::task<send_result> send_big_temporary_list(asock::tcp_socket& s)
{
    std::vector<std::uint8_t> data(big_size);
    fill_pattern(data.data(), data.size(), 0, 65);
    const std::size_t third = big_size / 3;
    co_return co_await s.send_async(std::array<asock::const_buffer, 3>{
        asock::buffer(static_cast<const void*>(data.data()), third),
        asock::buffer(static_cast<const void*>(data.data() + third), third),
        asock::buffer(static_cast<const void*>(data.data() + 2 * third), big_size - 2 * third)});
}

/// Reads `n` bytes and compares them with the pattern; returns the offset of
/// the first difference (n when all match), or ~0 when the stream broke.
template <class Peer>
std::size_t read_and_verify(Peer& b, std::size_t n, std::uint32_t seed)
{
    std::vector<char> buf(256 * 1024);
    std::size_t done = 0;
    while (done < n) {
        const long r = b.read_some(buf.data(), std::min(buf.size(), n - done));
        if (r <= 0) {
            return ~std::size_t{0};
        }
        const std::size_t bad = check_pattern(buf.data(), static_cast<std::size_t>(r), done, seed);
        if (bad != static_cast<std::size_t>(r)) {
            return done + bad;
        }
        done += static_cast<std::size_t>(r);
    }
    return n;
}

} // namespace detail

/// A 64 MiB send, far more than the kernel buffers hold, to a peer that starts
/// reading only once it is pending: it waits for room, completes ok with every
/// byte intact, and never touches its buffers (freed with the coroutine's
/// frame at completion) afterwards; a second send after them arrives too.
template <class H>
void large_send_late_reader(asock::engine& e, bool temporary_list)
{
    CAPTURE(temporary_list);
    auto c = make_async_and_peer<H>(e);
    tracker tr;
    std::optional<send_result> sr;
    std::atomic<bool> resumed_elsewhere{false};
    if (temporary_list) {
        start(tr, detail::send_big_temporary_list(c.socket), sr);
    } else {
        start(tr, detail::send_big_from_frame(c.socket, &resumed_elsewhere), sr);
    }
    // The peer has not read anything: the send cannot have finished.
    REQUIRE(tr.pending() == 1);

    const std::uint32_t seed = temporary_list ? 65 : 64;
    std::size_t verified = 0;
    std::string tail(4, '\0');
    std::atomic<bool> tail_ok{false};
    // The late reader is a helper thread: on an engine without threads the loop runs on this one.
    std::thread reader([&] {
        verified = detail::read_and_verify(c.peer, detail::big_size, seed);
        tail_ok = c.peer.read_exact(tail.data(), tail.size());
    });
    tr.wait(e, "64 MiB send");
    // A second send after the first one's frame and buffers are gone.
    CHECK(run(e, send_string(c.socket, "tail"), "tail send") == send_result::ok);
    reader.join();
    REQUIRE(sr.has_value());
    CHECK(*sr == send_result::ok);
    CHECK(verified == detail::big_size);
    CHECK(tail_ok.load());
    CHECK(tail == "tail");
    if (!temporary_list && e.thread_count() != 0) {
        CHECK(resumed_elsewhere.load()); // it did wait for room, and resumed on an engine thread
    }
    drain(e);
}

// ==== full duplex ===================================================================================

namespace detail {

inline asock::task<send_result> send_pattern(asock::tcp_socket& s, std::size_t total, std::uint32_t seed)
{
    std::vector<char> data(total);
    fill_pattern(data.data(), total, 0, seed);
    co_return co_await s.send_async(asock::buffer(static_cast<const void*>(data.data()), total));
}

/// Sends `total` pattern bytes in chunks of random sizes, each chunk as two buffers.
inline asock::task<std::string> stream_sender(asock::tcp_socket& s, std::size_t total, std::uint32_t seed)
{
    std::vector<char> data(total);
    fill_pattern(data.data(), total, 0, seed);
    rng r(seed);
    std::size_t off = 0;
    while (off < total) {
        const std::size_t n = std::min<std::size_t>(total - off, r.between(2, 300000));
        const std::size_t half = n / 2;
        const std::array<asock::const_buffer, 2> bufs{asock::buffer(data.data() + off, half),
                                                      asock::buffer(data.data() + off + half, n - half)};
        const send_result sr = co_await s.send_async(bufs);
        if (sr != send_result::ok) {
            co_return "send: " + std::string(asock::to_string(sr));
        }
        off += n;
    }
    co_return std::string();
}

/// Receives `total` bytes and checks them against the pattern as they come.
inline asock::task<std::string> stream_receiver(asock::tcp_socket& s, std::size_t total, std::uint32_t seed)
{
    std::vector<char> a(1000);
    std::vector<char> b(70000);
    const std::array<asock::mutable_buffer, 2> bufs{asock::buffer(a.data(), a.size()), asock::buffer(b.data(), b.size())};
    std::size_t got = 0;
    while (got < total) {
        const receive_outcome r = co_await s.receive_async(bufs);
        if (!r) {
            co_return "receive: " + std::string(asock::to_string(r.result)) + " after " + std::to_string(got);
        }
        const std::size_t in_a = std::min<std::size_t>(r.bytes_received, a.size());
        if (check_pattern(a.data(), in_a, got, seed) != in_a ||
            check_pattern(b.data(), r.bytes_received - in_a, got + in_a, seed) != r.bytes_received - in_a) {
            co_return "content mismatch near offset " + std::to_string(got);
        }
        got += r.bytes_received;
        if (got > total) {
            co_return "more bytes than sent";
        }
    }
    co_return std::string();
}

} // namespace detail

/// A receive and a send pending at once on one socket: each completes with its
/// own result and bytes. The receive completes while the send (32 MiB, more
/// than the kernel buffers hold) still waits for room; then the send completes
/// intact while a new receive waits.
template <class H>
void send_and_receive_pending(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    constexpr std::size_t big = 32u << 20;
    tracker tr;
    std::optional<receive_outcome> r;
    std::optional<send_result> s;
    char buf[64];
    std::memset(buf, 0, sizeof buf);
    start(tr, receive_into(c.socket, buf, sizeof buf), r);
    start(tr, detail::send_pattern(c.socket, big, 21), s);
    REQUIRE(tr.pending() == 2);

    // The receive completes while the send is still waiting for room.
    REQUIRE(c.peer.write_all("request", 7));
    drive_until(e, "receive beside a pending send", [&] { return tr.pending() == 1; });
    REQUIRE(r.has_value());
    CHECK(r->result == receive_result::ok);
    CHECK(std::string(buf, r->bytes_received) == "request");
    // (the one still pending is the send)

    // Then the send completes, intact, while a new receive waits.
    std::optional<receive_outcome> r2;
    char buf2[64];
    start(tr, receive_into(c.socket, buf2, sizeof buf2), r2);
    std::string got(big, '\0');
    std::atomic<bool> read_ok{false};
    std::thread reader([&] { read_ok = c.peer.read_exact(got.data(), big); });
    drive_until(e, "send beside a pending receive", [&] { return tr.pending() == 1; });
    reader.join();
    REQUIRE(s.has_value());
    CHECK(*s == send_result::ok);
    REQUIRE(read_ok.load());
    CHECK(check_pattern(got.data(), big, 0, 21) == big);
    // (the one still pending is the second receive)
    REQUIRE(c.peer.write_all("second", 6));
    tr.wait(e, "second receive");
    REQUIRE(r2.has_value());
    CHECK(r2->result == receive_result::ok);
    CHECK(std::string(buf2, r2->bytes_received) == "second");
    drain(e);
}

/// `total` bytes each way at the same time, both ends async sockets, chunks of
/// random sizes sent as two buffers and received into two.
template <class H>
void bidirectional(asock::engine& e, std::size_t total = 8u << 20)
{
    auto [a, b] = async_pair<H>(e);
    tracker tr;
    std::optional<std::string> a_send, a_recv, b_send, b_recv;
    start(tr, detail::stream_receiver(a, total, 32), a_recv);
    start(tr, detail::stream_receiver(b, total, 31), b_recv);
    start(tr, detail::stream_sender(a, total, 31), a_send);
    start(tr, detail::stream_sender(b, total, 32), b_send);
    tr.wait(e, "bidirectional transfer");
    CHECK(*a_send == "");
    CHECK(*b_send == "");
    CHECK(*a_recv == "");
    CHECK(*b_recv == "");
    drain(e);
}

// ==== queued receives =================================================================================

namespace detail {

inline asock::task<void> receive_ordered(asock::tcp_socket& s, char* buf, std::size_t n, receive_outcome* out,
                                         int* order, std::atomic<int>* sequence)
{
    *out = co_await s.receive_async(asock::buffer(buf, n));
    *order = sequence->fetch_add(1);
}

} // namespace detail

/// Callback form: five 4-byte receives queued, then 20 bytes arrive at once;
/// they complete in the order issued, 4 bytes each, the stream in order.
template <class H>
void queued_receives_callback(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    constexpr int n = 5;
    std::atomic<int> sequence{0};
    std::array<asock::receive_operation, n> ops;
    std::array<op_record, n> recs;
    std::array<std::array<char, 4>, n> bufs{};
    std::array<asock::mutable_buffer, n> mb;
    for (int i = 0; i < n; ++i) {
        recs[i].sequence = &sequence;
        mb[i] = asock::buffer(bufs[i].data(), 4);
        REQUIRE(c.socket.receive_async(ops[i], std::span<const asock::mutable_buffer>(&mb[i], 1), on_receive_rec,
                                       &recs[i]) == asock::start_result::started);
    }
    const std::string data = pattern_string(4 * n, 0, 40);
    REQUIRE(c.peer.write_all(data.data(), data.size()));
    drive_until(e, "five queued receives", [&] { return sequence.load() == n; });
    std::string joined;
    for (int i = 0; i < n; ++i) {
        CAPTURE(i);
        REQUIRE(recs[i].count() == 1);
        CHECK(result_of<receive_result>(recs[i]) == receive_result::ok);
        CHECK(recs[i].bytes == 4);
        CHECK(recs[i].order == i);
        joined.append(bufs[i].data(), 4);
    }
    CHECK(joined == data);
    drain(e);
}

/// co_await form: five 4-byte receives queued; six bytes arrive (the first
/// takes 4, the second the 2 left), then fourteen; every byte lands once, in
/// issue order, the last two in a sixth receive.
template <class H>
void queued_receives_awaited(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    constexpr int n = 5;
    std::atomic<int> sequence{0};
    std::array<std::array<char, 4>, n + 1> bufs{};
    std::array<receive_outcome, n + 1> outs{};
    std::array<int, n + 1> order{};
    tracker tr;
    for (int i = 0; i < n; ++i) {
        start(tr, detail::receive_ordered(c.socket, bufs[i].data(), 4, &outs[i], &order[i], &sequence));
    }
    REQUIRE(tr.pending() == n);
    const std::string data = pattern_string(20, 0, 41);
    REQUIRE(c.peer.write_all(data.data(), 6));
    drive_until(e, "first two receives", [&] { return sequence.load() == 2; });
    CHECK(tr.pending() == n - 2);
    REQUIRE(c.peer.write_all(data.data() + 6, data.size() - 6));
    drive_until(e, "last three receives", [&] { return sequence.load() == n; });
    start(tr, detail::receive_ordered(c.socket, bufs[n].data(), 4, &outs[n], &order[n], &sequence));
    tr.wait(e, "sixth receive");
    std::string joined;
    for (int i = 0; i <= n; ++i) {
        CAPTURE(i);
        CHECK(outs[i].result == receive_result::ok);
        CHECK(order[i] == i);
        joined.append(bufs[i].data(), outs[i].bytes_received);
    }
    CHECK(outs[0].bytes_received == 4);
    CHECK(outs[1].bytes_received == 2);
    CHECK(joined == data);
    drain(e);
}

/// Callback and co_await receives mixed: each round queues one callback
/// receive then one awaited receive before any byte arrives; the peer then
/// sends 2 bytes for each. They complete in that order with the bytes in order.
template <class H>
void queued_receives_mixed(asock::engine& e, int rounds = 200)
{
    auto c = make_async_and_peer<H>(e);
    for (int round = 0; round < rounds; ++round) {
        CAPTURE(round);
        std::atomic<int> sequence{0};
        asock::receive_operation op;
        op_record rec;
        rec.sequence = &sequence;
        std::array<char, 2> cbuf{};
        std::array<char, 2> abuf{};
        const asock::mutable_buffer mb = asock::buffer(cbuf.data(), 2);
        REQUIRE(c.socket.receive_async(op, std::span<const asock::mutable_buffer>(&mb, 1), on_receive_rec, &rec) ==
                asock::start_result::started);
        receive_outcome out{};
        int order = -1;
        tracker tr;
        start(tr, detail::receive_ordered(c.socket, abuf.data(), 2, &out, &order, &sequence));
        const std::string data = pattern_string(4, static_cast<std::uint64_t>(round) * 4, 42);
        REQUIRE(c.peer.write_all(data.data(), data.size()));
        tr.wait(e, "mixed receives");
        drive_until(e, "callback receive", [&] { return rec.count() == 1; });
        REQUIRE(rec.order == 0);
        REQUIRE(order == 1);
        REQUIRE(std::string(cbuf.data(), 2) + std::string(abuf.data(), 2) == data);
    }
    drain(e);
}

/// Receives queued on one socket complete in the order issued, with the bytes in order (all cases).
template <class H>
void queued_receives_in_order(asock::engine& e)
{
    queued_receives_callback<H>(e);
    queued_receives_awaited<H>(e);
    queued_receives_mixed<H>(e);
}

// ==== close inside a completion, close with operations pending ================================================

/// Operations one platform adds to those the close scenarios keep pending
/// (Linux: notify_io_async, which Windows does not have). An `Extra` starts
/// its callback-form operations in start_callbacks() and its awaiting
/// coroutines in start_awaiters(), and exposes their records; every one must
/// complete exactly once, ABANDONED, like the scenario's own. This one adds none.
struct no_extra_ops {
    void start_callbacks(asock::tcp_socket&) {}
    std::span<op_record> callbacks() { return {}; }
    void start_awaiters(asock::tcp_socket&, tracker&) {}
    std::span<awaited_record> awaiters() { return {}; }
};

/// Callback-form operations kept pending on a socket whose kernel buffers are
/// small: two receives, an 8 MiB send that cannot finish (the peer reads
/// nothing) and a second one queued behind it, then the Extra's.
template <class Extra>
struct pending_callbacks {
    std::array<asock::receive_operation, 2> rops;
    std::array<op_record, 2> rrecs;
    std::array<std::array<char, 8>, 2> rbufs{};
    std::array<asock::mutable_buffer, 2> rmb;
    std::array<asock::send_operation, 2> sops;
    std::array<op_record, 2> srecs;
    std::vector<char> big = std::vector<char>(8u << 20, 'B');
    asock::const_buffer big_buf = asock::buffer(static_cast<const void*>(big.data()), big.size());
    Extra extra;

    void start(asock::tcp_socket& s)
    {
        for (int i = 0; i < 2; ++i) {
            rmb[i] = asock::buffer(rbufs[i].data(), rbufs[i].size());
            REQUIRE(s.receive_async(rops[i], std::span<const asock::mutable_buffer>(&rmb[i], 1), on_receive_rec,
                                    &rrecs[i]) == asock::start_result::started);
        }
        for (int i = 0; i < 2; ++i) {
            REQUIRE(s.send_async(sops[i], std::span<const asock::const_buffer>(&big_buf, 1), on_send_rec, &srecs[i]) ==
                    asock::send_sync_result::ok);
        }
        extra.start_callbacks(s);
    }

    template <class F>
    void for_each(F f)
    {
        for (auto& r : rrecs) {
            f(r);
        }
        for (auto& r : srecs) {
            f(r);
        }
        for (auto& r : extra.callbacks()) {
            f(r);
        }
    }

    int size() { return 4 + static_cast<int>(extra.callbacks().size()); }

    /// How many of them completed (callbacks called).
    int completed()
    {
        int n = 0;
        for_each([&](const op_record& r) { n += r.count(); });
        return n;
    }

    void check_all_abandoned_once()
    {
        int i = 0;
        for_each([&](const op_record& r) {
            CAPTURE(i);
            check_abandoned_once(r);
            ++i;
        });
    }
};

template <class Others>
struct closing_callback {
    std::unique_ptr<asock::tcp_socket>* owner = nullptr;
    bool destroy = false;
    Others* others = nullptr;
    receive_result result = receive_result::error;
    std::uint32_t bytes = 0;
    int others_completed_after_close = -1;
    int state_after_close = -1;
    std::atomic<bool> finished{false};

    static void on_receive(void* c, receive_result r, std::uint32_t n)
    {
        auto* self = static_cast<closing_callback*>(c);
        self->result = r;
        self->bytes = n;
        if (self->destroy) {
            self->owner->reset(); // destroy the socket from inside its own callback
        } else {
            (*self->owner)->close();
            self->state_after_close = static_cast<int>((*self->owner)->state());
        }
        self->others_completed_after_close = self->others->completed();
        self->finished.store(true, std::memory_order_release);
    }
};

/// A socket with its kernel buffers made small, and its peer.
template <class H>
struct owned_socket_and_peer {
    std::unique_ptr<asock::tcp_socket> owner;
    typename H::peer peer;

    explicit owned_socket_and_peer(asock::engine& e)
    {
        auto c = make_small_buffered<H>(e);
        owner = std::make_unique<asock::tcp_socket>(std::move(c.socket));
        peer = std::move(c.peer);
    }
};

/// Waits until every one of `others` completed, then checks each completed
/// exactly once, ABANDONED, and stays so.
template <class Others>
void others_abandoned_once(asock::engine& e, Others& others)
{
    drive_until(e, "the other operations", [&] { return others.completed() >= others.size(); });
    others.check_all_abandoned_once();
    drain(e);
    others.check_all_abandoned_once(); // still exactly once
}

/// A receive callback closes (or destroys) its own socket while other receives,
/// sends and the Extra's operations are pending: no deadlock (also on a
/// one-thread pool); the receive got its byte; every other operation
/// completes exactly once, ABANDONED; the socket ends CLOSED. Returns how many
/// of the others had completed when close returned inside the callback (Linux
/// delivers them all before it returns; Windows, in a callback, finishes the
/// close when the cancelled calls come back).
template <class H, class Extra = no_extra_ops>
int close_inside_callback(asock::engine& e, bool destroy)
{
    CAPTURE(destroy);
    owned_socket_and_peer<H> c(e);
    // The closing receive goes first in the queue; the others queue behind it.
    pending_callbacks<Extra> others;
    asock::receive_operation closer_op;
    closing_callback<pending_callbacks<Extra>> closer;
    closer.owner = &c.owner;
    closer.destroy = destroy;
    closer.others = &others;
    char cbuf[64];
    const asock::mutable_buffer cmb = asock::buffer(cbuf);
    REQUIRE(c.owner->receive_async(closer_op, std::span<const asock::mutable_buffer>(&cmb, 1),
                                   &closing_callback<pending_callbacks<Extra>>::on_receive,
                                   &closer) == asock::start_result::started);
    others.start(*c.owner);
    drain(e);
    CHECK(others.completed() == 0);

    REQUIRE(c.peer.write_all("x", 1)); // completes the closing receive only
    drive_until(e, "receive callback that closes its socket",
                [&] { return closer.finished.load(std::memory_order_acquire); });
    CHECK(closer.result == receive_result::ok);
    CHECK(closer.bytes == 1);
    others_abandoned_once(e, others);
    if (!destroy) {
        const auto after = static_cast<asock::socket_state>(closer.state_after_close);
        CHECK((after == asock::socket_state::closing || after == asock::socket_state::closed));
        drive_until(e, "closed", [&] { return c.owner->state() == asock::socket_state::closed; });
        CHECK(c.owner->state() == asock::socket_state::closed);
    }
    return closer.others_completed_after_close;
}

namespace detail {

template <class Others>
asock::task<void> receive_then_close(std::unique_ptr<asock::tcp_socket>* owner, bool destroy, Others* others,
                                     receive_outcome* out, int* others_completed_after_close)
{
    char buf[16];
    *out = co_await (*owner)->receive_async(asock::buffer(buf));
    if (destroy) {
        owner->reset();
    } else {
        (*owner)->close();
    }
    *others_completed_after_close = others->completed();
}

} // namespace detail

/// The same from a resumed coroutine: the first of three awaited receives
/// closes (or destroys) the socket when it resumes; the two behind it resume
/// once, ABANDONED, as do the callback-form operations. Returns how many of
/// the callback-form ones had completed when close returned.
template <class H, class Extra = no_extra_ops>
int close_inside_coroutine(asock::engine& e, bool destroy)
{
    CAPTURE(destroy);
    owned_socket_and_peer<H> c(e);
    pending_callbacks<Extra> others;
    tracker tr;
    receive_outcome first{};
    int others_after_close = -1;
    start(tr, detail::receive_then_close(&c.owner, destroy, &others, &first, &others_after_close));
    // Two awaiting receives behind it, plus the callback-form set.
    std::array<awaited_record, 2> awaited;
    start(tr, await_receive_rec(*c.owner, &awaited[0]));
    start(tr, await_receive_rec(*c.owner, &awaited[1]));
    others.start(*c.owner);
    REQUIRE(tr.pending() == 3);

    REQUIRE(c.peer.write_all("y", 1));
    tr.wait(e, "coroutine that closes its socket, and the awaiters behind it");
    CHECK(first.result == receive_result::ok);
    CHECK(first.bytes_received == 1);
    others_abandoned_once(e, others);
    for (const auto& a : awaited) {
        CHECK(a.count() == 1);
        INFO("result " << a.name);
        CHECK(a.abandoned_or_allowed());
        CHECK(a.bytes == 0);
    }
    drain(e);
    for (const auto& a : awaited) {
        CHECK(a.count() == 1);
    }
    return others_after_close;
}

/// A send's completion callback closes the socket while two receives and a
/// second send queued behind it are pending: the send completes ok with its
/// bytes delivered; the others complete exactly once, ABANDONED. Returns how
/// many of the others had completed when close returned inside the callback.
template <class H>
int close_inside_send_callback(asock::engine& e)
{
    auto c = make_small_buffered<H>(e);

    // First send: 256 KiB, far more than the small kernel buffers hold, so it
    // stays pending; its callback closes the socket. Behind it: a second 8 MiB
    // send and two receives.
    struct others_set {
        std::array<asock::receive_operation, 2> rops;
        std::array<op_record, 2> rrecs;
        std::array<std::array<char, 8>, 2> rbufs{};
        std::array<asock::mutable_buffer, 2> rmb;
        asock::send_operation sop;
        op_record srec;
        std::vector<char> big = std::vector<char>(8u << 20, 'B');
        asock::const_buffer big_buf = asock::buffer(static_cast<const void*>(big.data()), big.size());

        int size() const { return 3; }
        int completed() const { return rrecs[0].count() + rrecs[1].count() + srec.count(); }
        void check_all_abandoned_once() const
        {
            check_abandoned_once(rrecs[0]);
            check_abandoned_once(rrecs[1]);
            check_abandoned_once(srec);
        }
    } others;
    struct ctx {
        asock::tcp_socket* s;
        others_set* others;
        std::atomic<int> calls{0};
        send_result result = send_result::error;
        int others_after_close = -1;
    } cx{&c.socket, &others};
    std::vector<char> first(256u << 10, 'F');
    const asock::const_buffer fbuf = asock::buffer(static_cast<const void*>(first.data()), first.size());
    asock::send_operation fop;
    REQUIRE(c.socket.send_async(
                fop, std::span<const asock::const_buffer>(&fbuf, 1),
                [](void* p, send_result r) {
                    auto* self = static_cast<ctx*>(p);
                    self->result = r;
                    self->s->close();
                    self->others_after_close = self->others->completed();
                    self->calls.fetch_add(1, std::memory_order_release);
                },
                &cx) == asock::send_sync_result::ok);
    for (int i = 0; i < 2; ++i) {
        others.rmb[i] = asock::buffer(others.rbufs[i].data(), others.rbufs[i].size());
        REQUIRE(c.socket.receive_async(others.rops[i], std::span<const asock::mutable_buffer>(&others.rmb[i], 1),
                                       on_receive_rec, &others.rrecs[i]) == asock::start_result::started);
    }
    REQUIRE(c.socket.send_async(others.sop, std::span<const asock::const_buffer>(&others.big_buf, 1), on_send_rec,
                                &others.srec) == asock::send_sync_result::ok);
    drain(e);
    REQUIRE(cx.calls.load() == 0); // 256 KiB does not fit in the small kernel buffers

    // Read exactly the first send's bytes: its callback runs and closes.
    std::string got(first.size(), '\0');
    std::atomic<bool> read_ok{false};
    std::thread reader([&] { read_ok = c.peer.read_exact(got.data(), got.size()); });
    drive_until(e, "send callback that closes", [&] { return cx.calls.load(std::memory_order_acquire) == 1; });
    reader.join();
    REQUIRE(read_ok.load());
    CHECK(got == std::string(first.data(), first.size()));
    CHECK(cx.result == send_result::ok);
    others_abandoned_once(e, others);
    CHECK(cx.calls.load() == 1);
    return cx.others_after_close;
}

/// What close_with_pending saw of its awaiters, for the platform's own checks.
struct close_report {
    std::vector<std::thread::id> awaiter_threads;
};

/// close() (or the destructor) on the test thread with operations pending:
/// callback form (two receives, an 8 MiB send that cannot finish, one queued
/// behind it, the Extra's) and co_await form (a receive, a send queued behind
/// the others, the Extra's). Every callback is called exactly once, ABANDONED,
/// before close / the destructor returns; every awaiter resumes exactly once,
/// ABANDONED, on an engine thread (on an engine without threads: in its loop
/// on this thread, never inside close).
template <class H, class Extra = no_extra_ops>
close_report close_with_pending(asock::engine& e, bool destroy)
{
    CAPTURE(destroy);
    const std::thread::id main_id = this_thread_id();
    owned_socket_and_peer<H> c(e);
    pending_callbacks<Extra> cbs;
    cbs.start(*c.owner);
    std::vector<char> more(1000, 'm');
    std::array<awaited_record, 2> aw;
    Extra awaiting_extra;
    tracker tr;
    start(tr, await_receive_rec(*c.owner, &aw[0]));
    start(tr, await_send_rec(*c.owner, &more, &aw[1]));
    awaiting_extra.start_awaiters(*c.owner, tr);
    const int awaiters = 2 + static_cast<int>(awaiting_extra.awaiters().size());
    REQUIRE(tr.pending() == awaiters);
    drain(e);
    REQUIRE(cbs.completed() == 0);

    if (destroy) {
        c.owner.reset();
    } else {
        c.owner->close();
        CHECK(c.owner->state() == asock::socket_state::closed);
    }
    // Every callback was called before close / the destructor returned.
    cbs.check_all_abandoned_once();
    std::vector<awaited_record*> all{&aw[0], &aw[1]};
    for (auto& a : awaiting_extra.awaiters()) {
        all.push_back(&a);
    }
    if (e.thread_count() == 0) {
        // Awaiters resume on the engine, i.e. inside its loop, not inside close.
        for (auto* a : all) {
            CHECK(a->count() == 0);
        }
    }
    tr.wait(e, "awaiters after close");
    close_report report;
    for (std::size_t i = 0; i < all.size(); ++i) {
        CAPTURE(i);
        const awaited_record& a = *all[i];
        CHECK(a.count() == 1);
        INFO("result " << a.name);
        CHECK(a.abandoned_or_allowed());
        CHECK(a.bytes == 0);
        if (e.thread_count() == 0) {
            CHECK(a.thread == main_id); // the loop runs on this thread
        } else {
            CHECK(a.thread != main_id);
        }
        report.awaiter_threads.push_back(a.thread);
    }
    drain(e);
    cbs.check_all_abandoned_once();
    for (auto* a : all) {
        CHECK(a->count() == 1);
    }
    // The peer sees the end of the stream (after whatever was sent before close).
    std::string rest;
    c.peer.read_available(rest);
    return report;
}

/// One thread closes the socket; the pending receive's callback runs on that
/// thread, inside close(), and lingers. This thread destroys the socket
/// meanwhile: the destroy must not return (and let its caller free the
/// callback's context) before the callback has finished. The pause inside the
/// callback only orders the threads: on a slow machine the scenario gets
/// weaker, never wrongly red. Needs an engine with threads (close() runs on a
/// thread that is not one of them).
template <class H>
void destroy_during_close_callbacks(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    auto owner = std::make_unique<asock::tcp_socket>(std::move(c.socket));

    struct shared_state {
        std::atomic<bool> in_callback{false};
        std::atomic<bool> destroy_returned{false};
        std::atomic<bool> destroy_returned_during_callback{false};
        std::atomic<int> calls{0};
        std::atomic<int> result{0};
    } st;
    char buf[16];
    const asock::mutable_buffer bufs[1]{asock::buffer(buf)};
    asock::receive_operation op;
    REQUIRE(owner->receive_async(
                op, bufs,
                [](void* ctx, receive_result r, std::uint32_t) {
                    auto* s = static_cast<shared_state*>(ctx);
                    s->result = static_cast<int>(r);
                    s->in_callback = true;
                    std::this_thread::sleep_for(200ms);
                    s->destroy_returned_during_callback = s->destroy_returned.load();
                    s->calls.fetch_add(1);
                },
                &st) == asock::start_result::started);

    std::thread closer([&] { owner->close(); });
    wait_until("the callback inside close()", [&] { return st.in_callback.load(); });
    owner.reset(); // destroy, on this thread
    st.destroy_returned = true;
    closer.join();

    CHECK(st.calls.load() == 1);
    CHECK(static_cast<receive_result>(st.result.load()) == receive_result::abandoned);
    CHECK_FALSE(st.destroy_returned_during_callback.load());
}

// ==== concurrent senders ===========================================================================

enum class sender_form {
    awaited,   ///< plain threads, each send awaited with asock::sync_wait before the next
    callback,  ///< plain threads, callback form, up to four frames of a thread in flight
    coroutine, ///< a coroutine started from each thread, resuming on engine threads
};

inline const char* to_string(sender_form f)
{
    switch (f) {
    case sender_form::awaited: return "awaited";
    case sender_form::callback: return "callback";
    case sender_form::coroutine: return "coroutine";
    }
    return "?";
}

namespace detail {

struct frame_header {
    std::uint32_t length;
    std::uint32_t sender;
    std::uint32_t sequence;
};

inline constexpr int sender_threads = 4;
inline constexpr std::uint32_t frames_per_sender = 150;

inline std::uint32_t frame_seed(std::uint32_t sender, std::uint32_t seq) { return sender * 1000003u + seq; }

inline std::uint32_t frame_length(std::uint32_t sender, std::uint32_t seq)
{
    rng r(frame_seed(sender, seq));
    return r.between(2, 40000);
}

/// A frame: header and payload, sent as three buffers.
struct frame {
    frame_header header{};
    std::vector<char> payload;
    std::array<asock::const_buffer, 3> bufs{};

    void build(std::uint32_t sender, std::uint32_t seq)
    {
        header = {frame_length(sender, seq), sender, seq};
        payload.resize(header.length);
        fill_pattern(payload.data(), payload.size(), 0, frame_seed(sender, seq));
        const std::size_t half = payload.size() / 2;
        bufs = {asock::buffer(static_cast<const void*>(&header), sizeof header),
                asock::buffer(static_cast<const void*>(payload.data()), half),
                asock::buffer(static_cast<const void*>(payload.data() + half), payload.size() - half)};
    }
};

/// Reads frames until every sender's frames arrived; returns "" or what went wrong.
template <class Peer>
std::string read_frames(Peer& b)
{
    std::array<std::uint32_t, sender_threads> next{};
    std::vector<char> payload;
    for (std::uint32_t total = 0; total < sender_threads * frames_per_sender; ++total) {
        frame_header h{};
        if (!b.read_exact(&h, sizeof h)) {
            return "stream ended after " + std::to_string(total) + " frames";
        }
        if (h.sender >= sender_threads) {
            return "garbage header (sender " + std::to_string(h.sender) + ") after " + std::to_string(total) +
                   " frames: bytes were interleaved";
        }
        if (h.sequence != next[h.sender]) {
            return "sender " + std::to_string(h.sender) + ": frame " + std::to_string(h.sequence) + " where " +
                   std::to_string(next[h.sender]) + " was due";
        }
        if (h.length != frame_length(h.sender, h.sequence)) {
            return "wrong length in a header: bytes were interleaved";
        }
        payload.resize(h.length);
        if (!b.read_exact(payload.data(), payload.size())) {
            return "stream ended inside a frame";
        }
        if (check_pattern(payload.data(), payload.size(), 0, frame_seed(h.sender, h.sequence)) != payload.size()) {
            return "payload of sender " + std::to_string(h.sender) + " frame " + std::to_string(h.sequence) +
                   " corrupted: bytes were interleaved";
        }
        ++next[h.sender];
    }
    return "";
}

inline void awaiting_sender(asock::tcp_socket& s, std::uint32_t sender, std::atomic<int>* failures)
{
    frame f;
    for (std::uint32_t seq = 0; seq < frames_per_sender; ++seq) {
        f.build(sender, seq);
        if (asock::sync_wait(s.send_async(f.bufs)) != send_result::ok) {
            failures->fetch_add(1);
            return;
        }
    }
}

inline void callback_sender(asock::tcp_socket& s, std::uint32_t sender, std::atomic<int>* failures)
{
    struct slot {
        frame f;
        asock::send_operation op;
        std::atomic<bool> busy{false};
        std::atomic<int>* failures = nullptr;
    };
    std::array<slot, 4> slots;
    for (auto& sl : slots) {
        sl.failures = failures;
    }
    for (std::uint32_t seq = 0; seq < frames_per_sender; ++seq) {
        slot& sl = slots[seq % slots.size()];
        wait_until("a free send slot", [&] { return !sl.busy.load(std::memory_order_acquire); });
        sl.f.build(sender, seq);
        sl.busy.store(true, std::memory_order_release);
        const auto r = s.send_async(
            sl.op, sl.f.bufs,
            [](void* c, send_result res) {
                auto* self = static_cast<slot*>(c);
                if (res != send_result::ok) {
                    self->failures->fetch_add(1);
                }
                self->busy.store(false, std::memory_order_release);
            },
            &sl);
        if (r != asock::send_sync_result::ok) {
            failures->fetch_add(1);
            sl.busy.store(false);
            return;
        }
    }
    for (auto& sl : slots) {
        wait_until("last sends of a thread", [&] { return !sl.busy.load(std::memory_order_acquire); });
    }
}

inline asock::task<void> coroutine_sender(asock::tcp_socket& s, std::uint32_t sender, std::atomic<int>* failures)
{
    frame f;
    for (std::uint32_t seq = 0; seq < frames_per_sender; ++seq) {
        f.build(sender, seq);
        if (co_await s.send_async(f.bufs) != send_result::ok) {
            failures->fetch_add(1);
            co_return;
        }
    }
}

} // namespace detail

/// Four senders on one socket at once, from four threads: the peer reads every
/// frame whole, each sender's frames in order, and nothing else. Needs an
/// engine with threads (plain threads block on sends).
template <class H>
void concurrent_senders(asock::engine& e, sender_form form)
{
    INFO("form " << to_string(form));
    auto c = make_async_and_peer<H>(e);
    std::atomic<int> failures{0};
    tracker tr;
    std::vector<std::thread> senders;
    for (std::uint32_t t = 0; t < detail::sender_threads; ++t) {
        senders.emplace_back([&, t] {
            switch (form) {
            case sender_form::awaited: detail::awaiting_sender(c.socket, t, &failures); break;
            case sender_form::callback: detail::callback_sender(c.socket, t, &failures); break;
            case sender_form::coroutine: start(tr, detail::coroutine_sender(c.socket, t, &failures)); break;
            }
        });
    }
    const std::string verdict = detail::read_frames(c.peer);
    if (!verdict.empty()) {
        c.peer.close(); // so that senders blocked on a send the reader gave up on finish
    }
    for (auto& t : senders) {
        t.join();
    }
    tr.wait(e, "sender coroutines");
    CHECK(verdict == "");
    CHECK(failures.load() == 0);
    std::string extra;
    CHECK(c.peer.read_available(extra) == 0);
}

// ==== cancellation ===================================================================================

/// A pending receive cancelled through its stop token completes CANCELLED with
/// 0 bytes (resumed by the engine, not inside request_stop); the next receive
/// gets the data sent afterwards.
template <class H>
void cancel_pending_receive(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    std::stop_source src;
    tracker tr;
    std::optional<with_threads<receive_outcome>> r;
    char buf[64];
    std::memset(buf, 0, sizeof buf);
    start(tr, receive_t(c.socket, buf, sizeof buf, src.get_token()), r);
    REQUIRE(tr.pending() == 1);
    src.request_stop();
    if (e.thread_count() == 0) {
        // The resumption is posted to the engine: not inside request_stop.
        CHECK(tr.pending() == 1);
    }
    tr.wait(e, "cancelled receive");
    REQUIRE(r.has_value());
    CHECK(r->result.result == receive_result::cancelled);
    CHECK(r->result.bytes_received == 0);

    REQUIRE(c.peer.write_all("after the cancel", 16));
    const auto next = run(e, receive_t(c.socket, buf, sizeof buf), "receive after the cancel");
    REQUIRE(next.result.result == receive_result::ok);
    CHECK(std::string(buf, next.result.bytes_received) == "after the cancel");
    drain(e);
}

/// A receive cancelled while bytes arrive loses no byte. Each round: a receive
/// with a stop token is pending; the peer writes a chunk, then after an
/// adaptive spin the stop is requested. Depending on how far the engine got,
/// the receive completes ok (with bytes) or cancelled (with none, the bytes
/// left for the next receive). Either is right; what is checked is that no
/// byte is lost or duplicated and no result mixes the two. `spin_seed` seeds
/// the spin's random steps.
template <class H>
void cancel_receive_race(asock::engine& e, std::uint64_t spin_seed, int rounds = 1000)
{
    auto c = make_async_and_peer<H>(e);
    auto chunk = [](int round) {
        rng r(static_cast<std::uint64_t>(round) + 7);
        return pattern_string(r.between(1, 3000), 0, static_cast<std::uint32_t>(round));
    };
    // The spin adapts so that the stop request keeps landing close to the
    // moment the engine completes the receive, where a race would show.
    rng spin_rng(spin_seed);
    unsigned spin = 0;
    std::atomic<unsigned> sink{0};
    int cancelled = 0;
    int completed = 0;
    std::vector<char> buf(4096);
    for (int round = 0; round < rounds; ++round) {
        CAPTURE(round);
        const std::string expected = chunk(round);
        std::stop_source src;
        tracker tr;
        std::optional<with_threads<receive_outcome>> r;
        start(tr, receive_t(c.socket, buf.data(), buf.size(), src.get_token()), r);
        REQUIRE(c.peer.write_all(expected.data(), expected.size()));
        if (e.thread_count() == 0 && round % 2 == 1) {
            e.poll(); // the loop of this engine runs here: let it see the bytes first
        }
        for (unsigned k = 0; k < spin; ++k) {
            sink.fetch_add(1, std::memory_order_relaxed);
        }
        src.request_stop();
        tr.wait(e, "receive racing a stop request");
        REQUIRE(r.has_value());
        std::string got;
        if (r->result.result == receive_result::cancelled) {
            REQUIRE(r->result.bytes_received == 0);
            ++cancelled;
            spin = std::min(spin + spin_rng.between(1, 64), 100000u); // stop came early: later next time
        } else {
            REQUIRE(r->result.result == receive_result::ok);
            REQUIRE(r->result.bytes_received > 0);
            got.assign(buf.data(), r->result.bytes_received);
            ++completed;
            const unsigned step = spin_rng.between(1, 64);
            spin = spin > step ? spin - step : 0; // stop came late: earlier next time
        }
        REQUIRE(got.size() <= expected.size());
        if (got.size() < expected.size()) {
            REQUIRE(run(e, receive_exact(c.socket, got, expected.size() - got.size()), "rest of the chunk") ==
                    receive_result::ok);
        }
        REQUIRE(got == expected);
    }
    // Both outcomes are legitimate; how often each happened depends on timing.
    INFO("cancelled " << cancelled << ", completed " << completed);
    CHECK(cancelled + completed == rounds);
    std::string extra;
    CHECK(c.peer.read_available(extra) == 0);
    drain(e);
}

/// Two sends started back to back on a socket whose kernel buffers are small:
/// 512 KiB of stream 50, far more than the small buffers hold, so it cannot
/// finish while the peer reads nothing, and `small` queued behind it. (Not
/// more: a peer reading through 8 KiB buffers is slow under Wine.) `stop` cancels the first when `stop_first`, else
/// the second. (The socket is the last member: destroyed first, it completes
/// whatever is still pending into members that are still there.)
template <class H>
struct send_behind_big_send {
    std::vector<char> big = std::vector<char>(512u << 10);
    std::string small;
    std::stop_source stop;
    tracker tr;
    std::optional<with_threads<send_result>> first;
    std::optional<with_threads<send_result>> second;
    async_and_peer<H> c;

    send_behind_big_send(asock::engine& e, std::string small_data, bool stop_first)
        : small(std::move(small_data)), c(make_small_buffered<H>(e))
    {
        fill_pattern(big.data(), big.size(), 0, 50);
        start(tr, send_t(c.socket, big.data(), big.size(), stop_first ? stop.get_token() : std::stop_token{}), first);
        start(tr, send_t(c.socket, small.data(), small.size(), stop_first ? std::stop_token{} : stop.get_token()),
              second);
        REQUIRE(tr.pending() == 2);
    }
};

/// A send cancelled while part of it is already sent completes CANCELLED; the
/// send queued behind it and later ones fail with error (the stream has a
/// hole); what reached the peer is a prefix of the cancelled send.
template <class H>
void cancel_partly_sent_send(asock::engine& e)
{
    send_behind_big_send<H> t(e, "queued", true);
    t.stop.request_stop();
    t.tr.wait(e, "cancelled send and the one behind it");
    CHECK(t.first->result == send_result::cancelled);
    CHECK(t.second->result == send_result::error);
    CHECK(run(e, send_t(t.c.socket, "later", 5), "send after the hole").result == send_result::error);
    std::string got;
    t.c.peer.read_available(got);
    CHECK(got.size() < t.big.size());
    CHECK(check_pattern(got.data(), got.size(), 0, 50) == got.size());
    drain(e);
}

/// A send cancelled while still queued behind another completes CANCELLED at
/// once; nothing of it is sent and the stream stays usable without its bytes.
template <class H>
void cancel_queued_send(asock::engine& e)
{
    send_behind_big_send<H> t(e, "never on the wire", false);
    t.stop.request_stop();
    drive_until(e, "cancelled queued send", [&] { return t.tr.pending() == 1; });
    REQUIRE(t.second.has_value());
    CHECK(t.second->result == send_result::cancelled);
    // ... and the first is the one still pending (pending() == 1).
    const std::size_t big = t.big.size();
    std::string got(big + 4, '\0');
    std::atomic<bool> read_ok{false};
    std::thread reader([&] { read_ok = t.c.peer.read_exact(got.data(), got.size()); });
    t.tr.wait(e, "send in front of the cancelled one");
    CHECK(t.first->result == send_result::ok);
    CHECK(run(e, send_t(t.c.socket, "tail", 4), "tail send").result == send_result::ok);
    reader.join();
    REQUIRE(read_ok.load());
    CHECK(check_pattern(got.data(), big, 0, 50) == big);
    CHECK(got.substr(big) == "tail");
    drain(e);
}

/// A stop requested before the co_await of a receive, with data waiting: it
/// completes CANCELLED at once with 0 bytes, without suspending and without
/// I/O; the data stays for the next receive.
template <class H>
void cancel_before_await_receive(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    std::stop_source src;
    src.request_stop();
    const auto me = this_thread_id();

    REQUIRE(c.peer.write_all("kept", 4));
    wait_until("bytes readable", [&] { return H::bytes_readable(c.socket.native_handle()) >= 4; });
    char buf[16];
    tracker tr;
    std::optional<with_threads<receive_outcome>> r;
    start(tr, receive_t(c.socket, buf, sizeof buf, src.get_token()), r);
    REQUIRE(tr.pending() == 0); // finished inside start(): no suspension
    CHECK(r->result.result == receive_result::cancelled);
    CHECK(r->result.bytes_received == 0);
    CHECK(r->after == me);
    const auto next = run(e, receive_t(c.socket, buf, sizeof buf), "receive after the cancelled one");
    REQUIRE(next.result.result == receive_result::ok);
    CHECK(std::string(buf, next.result.bytes_received) == "kept");
    drain(e);
}

/// A stop requested before the co_await of a send: it completes CANCELLED at
/// once, without suspending, and nothing of it is sent; the next send goes out.
template <class H>
void cancel_before_await_send(asock::engine& e)
{
    auto c = make_async_and_peer<H>(e);
    std::stop_source src;
    src.request_stop();
    const auto me = this_thread_id();

    tracker tr;
    std::optional<with_threads<send_result>> s;
    start(tr, send_t(c.socket, "dropped", 7, src.get_token()), s);
    REQUIRE(tr.pending() == 0);
    CHECK(s->result == send_result::cancelled);
    CHECK(s->after == me);
    CHECK(run(e, send_t(c.socket, "next", 4), "send after the cancelled one").result == send_result::ok);
    std::string got(4, '\0');
    REQUIRE(c.peer.read_exact(got.data(), got.size()));
    CHECK(got == "next");
    drain(e);
}

/// Cancellation through std::stop_token (every case but cancel_receive_race,
/// which a test runs on its own: see tests/win32/integration_io.cpp).
template <class H>
void cancellation(asock::engine& e)
{
    cancel_pending_receive<H>(e);
    cancel_partly_sent_send<H>(e);
    cancel_queued_send<H>(e);
    cancel_before_await_receive<H>(e);
    cancel_before_await_send<H>(e);
}

} // namespace asock_scenarios
