// tests/integration/io_test.cpp: data transfer over real sockets: echo on
// engines with 0, 1 and 4 threads, scatter / gather buffers, peer close and
// reset, 1000 connections at once, a 64 MiB send through EAGAIN,
// notify_io_async, and the TCP helpers' connect / accept.
#include "integration_support.hpp"

#include <array>
#include <memory>
#include <span>
#include <system_error>

using asock::notify_io_result;
using asock::notify_io_type;
using asock::receive_outcome;
using asock::receive_result;
using asock::send_result;

namespace {

// ---- echo ---------------------------------------------------------------------

asock::task<void> echo_session(asock::tcp_socket socket, std::atomic<int>* ended)
{
    std::vector<char> data(16 * 1024);
    for (;;) {
        const receive_outcome r = co_await socket.receive_async(asock::buffer(data.data(), data.size()));
        if (!r) {
            break; // abandoned: the client hung up
        }
        if (co_await socket.send_async(asock::buffer(static_cast<const void*>(data.data()), r.bytes_received)) !=
            send_result::ok) {
            break;
        }
    }
    ended->fetch_add(1);
}

asock::task<void> serve(asock::tcp_listener_t& listener, int clients, it::tracker* sessions, std::atomic<int>* ended,
                        std::atomic<int>* accept_errors)
{
    for (int i = 0; i < clients; ++i) {
        auto accepted = co_await listener.accept();
        if (!accepted) {
            accept_errors->fetch_add(1);
            co_return;
        }
        it::start(*sessions, echo_session(std::move(accepted.socket), ended));
    }
}

/// Sends `messages` messages of random sizes and checks each echo; returns ""
/// on success, else what went wrong.
asock::task<std::string> echo_client(asock::engine& e, std::string host, std::uint16_t port, std::uint32_t seed,
                                     int messages)
{
    auto connected = co_await asock::connect(e, host, port);
    if (!connected) {
        co_return "connect: " + connected.error.message();
    }
    asock::tcp_socket& s = connected.socket;
    it::rng r(seed);
    std::uint64_t offset = 0;
    for (int m = 0; m < messages; ++m) {
        const std::size_t size = r.between(1, 64 * 1024);
        const std::string msg = it::pattern_string(size, offset, seed);
        offset += size;
        const send_result sr = co_await s.send_async(asock::buffer(std::string_view(msg)));
        if (sr != send_result::ok) {
            co_return "send: " + std::string(asock::to_string(sr));
        }
        std::string echo;
        const receive_result rr = co_await it::receive_exact(s, echo, size);
        if (rr != receive_result::ok) {
            co_return "receive: " + std::string(asock::to_string(rr));
        }
        if (echo != msg) {
            co_return "echo mismatch in message " + std::to_string(m);
        }
    }
    co_return std::string();
}

void run_echo(unsigned threads, const std::string& host, int clients, int messages)
{
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    std::error_code ec;
    auto listener = asock::tcp_listener_t::listen(e, host, 0, ec);
    if (ec && host == "::1") {
        WARN("IPv6 loopback unavailable (" << ec.message() << "): ::1 echo skipped");
        return;
    }
    REQUIRE_FALSE(ec);
    REQUIRE(listener.valid());
    REQUIRE(listener.port() != 0);

    it::tracker sessions;
    std::atomic<int> ended{0};
    std::atomic<int> accept_errors{0};
    it::tracker server;
    it::start(server, serve(listener, clients, &sessions, &ended, &accept_errors));

    it::tracker client_tracker;
    std::vector<std::optional<std::string>> results(static_cast<std::size_t>(clients));
    for (int c = 0; c < clients; ++c) {
        it::start(client_tracker, echo_client(e, host, listener.port(), 100u + static_cast<std::uint32_t>(c), messages),
                  results[static_cast<std::size_t>(c)]);
    }
    client_tracker.wait(e, "echo clients");
    server.wait(e, "echo server accept loop");
    sessions.wait(e, "echo sessions");
    for (auto& r : results) {
        REQUIRE(r.has_value());
        CHECK(*r == "");
    }
    CHECK(ended.load() == clients);
    CHECK(accept_errors.load() == 0);
    listener.close();
    it::drain(e);
}

// ---- helpers for single operations ------------------------------------------

asock::task<receive_outcome> receive_multi(asock::tcp_socket& s, std::vector<asock::mutable_buffer>* bufs)
{
    co_return co_await s.receive_async(std::span<const asock::mutable_buffer>(*bufs));
}

asock::task<send_result> send_multi(asock::tcp_socket& s, std::vector<asock::const_buffer>* bufs)
{
    co_return co_await s.send_async(std::span<const asock::const_buffer>(*bufs));
}

asock::task<notify_io_result> notify(asock::tcp_socket& s, notify_io_type type)
{
    co_return co_await s.notify_io_async(type);
}

struct received_stream {
    std::string bytes;
    receive_result last = receive_result::ok;
    receive_result after_last = receive_result::ok;
};

/// Receives (through a few small scattered buffers) until a receive fails,
/// then tries once more.
asock::task<received_stream> receive_until_end(asock::tcp_socket& s)
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

/// Writes bytes into the socket (no asock operation in flight) until the
/// kernel has no more room; returns how many.
std::size_t fill_send_buffer(int fd)
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

std::pair<int, int> make_pair_of(bool tcp) { return tcp ? it::make_tcp_pair() : it::make_socketpair(); }

} // namespace

// ==== echo ======================================================================

TEST_CASE("echo over TCP loopback, both sides co_await, on engines with 0, 1 and 4 threads", "[integration][echo]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    run_echo(threads, "127.0.0.1", threads == 0 ? 3 : 8, 40);
}

TEST_CASE("echo over IPv6 loopback", "[integration][echo]")
{
    run_echo(1, "::1", 2, 10);
}

// ==== scatter / gather ===========================================================

TEST_CASE("regression: a multi-buffer receive fills every buffer in order, not only the first",
          "[integration][regression][buffers]")
{
    const unsigned threads = GENERATE(0u, 1u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = make_pair_of(tcp);
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    auto make_buffers = [](std::vector<std::vector<char>>& storage, const std::vector<std::size_t>& sizes) {
        storage.clear();
        std::vector<asock::mutable_buffer> bufs;
        for (std::size_t n : sizes) {
            storage.emplace_back(n + 16, '\xEE'); // 16 sentinel bytes after each buffer
        }
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            bufs.push_back(asock::buffer(storage[i].data(), sizes[i]));
        }
        return bufs;
    };
    // Checks that the buffers hold exactly `got` bytes of the pattern, in order,
    // and nothing was written past what was received.
    auto check_contents = [](const std::vector<std::vector<char>>& storage, const std::vector<std::size_t>& sizes,
                             std::size_t got, std::uint32_t seed) {
        std::size_t index = 0;
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            const std::size_t filled = std::min(sizes[i], got > index ? got - index : 0);
            CAPTURE(i, sizes[i], filled);
            CHECK(it::check_pattern(storage[i].data(), filled, index, seed) == filled);
            for (std::size_t k = filled; k < storage[i].size(); ++k) {
                if (storage[i][k] != '\xEE') {
                    FAIL_CHECK("byte " << k << " of buffer " << i << " was written past the received data");
                    break;
                }
            }
            index += sizes[i];
        }
    };

    std::vector<std::vector<char>> storage;

    SECTION("data already there, exactly filling five buffers of different sizes")
    {
        const std::vector<std::size_t> sizes{1, 7, 100, 3, 4096};
        auto bufs = make_buffers(storage, sizes);
        const std::string data = it::pattern_string(4207, 0, 1);
        REQUIRE(b.write_all(data));
        const receive_outcome r = it::run(*engine, receive_multi(a, &bufs));
        REQUIRE(r.result == receive_result::ok);
        CHECK(r.bytes_received == 4207);
        check_contents(storage, sizes, r.bytes_received, 1);
    }
    SECTION("receive pending first, then one write that exactly fills them")
    {
        const std::vector<std::size_t> sizes{2, 5, 1, 1000, 33};
        auto bufs = make_buffers(storage, sizes);
        it::tracker tr;
        std::optional<receive_outcome> r;
        it::start(tr, receive_multi(a, &bufs), r);
        const std::string data = it::pattern_string(1041, 0, 2);
        REQUIRE(b.write_all(data));
        tr.wait(*engine);
        REQUIRE(r.has_value());
        REQUIRE(r->result == receive_result::ok);
        CHECK(r->bytes_received == 1041);
        check_contents(storage, sizes, r->bytes_received, 2);
    }
    SECTION("fewer bytes than room: the first buffers are filled in order, the rest untouched")
    {
        const std::vector<std::size_t> sizes{1, 7, 100, 3, 4096};
        auto bufs = make_buffers(storage, sizes);
        REQUIRE(b.write_all(it::pattern_string(50, 0, 3)));
        const receive_outcome r = it::run(*engine, receive_multi(a, &bufs));
        REQUIRE(r.result == receive_result::ok);
        CHECK(r.bytes_received == 50);
        check_contents(storage, sizes, r.bytes_received, 3);
    }
    SECTION("more buffers than one system call takes (150 buffers)")
    {
        std::vector<std::size_t> sizes;
        std::size_t total = 0;
        for (std::size_t i = 1; i <= 150; ++i) {
            sizes.push_back(i);
            total += i;
        }
        auto bufs = make_buffers(storage, sizes);
        REQUIRE(b.write_all(it::pattern_string(total, 0, 4)));
        // One receive takes what is there; the kernel had all of it.
        const receive_outcome r = it::run(*engine, receive_multi(a, &bufs));
        REQUIRE(r.result == receive_result::ok);
        CHECK(r.bytes_received == total);
        check_contents(storage, sizes, r.bytes_received, 4);
    }
    it::drain(*engine);
}

TEST_CASE("a multi-buffer send (gather) arrives complete and in order", "[integration][buffers]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = make_pair_of(tcp);
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    std::vector<std::size_t> sizes;
    SECTION("a few small buffers") { sizes = {3, 1000, 1, 7000, 5}; }
    SECTION("150 buffers of odd sizes, 4 MiB in all: several system calls and EAGAIN in the middle")
    {
        it::rng r(9);
        std::size_t total = 0;
        for (int i = 0; i < 150; ++i) {
            const std::size_t n = i == 149 ? (4u << 20) - total : r.between(1, 50000);
            sizes.push_back(n);
            total += n;
        }
    }
    std::size_t total = 0;
    for (std::size_t n : sizes) {
        total += n;
    }
    const std::string data = it::pattern_string(total, 0, 5);
    std::vector<asock::const_buffer> bufs;
    std::size_t off = 0;
    for (std::size_t n : sizes) {
        bufs.push_back(asock::buffer(data.data() + off, n));
        off += n;
    }
    it::tracker tr;
    std::optional<send_result> sr;
    it::start(tr, send_multi(a, &bufs), sr);
    std::string got;
    if (threads == 0) {
        // The loop runs on this thread: read from a helper thread.
        std::thread reader([&] { got = b.read_string(total); });
        tr.wait(*engine, "gather send");
        reader.join();
    } else {
        got = b.read_string(total);
        tr.wait(*engine, "gather send");
    }
    REQUIRE(sr.has_value());
    CHECK(*sr == send_result::ok);
    REQUIRE(got.size() == total);
    CHECK(it::check_pattern(got.data(), total, 0, 5) == total);
    std::string extra;
    CHECK(b.read_available(extra) == 0);
    it::drain(*engine);
}

// ==== peer close / reset ==========================================================

TEST_CASE("regression: bytes sent just before the peer closes are all received, then abandoned",
          "[integration][regression][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);

    SECTION("a receive is pending when the bytes and the close arrive")
    {
        auto [fa, fb] = make_pair_of(tcp);
        asock::tcp_socket a = it::open_socket(*engine, fa);
        it::raw_peer b(fb);
        it::tracker tr;
        std::optional<received_stream> got;
        it::start(tr, receive_until_end(a), got);
        const std::string data = it::pattern_string(20000, 0, 6);
        REQUIRE(b.write_all(data));
        b.close();
        tr.wait(*engine, "receive until end");
        REQUIRE(got.has_value());
        CHECK(got->bytes.size() == data.size());
        CHECK(got->bytes == data);
        CHECK(got->last == receive_result::abandoned);
        CHECK(got->after_last == receive_result::abandoned);
    }
    SECTION("nothing is pending when they arrive; the receives come later")
    {
        auto [fa, fb] = make_pair_of(tcp);
        asock::tcp_socket a = it::open_socket(*engine, fa);
        it::raw_peer b(fb);
        const std::string data = it::pattern_string(3000, 0, 7);
        REQUIRE(b.write_all(data));
        b.close();
        // Give the hang-up time to be seen by the engine before any receive starts.
        char probe;
        it::wait_until("hang-up visible", [&] {
            pollfd p{a.native_handle(), POLLRDHUP, 0};
            return ::poll(&p, 1, 0) == 1 && ::recv(a.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
        });
        if (threads == 0) {
            it::drain(*engine);
        }
        const received_stream got = it::run(*engine, receive_until_end(a));
        CHECK(got.bytes == data);
        CHECK(got.last == receive_result::abandoned);
        CHECK(got.after_last == receive_result::abandoned);
    }
    SECTION("100 rounds: a helper thread writes in pieces and closes while the socket receives")
    {
        for (std::uint32_t round = 0; round < 100; ++round) {
            CAPTURE(round);
            auto [fa, fb] = make_pair_of(tcp);
            asock::tcp_socket a = it::open_socket(*engine, fa);
            it::raw_peer b(fb);
            it::rng r(round);
            const std::string data = it::pattern_string(r.between(1, 30000), 0, round);
            const std::uint32_t pieces = r.between(1, 5);
            it::tracker tr;
            std::optional<received_stream> got;
            std::atomic<bool> wrote_all{true};
            std::thread writer([&] {
                std::size_t off = 0;
                for (std::uint32_t p = 0; p < pieces; ++p) {
                    const std::size_t n = p + 1 == pieces ? data.size() - off : (data.size() - off) / 2;
                    if (!b.write_all(data.data() + off, n)) {
                        wrote_all = false;
                    }
                    off += n;
                }
                b.close();
            });
            it::start(tr, receive_until_end(a), got);
            tr.wait(*engine, "receive until end (rounds)");
            writer.join();
            REQUIRE(wrote_all.load());
            REQUIRE(got.has_value());
            REQUIRE(got->bytes.size() == data.size());
            REQUIRE(got->bytes == data);
            REQUIRE(got->last == receive_result::abandoned);
        }
    }
    it::drain(*engine);
}

TEST_CASE("peer reset: pending operations complete abandoned, later sends report not_open", "[integration][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = it::make_tcp_pair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    SECTION("a pending receive")
    {
        it::tracker tr;
        std::optional<receive_outcome> r;
        char buf[100];
        it::start(tr, it::receive_into(a, buf, sizeof buf), r);
        CHECK(tr.pending() == 1);
        b.reset();
        tr.wait(*engine, "receive pending at reset");
        REQUIRE(r.has_value());
        CHECK(r->result == receive_result::abandoned);
        CHECK(r->bytes_received == 0);

        // A send afterwards: the peer has reset the connection (ECONNRESET / EPIPE).
        const send_result s = it::run(*engine, it::send_string(a, "after reset"));
        CHECK(s == send_result::not_open);
        // ... and in callback form it is rejected with not_open.
        asock::send_operation op;
        const std::string msg = "again";
        const asock::const_buffer cb = asock::buffer(std::string_view(msg));
        std::atomic<int> calls{0};
        const asock::send_sync_result sync = a.send_async(
            op, std::span<const asock::const_buffer>(&cb, 1),
            [](void* c, send_result) { static_cast<std::atomic<int>*>(c)->fetch_add(1); }, &calls);
        CHECK(sync == asock::send_sync_result::not_open);
        it::drain(*engine);
        CHECK(calls.load() == 0);
        // The receive side keeps reporting the end.
        const receive_outcome again = it::run(*engine, it::receive_into(a, buf, sizeof buf));
        CHECK(again.result == receive_result::abandoned);
    }
    SECTION("a pending send")
    {
        // 32 MiB is more than loopback TCP buffers hold: the send waits for room.
        it::tracker tr;
        std::optional<send_result> s;
        it::start(tr, it::send_string(a, std::string(32u << 20, 's')), s);
        REQUIRE(tr.pending() == 1);
        b.reset();
        tr.wait(*engine, "send pending at reset");
        REQUIRE(s.has_value());
        CHECK(*s == send_result::abandoned);
        const send_result later = it::run(*engine, it::send_string(a, "x"));
        CHECK(later == send_result::not_open);
    }
    SECTION("a pending send and a pending receive together")
    {
        it::tracker tr;
        std::optional<send_result> s;
        std::optional<receive_outcome> r;
        char buf[100];
        it::start(tr, it::receive_into(a, buf, sizeof buf), r);
        it::start(tr, it::send_string(a, std::string(32u << 20, 's')), s);
        REQUIRE(tr.pending() == 2);
        b.reset();
        tr.wait(*engine, "send and receive pending at reset");
        REQUIRE(r.has_value());
        REQUIRE(s.has_value());
        CHECK(r->result == receive_result::abandoned);
        CHECK(r->bytes_received == 0);
        // The connection was reset while the send was pending.
        CHECK(*s == send_result::abandoned);
    }
    it::drain(*engine);
}

// ==== scale =======================================================================

namespace {

asock::task<void> pair_server(asock::tcp_socket& s, std::atomic<int>* ok)
{
    char buf[128];
    std::uint32_t got = 0;
    while (got < 100) {
        const receive_outcome r = co_await s.receive_async(asock::buffer(buf + got, sizeof buf - got));
        if (!r) {
            co_return;
        }
        got += r.bytes_received;
    }
    if (got != 100 || co_await s.send_async(asock::buffer(static_cast<const void*>(buf), got)) != send_result::ok) {
        co_return;
    }
    char end;
    if ((co_await s.receive_async(asock::buffer(&end, 1))).result == receive_result::abandoned) {
        ok->fetch_add(1);
    }
}

asock::task<void> pair_client(asock::tcp_socket& s, std::uint32_t index, std::atomic<int>* ok)
{
    char msg[100];
    it::fill_pattern(msg, sizeof msg, 0, index);
    if (co_await s.send_async(asock::buffer(static_cast<const void*>(msg), sizeof msg)) != send_result::ok) {
        co_return;
    }
    std::string echo;
    if (co_await it::receive_exact(s, echo, sizeof msg) != receive_result::ok) {
        co_return;
    }
    if (it::check_pattern(echo.data(), echo.size(), 0, index) == sizeof msg) {
        ok->fetch_add(1);
    }
    s.close(); // the server's last receive sees the hang-up
}

} // namespace

TEST_CASE("1000 socket pairs open at once, each echoing its own message", "[integration][scale]")
{
    constexpr int pairs = 1000;
    const rlim_t limit = it::raise_fd_limit();
    if (limit < static_cast<rlim_t>(2 * pairs + 64)) {
        WARN("RLIMIT_NOFILE hard limit " << limit << " is below the " << 2 * pairs + 64
                                         << " descriptors this test needs: skipped");
        return;
    }
    const unsigned threads = GENERATE(0u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    std::vector<asock::tcp_socket> servers;
    std::vector<asock::tcp_socket> clients;
    servers.reserve(pairs);
    clients.reserve(pairs);
    for (int i = 0; i < pairs; ++i) {
        auto [fa, fb] = it::make_socketpair();
        servers.push_back(it::open_socket(*engine, fa));
        clients.push_back(it::open_socket(*engine, fb));
    }
    std::atomic<int> server_ok{0};
    std::atomic<int> client_ok{0};
    it::tracker tr;
    for (int i = 0; i < pairs; ++i) {
        it::start(tr, pair_server(servers[static_cast<std::size_t>(i)], &server_ok));
    }
    for (int i = 0; i < pairs; ++i) {
        it::start(tr, pair_client(clients[static_cast<std::size_t>(i)], static_cast<std::uint32_t>(i), &client_ok));
    }
    tr.wait(*engine, "1000 pairs");
    CHECK(client_ok.load() == pairs);
    CHECK(server_ok.load() == pairs);
    clients.clear();
    servers.clear();
    it::drain(*engine);
}

// ==== a large send through EAGAIN ==================================================

namespace {

constexpr std::size_t big_size = 64u << 20;
constexpr std::size_t big_pieces = 97;

/// Sends 64 MiB whose bytes and buffer list live in this coroutine's frame
/// (the bytes in a vector the frame owns). Everything is freed as soon as the
/// send completes and the coroutine ends, so a backend that touched them after
/// the completion (or kept a pointer to a copy that is gone) reads freed memory.
asock::task<send_result> send_big_from_frame(asock::tcp_socket& s, std::atomic<bool>* suspended_once)
{
    std::vector<std::uint8_t> data(big_size);
    it::fill_pattern(data.data(), data.size(), 0, 64);
    std::array<asock::const_buffer, big_pieces> list{};
    std::size_t off = 0;
    it::rng r(64);
    for (std::size_t i = 0; i < big_pieces; ++i) {
        const std::size_t n = i + 1 == big_pieces ? big_size - off : r.between(1, 1200000);
        list[i] = asock::buffer(static_cast<const void*>(data.data() + off), n);
        off += n;
    }
    const auto before = it::this_thread_id();
    const send_result res = co_await s.send_async(std::span<const asock::const_buffer>(list));
    suspended_once->store(it::this_thread_id() != before);
    co_return res;
}

/// Same, but the buffer list is a temporary inside the co_await expression.
asock::task<send_result> send_big_temporary_list(asock::tcp_socket& s)
{
    std::vector<std::uint8_t> data(big_size);
    it::fill_pattern(data.data(), data.size(), 0, 65);
    const std::size_t third = big_size / 3;
    co_return co_await s.send_async(std::array<asock::const_buffer, 3>{
        asock::buffer(static_cast<const void*>(data.data()), third),
        asock::buffer(static_cast<const void*>(data.data() + third), third),
        asock::buffer(static_cast<const void*>(data.data() + 2 * third), big_size - 2 * third)});
}

/// Reads `n` bytes and compares them with the pattern; returns the offset of
/// the first difference (n when all match), or ~0 when the stream broke.
std::size_t read_and_verify(it::raw_peer& b, std::size_t n, std::uint32_t seed)
{
    std::vector<char> buf(256 * 1024);
    std::size_t done = 0;
    while (done < n) {
        const long r = b.read_some(buf.data(), std::min(buf.size(), n - done));
        if (r <= 0) {
            return ~std::size_t{0};
        }
        const std::size_t bad = it::check_pattern(buf.data(), static_cast<std::size_t>(r), done, seed);
        if (bad != static_cast<std::size_t>(r)) {
            return done + bad;
        }
        done += static_cast<std::size_t>(r);
    }
    return n;
}

} // namespace

TEST_CASE("regression: a 64 MiB send that hits EAGAIN never uses freed memory and arrives intact",
          "[integration][regression][large]")
{
    const unsigned threads = GENERATE(0u, 1u);
    const bool tcp = GENERATE(false, true);
    const bool temporary_list = GENERATE(false, true);
    CAPTURE(threads, tcp, temporary_list);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = make_pair_of(tcp);
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    it::tracker tr;
    std::optional<send_result> sr;
    std::atomic<bool> suspended{false};
    if (temporary_list) {
        it::start(tr, send_big_temporary_list(a), sr);
    } else {
        it::start(tr, send_big_from_frame(a, &suspended), sr);
    }
    // The peer has not read anything: the send cannot have finished.
    REQUIRE(tr.pending() == 1);

    const std::uint32_t seed = temporary_list ? 65 : 64;
    std::size_t verified = 0;
    std::string tail;
    auto read_all = [&] {
        verified = read_and_verify(b, big_size, seed);
        tail = b.read_string(4);
    };
    // The reader is a helper thread: with threads == 0 the loop runs on this one.
    std::thread reader([&] { read_all(); });
    tr.wait(*engine, "64 MiB send");
    // A second send after the first one's frame and buffers are gone.
    CHECK(it::run(*engine, it::send_string(a, "tail")) == send_result::ok);
    reader.join();
    REQUIRE(sr.has_value());
    CHECK(*sr == send_result::ok);
    CHECK(verified == big_size);
    CHECK(tail == "tail");
    if (!temporary_list && threads == 1) {
        CHECK(suspended.load()); // it did wait for room, on the engine thread
    }
    it::drain(*engine);
}

// ==== notify_io_async ==============================================================

TEST_CASE("notify_io_async in / out over real sockets", "[integration][notify]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);

    SECTION("out on a socket with room completes out")
    {
        CHECK(it::run(*engine, notify(a, notify_io_type::out)) == notify_io_result::out);
    }
    SECTION("in waits for data, completes in, and moves no data")
    {
        it::tracker tr;
        std::optional<notify_io_result> n;
        it::start(tr, notify(a, notify_io_type::in), n);
        CHECK(tr.pending() == 1);
        REQUIRE(b.write_all("ping"));
        tr.wait(*engine, "notify in");
        REQUIRE(n.has_value());
        CHECK(*n == notify_io_result::in);
        char buf[16];
        const receive_outcome r = it::run(*engine, it::receive_into(a, buf, sizeof buf));
        REQUIRE(r.result == receive_result::ok);
        CHECK(std::string(buf, r.bytes_received) == "ping");
    }
    SECTION("in with data already there completes in")
    {
        REQUIRE(b.write_all("x"));
        CHECK(it::run(*engine, notify(a, notify_io_type::in)) == notify_io_result::in);
    }
    SECTION("out waits while the send buffer is full, completes out once the peer reads")
    {
        const std::size_t filled = fill_send_buffer(a.native_handle());
        REQUIRE(filled > 0);
        it::tracker tr;
        std::optional<notify_io_result> n;
        it::start(tr, notify(a, notify_io_type::out), n);
        CHECK(tr.pending() == 1);
        std::string drained;
        std::thread reader([&] { drained = b.read_string(filled); });
        tr.wait(*engine, "notify out");
        reader.join();
        CHECK(drained.size() == filled);
        REQUIRE(n.has_value());
        CHECK(*n == notify_io_result::out);
    }
    SECTION("in when the peer hangs up completes abandoned")
    {
        it::tracker tr;
        std::optional<notify_io_result> n;
        it::start(tr, notify(a, notify_io_type::in), n);
        b.close();
        tr.wait(*engine, "notify in at hang-up");
        REQUIRE(n.has_value());
        CHECK(*n == notify_io_result::abandoned);
        // Already hung up: a new one completes abandoned at once.
        CHECK(it::run(*engine, notify(a, notify_io_type::in)) == notify_io_result::abandoned);
    }
    SECTION("pending in and out are both abandoned by close")
    {
        fill_send_buffer(a.native_handle());
        it::tracker tr;
        std::optional<notify_io_result> nin;
        std::optional<notify_io_result> nout;
        it::start(tr, notify(a, notify_io_type::in), nin);
        it::start(tr, notify(a, notify_io_type::out), nout);
        CHECK(tr.pending() == 2);
        a.close();
        tr.wait(*engine, "notifies at close");
        CHECK(nin == notify_io_result::abandoned);
        CHECK(nout == notify_io_result::abandoned);
    }
    SECTION("not_open after close, on an empty socket; invalid_argument for a bad type")
    {
        a.close();
        CHECK(it::run(*engine, notify(a, notify_io_type::in)) == notify_io_result::not_open);
        asock::tcp_socket empty;
        CHECK(it::run(*engine, notify(empty, notify_io_type::out)) == notify_io_result::not_open);
        asock::tcp_socket c = it::open_socket(*engine, it::make_socketpair().first);
        CHECK(it::run(*engine, notify(c, static_cast<notify_io_type>(9))) == notify_io_result::invalid_argument);
    }
    it::drain(*engine);
}

TEST_CASE("notify_io_async in when a TCP peer resets reports the error or the hang-up", "[integration][notify]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    auto [fa, fb] = it::make_tcp_pair();
    asock::tcp_socket a = it::open_socket(*engine, fa);
    it::raw_peer b(fb);
    it::tracker tr;
    std::optional<notify_io_result> n;
    it::start(tr, notify(a, notify_io_type::in), n);
    b.reset();
    tr.wait(*engine, "notify at reset");
    REQUIRE(n.has_value());
    CHECK((*n == notify_io_result::error || *n == notify_io_result::abandoned));
}

// ==== TCP helpers ====================================================================

TEST_CASE("asock::connect reports connection refused", "[integration][tcp]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    // A bound socket that does not listen: connecting to its port is refused,
    // and no other process can take the port meanwhile.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const std::uint16_t port = ntohs(addr.sin_port);

    auto outcome = it::run(*engine, asock::connect(*engine, "127.0.0.1", port));
    CHECK_FALSE(outcome);
    CHECK(outcome.error == std::errc::connection_refused);
    CHECK_FALSE(outcome.socket.valid());
    ::close(fd);
    it::drain(*engine);
}

TEST_CASE("tcp_listener accepts connections made with asock::connect; close ends a pending accept",
          "[integration][tcp]")
{
    const unsigned threads = GENERATE(0u, 1u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    std::error_code ec;
    auto listener = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0, ec);
    REQUIRE_FALSE(ec);

    it::tracker tr;
    std::optional<asock::accept_outcome<asock::default_platform>> accepted;
    it::start(tr, listener.accept(), accepted);
    auto connected = it::run(*engine, asock::connect(*engine, "127.0.0.1", listener.port()));
    REQUIRE(connected);
    tr.wait(*engine, "accept");
    REQUIRE(accepted.has_value());
    REQUIRE(*accepted);
    REQUIRE(accepted->socket.state() == asock::socket_state::open);

    // Bytes flow both ways between the two sockets the helpers produced.
    CHECK(it::run(*engine, it::send_string(connected.socket, "hello")) == send_result::ok);
    std::string got;
    CHECK(it::run(*engine, it::receive_exact(accepted->socket, got, 5)) == receive_result::ok);
    CHECK(got == "hello");

    // A pending accept ends with bad_file_descriptor when the listener closes.
    std::optional<asock::accept_outcome<asock::default_platform>> second;
    it::start(tr, listener.accept(), second);
    CHECK(tr.pending() == 1);
    listener.close();
    tr.wait(*engine, "accept at listener close");
    REQUIRE(second.has_value());
    CHECK_FALSE(*second);
    CHECK(second->error == std::errc::bad_file_descriptor);
    it::drain(*engine);
}
